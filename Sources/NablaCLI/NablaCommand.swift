import ArgumentParser
import Foundation
import Nabla

@main
struct NablaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nabla",
        abstract: "Gradients, optimizers and models, from the command line.",
        discussion: "Run `nabla` alone for a short tour.",
        subcommands: [Tour.self, Train.self, Tune.self, Predict.self, Explain.self, Anomaly.self, Sample.self, RL.self, LM.self, Distributed.self, PCACommand.self, Grad.self, Minimize.self, Compile.self, Conformance.self, FuzzCommand.self, MisuseCommand.self, Bench.self, Tensors.self],
        defaultSubcommand: Tour.self
    )

    static func main() {
        // Past a file-size limit (ulimit -f) a write fails with an error that is reported,
        // instead of the signal killing the process without a word.
        signal(SIGXFSZ, SIG_IGN)
        main(ArgumentNormalizer.normalize(Array(CommandLine.arguments.dropFirst())))
    }
}
