import ArgumentParser
import Foundation
import Nabla
import NablaConformance

/// `nabla tune`: hyperparameter search over `nabla train` flags, each trial its own run.
struct Tune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Search `nabla train` settings: random or grid search, successive halving, parallel trials, resumable.",
        discussion: """
        A `nabla train` flag given one value is kept in every trial; given a space, it is searched:
          lo..hi:log  log-uniform     lo..hi  uniform     lo..hi:int  integers
          a|b|c       choices (for numbers also a,b,c)

        Each trial is a run folder OUT/trial-K. OUT/trials.jsonl records finished trials: the same command again resumes the search without rerunning them. Trials are ranked by the validation metric (accuracy or R²) at the epoch of the lowest validation loss, ties by that loss; unless --validation is given, trials validate on 20 % of the rows.

        Examples:
          nabla tune --data digits --lr 1e-4..1e-1:log --model 'mlp:32|mlp:64' --batch 16,32,64 --trials 30 --jobs 2
          nabla tune --data digits --lr 1e-4..1e-1:log --halving --epochs 81 --trials 27
        """)
    @Option(help: "Trials (random search), or the most grid points to run (grid search).") var trials: Int = 20
    @Option(help: "Trials run at once, each in its own process.") var jobs: Int = 1
    @Option(help: "random or grid.") var search: String = "random"
    @Option(help: "Grid search: points per range.") var gridPoints: Int = 3
    @Flag(help: "Successive halving: start every trial with --min-epochs, keep the best third and triple the epochs, up to --epochs.") var halving = false
    @Option(help: "Successive halving: the first rung's epochs.") var minEpochs: Int = 3
    @Option(help: "Seed of the random search.") var seed: UInt64 = 0
    @Option(help: "The search's folder (default: runs/tune-TIME).") var out: String?
    @Flag(help: "Print the summary as JSON.") var json = false
    @Argument(parsing: .allUnrecognized, help: "`nabla train` flags, with values or search spaces.") var trainArguments: [String] = []

    func validate() throws {
        guard (1...100_000).contains(trials) else { throw ValidationError("--trials must be between 1 and 100000") }
        guard (1...256).contains(jobs) else { throw ValidationError("--jobs must be between 1 and 256") }
        guard ["random", "grid"].contains(search) else { throw ValidationError("--search must be random or grid, got '\(search)'") }
        guard gridPoints >= 2, minEpochs >= 1 else { throw ValidationError("--grid-points must be at least 2 and --min-epochs at least 1") }
    }

    /// The train flags as (flag, value) pairs; value nil for a flag that takes none.
    func pairs() throws -> [(String, String?)] {
        var out: [(String, String?)] = []
        var i = 0
        let words = trainArguments.map { $0.hasPrefix(" ") ? String($0.dropFirst()) : $0 }
        while i < words.count {
            let w = words[i]
            guard w.hasPrefix("--") else { throw ValidationError("'\(w)' is not a flag of nabla train (flags start with --)") }
            if let eq = w.firstIndex(of: "=") {
                out.append((String(w[..<eq]), String(w[w.index(after: eq)...]))); i += 1
            } else if ArgumentNormalizer.flags.contains(w) {
                out.append((w, nil)); i += 1
            } else {
                guard i + 1 < words.count else { throw ValidationError("\(w) needs a value") }
                out.append((w, words[i + 1])); i += 2
            }
        }
        for forbidden in ["--out", "--resume", "--json", "--quiet", "--find-lr"] where out.contains(where: { $0.0 == forbidden }) {
            throw ValidationError("\(forbidden) is set by nabla tune for each trial; leave it out")
        }
        return out
    }

    func run() throws {
        do {
            let pairs = try pairs()
            var fixed: [(String, String?)] = [], space: [String: HyperparameterSearch.Domain] = [:]
            for (flag, value) in pairs {
                if let value, let domain = try wrap(flag, { try HyperparameterSearch.Domain.parse(value) }) { space[flag] = domain } else { fixed.append((flag, value)) }
            }
            if !pairs.contains(where: { $0.0 == "--validation" }) {
                // Trials are chosen on the validation rows: twice a single run's share keeps ties and noise down.
                fixed.append(("--validation", "0.2"))
                if !json { print("validating each trial on 20 % of the rows (--validation 0.2; give --validation to change it)") }
            }
            guard !space.isEmpty else { throw ValidationError("no flag has a search space (lo..hi, lo..hi:log or a|b|c); see nabla tune --help") }
            if halving, space["--epochs"] != nil { throw ValidationError("--epochs is the halving's largest budget; give it one value") }
            let maxEpochs = Int(fixed.first { $0.0 == "--epochs" }?.1 ?? "60") ?? 60
            let searchSpace = HyperparameterSearch(space: space, strategy: search == "grid" ? .grid : .random, trials: trials,
                                                   halving: halving ? (minEpochs, Swift.max(minEpochs, maxEpochs), 3) : nil, jobs: jobs, seed: seed)
            var spaced = searchSpace
            spaced.gridPoints = gridPoints
            // Every planned trial must be a valid `nabla train` command line.
            let planned = spaced.plannedTrials()
            var invalid: [Int: String] = [:]
            for t in planned {
                do { _ = try Train.parse(arguments(fixed, t, folder: "x")) } catch { invalid[t.number] = Train.message(for: error) }
            }
            if invalid.count == planned.count { throw ValidationError("no trial of the search space is a valid nabla train command: \(invalid[0] ?? "")") }

            let stamp = DateFormatter()
            stamp.dateFormat = "yyyyMMdd-HHmmss"
            let folder = out ?? "runs/tune-\(stamp.string(from: Date()))"
            let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? Bundle.main.executablePath ?? CommandLine.arguments[0]
            let start = Date()
            if let data = FileManager.default.contents(atPath: (folder as NSString).appendingPathComponent("trials.jsonl")), !json {
                print("resuming the search in \(folder): \(String(decoding: data, as: UTF8.self).split(separator: "\n").count) results already recorded are kept")
            }
            let fixedCopy = fixed, invalidCopy = invalid, quietOutput = json, firstRung = spaced.rungs.first
            let results = try spaced.run(folder: folder) { trial, budget in
                if let message = invalidCopy[trial.number] { throw RunSettingsError(message) }
                let runFolder = (folder as NSString).appendingPathComponent("trial-\(trial.number)")
                var args: [String]
                if budget == 0 || budget == firstRung || !FileManager.default.fileExists(atPath: (runFolder as NSString).appendingPathComponent("config.json")) {
                    try? FileManager.default.removeItem(atPath: runFolder)   // an unfinished first try
                    args = ["train"] + arguments(fixedCopy, trial, folder: runFolder)
                    if budget > 0 { args = args.filter { !$0.hasPrefix("--epochs=") } + ["--epochs=\(budget)"] }
                } else {
                    args = ["train", "--resume", runFolder, "--epochs=\(budget)"]
                }
                let outcome = try runTrial(executable, args + ["--json", "--quiet", "--stop-with-parent"])
                if !quietOutput {
                    print("trial \(trial.number)\(budget > 0 ? " (\(budget) epochs)" : ""): \(trial.settings.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) → validation \(fmt(outcome.score, digits: 4))")
                }
                return outcome
            }
            try report(results, search: spaced, folder: folder, seconds: Date().timeIntervalSince(start))
        } catch let e as ValidationError { throw e } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
    }

    func wrap<T>(_ flag: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw ValidationError("\(flag): \(error)") }
    }

    /// The train arguments of a trial.
    func arguments(_ fixed: [(String, String?)], _ trial: HyperparameterSearch.Trial, folder: String) -> [String] {
        var out: [String] = []
        for (flag, value) in fixed { out.append(value.map { "\(flag)=\($0)" } ?? flag) }
        for (flag, value) in trial.settings.sorted(by: { $0.key < $1.key }) { out.append("\(flag)=\(value)") }
        return out + ["--out=\(folder)"]
    }

    /// Runs one `nabla train` and reads its validation metric (at the lowest validation loss) and test metric.
    func runTrial(_ executable: String, _ args: [String]) throws -> (score: Double, details: [String: Double]) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        let stdout = Pipe(), stderr = Pipe()
        (process.standardOutput, process.standardError) = (stdout, stderr)
        try process.run()
        let output = stdout.fileHandleForReading.readDataToEndOfFile(), errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw RunSettingsError(String(decoding: errors, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: "\n").last ?? "exit \(process.terminationStatus)")
        }
        guard let summary = try? JSONSerialization.jsonObject(with: output) as? [String: Any], let folder = summary["run_folder"] as? String else {
            throw RunSettingsError("nabla train printed no summary")
        }
        let metrics = try readMetrics((folder as NSString).appendingPathComponent("metrics.jsonl"))
        guard let best = metrics.min(by: { ($0["val_loss"] ?? .infinity) < ($1["val_loss"] ?? .infinity) }),
              let score = best["val_accuracy"] ?? best["val_r2"] else {
            throw RunSettingsError("the trial has no validation metric (give --validation a fraction above 0)")
        }
        var details = ["validation": score, "epochs": Double(metrics.count), "validation_loss": best["val_loss"] ?? .infinity]
        if let t = (summary["test_accuracy"] ?? summary["test_r2"]) as? Double { details["test"] = t }
        if let s = summary["seconds"] as? Double { details["seconds"] = s }
        return (score, details)
    }

    func readMetrics(_ path: String) throws -> [[String: Double]] {
        guard let data = FileManager.default.contents(atPath: path) else { throw RunSettingsError("\(path) is missing") }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?.compactMapValues { $0 as? Double }
        }
    }

    func report(_ results: [HyperparameterSearch.Result], search: HyperparameterSearch, folder: String, seconds: Double) throws {
        // Each trial at the largest budget it reached.
        var latest: [Int: HyperparameterSearch.Result] = [:]
        for r in results where (latest[r.trial.number]?.budget ?? -1) < r.budget { latest[r.trial.number] = r }
        // The furthest rung first, then the validation metric, then (for ties) the lower validation loss.
        let ranked = latest.values.sorted {
            ($0.budget, $0.score ?? -.infinity, -($0.details["validation_loss"] ?? .infinity)) > ($1.budget, $1.score ?? -.infinity, -($1.details["validation_loss"] ?? .infinity))
        }
        let names = search.space.keys.sorted()
        guard let best = ranked.first(where: { $0.score != nil }) else { throw RunSettingsError("every trial failed; the first: \(ranked.first?.error ?? "")") }
        let bestFolder = (folder as NSString).appendingPathComponent("trial-\(best.trial.number)")
        let summary = OrderedJSON([
            ("trials", .number(Double(latest.count))), ("failed", .number(Double(latest.values.filter { $0.score == nil }.count))),
            ("seconds", .number(seconds)), ("folder", .string(folder)), ("best_run", .string(bestFolder)),
            ("best", .object(Dictionary(uniqueKeysWithValues: best.trial.settings.map { ($0.key, JSONValue.string($0.value)) }))),
            ("best_validation", .number(best.score!)), ("best_test", best.details["test"].map { .number($0) } ?? .null),
            ("results", .array(ranked.map { r in .object(["trial": .number(Double(r.trial.number)), "settings": .object(r.trial.settings.mapValues { .string($0) }),
                                                          "epochs": .number(Double(r.budget)), "validation": r.score.map { .number($0) } ?? .null,
                                                          "test": r.details["test"].map { .number($0) } ?? .null, "error": r.error.map { .string($0) } ?? .null]) })),
        ]).text
        try writeAtomically(summary + "\n", to: (folder as NSString).appendingPathComponent("summary.json"))
        for name in names {
            let domain = search.space[name]!
            let choices: [String]? = { if case .choice(let v) = domain { return v } else { return nil } }()
            let points = ranked.compactMap { r -> (Double, Double)? in
                guard let s = r.score, let v = r.trial.settings[name] else { return nil }
                if let choices { return (Double(choices.firstIndex(of: v) ?? 0), s) }
                guard let x = Double(v) else { return nil }
                if case .logUniform = domain { return (Foundation.log10(x), s) }
                return (x, s)
            }
            let isLog: Bool = { if case .logUniform = domain { return true } else { return false } }()
            let xLabel = choices.map { "\(name): " + $0.enumerated().map { "\($0.offset) = \($0.element)" }.joined(separator: ", ") } ?? (isLog ? "\(name) (log10)" : name)
            let plot = LinePlot(title: "Validation metric against \(name)", xLabel: xLabel, yLabel: "validation metric",
                                series: [LinePlot.Series(name: "trials", points: points, markersOnly: true)])
            try plot.write(to: (folder as NSString).appendingPathComponent("tune-\(name.trimmingCharacters(in: CharacterSet(charactersIn: "-"))).svg"))
        }
        if json { print(summary); return }
        print("\n" + pad("rank", 6) + names.map { pad($0, 16) }.joined() + pad("epochs", 8) + pad("validation", 12) + "test")
        for (k, r) in ranked.enumerated() {
            let cells = names.map { pad(r.trial.settings[$0] ?? "", 16) }.joined()
            print(pad("\(k + 1)", 6) + cells + pad(r.budget > 0 ? "\(r.budget)" : "", 8) + pad(r.score.map { fmt($0, digits: 4) } ?? "failed", 12)
                  + (r.details["test"].map { fmt($0, digits: 4) } ?? (r.error.map { String($0.prefix(60)) } ?? "")))
        }
        print("best: trial \(best.trial.number) (\(best.trial.settings.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))), validation \(fmt(best.score!, digits: 4)); its run: \(bestFolder)")
        print("\(latest.count) trials in \(fmt(seconds, digits: 3)) s; summary.json and tune-*.svg in \(folder)")
    }
}
