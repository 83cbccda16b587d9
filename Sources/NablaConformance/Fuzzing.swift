import Foundation
import Nabla

/// Generated and mutated inputs for Nabla's parsers, file readers and minimizers, each checked
/// to end in a value or in an error that says where the problem is — never a crash, a hang or a
/// huge allocation. `swift test` runs a few hundred cases; `nabla fuzz` runs as many as asked.
///
/// A crash cannot be caught in-process: it ends the run (and the test) itself, which is the
/// failure this suite exists to show. What is checked here is everything short of that: the
/// kind of error, its location, that minimizers stop within their limits with a status.
public enum Fuzz {
    /// How a batch of generated inputs ended.
    public struct Report: CustomStringConvertible, Sendable {
        public var name: String
        public var inputs = 0
        /// Inputs that gave a value (parsed, read, minimized).
        public var values = 0
        /// Inputs refused with a located error.
        public var errors = 0
        /// Inputs that ended wrongly: an unlocated error, a limit overrun, a wrong status.
        public var failures: [String] = []

        public init(name: String) { self.name = name }

        public var description: String {
            "\(name): \(inputs) inputs, \(values) values, \(errors) located errors, \(failures.count) failures"
                + failures.prefix(5).map { "\n  " + $0 }.joined()
        }

        mutating func merge(_ other: Report) {
            inputs += other.inputs; values += other.values; errors += other.errors; failures += other.failures
        }
    }

    // MARK: Expressions

    static let atoms = ["x", "y", "z", "0", "1", "2", "0.5", "1e-3", "1e308", "pi", "e", "_a1"]
    static let functions = Expression.functions
    static let operators = ["+", "-", "*", "/", "^", "**"]
    static let junk: [Character] = ["(", ")", "+", "-", "*", "/", "^", ".", "e", "x", "1", " ", ",", "$", "é", "\u{0}", "9", "s", "i", "n"]

    /// A random well-formed expression of about `size` nodes (iteratively built).
    static func expression(size: Int, using rng: inout RandomGenerator) -> String {
        var parts = [atoms[rng.nextInt(below: atoms.count)]]
        for _ in 0..<size {
            switch rng.nextInt(below: 4) {
            case 0: parts = ["\(functions[rng.nextInt(below: functions.count)])("] + parts + [")"]
            case 1: parts = ["(-"] + parts + [")"]
            case 2: parts = ["("] + parts + [")"]
            default:
                let op = operators[rng.nextInt(below: operators.count)]
                let atom = atoms[rng.nextInt(below: atoms.count)]
                parts = rng.nextInt(below: 2) == 0 ? parts + [op, atom] : [atom, op] + parts
            }
        }
        return parts.joined()
    }

    /// `text` with a few random characters inserted, deleted or replaced.
    static func mutate(_ text: String, using rng: inout RandomGenerator) -> String {
        var chars = Array(text)
        for _ in 0..<(1 + rng.nextInt(below: 3)) {
            let i = chars.isEmpty ? 0 : rng.nextInt(below: chars.count + 1)
            switch rng.nextInt(below: 3) {
            case 0: chars.insert(junk[rng.nextInt(below: junk.count)], at: i)
            case 1: if i < chars.count { chars.remove(at: i) }
            default: if i < chars.count { chars[i] = junk[rng.nextInt(below: junk.count)] }
            }
        }
        return String(chars)
    }

    /// Parses `count` generated expressions (half of them mutated, some thousands of terms deep)
    /// and evaluates those that parse, with their gradients, at a random point.
    public static func expressions(count: Int, seed: UInt64 = 0) -> Report {
        var report = Report(name: "expressions")
        var rng = RandomGenerator(seed: seed)
        for k in 0..<count {
            var text: String
            switch k % 50 {
            case 0: text = String(repeating: "(", count: 20_000) + "x" + String(repeating: ")", count: 20_000)
            case 1: text = (0..<20_000).map { "x\($0 % 7)" }.joined(separator: "+")
            case 2: text = Array(repeating: "x", count: 5_000).joined(separator: "^")
            case 3: text = String(repeating: "-", count: 20_000) + "x"
            default:
                text = expression(size: 1 + rng.nextInt(below: 12), using: &rng)
                if rng.nextInt(below: 2) == 0 { text = mutate(text, using: &rng) }
            }
            report.inputs += 1
            do {
                let e = try Expression(text)
                var point: [String: Double] = [:]
                for v in e.variables { point[v] = rng.nextNormal() }
                let (value, gradient) = try e.valueWithGradient(at: point)
                if gradient.count != e.variables.count { report.failures.append("'\(text.prefix(60))': \(gradient.count) partials for \(e.variables.count) variables") }
                _ = value
                report.values += 1
            } catch let error as ExpressionError {
                if error.position < 0 || error.position > text.count || error.message.isEmpty {
                    report.failures.append("'\(text.prefix(60))': error at \(error.position) outside the text")
                } else {
                    report.errors += 1
                }
            } catch {
                report.failures.append("'\(text.prefix(60))': unlocated error \(error)")
            }
        }
        return report
    }

    // MARK: Files

    /// Bytes with a few random changes: flipped bytes, cuts, repeats, hostile numbers in text.
    static func mutate(_ bytes: [UInt8], using rng: inout RandomGenerator) -> [UInt8] {
        var b = bytes
        for _ in 0..<(1 + rng.nextInt(below: 4)) {
            guard !b.isEmpty else { b = [UInt8(rng.nextInt(below: 256))]; continue }
            let i = rng.nextInt(below: b.count)
            switch rng.nextInt(below: 6) {
            case 0: b[i] = UInt8(rng.nextInt(below: 256))
            case 1: b.removeSubrange(i...)                                            // truncation
            case 2: b.insert(contentsOf: b[i..<Swift.min(b.count, i + 1 + rng.nextInt(below: 16))], at: i)
            case 3:
                // A digit run replaced by a hostile number (sizes in text headers).
                let hostile = ["9223372036854775807", "1099511627776", "4294967295", "-1", "0", "1e300", "nan", "18446744073709551616"]
                var j = i
                while j < b.count, (48...57).contains(b[j]) { j += 1 }
                b.replaceSubrange(i..<j, with: Array(hostile[rng.nextInt(below: hostile.count)].utf8))
            case 4: b[i] ^= UInt8(1 << rng.nextInt(below: 8))
            default: b.remove(at: i)
            }
        }
        return b
    }

    /// A big-endian IDX header with the given element type code and dimensions.
    public static func idxHeader(type: UInt8, dims: [UInt32]) -> [UInt8] {
        var b: [UInt8] = [0, 0, type, UInt8(dims.count)]
        for d in dims { b += [UInt8(d >> 24 & 0xFF), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
        return b
    }

    /// Writes `count` generated files of each kind into `folder` (CSV, NPY, NPZ, IDX images and
    /// labels, safetensors: valid ones, mutated ones and hostile headers) and reads them back.
    public static func files(count: Int, seed: UInt64 = 0, folder: String) -> Report {
        var report = Report(name: "files")
        var rng = RandomGenerator(seed: seed)
        let base = URL(fileURLWithPath: folder)
        try? FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        func check(_ path: String, _ read: () throws -> Void) {
            report.inputs += 1
            do {
                try read()
                report.values += 1
            } catch let e as TensorFileError {
                if e.path.isEmpty || e.message.isEmpty { report.failures.append("\(path): unlocated \(e)") } else { report.errors += 1 }
            } catch let e as DataFileError {
                if e.path.isEmpty || e.message.isEmpty { report.failures.append("\(path): unlocated \(e)") } else { report.errors += 1 }
            } catch let e as RunSettingsError {
                // Run-folder files: the message names the file and the setting.
                if !(e.message.hasPrefix("config.json") || e.message.hasPrefix("model.json")) { report.failures.append("\(path): unlocated \(e)") } else { report.errors += 1 }
            } catch {
                report.failures.append("\(path): unexpected error \(error)")
            }
        }
        let csvSeed = Array("a,b,label\n1,2.5,x\n3,-4e2,y\n\"q, r\",7,x\n5,6,\"y\"\"z\"\n".utf8)
        let tensor = Tensor<Double>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let npySeed = [UInt8](NPY.encode(tensor))
        let stSeed = [UInt8](SafeTensors.encode(SafeTensors.Archive(tensors: ["w": StoredTensor(tensor)], metadata: ["k": "v"])))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let configSeed = [UInt8]((try? encoder.encode(sampleConfiguration)) ?? Data())
        let cardSeed = [UInt8]((try? encoder.encode(sampleCard)) ?? Data())
        for k in 0..<count {
            let kind = k % 8
            let path = base.appendingPathComponent("input\(k % 64).\(["csv", "npy", "npz", "idx3-ubyte", "idx1-ubyte", "safetensors", "config.json", "model.json"][kind])").path
            var bytes: [UInt8]
            switch kind {
            case 0: bytes = mutate(csvSeed, using: &rng)
            case 1: bytes = mutate(npySeed, using: &rng)
            case 2:
                let npzPath = path + ".seed"
                try? NPZ.write(["a": tensor], to: npzPath)
                bytes = mutate([UInt8]((try? Data(contentsOf: URL(fileURLWithPath: npzPath))) ?? Data()), using: &rng)
            case 3, 4:
                // Hostile dimensions: 2³¹, 2³²−1, zero, products that overflow.
                let choices: [UInt32] = [0, 1, 2, 3, 28, 1 << 31, UInt32.max, 1 << 20]
                let rank = kind == 4 ? 1 : 1 + rng.nextInt(below: 4)
                let dims = (0..<rank).map { _ in choices[rng.nextInt(below: choices.count)] }
                let types: [UInt8] = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07]
                bytes = idxHeader(type: types[rng.nextInt(below: types.count)], dims: dims) + [UInt8](repeating: 1, count: rng.nextInt(below: 64))
                if rng.nextInt(below: 3) == 0 { bytes = mutate(bytes, using: &rng) }
            case 5: bytes = mutate(stSeed, using: &rng)
            case 6: bytes = mutate(configSeed, using: &rng)
            default: bytes = mutate(cardSeed, using: &rng)
            }
            guard (try? Data(bytes).write(to: URL(fileURLWithPath: path))) != nil else {
                report.failures.append("\(path): could not write the input")
                continue
            }
            switch kind {
            case 0: check(path) { _ = try Dataset.readCSV(path) }
            case 1: check(path) { _ = try NPY.read(path).tensor(as: Double.self) }
            case 2: check(path) { _ = try NPZ.read(path).mapValues { $0.tensor(as: Float.self) } }
            case 3:
                // With a labels file of one label per image (hostile labels included).
                let labelsPath = path.replacingOccurrences(of: "idx3-ubyte", with: "labels-idx1-ubyte")
                let n = bytes.count >= 8 && bytes[3] >= 1 ? Int(bytes[4]) << 24 | Int(bytes[5]) << 16 | Int(bytes[6]) << 8 | Int(bytes[7]) : 0
                let labelValues: [UInt8] = [0, 1, 9, 255]
                let labelBytes = idxHeader(type: 0x08, dims: [UInt32(Swift.min(n, 64))]) + (0..<Swift.min(n, 64)).map { _ in labelValues[rng.nextInt(below: 4)] }
                try? Data(labelBytes).write(to: URL(fileURLWithPath: labelsPath))
                check(path) { _ = try Dataset.readIDX(images: path, labels: labelsPath) }
            case 4: check(path) { _ = try IDX.read(path).doubles }
            case 5: check(path) { _ = try SafeTensors.read(path).tensors.mapValues { $0.tensor(as: Double.self) } }
            case 6: check(path) { _ = try TrainConfiguration.decode(Data(bytes)) }
            default:
                check(path) {
                    // A card that passes its checks must build its network without trapping.
                    let card = try ModelCard.decode(Data(bytes))
                    if card.features.count * card.outputs <= 1 << 20 && card.spec.hidden.reduce(0, +) <= 1 << 12 {
                        let _: Sequential<Float> = card.spec.build(inputs: card.features.count, outputs: card.outputs)
                    }
                }
            }
        }
        return report
    }

    static let sampleConfiguration = TrainConfiguration(
        data: "digits", target: nil, categorical: [], task: nil, model: "mlp:32,16", activation: "relu", dropout: 0.1, batch: "32",
        optimizer: "adam", learningRate: 0.001, momentum: 0.9, weightDecay: 0, schedule: "step:10,0.5", clip: 1, epochs: 60, patience: 5,
        minDelta: 0, tolerance: nil, l1: 0, l2: 0.0001, seed: 7, test: 0.2, validation: 0.1, scale: "standard", solve: false)

    static let sampleCard = ModelCard(
        spec: ModelSpec(kind: .mlp, hidden: [8]), task: .classification, features: ["a", "b", "c=x", "c=y"], target: "label",
        classes: ["no", "yes", "maybe"], scaler: FeatureScaler(kind: .standard, shift: [0, 1, 0, 0], scale: [1, 2, 1, 1]), outputs: 3)

    // MARK: Objectives

    /// Objectives that are unbounded, flat, NaN-producing, discontinuous or overflowing, with
    /// random well-formed expressions of two variables besides.
    static let hardObjectives = ["x", "-x^2+y^2", "0*x", "log(x)+y^2", "sqrt(x)+abs(y)", "1/x", "exp(exp(x))", "x/y", "abs(x)+abs(y)",
                                 "-exp(x)", "x^3", "(x-1)^2+1e300*y^2", "sin(x)/x", "tan(x)", "x*0+nan_free", "x^y"]

    /// Runs every method of ``minimize(_:from:method:options:)`` (the constrained ones over a
    /// random set) on `count` objectives and checks that each run stops within its limits with a
    /// status, and that a run reported as converged ends at a finite value.
    public static func objectives(count: Int, seed: UInt64 = 0, maxIterations: Int = 50) -> Report {
        var report = Report(name: "objectives")
        var rng = RandomGenerator(seed: seed)
        let sets: [ConvexSet] = [.box(lower: -1, upper: 2), .simplex(radius: 1), .l1Ball(radius: 2), .l2Ball(radius: 1)]
        var k = 0, attempts = 0
        while k < count && attempts < 100 * count {
            attempts += 1
            let text = attempts <= hardObjectives.count ? hardObjectives[attempts - 1] : expression(size: 1 + rng.nextInt(below: 8), using: &rng)
            guard let e = try? Expression(text), !e.variables.isEmpty else { continue }
            k += 1
            let f = e.function()
            let start = Tensor<Double>((0..<e.variables.count).map { _ in rng.nextNormal() * 2 })
            let set = sets[rng.nextInt(below: sets.count)]
            for method in MinimizationMethod.unconstrained + [.projectedGradient(set), .frankWolfe(set, .openLoop), .frankWolfe(set, .lineSearch)] {
                report.inputs += 1
                var options = MinimizeOptions(maxIterations: maxIterations)
                options.restarts = k % 7 == 0 ? 1 : 0
                let r = minimize(f, from: start, method: method, options: options)
                // Each iteration may take a line search (up to ~100 evaluations) and a Hessian.
                let evaluationCap = (options.restarts + 1) * (maxIterations + 1) * 130
                if r.iterations > maxIterations * (options.restarts + 1) {
                    report.failures.append("\(method) on '\(text)': \(r.iterations) iterations, more than the \(maxIterations) allowed")
                } else if r.evaluations > evaluationCap {
                    report.failures.append("\(method) on '\(text)': \(r.evaluations) evaluations")
                } else if r.success && !r.value.isFinite {
                    report.failures.append("\(method) on '\(text)': converged to a non-finite value \(r.value)")
                } else {
                    report.values += 1
                }
            }
        }
        report.name = "objectives (\(k) functions, each by \(MinimizationMethod.unconstrained.count + 3) methods)"
        return report
    }
}
