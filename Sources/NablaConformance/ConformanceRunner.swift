import Foundation
import Nabla

/// The outcome of one reference case.
public struct CaseResult: Sendable {
    public enum Status: String, Sendable { case passed, failed, skipped }
    public var file: String
    public var id: String
    public var kind: String
    public var status: Status
    /// Worst |actual − expected| as a multiple of the case's tolerance (atol + rtol·|expected|).
    public var error: Double?
    /// What went wrong, for failures.
    public var message: String?
}

/// The results of a conformance run.
public struct ConformanceReport: Sendable {
    public var results: [CaseResult] = []
    public var fileErrors: [ReferenceFileError] = []
    public var passed: Int { results.filter { $0.status == .passed }.count }
    public var failed: Int { results.filter { $0.status == .failed }.count }
    public var skipped: Int { results.filter { $0.status == .skipped }.count }
    public var succeeded: Bool { failed == 0 && fileErrors.isEmpty }
    public var summaryLine: String { "\(passed) passed, \(failed) failed, \(skipped) skipped" }

    public var json: String {
        let cases: [JSONValue] = results.map { r in
            var o: [String: JSONValue] = ["file": .string(r.file), "id": .string(r.id), "kind": .string(r.kind), "status": .string(r.status.rawValue)]
            o["error"] = r.error.map { .number($0) } ?? .null
            if let m = r.message { o["message"] = .string(m) }
            return .object(o)
        }
        var pairs: [(String, JSONValue)] = [("passed", .number(Double(passed))), ("failed", .number(Double(failed))),
                                            ("skipped", .number(Double(skipped))), ("cases", .array(cases))]
        if !fileErrors.isEmpty { pairs.append(("file_errors", .array(fileErrors.map { .string($0.description) }))) }
        return OrderedJSON(pairs).text
    }
}

/// Runs reference cases: each supported kind maps to a function computing the case's results,
/// named like the entries of `expected` (`output`, `grads.x`, `grads.xs.0`, ...).
public struct ConformanceRunner: Sendable {
    public typealias Evaluator = @Sendable (ReferenceCase) throws -> [String: Tensor<Double>]
    public var evaluators: [String: Evaluator]

    public init(evaluators: [String: Evaluator]) { self.evaluators = evaluators }

    /// Every kind Nabla supports.
    public static var standard: ConformanceRunner {
        ConformanceRunner(evaluators: OpCases.evaluators.merging(HessianCases.evaluators) { a, _ in a }
            .merging(OptimizerCases.evaluators) { a, _ in a }.merging(LayerCases.evaluators) { a, _ in a }
            .merging(ProgramCases.evaluators) { a, _ in a }.merging(AttributionCases.evaluators) { a, _ in a }
            .merging(EnvironmentCases.evaluators) { a, _ in a })
    }

    /// The ops, Hessians and random programs through compiled programs (the other kinds as
    /// in ``standard``).
    public static var compiled: ConformanceRunner {
        var runner = standard
        runner.evaluators.merge(CompiledCases.evaluators) { _, compiled in compiled }
        return runner
    }

    /// Reference files under `paths` (files, or folders searched for `.json` files).
    public static func files(in paths: [String]) -> (files: [String], errors: [ReferenceFileError]) {
        var files: [String] = [], errors: [ReferenceFileError] = []
        let fm = FileManager.default
        for p in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: p, isDirectory: &isDir) else {
                errors.append(ReferenceFileError(file: p, caseID: nil, message: "no such file or folder")); continue
            }
            if isDir.boolValue {
                let items = ((try? fm.contentsOfDirectory(atPath: p)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
                files += items.map { (p as NSString).appendingPathComponent($0) }
            } else { files.append(p) }
        }
        return (files, errors)
    }

    public func run(paths: [String]) -> ConformanceReport {
        var report = ConformanceReport()
        let (files, errors) = ConformanceRunner.files(in: paths)
        report.fileErrors = errors
        for f in files {
            do {
                let file = try ReferenceFile(path: f)
                for c in file.cases { report.results.append(run(c)) }
            } catch let e as ReferenceFileError {
                report.fileErrors.append(e)
            } catch {
                report.fileErrors.append(ReferenceFileError(file: f, caseID: nil, message: "\(error)"))
            }
        }
        return report
    }

    /// The results the evaluator of `c`'s kind computes (nil for a kind without one).
    public func evaluate(_ c: ReferenceCase) throws -> [String: Tensor<Double>]? {
        try evaluators[c.kind].map { try $0(c) }
    }

    public func run(_ c: ReferenceCase) -> CaseResult {
        var result = CaseResult(file: c.file, id: c.id, kind: c.kind, status: .skipped)
        guard let evaluate = evaluators[c.kind] else {
            result.message = "kind '\(c.kind)' is not supported"
            return result
        }
        do {
            let actual = try evaluate(c)
            let (worst, message) = try ConformanceRunner.compare(c, actual)
            result.error = worst
            result.status = worst <= 1 && message == nil ? .passed : .failed
            result.message = message
        } catch {
            result.status = .failed
            result.message = "\(error)"
        }
        return result
    }

    /// Every expected tensor, keyed by its dotted path.
    static func flattenExpected(_ c: ReferenceCase) throws -> [(String, ReferenceTensor)] {
        var out: [(String, ReferenceTensor)] = []
        func visit(_ path: String, _ v: JSONValue) throws {
            if let o = v.object {
                if o["dtype"] != nil { out.append((path, try ReferenceCase.parseTensor(v, "expected '\(path)'", c))); return }
                for k in o.keys.sorted() { try visit(path.isEmpty ? k : "\(path).\(k)", o[k]!) }
            } else if let a = v.array {
                for (i, e) in a.enumerated() { try visit("\(path).\(i)", e) }
            } else {
                throw c.fail("expected '\(path)' is not a tensor")
            }
        }
        for k in c.expected.keys.sorted() { try visit(k, c.expected[k]!) }
        return out
    }

    static func compare(_ c: ReferenceCase, _ actual: [String: Tensor<Double>]) throws -> (Double, String?) {
        var worst = 0.0
        var problems: [String] = []
        for (path, e) in try flattenExpected(c) {
            guard let a = actual[path] else { problems.append("no result for '\(path)'"); worst = .infinity; continue }
            guard a.shape == e.shape else {
                problems.append("'\(path)' has shape \(a.shape), expected \(e.shape)"); worst = .infinity; continue
            }
            let exact = e.dtype != "float64"
            var pathWorst = 0.0
            for (x, y) in zip(a.scalars, e.data) {
                let tol = exact ? 0 : c.atol + c.rtol * Swift.abs(y)
                let diff = Swift.abs(x - y)
                let ratio = diff.isNaN ? Double.infinity : (tol > 0 ? diff / tol : (diff == 0 ? 0 : .infinity))
                pathWorst = Swift.max(pathWorst, ratio)
            }
            if pathWorst > 1 { problems.append("'\(path)' off by \(formatRatio(pathWorst))× tolerance") }
            worst = Swift.max(worst, pathWorst)
        }
        return (worst, problems.isEmpty ? nil : problems.joined(separator: "; "))
    }
}

func formatRatio(_ r: Double) -> String {
    if r.isInfinite { return "∞" }
    return r >= 100 ? String(format: "%.3g", r) : String(format: "%.3f", r)
}
