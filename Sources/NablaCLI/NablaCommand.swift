import ArgumentParser
import Nabla

@main
struct NablaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nabla",
        abstract: "Gradients, optimizers and models, from the command line.",
        discussion: "Run `nabla` alone for a short tour.",
        subcommands: [Tour.self, Train.self, Predict.self, Grad.self, Minimize.self, Conformance.self, Bench.self, Tensors.self],
        defaultSubcommand: Tour.self
    )

    static func main() {
        main(ArgumentNormalizer.normalize(Array(CommandLine.arguments.dropFirst())))
    }
}
