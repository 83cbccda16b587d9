/// Lets values that begin with `-` through the argument parser, which would take them for
/// options: negative numbers (`--epochs -3`, `--from -1,2`) and expressions (`nabla grad '-x^2'`).
///
/// Nabla has no short options but `-h`, so a word of the form `-X…` other than `-h` is never
/// an option. After an option that takes a value it becomes that option's value
/// (`--from=-1,2`); elsewhere it is a positional argument, passed with a leading space (which
/// expressions and number lists ignore).
enum ArgumentNormalizer {
    /// The options that take no value, so a word after them is positional.
    static let flags: Set<String> = ["--help", "--version", "--json", "--hessian", "--quiet", "--check-gradients", "--find-lr", "--stop-with-parent", "--halving", "--follow", "--baseline", "--standardize", "--stochastic", "--distributed", "--no-cache", "--compile", "--compiled", "--listing"]

    static func normalize(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var afterTerminator = false
        for word in arguments {
            if afterTerminator || word == "--" {
                afterTerminator = true
                out.append(word)
                continue
            }
            let looksNegative = word.count >= 2 && word.hasPrefix("-") && !word.hasPrefix("--") && word != "-h"
            guard looksNegative else { out.append(word); continue }
            if let previous = out.last, previous.hasPrefix("--"), !previous.contains("="), !flags.contains(previous) {
                out[out.count - 1] = previous + "=" + word
            } else {
                out.append(" " + word)
            }
        }
        return out
    }
}
