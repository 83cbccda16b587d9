import ArgumentParser
import NablaConformance

/// `nabla misuse NAME`: commits one API misuse on purpose, so that tests can check the message a
/// user would see (in release builds too). Hidden from the help.
struct MisuseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "misuse", abstract: "Run one API misuse case (for tests).", shouldDisplay: false)

    @Argument(help: "The case, or nothing to list them.") var name: String?

    func run() throws {
        guard let name else {
            for c in Misuse.cases { print("\(c.name)\t\(c.expected.joined(separator: " | "))") }
            return
        }
        guard let c = Misuse.named(name) else { throw ValidationError("no misuse case '\(name)'") }
        c.run()
        printError("misuse \(name): returned without stopping")
        throw ExitCode(3)
    }
}
