#!/usr/bin/env python3
"""Checks Nabla's safetensors and .npy files against the reference readers and writers.

    python3 -m venv ~/venvs/nabla-check && ~/venvs/nabla-check/bin/pip install safetensors numpy
    swift build -c release
    ~/venvs/nabla-check/bin/python scripts/safetensors_interop.py [path/to/nabla]

1. The reference writer saves tensors of several dtypes and shapes; Nabla reads them
   (`nabla tensors show --json`) and every value must be identical.
2. Nabla writes them back (`nabla tensors copy`, the writer `Module.save` uses); the reference
   reader loads Nabla's file and every array must be identical in dtype, shape and bits.
3. A model checkpoint written by Nabla (when a path to one is given with --model) loads too.
Not part of CI: it needs Python packages.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file, save_file

args = [a for a in sys.argv[1:] if not a.startswith("--")]
nabla = args[0] if args else os.path.join(".build", "release", "nabla")
model = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--model=")), None)

rng = np.random.default_rng(0)
arrays = {
    "encoder.0.weight": rng.standard_normal((4, 3)).astype(np.float32),
    "encoder.0.bias": rng.standard_normal(4).astype(np.float32),
    "double.matrix": rng.standard_normal((2, 3, 2)),
    "scalar": np.array(3.25, dtype=np.float64),
    "counts": np.array([1, -2, 2**40], dtype=np.int64),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "specials": np.array([np.inf, -np.inf, -0.0, 1e-45, 3.4e38], dtype=np.float32),
}
failures = 0
with tempfile.TemporaryDirectory() as d:
    a, b = os.path.join(d, "reference.safetensors"), os.path.join(d, "nabla.safetensors")
    save_file(arrays, a, metadata={"written_by": "reference"})

    shown = json.loads(subprocess.run([nabla, "tensors", "show", "--json", a], check=True, capture_output=True, text=True).stdout)
    for name, x in arrays.items():
        t = shown["tensors"][name]
        same = t["shape"] == list(x.shape) and np.array_equal(np.array(t["data"], dtype=np.float64), x.astype(np.float64).ravel())
        print(f"Nabla reads {name:18s} {x.dtype}: {'identical' if same else 'DIFFERENT'}")
        failures += not same

    subprocess.run([nabla, "tensors", "copy", a, b], check=True)
    back = load_file(b)
    for name, x in arrays.items():
        y = back[name]
        same = y.dtype == x.dtype and y.shape == x.shape and x.tobytes() == y.tobytes()
        print(f"reference reads Nabla's {name:18s}: {'identical' if same else 'DIFFERENT'}")
        failures += not same

    npy_in, npy_out = os.path.join(d, "a.npy"), os.path.join(d, "b.npy")
    np.save(npy_in, arrays["double.matrix"])
    subprocess.run([nabla, "tensors", "copy", npy_in, npy_out], check=True)
    same = np.load(npy_out).tobytes() == arrays["double.matrix"].tobytes()
    print(f"numpy reads Nabla's .npy: {'identical' if same else 'DIFFERENT'}")
    failures += not same

if model:
    loaded = load_file(model)
    print(f"reference reads the model {model}: {len(loaded)} tensors, {sum(v.size for v in loaded.values())} values")

print("all identical" if failures == 0 else f"{failures} differences")
sys.exit(1 if failures else 0)
