import Foundation
import Nabla
import NablaConformance
import Testing

@Suite struct ConformanceTests {
    @Test(arguments: ["ops.json", "hessians.json", "optimizers.json", "schedules.json", "clipping.json",
                      "layers.json", "losses.json", "training.json", "programs.json", "attributions.json", "environments.json"])
    func referenceFilePassesEveryCase(_ name: String) throws {
        let report = ConformanceRunner.standard.run(paths: [fixture(name)])
        for r in report.results where r.status != .passed {
            Issue.record("\(r.id) (\(r.kind)): \(r.status.rawValue), error \(r.error ?? -1)× tolerance: \(r.message ?? "")")
        }
        #expect(report.fileErrors.isEmpty)
        #expect(report.results.count >= 3)
        #expect(report.failed == 0 && report.skipped == 0)
    }

    /// Compiled programs give the eager results within 1e-12 relative (to each result's largest
    /// element; 1e-14 absolute for results that are zero up to rounding, such as Hessian-vector
    /// products of programs linear in an input) on every op, Hessian and random-program case,
    /// and pass the references.
    @Test(arguments: ["ops.json", "hessians.json", "programs.json"])
    func compiledProgramsAgreeWithEagerEvaluation(_ name: String) throws {
        let report = ConformanceRunner.compiled.run(paths: [fixture(name)])
        #expect(report.failed == 0 && report.skipped == 0 && report.results.count >= 3, "\(report.summaryLine)")
        let file = try ReferenceFile(path: fixture(name))
        for c in file.cases {
            guard let eager = try ConformanceRunner.standard.evaluate(c), let compiled = try ConformanceRunner.compiled.evaluate(c) else {
                Issue.record("\(c.id): no evaluator"); continue
            }
            #expect(Set(eager.keys) == Set(compiled.keys), "\(c.id)")
            for (key, e) in eager {
                guard let a = compiled[key] else { continue }
                #expect(a.shape == e.shape, "\(c.id) \(key)")
                let scale = e.scalars.map(Swift.abs).max() ?? 0
                let diff = zip(a.scalars, e.scalars).map { $0 == $1 || ($0.isNaN && $1.isNaN) ? 0 : Swift.abs($0 - $1) }.max() ?? 0
                #expect(diff <= 1e-12 * scale + 1e-14, "\(c.id) \(key): compiled and eager differ by \(diff) (scale \(scale))")
            }
        }
    }

    func writeTemporary(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "nabla-conformance-\(UUID().uuidString).json"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func truncatedFileIsReportedWithItsName() throws {
        let path = try writeTemporary(#"{"format": 1, "area": "ops", "cases": [{"id": "a""#)
        defer { removeTemporary(path) }
        let report = ConformanceRunner.standard.run(paths: [path])
        #expect(!report.succeeded)
        #expect(report.fileErrors.count == 1)
        #expect(report.fileErrors[0].description.contains(path))
    }

    @Test func missingInputFailsTheCaseByName() throws {
        let path = try writeTemporary("""
        {"format": 1, "area": "ops", "cases": [
         {"id": "exp_without_x", "kind": "exp", "tolerance": {"rtol": 1e-9, "atol": 1e-11}, "config": {},
          "inputs": {"cotangent": {"dtype": "float64", "shape": [1], "data": [1.0]}},
          "expected": {"output": {"dtype": "float64", "shape": [1], "data": [1.0]}}}]}
        """)
        defer { removeTemporary(path) }
        let report = ConformanceRunner.standard.run(paths: [path])
        #expect(report.failed == 1)
        let message = report.results.first?.message ?? ""
        #expect(message.contains("exp_without_x") && message.contains("'x'"))
    }

    @Test func wrongValueFailsWithItsErrorRatio() throws {
        // exp(0) = 1, but the case claims 1.5: off by 0.5 / (1e-11 + 1e-9 * 1.5) tolerances.
        let path = try writeTemporary("""
        {"format": 1, "area": "ops", "cases": [
         {"id": "bad", "kind": "exp", "tolerance": {"rtol": 1e-9, "atol": 1e-11}, "config": {},
          "inputs": {"x": {"dtype": "float64", "shape": [1], "data": [0.0]}, "cotangent": {"dtype": "float64", "shape": [1], "data": [1.0]}},
          "expected": {"output": {"dtype": "float64", "shape": [1], "data": [1.5]}, "grads": {"x": {"dtype": "float64", "shape": [1], "data": [1.0]}}}}]}
        """)
        defer { removeTemporary(path) }
        let report = ConformanceRunner.standard.run(paths: [path])
        #expect(report.failed == 1)
        let expectedRatio = 0.5 / (1e-11 + 1e-9 * 1.5)
        #expect(Swift.abs((report.results[0].error ?? 0) / expectedRatio - 1) < 1e-6)
    }

    @Test func unknownKindIsSkipped() throws {
        let path = try writeTemporary("""
        {"format": 1, "area": "ops", "cases": [{"id": "u", "kind": "no_such_op", "tolerance": {"rtol": 1e-9, "atol": 1e-11}, "config": {}, "inputs": {}, "expected": {}}]}
        """)
        defer { removeTemporary(path) }
        let report = ConformanceRunner.standard.run(paths: [path])
        #expect(report.skipped == 1 && report.failed == 0)
        #expect(report.json.hasPrefix(#"{"passed":0,"failed":0,"skipped":1,"cases":[{"#))
    }

    @Test func otherShapesAndSettingsAreReadFromTheCase() throws {
        // A case not in the reference files: sum over axis 0 of a [2, 3] tensor, keepdim true.
        let path = try writeTemporary("""
        {"format": 1, "area": "ops", "cases": [
         {"id": "sum_other", "kind": "sum", "tolerance": {"rtol": 1e-12, "atol": 0}, "config": {"axis": 0, "keepdim": true},
          "inputs": {"x": {"dtype": "float64", "shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}, "cotangent": {"dtype": "float64", "shape": [1, 3], "data": [1, 2, 3]}},
          "expected": {"output": {"dtype": "float64", "shape": [1, 3], "data": [5, 7, 9]}, "grads": {"x": {"dtype": "float64", "shape": [2, 3], "data": [1, 2, 3, 1, 2, 3]}}}}]}
        """)
        defer { removeTemporary(path) }
        let report = ConformanceRunner.standard.run(paths: [path])
        #expect(report.passed == 1)
    }
}
