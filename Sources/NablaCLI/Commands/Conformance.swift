import ArgumentParser
import NablaConformance

/// `nabla conformance PATH...`: runs reference case files and reports failures.
struct Conformance: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check Nabla against reference case files (files or folders of .json).")

    @Argument(help: "Reference files, or folders holding them.") var paths: [String]
    @Flag(help: "Print one JSON object with every case instead of text.") var json = false
    @Flag(help: "Run the op, Hessian and program cases through compiled programs (traced, transformed, fused); the other kinds as usual.") var compiled = false

    func validate() throws {
        guard !paths.isEmpty else { throw ValidationError("give at least one reference file or folder") }
    }

    func run() throws {
        let report = (compiled ? ConformanceRunner.compiled : ConformanceRunner.standard).run(paths: paths)
        if json {
            print(report.json)
        } else {
            for e in report.fileErrors { printError("error: \(e)") }
            for r in report.results where r.status == .failed {
                let err = r.error.map { $0.isInfinite ? "∞" : fmt($0, digits: 3) } ?? "-"
                print("FAILED \(r.file) \(r.id): error \(err)× tolerance\(r.message.map { " (\($0))" } ?? "")")
            }
            print(report.summaryLine)
        }
        if !report.succeeded { throw ExitCode.failure }
    }
}
