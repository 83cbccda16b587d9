import Foundation

/// Grid or random search over settings, with successive halving of poor trials, parallel jobs,
/// and a record on disk from which an interrupted search resumes without rerunning what finished.
///
/// ```swift
/// var search = HyperparameterSearch(space: [
///     "lr": .logUniform(1e-4, 1e-1), "batch": .choice(["16", "32", "64"])], trials: 30)
/// let results = try search.run(folder: "runs/tune") { trial, budget in
///     try trainAndValidate(trial.settings, epochs: budget)       // higher is better
/// }
/// ```
public struct HyperparameterSearch: Sendable {
    /// The values one setting may take.
    public enum Domain: Sendable, Equatable, CustomStringConvertible {
        case choice([String])
        case uniform(Double, Double)
        case logUniform(Double, Double)
        case integer(Int, Int)

        /// `a|b|c` (or `a,b,c` when every part is a number), `lo..hi`, `lo..hi:log`, `lo..hi:int`;
        /// nil when `text` is a single value.
        public static func parse(_ text: String) throws -> Domain? {
            if let range = text.range(of: "..") {
                var upper = String(text[range.upperBound...]), kind = ""
                if let colon = upper.lastIndex(of: ":") { kind = String(upper[upper.index(after: colon)...]); upper = String(upper[..<colon]) }
                guard let lo = Double(text[..<range.lowerBound]), let hi = Double(upper), lo.isFinite, hi.isFinite, lo < hi else {
                    throw RunSettingsError("'\(text)' is not a range lo..hi with lo < hi")
                }
                switch kind {
                case "": return .uniform(lo, hi)
                case "log":
                    guard lo > 0 else { throw RunSettingsError("'\(text)': a log range needs positive bounds") }
                    return .logUniform(lo, hi)
                case "int":
                    guard lo.rounded() == lo, hi.rounded() == hi else { throw RunSettingsError("'\(text)': an integer range needs whole bounds") }
                    return .integer(Int(lo), Int(hi))
                default: throw RunSettingsError("'\(text)': a range ends in :log, :int or nothing, not :\(kind)")
                }
            }
            if text.contains("|") { return .choice(text.split(separator: "|", omittingEmptySubsequences: false).map(String.init)) }
            let parts = text.split(separator: ",").map(String.init)
            if parts.count > 1 && parts.allSatisfy({ Double($0) != nil }) { return .choice(parts) }
            return nil
        }

        func sample(using g: inout RandomGenerator) -> String {
            switch self {
            case .choice(let values): return values[Int(g.nextUniform() * Double(values.count)) % values.count]
            case .uniform(let lo, let hi): return format(lo + (hi - lo) * g.nextUniform())
            case .logUniform(let lo, let hi): return format(Foundation.exp(Foundation.log(lo) + (Foundation.log(hi) - Foundation.log(lo)) * g.nextUniform()))
            case .integer(let lo, let hi): return String(lo + Int(g.nextUniform() * Double(hi - lo + 1)) % (hi - lo + 1))
            }
        }

        /// The grid's values: every choice, or `points` values spread over a range.
        func gridValues(points: Int) -> [String] {
            switch self {
            case .choice(let values): return values
            case .uniform(let lo, let hi): return (0..<points).map { format(lo + (hi - lo) * Double($0) / Double(Swift.max(1, points - 1))) }
            case .logUniform(let lo, let hi):
                return (0..<points).map { format(Foundation.exp(Foundation.log(lo) + (Foundation.log(hi) - Foundation.log(lo)) * Double($0) / Double(Swift.max(1, points - 1)))) }
            case .integer(let lo, let hi): return Array(Set((0..<points).map { lo + Int((Double(hi - lo) * Double($0) / Double(Swift.max(1, points - 1))).rounded()) })).sorted().map(String.init)
            }
        }

        public var description: String {
            switch self {
            case .choice(let v): return v.joined(separator: "|")
            case .uniform(let a, let b): return "\(a)..\(b)"
            case .logUniform(let a, let b): return "\(a)..\(b):log"
            case .integer(let a, let b): return "\(a)..\(b):int"
            }
        }
    }

    public enum Strategy: String, Sendable { case random, grid }

    /// One trial: its number and settings.
    public struct Trial: Sendable, Codable, Equatable {
        public var number: Int
        public var settings: [String: String]
    }

    /// A trial's outcome at one budget.
    public struct Result: Sendable, Codable, Equatable {
        public var trial: Trial
        public var budget: Int
        /// Higher is better; nil if the trial failed.
        public var score: Double?
        public var details: [String: Double]
        public var error: String?
    }

    public var space: [String: Domain]
    public var strategy: Strategy
    public var trials: Int
    /// Successive halving: each rung keeps the best 1/η of the trials and multiplies the budget by η.
    public var halving: (minimumBudget: Int, maximumBudget: Int, eta: Int)?
    public var jobs: Int
    public var seed: UInt64
    /// Grid points for each range.
    public var gridPoints = 3

    public init(space: [String: Domain], strategy: Strategy = .random, trials: Int = 20, halving: (minimumBudget: Int, maximumBudget: Int, eta: Int)? = nil,
                jobs: Int = 1, seed: UInt64 = 0) {
        require(!space.isEmpty && trials > 0 && jobs > 0, "HyperparameterSearch: an empty space, \(trials) trials or \(jobs) jobs")
        if let h = halving { require(h.minimumBudget > 0 && h.maximumBudget >= h.minimumBudget && h.eta >= 2, "HyperparameterSearch: halving needs 0 < minimum ≤ maximum budget and η ≥ 2") }
        (self.space, self.strategy, self.trials, self.halving, self.jobs, self.seed) = (space, strategy, trials, halving, jobs, seed)
    }

    /// The trials, in order: random samples (seeded), or the grid's combinations (the first `trials`).
    public func plannedTrials() -> [Trial] {
        let names = space.keys.sorted()
        switch strategy {
        case .random:
            var g = RandomGenerator(seed: seed)
            return (0..<trials).map { k in Trial(number: k, settings: Dictionary(uniqueKeysWithValues: names.map { ($0, space[$0]!.sample(using: &g)) })) }
        case .grid:
            var combos: [[String: String]] = [[:]]
            for name in names {
                combos = combos.flatMap { c in space[name]!.gridValues(points: gridPoints).map { v in c.merging([name: v]) { a, _ in a } } }
            }
            return combos.prefix(trials).enumerated().map { Trial(number: $0.offset, settings: $0.element) }
        }
    }

    /// The budgets of the rungs (one rung of the maximum budget without halving).
    public var rungs: [Int] {
        guard let h = halving else { return [0] }
        var out = [h.minimumBudget]
        while out.last! * h.eta <= h.maximumBudget { out.append(out.last! * h.eta) }
        if out.last! < h.maximumBudget { out.append(h.maximumBudget) }
        return out
    }

    /// Runs the search. `evaluate(trial, budget)` returns (score, details): higher scores are
    /// better (budget 0: the evaluation's own). Finished results are kept in `folder`/trials.jsonl
    /// as they come, and a rerun with the same folder skips them. `jobs` evaluations run at once.
    public func run(folder: String, evaluate: @escaping @Sendable (Trial, Int) throws -> (score: Double, details: [String: Double])) throws -> [Result] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let log = (folder as NSString).appendingPathComponent("trials.jsonl")
        let store = ResultStore(path: log)
        try store.load()
        var alive = plannedTrials()
        for (r, budget) in rungs.enumerated() {
            let pending = alive.filter { t in !store.results.contains { $0.trial == t && $0.budget == budget } }
            let queue = DispatchQueue(label: "nabla.search")
            DispatchQueue.concurrentPerform(iterations: Swift.min(jobs, Swift.max(1, pending.count))) { worker in
                var k = worker
                while k < pending.count {
                    let t = pending[k]
                    let result: Result
                    do {
                        let (score, details) = try evaluate(t, budget)
                        result = Result(trial: t, budget: budget, score: score.isFinite ? score : nil, details: details, error: score.isFinite ? nil : "score \(score)")
                    } catch {
                        result = Result(trial: t, budget: budget, score: nil, details: [:], error: "\(error)")
                    }
                    queue.sync {
                        do { try store.append(result) } catch { if store.writeError == nil { store.writeError = error } }
                    }
                    k += jobs
                }
            }
            if let e = store.writeError { throw e }
            guard let h = halving, r < rungs.count - 1 else { break }
            let scored = alive.compactMap { t in store.results.first { $0.trial == t && $0.budget == budget }.flatMap { r in r.score.map { (t, $0) } } }
            let keep = Swift.max(1, scored.count / h.eta)
            alive = scored.sorted { $0.1 > $1.1 }.prefix(keep).map(\.0)
        }
        return store.results
    }
}

/// The search's record: one JSON line per finished evaluation, rewritten atomically.
final class ResultStore: @unchecked Sendable {
    let path: String
    var results: [HyperparameterSearch.Result] = []
    var writeError: Error?
    init(path: String) { self.path = path }

    func load() throws {
        guard let data = FileManager.default.contents(atPath: path) else { return }
        let decoder = JSONDecoder()
        for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() {
            do { results.append(try decoder.decode(HyperparameterSearch.Result.self, from: Data(line.utf8))) } catch {
                throw RunSettingsError("\(path), line \(i + 1): not a trial record (\(describeDecodingError(error)))")
            }
        }
    }

    func append(_ r: HyperparameterSearch.Result) throws {
        results.append(r)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let text = try results.map { String(decoding: try encoder.encode($0), as: UTF8.self) }.joined(separator: "\n") + "\n"
        try writeAtomically(text, to: path)
    }
}

/// Formats a sampled number compactly (4 significant digits).
private func format(_ v: Double) -> String {
    let s = String(format: "%.4g", v)
    return s.contains("e") ? s.replacingOccurrences(of: "e-0", with: "e-").replacingOccurrences(of: "e+0", with: "e") : s
}
