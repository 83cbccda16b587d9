#!/usr/bin/env python3
"""Opens the TensorBoard event files of a `nabla train` run with TensorBoard's own reader.

    python3 -m venv ~/venvs/nabla-check && ~/venvs/nabla-check/bin/pip install tensorboard
    nabla train --out runs/check
    ~/venvs/nabla-check/bin/python scripts/tensorboard_check.py runs/check

Prints each scalar tag with its number of points, first and last value, and checks that they
equal the run's metrics.jsonl. Exit status 1 on any difference. Not part of CI.
"""
import glob
import json
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run = sys.argv[1] if len(sys.argv) > 1 else "."
files = sorted(glob.glob(os.path.join(run, "events.out.tfevents.*")))
if not files:
    sys.exit(f"no event files in {run}")
acc = EventAccumulator(run)
acc.Reload()
tags = acc.Tags()["scalars"]
print(f"{len(files)} event file(s); scalar tags: {', '.join(tags)}")
series = {t: acc.Scalars(t) for t in tags}
for t, points in series.items():
    print(f"  {t:24s} {len(points):4d} points  step {points[0].step}: {points[0].value:.6g}  ...  step {points[-1].step}: {points[-1].value:.6g}")

metrics = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
failures = 0
for row in metrics:
    for key, tag in (("train_loss", "train/loss"), ("val_loss", "validation/loss"), ("val_accuracy", "validation/accuracy")):
        if key not in row:
            continue
        found = [p.value for p in series.get(tag, []) if p.step == row["epoch"]]
        # Event files hold float32; metrics.jsonl holds the double.
        if not found or abs(found[-1] - row[key]) > 1e-6 * max(1, abs(row[key])):
            print(f"epoch {row['epoch']} {tag}: event file {found}, metrics.jsonl {row[key]}")
            failures += 1
print("event files agree with metrics.jsonl" if failures == 0 else f"{failures} differences")
sys.exit(1 if failures else 0)
