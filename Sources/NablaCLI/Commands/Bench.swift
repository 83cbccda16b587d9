import ArgumentParser
import Foundation
import Nabla
import NablaConformance
import NablaDistributed

/// `nabla bench WORKLOAD`: the benchmark workloads, one JSON line per measurement with `--json`.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a benchmark workload (benchmarks are not tests).",
        discussion: "Workloads: gemm (matrix product against the raw BLAS call), overhead (per-op cost of tiny ops), rosenbrock (minimization with L-BFGS, BFGS, CG, Newton-CG and trust region at n = 2, 100, 1000), elementwise (throughput of element-wise ops and reductions by size, to place the threading threshold), logreg (L2 logistic regression, C = 1, on digits and breast_cancer with the reference split, standardized; objective, accuracy, fit time), scalar (the gradient of x² + y² + xy at (1, 3) per second, and the y = m·x + b fit by gradient descent), mlp (training steps per second of a 784-256-128-10 ReLU MLP with Adam at batch 1, 32, 128, 1024), mlp-memory (peak resident memory of one epoch at batch 128), mlp-accuracy (5 epochs at batch 128), hessian (full Hessian of Rosenbrock at n = 10, 100, 1000 and Hessian-vector products at n = 10⁴, 10⁶).")

    @Argument(help: "Workload: gemm, overhead, rosenbrock, elementwise, logreg, scalar, mlp, cnn (W7, --data-dir for Fashion-MNIST), vae (W10, --data-dir for MNIST), mlp-memory, mlp-accuracy or hessian.") var workload: String
    @Option(help: "Threads for BLAS and Nabla's kernels.") var threads: Int = 1
    @Option(help: "gemm: comma-separated sizes (rosenbrock, hessian: dimensions, for the Hessians and the Hessian-vector products alike; mlp: batch sizes).") var sizes: String = Bench.gemmSizes
    @Option(help: "mlp: one batch size (the same as --sizes B).") var batch: Int?
    @Option(help: "gemm: float32, float64 or both.") var dtype: String = "both"
    @Option(help: "anomaly: the folder of the MNIST IDX files.") var mnist: String?
    @Option(help: "cnn, vae: the folder of the Fashion-MNIST (cnn) or MNIST (vae) IDX files (default: $NABLA_DATA_DIR/fashion-mnist or mnist, else data/NAME).") var dataDir: String?
    @Option(help: "anomaly: the folder of the Fashion-MNIST IDX files.") var fashion: String?
    @Option(help: "cnn-accuracy: a folder written by the peers' `cnn.py --export-init DIR` (PyTorch's initial weights and the two epochs' permutations) to train from instead of Nabla's own.") var initial: String?
    @Option(help: "anomaly: the seed of the detectors' weights and batches.") var seed: UInt64 = 0
    @Option(help: "reinforce: the seeds of REINFORCE (comma-separated).") var seeds: String = "0,1,2,3,4"
    @Option(help: "reinforce: the seeds of PPO (comma-separated).") var ppoSeeds: String = "0,1,2"
    @Option(help: "mlp --distributed: timed steps (after ten untimed; in repeats of ten), the same count in every process.") var steps: Int = 200
    @Flag(help: "mlp: data-parallel across the processes of `mpirun -np N` (a build with --traits MPI): each process computes its share of every global batch; rank 0 reports.") var distributed = false
    @Flag(help: "One JSON object per line per measurement.") var json = false
    @Flag(help: "hessian, rosenbrock, elementwise, scalar, mlp: run the compiled variants (traced once, fused, run by the block interpreter); the keys are the same, impl names the variant.") var compile = false

    func validate() throws {
        guard ["gemm", "overhead", "elementwise", "rosenbrock", "logreg", "scalar", "mlp", "cnn", "cnn-memory", "cnn-accuracy", "vae", "mlp-memory", "mlp-accuracy", "hessian", "attribution", "anomaly", "reinforce", "gpt", "lstm"].contains(workload) else {
            throw ValidationError("unknown workload '\(workload)'; known: gemm, overhead, rosenbrock, elementwise, logreg, scalar, mlp, cnn, cnn-memory, cnn-accuracy, vae, mlp-memory, mlp-accuracy, hessian, attribution, anomaly, reinforce, gpt, lstm")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        if compile && !["hessian", "rosenbrock", "elementwise", "scalar", "mlp"].contains(workload) {
            throw ValidationError("--compile goes with the hessian, rosenbrock, elementwise, scalar and mlp workloads")
        }
        if compile && distributed { throw ValidationError("--compile does not go with --distributed") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1") }
        if distributed && workload != "mlp" { throw ValidationError("--distributed goes with the mlp workload only") }
        guard ["float32", "float64", "both"].contains(dtype) else { throw ValidationError("--dtype must be float32, float64 or both") }
        guard let sizes = parsedSizes else { throw ValidationError("--sizes must be a comma-separated list of positive integers") }
        guard threads <= 1024 else { throw ValidationError("--threads must be at most 1024, got \(threads)") }
        if let batch { guard batch >= 1, batch <= 65_536 else { throw ValidationError("--batch must be between 1 and 65536, got \(batch)") } }
        // Each workload's sizes within what it can allocate and finish (dense n×n matrices for
        // gemm and the Hessians; Rosenbrock needs two variables at least).
        let limits: [String: (ClosedRange<Int>, String)] = [
            "gemm": (1...16_384, "matrix sizes"), "rosenbrock": (2...1_000_000, "dimensions"), "hessian": (2...8_192, "dimensions"),
            "mlp": (1...65_536, "batch sizes"), "mlp-memory": (1...65_536, "batch sizes"), "elementwise": (1...100_000_000, "element counts"),
        ]
        if self.sizes != Bench.gemmSizes, let (range, what) = limits[workload], let bad = sizes.first(where: { !range.contains($0) }) {
            throw ValidationError("--sizes: \(bad) is outside \(range.lowerBound)...\(range.upperBound), the \(what) bench \(workload) takes")
        }
    }

    var parsedSizes: [Int]? {
        let s = sizes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !s.isEmpty, s.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return s.map { $0! }
    }

    static let gemmSizes = "128,256,512,1024,2048"

    /// The sizes given with --sizes, or `defaults` when the option was left at gemm's default.
    func sizes(or defaults: [Int]) -> [Int] {
        sizes == Bench.gemmSizes ? defaults : parsedSizes!
    }

    func emit(_ pairs: [(String, JSONValue)], text: String) {
        if json { print(OrderedJSON(pairs).text) } else { print(text) }
        fflush(stdout)
    }

    func run() throws {
        ComputeBackend.threads = threads
        if distributed { return try mlpDistributed() }
        emit([("bench", .string(workload)), ("what", .string("config")), ("blas", .string(ComputeBackend.blasName)),
              ("builtin_isa", .string("\(ComputeBackend.instructionSet)")), ("threads", .number(Double(threads))),
              ("nproc", .number(Double(ProcessInfo.processInfo.activeProcessorCount)))],
             text: "BLAS: \(ComputeBackend.blasName); built-in kernels: \(ComputeBackend.instructionSet); threads: \(threads)")
        switch workload {
        case "gemm":
            if dtype != "float64" { gemm(Float.self) }
            if dtype != "float32" { gemm(Double.self) }
        case "elementwise": elementwise()
        case "rosenbrock": rosenbrock()
        case "logreg": try logreg()
        case "scalar": scalar()
        case "mlp": mlp()
        case "cnn": try cnn()
        case "vae": try vae()
        case "cnn-memory": try cnnMemory()
        case "cnn-accuracy": try cnnAccuracy()
        case "gpt", "lstm": try languageModel(workload)
        case "mlp-memory": mlpMemory()
        case "mlp-accuracy": mlpAccuracy()
        case "hessian": hessianWorkload()
        case "attribution": attributionWorkload()
        case "anomaly": anomalyWorkload()
        case "reinforce": try reinforceWorkload()
        default: overhead()
        }
    }

    /// C = A·B for square n×n, A and B ~ N(0, 1): Nabla's matmul into a preallocated C, the same
    /// with a fresh C each call, the raw BLAS call, and the built-in kernel.
    func gemm<S: TensorScalar>(_: S.Type) {
        for n in parsedSizes! {
            var rng = RandomGenerator(seed: 0)
            let a = Tensor<S>.normal(shape: [n, n], using: &rng), b = Tensor<S>.normal(shape: [n, n], using: &rng)
            var c = Tensor<S>.zeros(shape: [n, n])
            let flops = 2.0 * Double(n * n * n)
            let reference = Tensor.matmul(Tensor<Double>(converting: a), Tensor<Double>(converting: b))
            func relErr(_ t: Tensor<S>) -> Double {
                let d = Tensor<Double>(converting: t) - reference
                return d.norm().scalar / reference.norm().scalar
            }
            var variants: [(String, () -> Void)] = [
                ("nabla", { Tensor.matmul(a, b, into: &c) }),
                ("nabla_alloc", { c = Tensor.matmul(a, b) }),
            ]
            if ComputeBackend.hasBLAS {
                variants.insert(("blas_raw", {
                    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
                        c.withUnsafeMutableBufferPointer { pc in
                            _ = ComputeBackend.rawGEMM(m: n, n: n, k: n, a: pa.baseAddress!, b: pb.baseAddress!, c: pc.baseAddress!)
                        } } }
                }), at: 0)
            }
            if n <= 1024 || !ComputeBackend.hasBLAS {
                variants.append(("nabla_builtin", {
                    ComputeBackend.forcesBuiltinKernels = true
                    Tensor.matmul(a, b, into: &c)
                    ComputeBackend.forcesBuiltinKernels = false
                }))
            }
            // The variants are timed side by side (their repeats alternate); each then runs once
            // more to leave its own result in C for the error check.
            let timings = Timing.measureInterleaved(maxTotal: 20, variants.map(\.1))
            for ((lib, body), t) in zip(variants, timings) {
                body()
                let err = relErr(c)
                emit([("bench", .string("gemm")), ("lib", .string(lib)), ("dtype", .string(S.dtypeName)), ("n", .number(Double(n))),
                      ("threads", .number(Double(threads))), ("gflops_median", .number(flops / t.medianSeconds / 1e9)),
                      ("gflops_max", .number(flops / t.minSeconds / 1e9)), ("rel_err", .number(err)),
                      ("median_s", .number(t.medianSeconds)), ("min_s", .number(t.minSeconds)), ("repeats", .number(Double(t.repeats))),
                      ("inner", .number(Double(t.inner))), ("others_cores", .number(t.othersCores))],
                     text: "gemm \(S.dtypeName) n=\(n) \(pad(lib, 14)) \(fmt(flops / t.medianSeconds / 1e9, digits: 4)) GFLOPS (median; best \(fmt(flops / t.minSeconds / 1e9, digits: 4))), rel. error \(fmt(err, digits: 2))")
            }
        }
    }

    /// Chained Rosenbrock from (−1.2, 1, −1.2, 1, …), gradients by automatic differentiation,
    /// SciPy's default tolerances (max |g| ≤ 1e-5, 1e-8 for the trust region; L-BFGS also stops
    /// at a relative change of f ≤ 2.2e-9). BFGS at
    /// n = 1000 is timed once (its dense n×n update dominates).
    func rosenbrock() {
        let methods: [(MinimizationMethod, String)] = [(.lbfgs, "L-BFGS-B"), (.bfgs, "BFGS"), (.conjugateGradient(.polakRibierePlus), "CG"),
                                                       (.newtonCG, "Newton-CG"), (.trustRegion, "trust-ncg")]
        for n in sizes(or: [2, 100, 1000]) {
            let f = TestFunction.named("rosenbrock", dimension: n)!
            let x0 = Tensor<Double>(f.start)
            for (method, peer) in methods {
                // SciPy's default stopping rules for each method.
                var options = MinimizeOptions(maxIterations: 50_000, gradientTolerance: method == .trustRegion ? 1e-8 : 1e-5)
                options.checksCurvature = false   // the peers do not examine the Hessian at the end
                options.valueTolerance = method == .lbfgs ? 2.2e-9 : 0
                // One untimed run gives the counts (and warms up); BFGS at n ≥ 1000 is timed on that run alone.
                let cf = f.compiled
                let run = { compile ? minimize(cf, from: x0, method: method, options: options) : minimize(f.function, from: x0, method: method, options: options) }
                let t0 = Timing.now()
                let result = run()
                let once = Timing.now() - t0
                let t: Timing
                if case .bfgs = method, n >= 1000 {
                    t = Timing(medianSeconds: once, minSeconds: once, repeats: 1, inner: 1, othersCores: 0)
                } else {
                    t = Timing.measure(minTotal: 2, maxTotal: 30) { _ = run() }
                }
                emit([("bench", .string("rosenbrock")), ("impl", .string(compile ? "nabla.compiled" : "nabla")), ("method", .string(method.description)),
                      ("scipy_method", .string(peer)), ("n", .number(Double(n))), ("nit", .number(Double(result.iterations))),
                      ("nfev", .number(Double(result.evaluations))), ("njev", .number(Double(result.evaluations))),
                      ("nhev", .number(Double(result.hessianEvaluations))), ("f", .number(result.value)),
                      ("grad_inf", .number(result.gradient.reduce(0) { Swift.max($0, Swift.abs($1)) })),
                      ("success", .bool(result.success)), ("message", .string(result.message)),
                      ("wall_ms_median", .number(t.medianSeconds * 1000)), ("wall_ms_min", .number(t.minSeconds * 1000)),
                      ("repeats", .number(Double(t.repeats))), ("others_cores", .number(t.othersCores))],
                     text: "rosenbrock n=\(pad("\(n)", 5)) \(compile ? "compiled " : "")\(pad(method.description, 13)) nit \(pad("\(result.iterations)", 6)) nfev \(pad("\(result.evaluations)", 6)) f \(pad(fmt(result.value, digits: 3), 10)) \(fmt(t.medianSeconds * 1000, digits: 4)) ms (median)")
            }
        }
    }

    /// Workload W5: logistic regression with scikit-learn's objective at C = 1 on the reference
    /// 80/20 splits of digits and breast_cancer, standardized with the training rows' statistics.
    func logreg() throws {
        for set in [Dataset.Bundled.digits, .breastCancer] {
            let d = try Dataset.bundled(set)
            guard let split = Dataset.referenceSplit(set) else { continue }
            let train = d.subset(split.train), test = d.subset(split.test)
            let scaler = FeatureScaler.standard(fittedOn: train.features)
            let (x, xt) = (scaler.transform(train.features), scaler.transform(test.features))
            let (y, yt) = (train.labels.values, test.labels.values)
            for solver in [LogisticRegression.Solver.lbfgs, .newton] {
                var model = LogisticRegression(c: 1, solver: solver)
                try model.fit(x, labels: y)
                let t = Timing.measure(minTotal: 2, maxTotal: 30) { var m = model; try? m.fit(x, labels: y) }
                let accuracy = model.score(xt, labels: yt)
                emit([("bench", .string("logreg")), ("impl", .string("nabla")), ("dataset", .string(set.rawValue)),
                      ("model", .string("LogisticRegression(\(solver.rawValue),C=1)")), ("threads", .number(Double(threads))),
                      ("n_train", .number(Double(x.shape[0]))), ("test_acc", .number(accuracy)), ("train_objective", .number(model.objective)),
                      ("n_iter", .number(Double(model.iterations))), ("fit_ms_median", .number(t.medianSeconds * 1000)),
                      ("fit_ms_min", .number(t.minSeconds * 1000)), ("others_cores", .number(t.othersCores))],
                     text: "logreg \(pad(set.rawValue, 14)) \(pad(solver.rawValue, 7)) objective \(fmt(model.objective, digits: 10))  test accuracy \(fmt(accuracy, digits: 4))  \(model.iterations) iterations  \(fmt(t.medianSeconds * 1000, digits: 4)) ms (median)")
            }
        }
    }

    /// Workload W3: one evaluation = build the inputs, evaluate f(x, y) = x² + y² + xy, get both
    /// partials as Doubles; with the scalar tape and with tensors. Then the seed example.
    func scalar() {
        let tape = ScalarTape()
        var grad: [Double] = []
        let variants: [(String, () -> Void)] = [
            ("nabla-scalar-tape", {
                grad = tape.valueWithGradient(at: [1, 3]) { v in v[0] * v[0] + v[1] * v[1] + v[0] * v[1] }.gradient
            }),
            ("nabla-tensor", {
                let x = Tensor<Double>(1).requiringGradient(), y = Tensor<Double>(3).requiringGradient()
                let g = gradients(of: x * x + y * y + x * y, wrt: [x, y])
                grad = [g[0].scalar, g[1].scalar]
            }),
        ]
        var all = variants
        if compile {
            // The same function compiled: traced once, value and gradient one scalar program.
            let f = compiled { (v: [Traced<Double>]) in [v[0] * v[0] + v[1] * v[1] + v[0] * v[1]] }
            let program = f.scalarProgram(.valueAndGradient, arity: 2)!
            var out = [Double](repeating: 0, count: 3)
            let point: [Double] = [1, 3]
            grad = [0, 0]
            all = [("nabla-compiled", {
                point.withUnsafeBufferPointer { p in out.withUnsafeMutableBufferPointer { o in program.run(p, into: o) } }
                grad.withUnsafeMutableBufferPointer { $0[0] = out[1]; $0[1] = out[2] }
            })]
        }
        for (name, body) in all {
            let t = Timing.measure(body)
            emit([("bench", .string("scalar_grad")), ("impl", .string(name)), ("grad", .array(grad.map { .number($0) })),
                  ("evals_per_s_median", .number(1 / t.medianSeconds)), ("evals_per_s_max", .number(1 / t.minSeconds)),
                  ("median_s", .number(t.medianSeconds)), ("others_cores", .number(t.othersCores))],
                 text: "scalar gradient \(pad(name, 18)) (5, 7) = (\(fmt(grad[0])), \(fmt(grad[1])))  \(fmt(1 / t.medianSeconds, digits: 4)) evaluations/s (median)")
        }
        let x = Tensor<Double>(shape: [5, 1], scalars: [1, 2, 3, 4, 5]), y: [Double] = [2, 4, 5, 4, 5]
        var model = LinearRegression(solver: .gradientDescent(learningRate: 0.01, steps: 1000))
        let t = Timing.measure(minTotal: 1) { try? model.fit(x, y) }
        emit([("bench", .string("scalar_grad")), ("impl", .string("nabla-linear-regression-gd")), ("m", .number(model.weights[0])),
              ("b", .number(model.intercept)), ("fit_ms_median", .number(t.medianSeconds * 1000)), ("others_cores", .number(t.othersCores))],
             text: "y = m·x + b by gradient descent (1000 steps): m = \(fmt(model.weights[0], digits: 7)), b = \(fmt(model.intercept, digits: 7)), \(fmt(t.medianSeconds * 1000, digits: 4)) ms (median)")
    }

    /// Workload W2's data and model: X ~ N(0, 1) [8192, 784] float32, labels argmax(X W_true),
    /// 784-256-128-10 ReLU with U(−k, k) weights and biases (k = 1/√fan-in), Adam lr 1e-3.
    struct MLPWorkload {
        let x: Tensor<Float>
        let labels: [Int]
        let model: Sequential<Float>
        var optimizer = Optimizer<Float>(rule: Adam(), learningRate: 1e-3)

        init() {
            var rng = RandomGenerator(seed: 0)
            let (n, d, c) = (8192, 784, 10)
            let xs = (0..<(n * d)).map { _ in Float(rng.nextNormal()) }
            let w = (0..<(d * c)).map { _ in rng.nextNormal() }
            labels = (0..<n).map { i in
                var best = 0, bestValue = -Double.infinity
                for k in 0..<c {
                    var s = 0.0
                    for j in 0..<d { s += Double(xs[i * d + j]) * w[j * c + k] }
                    if s > bestValue { bestValue = s; best = k }
                }
                return best
            }
            x = Tensor(shape: [n, d], scalars: xs)
            GlobalRandom.seed(1)
            model = Sequential(Linear(inputSize: 784, outputSize: 256), Activation(.relu), Linear(inputSize: 256, outputSize: 128),
                               Activation(.relu), Linear(inputSize: 128, outputSize: 10))
        }

        /// Batch k of an epoch: rows [kB, (k+1)B).
        func batch(_ k: Int, size b: Int) -> (Tensor<Float>, [Int]) {
            let start = (k * b) % 8192
            return (x.slice(axis: 0, start: start, end: start + b).detached(), Array(labels[start..<(start + b)]))
        }

        mutating func step(_ xb: Tensor<Float>, _ yb: [Int]) {
            let m = model
            m.valueWithGradient { $0(xb).softmaxCrossEntropy(targets: yb) }
            optimizer.step(m)
        }
    }

    /// W7: training steps of the small CNN (conv 32 → pool → conv 64 → pool → 128 → 10, Adam
    /// 1e-3) on the first 8192 Fashion-MNIST training images in file order, at batch 1, 32, 128.
    func cnn() throws {
        let train = try ImageSet.fashionMNIST.loadRows(from: ImageSet.fashionMNIST.folder(dataDir), trainLimit: 8192).train
        let (x, labels) = (train.pixels, train.labels)
        let model = Bench.w7Model()
        var optimizer = Optimizer<Float>(rule: Adam(), learningRate: 1e-3)
        for b in batch.map({ [$0] }) ?? sizes(or: [1, 32, 128]) {
            let batches = (0..<(train.count / b)).map { k in
                (x.slice(axis: 0, start: k * b, end: (k + 1) * b), Array(labels[(k * b)..<((k + 1) * b)]))
            }
            var k = 0
            let t = Timing.measure(minTotal: 2, maxTotal: 20) {
                let (xb, yb) = batches[k % batches.count]
                model.valueWithGradient { $0(xb).softmaxCrossEntropy(targets: yb) }
                optimizer.step(model)
                k += 1
            }
            emitSteps("cnn", batch: b, t)
        }
    }

    /// W10: training steps of PyTorch's example VAE (784 → 400 → 2 × 20, 20 → 400 → 784; −ELBO
    /// with Bernoulli pixels; Adam 1e-3) at batch 128, batches cycling in file order through the
    /// first 8192 MNIST training images; ε drawn every step.
    func vae() throws {
        let folder = ImageSet.mnist.folder(dataDir)
        let x = try ImageSet.mnist.loadRows(from: folder, trainLimit: 8192).train.pixels
        let b = batch ?? 128
        let model = GlobalRandom.withSeed(1) { VariationalAutoencoder<Float>(inputs: 784, hidden: [400], latent: 20) }
        var optimizer = Optimizer<Float>(rule: Adam(), learningRate: 1e-3)
        var noise = RandomGenerator(seed: 1)
        let batches = (0..<(x.shape[0] / b)).map { k in x.slice(axis: 0, start: k * b, end: (k + 1) * b) }
        var k = 0
        let t = Timing.measure(minTotal: 2, maxTotal: 20) {
            let xb = batches[k % batches.count]
            model.valueWithGradient { $0.loss(xb, using: &noise).total }
            optimizer.step(model)
            k += 1
        }
        emitSteps("vae", batch: b, t)
    }

    /// One training-step measurement with the peers' keys.
    func emitSteps(_ workload: String, batch b: Int, _ t: Timing) {
        emit([("bench", .string(workload)), ("fw", .string("nabla")), ("batch", .number(Double(b))), ("threads", .number(Double(threads))),
              ("steps_per_s_median", .number(1 / t.medianSeconds)), ("steps_per_s_max", .number(1 / t.minSeconds)),
              ("samples_per_s_median", .number(Double(b) / t.medianSeconds)), ("median_s", .number(t.medianSeconds)),
              ("others_cores", .number(t.othersCores))],
             text: "\(workload) step batch \(pad("\(b)", 4)) \(fmt(1 / t.medianSeconds, digits: 4)) steps/s (median)")
    }

    /// W7's network with PyTorch's default initialization, seed 0.
    static func w7Model() -> Sequential<Float> {
        GlobalRandom.withSeed(0) { ModelSpec(parsing: "cnn:32,64/128")!.build(inputs: 784, outputs: 10) }
    }

    /// W7's network for one epoch over the 60000 Fashion-MNIST training images at batch 128, in
    /// file order: the peak resident memory of the process (data, model, optimizer, buffers).
    func cnnMemory() throws {
        let (train, _) = try ImageSet.fashionMNIST.loadRows(from: ImageSet.fashionMNIST.folder(dataDir))
        let model = Bench.w7Model()
        var optimizer = Optimizer<Float>(rule: Adam(), learningRate: 1e-3)
        let started = Date()
        for start in stride(from: 0, to: train.count, by: 128) {
            let end = Swift.min(start + 128, train.count)
            let xb = train.pixels.slice(axis: 0, start: start, end: end), yb = Array(train.labels[start..<end])
            model.valueWithGradient { $0(xb).softmaxCrossEntropy(targets: yb) }
            optimizer.step(model)
        }
        let wall = Date().timeIntervalSince(started)
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let mib = Double(usage.ru_maxrss) / 1024
        emit([("bench", .string("cnn")), ("fw", .string("nabla")), ("what", .string("peak_rss_1epoch_b128")), ("batch", .number(128)),
              ("ru_maxrss_mib", .number(mib)), ("epoch_wall_s", .number(wall))],
             text: "cnn one epoch (\(train.count) images) at batch 128: peak resident memory \(fmt(mib, digits: 4)) MiB, \(fmt(wall, digits: 3)) s")
    }

    /// W7's quality run: two epochs over the 60000 Fashion-MNIST training images at batch 64
    /// (the last batch 32), then the test accuracy and mean loss on the 10000 test images after
    /// each epoch. With --initial DIR, PyTorch's initial weights and permutations as the peers'
    /// cnn.py exports them (the same start and batches as `cnn.py --mode acc`); otherwise Nabla's
    /// seed-0 initialization and permutations.
    func cnnAccuracy() throws {
        let (train, test) = try ImageSet.fashionMNIST.loadRows(from: ImageSet.fashionMNIST.folder(dataDir))
        let model = Bench.w7Model()
        var permutations: [[Int]] = []
        if let initial {
            let names = ["conv1_w", "conv1_b", "conv2_w", "conv2_b", "fc1_w", "fc1_b", "fc2_w", "fc2_b"]
            for (p, name) in zip(model.parameters, names) {
                let t: Tensor<Float> = try NPY.read((initial as NSString).appendingPathComponent(name + ".npy")).tensor()
                guard t.shape == p.shape else { throw RunFailure(message: "--initial \(initial): \(name).npy has shape \(t.shape), the model's parameter \(p.shape)") }
                p.value = t
            }
            for e in 1...2 {
                let perm = try NPY.read((initial as NSString).appendingPathComponent("perm_epoch\(e).npy")).doubles.map { Int($0) }
                guard perm.count == train.count, Set(perm).count == perm.count, perm.allSatisfy({ $0 >= 0 && $0 < train.count }) else {
                    throw RunFailure(message: "--initial \(initial): perm_epoch\(e).npy is not a permutation of the \(train.count) training images")
                }
                permutations.append(perm)
            }
        } else {
            var g = RandomGenerator(seed: 0)
            permutations = [g.permutation(train.count), g.permutation(train.count)]
        }
        var optimizer = Optimizer<Float>(rule: Adam(), learningRate: 1e-3)
        var seconds = 0.0
        for (e, perm) in permutations.enumerated() {
            let started = Date()
            model.train()
            for start in stride(from: 0, to: perm.count, by: 64) {
                let rows = Array(perm[start..<Swift.min(start + 64, perm.count)])
                let xb = train.pixels.takeRows(rows), yb = rows.map { train.labels[$0] }
                model.valueWithGradient { $0(xb).softmaxCrossEntropy(targets: yb) }
                optimizer.step(model)
            }
            seconds += Date().timeIntervalSince(started)
            model.eval()
            let logits = withoutGradients { model.outputs(test.pixels) }
            let loss = Double(withoutGradients { logits.softmaxCrossEntropy(targets: test.labels) }.scalar)
            let accuracy = Metrics.accuracy(predicted: logits.argmax(axis: 1), actual: test.labels)
            emit([("bench", .string("cnn")), ("fw", .string("nabla")), ("what", .string("acc")), ("init", .string(initial == nil ? "nabla" : "pytorch")),
                  ("epochs", .number(Double(e + 1))), ("test_accuracy", .number(accuracy)), ("test_loss", .number(loss)), ("seconds", .number(seconds))],
                 text: "cnn epoch \(e + 1): test accuracy \(fmt(accuracy, digits: 4)), test loss \(fmt(loss, digits: 4)), \(fmt(seconds, digits: 3)) s")
        }
    }

    func mlp() {
        var w = MLPWorkload()
        // --compile: the loss and its gradient as one compiled program per batch size.
        let compiledLoss = compile ? CompiledClassifierLoss(w.model) : nil
        for b in batch.map({ [$0] }) ?? sizes(or: [1, 32, 128, 1024]) {
            var k = 0
            let batches = (0..<(8192 / b)).map { w.batch($0, size: b) }
            let t = Timing.measure(minTotal: 2, maxTotal: 20) {
                let (xb, yb) = batches[k % batches.count]
                if let compiledLoss {
                    compiledLoss.backward(xb, targets: yb)
                    w.optimizer.step(w.model)
                } else {
                    w.step(xb, yb)
                }
                k += 1
            }
            emit([("bench", .string("mlp")), ("fw", .string(compile ? "nabla.compiled" : "nabla")), ("batch", .number(Double(b))), ("threads", .number(Double(threads))),
                  ("steps_per_s_median", .number(1 / t.medianSeconds)), ("steps_per_s_max", .number(1 / t.minSeconds)),
                  ("samples_per_s_median", .number(Double(b) / t.medianSeconds)), ("samples_per_s_max", .number(Double(b) / t.minSeconds)),
                  ("median_s", .number(t.medianSeconds)), ("others_cores", .number(t.othersCores))],
                 text: "mlp step batch \(pad("\(b)", 5)) \(compile ? "compiled " : "")\(fmt(1 / t.medianSeconds, digits: 4)) steps/s (median)")
        }
    }

    /// W2's step, data-parallel: every process takes its contiguous share of each global batch
    /// [kB, (k+1)B), gradients averaged by bucketed all-reduce during the backward pass. A fixed
    /// number of steps (collectives must match across processes), timed in repeats of ten; rank 0
    /// emits the median repeat's step time as steps per second.
    func mlpDistributed() throws {
        let world: Communicator
        do { world = try Communicator.world() } catch { throw ValidationError("--distributed: \(error)") }
        let w = MLPWorkload()
        var optimizer = w.optimizer
        let parallel = DataParallel(model: w.model as Module<Float>, communicator: world)
        parallel.synchronizeParameters()
        for b in batch.map({ [$0] }) ?? sizes(or: [1024]) {
            // This process's shares of the epoch's batches, sliced beforehand as the one-process
            // bench slices its batches.
            var shares: [Int: (Tensor<Float>, [Int])] = [:]
            for start in stride(from: 0, to: 8192, by: b) {
                let part = parallel.share(of: Array(start..<Swift.min(start + b, 8192)))
                guard let first = part.first else { continue }
                shares[first] = (w.x.slice(axis: 0, start: first, end: first + part.count).detached(), part.map { w.labels[$0] })
            }
            let loss: (Module<Float>, [Int]) -> Tensor<Float> = { m, rows in
                let (xb, yb) = shares[rows[0]]!
                return (m as! Sequential<Float>)(xb).softmaxCrossEntropy(targets: yb)
            }
            // Repeats of ten steps, as the one-process bench times repeats of several steps, so a
            // stall of either process within a repeat counts.
            var times: [Double] = []
            var k = 0
            func step() {
                let start = (k * b) % 8192
                k += 1
                _ = parallel.valueWithGradient(rows: Array(start..<(start + Swift.min(b, 8192 - start))), loss: loss)
                optimizer.step(w.model)
            }
            for _ in 0..<10 { step() }
            for _ in 0..<Swift.max(1, steps / 10) {
                let t = Timing.now()
                for _ in 0..<10 { step() }
                times.append((Timing.now() - t) / 10)
            }
            // The slowest process sets the pace: the step time is rank 0's, which waits for all.
            let median = times.sorted()[times.count / 2], fastest = times.min()!
            if world.isPrimary {
                emit([("bench", .string("mlp")), ("fw", .string("nabla")), ("processes", .number(Double(world.size))), ("batch", .number(Double(b))),
                      ("threads", .number(Double(threads))), ("steps_per_s_median", .number(1 / median)), ("steps_per_s_max", .number(1 / fastest)),
                      ("samples_per_s_median", .number(Double(b) / median)), ("buckets", .number(Double(parallel.bucketSizes.count))),
                      ("transport", .string(world.transport))],
                     text: "mlp step, global batch \(pad("\(b)", 5)) over \(world.size) process\(world.size == 1 ? "" : "es") × \(threads) thread\(threads == 1 ? "" : "s"): \(fmt(1 / median, digits: 4)) steps/s (median of \(times.count) repeats of 10 steps)")
            }
        }
        world.finalize()
    }

    /// W8 (GPT) and W9 (LSTM): one training step (forward, loss, backward, clipping, the
    /// optimizer) on 50 batches drawn beforehand from the seeded generator and cycled; the
    /// learning rate held at its peak.
    func languageModel(_ name: String) throws {
        guard let path = TextCorpus.bundledShakespearePath else { throw ValidationError("the bundled Shakespeare corpus is missing from this build") }
        let corpus = try TextCorpus(file: path)
        var settings = LanguageModelSettings.preset(for: try LanguageModelSpec(parsing: name))
        (settings.minimumLearningRate, settings.warmup) = (nil, 0)
        let trainer = try LanguageModelTrainer(settings: settings, corpus: corpus)
        var g = RandomGenerator(seed: 1337)
        let batches = (0..<50).map { _ in TextCorpus.batch(from: corpus.train, size: settings.batch, context: settings.context, generator: &g) }
        let module = trainer.model.module
        var optimizer = trainer.optimizer
        var k = 0
        let t = Timing.measure(minTotal: 3, maxTotal: 30) {
            let (x, y) = batches[k % batches.count]
            k += 1
            module.valueWithGradient({ trainer.model.loss(x, y) }, onGradientReady: { _, _ in })
            optimizer.step(module)
        }
        let tokens = Double(settings.batch * settings.context)
        emit([("bench", .string("charlm")), ("model", .string(name)), ("fw", .string("nabla")), ("threads", .number(Double(threads))),
              ("batch", .number(Double(settings.batch))), ("block_size", .number(Double(settings.context))),
              ("n_params", .number(Double(module.parameterCount()))),
              ("steps_per_s_median", .number(1 / t.medianSeconds)), ("steps_per_s_max", .number(1 / t.minSeconds)),
              ("tokens_per_s_median", .number(tokens / t.medianSeconds)), ("median_s", .number(t.medianSeconds)), ("others_cores", .number(t.othersCores))],
             text: "\(name) training step (batch \(settings.batch) × \(settings.context)): \(fmt(1 / t.medianSeconds, digits: 4)) steps/s, \(fmt(tokens / t.medianSeconds, digits: 4)) tokens/s (median)")
    }

    func mlpMemory() {
        var w = MLPWorkload()
        for k in 0..<(8192 / 128) { let (xb, yb) = w.batch(k, size: 128); w.step(xb, yb) }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let mib = Double(usage.ru_maxrss) / 1024
        emit([("bench", .string("mlp")), ("fw", .string("nabla")), ("what", .string("peak_rss_1epoch_b128")), ("batch", .number(128)),
              ("ru_maxrss_mib", .number(mib))],
             text: "mlp one epoch at batch 128: peak resident memory \(fmt(mib, digits: 4)) MiB (data, model, process)")
    }

    func mlpAccuracy() {
        var w = MLPWorkload()
        for epoch in 1...5 {
            for k in 0..<(8192 / 128) { let (xb, yb) = w.batch(k, size: 128); w.step(xb, yb) }
            let (loss, accuracy) = withoutGradients { () -> (Double, Double) in
                let logits = w.model(w.x)
                return (Double(logits.softmaxCrossEntropy(targets: w.labels).scalar), Metrics.accuracy(predicted: logits.argmax(axis: 1), actual: w.labels))
            }
            emit([("bench", .string("mlp")), ("fw", .string("nabla")), ("what", .string("train_5_epochs_b128")), ("epoch", .number(Double(epoch))),
                  ("train_loss", .number(loss)), ("train_acc", .number(accuracy))],
                 text: "mlp epoch \(epoch): train loss \(fmt(loss, digits: 4)), train accuracy \(fmt(accuracy, digits: 4))")
        }
    }

    /// Integrated gradients batched: 50 steps over 1,000 breast_cancer rows (the 569 rows and
    /// their first 431 again) through an MLP (30 → 64 → 2), against one forward and backward
    /// pass over the same rows, and against one over the 50,000 rows the integration visits (the
    /// same arithmetic as integrated gradients, in one pass: its floor). bench/attribution runs
    /// Captum's IntegratedGradients on the same workload.
    func attributionWorkload() {
        guard let data = try? Dataset.bundled(.breastCancer) else { printError("bench attribution: the bundled data is missing"); return }
        let rows = (0..<1000).map { $0 % data.count }
        let x = Tensor<Float>(converting: FeatureScaler.standard(fittedOn: data.features).transform(data.features).indexSelect(axis: 0, indices: rows))
        let model = GlobalRandom.withSeed(0) { Sequential<Float>(Linear(inputSize: 30, outputSize: 64), Activation(.relu), Linear(inputSize: 64, outputSize: 2)) }
        let classes = withoutGradients { model(x) }.argmax(axis: 1)
        let explainer = Attribution<Float>(target: .classes(classes)) { model($0) }
        let visited = x.indexSelect(axis: 0, indices: (0..<50_000).map { $0 % 1000 })
        let visitedExplainer = Attribution<Float>(target: .classes((0..<50_000).map { classes[$0 % 1000] })) { model($0) }
        let timings = Timing.measureInterleaved(minTotal: 2, [
            { _ = explainer.saliency(x, absolute: false) },
            { _ = explainer.integratedGradients(x, steps: 50) },
            { _ = visitedExplainer.saliency(visited, absolute: false) },
        ])
        let (one, ig, all) = (timings[0].medianSeconds, timings[1].medianSeconds, timings[2].medianSeconds)
        emit([("bench", .string("attribution")), ("impl", .string("nabla")), ("rows", .number(1000)), ("steps", .number(50)),
              ("forward_backward_ms_median", .number(one * 1000)), ("ig_ms_median", .number(ig * 1000)), ("ratio", .number(ig / one)),
              ("forward_backward_50000_rows_ms_median", .number(all * 1000)), ("ig_over_50000_rows", .number(ig / all))],
             text: "attribution: one forward+backward over 1000 rows \(fmt(one * 1000, digits: 3)) ms; integrated gradients, 50 steps, \(fmt(ig * 1000, digits: 3)) ms (\(fmt(ig / one, digits: 3))×); one forward+backward over the 50000 rows it visits \(fmt(all * 1000, digits: 3)) ms (IG \(fmt(ig / all, digits: 3))× that; medians)")
    }

    /// The anomaly benchmarks (``AnomalyBenchmark``): ROC AUC of each of Nabla's detectors;
    /// MNIST vs Fashion-MNIST when --mnist and --fashion name their folders.
    func anomalyWorkload() {
        var benchmarks: [() throws -> AnomalyBenchmark] = [AnomalyBenchmark.breastCancer, AnomalyBenchmark.digits]
        if let mnist, let fashion { benchmarks.append { try AnomalyBenchmark.mnistVersusFashion(mnist: mnist, fashion: fashion) } }
        for make in benchmarks {
            do {
                let b = try make()
                for (detector, auc) in try b.run(seed: seed) {
                    emit([("bench", .string("anomaly")), ("impl", .string("nabla")), ("benchmark", .string(b.name)), ("detector", .string(detector)),
                          ("fit_rows", .number(Double(b.fitFeatures.shape[0]))), ("test_rows", .number(Double(b.testFeatures.shape[0]))), ("roc_auc", .number(auc))],
                         text: "anomaly \(pad(b.name, 24)) \(pad(detector, 20)) ROC AUC \(fmt(auc, digits: 4))")
                }
            } catch { printError("bench anomaly: \(error)") }
        }
    }

    /// Workload W11: REINFORCE with the setting of PyTorch's example on CartPole-v1 (stopping when
    /// the running return passes 475, or after 3000 episodes) per seed, then PPO with RL-Zoo's
    /// CartPole settings (8 environments, 1e5 steps) and 100 deterministic evaluation episodes.
    /// Wall time of the whole run: environment and network.
    func reinforceWorkload() throws {
        func parse(_ text: String) throws -> [UInt64] {
            let v = text.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
            guard !v.isEmpty, v.allSatisfy({ $0 != nil }) else { throw ValidationError("--seeds and --ppo-seeds take comma-separated seeds, got '\(text)'") }
            return v.map { $0! }
        }
        for seed in try parse(seeds) {
            var c = Reinforce.Configuration()
            c.seed = seed
            let start = Date()
            let run = try AgentRun(settings: AgentSettings(environment: "cartpole", algorithm: .reinforce, reinforce: c, solvedThreshold: 475))
            while !run.isFinished(maxEpisodes: 3000, maxSteps: nil) { _ = try run.advance() }
            let seconds = Date().timeIntervalSince(start)
            let solved = run.runningReturn > 475
            emit([("bench", .string("reinforce")), ("algo", .string("reinforce")), ("impl", .string("nabla")), ("seed", .number(Double(seed))),
                  ("threads", .number(Double(threads))), ("solved", .bool(solved)), ("episodes", .number(Double(run.episodes))),
                  ("total_env_steps", .number(Double(run.environmentSteps))), ("seconds", .number(seconds)), ("running_reward", .number(run.runningReturn)),
                  ("ms_per_env_step", .number(seconds * 1000 / Double(run.environmentSteps)))],
                 text: "reinforce seed \(seed): \(solved ? "solved" : "not solved") in \(run.episodes) episodes, \(run.environmentSteps) steps, \(fmt(seconds, digits: 3)) s (\(fmt(seconds * 1e6 / Double(run.environmentSteps), digits: 3)) µs per step)")
        }
        for seed in try parse(ppoSeeds) {
            var c = ActorCriticTrainer.Configuration.preset(.ppo, environment: "cartpole")
            c.seed = seed
            let start = Date()
            let run = try AgentRun(settings: AgentSettings(environment: "cartpole", algorithm: .ppo, actorCritic: c, solvedThreshold: 475))
            while !run.isFinished(maxEpisodes: nil, maxSteps: nil) { _ = try run.advance() }
            let seconds = Date().timeIntervalSince(start)
            let returns = try evaluatePolicy(run.policy, environment: CartPole(), episodes: 100, seed: seed &+ 1000)
            let (mean, std) = meanAndStd(returns)
            emit([("bench", .string("reinforce")), ("algo", .string("ppo")), ("impl", .string("nabla")), ("seed", .number(Double(seed))), ("threads", .number(Double(threads))),
                  ("total_env_steps", .number(Double(run.environmentSteps))), ("train_seconds", .number(seconds)),
                  ("eval_return_mean", .number(mean)), ("eval_return_std", .number(std))],
                 text: "ppo seed \(seed): \(run.environmentSteps) steps in \(fmt(seconds, digits: 3)) s; evaluation \(fmt(mean, digits: 4)) ± \(fmt(std, digits: 3)) over 100 episodes")
        }
    }

    /// Workload W6: Rosenbrock's Hessian (checked against its closed form) and Hessian-vector
    /// products, float64, from x0 = (−1.2, 1, …).
    func hessianWorkload() {
        let f = { (n: Int) in TestFunction.named("rosenbrock", dimension: n)! }
        let prefix = compile ? "nabla.compiled." : "nabla."
        for n in sizes(or: [10, 100, 1000]).map({ Swift.max($0, 2) }) {
            let x = Tensor<Double>((0..<n).map { $0 % 2 == 0 ? -1.2 : 1 })
            var h = Tensor<Double>(0)
            let cf = f(n).compiled
            let t = compile
                ? Timing.measure(minTotal: 1, maxTotal: 20) { h = cf.hessian(at: x) }
                : Timing.measure(minTotal: 1, maxTotal: 20) { h = hessian(at: x, of: f(n).function) }
            // Closed form: H[j][j] = [j < n−1](1200 x_j² − 400 x_{j+1} + 2) + [j > 0] 200, H[j][j+1] = −400 x_j.
            let xs = x.scalars, hs = h.scalars
            var err = 0.0
            for i in 0..<n {
                for j in 0..<n {
                    var e = 0.0
                    if i == j { e = (i < n - 1 ? 1200 * xs[i] * xs[i] - 400 * xs[i + 1] + 2 : 0) + (i > 0 ? 200 : 0) }
                    if j == i + 1 { e = -400 * xs[i] }
                    if i == j + 1 { e = -400 * xs[j] }
                    err = Swift.max(err, Swift.abs(hs[i * n + j] - e) / Swift.max(1, Swift.abs(e)))
                }
            }
            emit([("bench", .string("hessian")), ("impl", .string(prefix + "hessian")), ("n", .number(Double(n))), ("rel_err", .number(err)),
                  ("threads", .number(Double(threads))), ("ms_median", .number(t.medianSeconds * 1000)), ("others_cores", .number(t.othersCores))],
                 text: "hessian n=\(pad("\(n)", 5)) \(compile ? "compiled " : "")\(fmt(t.medianSeconds * 1000, digits: 4)) ms (median), max rel. error \(fmt(err, digits: 2))")
        }
        for n in sizes(or: [10_000, 1_000_000]).map({ Swift.max($0, 2) }) {
            let x = Tensor<Double>((0..<n).map { $0 % 2 == 0 ? -1.2 : 1 })
            var rng = RandomGenerator(seed: 0)
            let v = Tensor<Double>.normal(shape: [n], using: &rng)
            let cf = f(n).compiled
            let t = compile
                ? Timing.measure(minTotal: 1, maxTotal: 20) { _ = cf.hessianVectorProduct(at: x, vector: v) }
                : Timing.measure(minTotal: 1, maxTotal: 20) { _ = hessianVectorProduct(at: x, vector: v, of: f(n).function) }
            // Closed form (SciPy's rosen_hess_prod).
            let hv = compile ? cf.hessianVectorProduct(at: x, vector: v) : hessianVectorProduct(at: x, vector: v, of: f(n).function)
            let xs = x.scalars, vs = v.scalars, hs = hv.scalars
            var err = 0.0, scale = 0.0
            for i in 0..<n {
                var e = (i < n - 1 ? (1200 * xs[i] * xs[i] - 400 * xs[i + 1] + 2) * vs[i] - 400 * xs[i] * vs[i + 1] : 0)
                if i > 0 { e += 200 * vs[i] - 400 * xs[i - 1] * vs[i - 1] }
                err = Swift.max(err, Swift.abs(hs[i] - e))
                scale = Swift.max(scale, Swift.abs(e))
            }
            emit([("bench", .string("hvp")), ("impl", .string(prefix + "hessianVectorProduct")), ("n", .number(Double(n))),
                  ("rel_err", .number(err / Swift.max(scale, 1e-300))), ("threads", .number(Double(threads))),
                  ("ms_median", .number(t.medianSeconds * 1000)), ("others_cores", .number(t.othersCores))],
                 text: "hvp n=\(pad("\(n)", 8)) \(compile ? "compiled " : "")\(fmt(t.medianSeconds * 1000, digits: 4)) ms (median), max rel. error \(fmt(err / Swift.max(scale, 1e-300), digits: 2))")
        }
    }

    /// Element-wise ops and a reduction on float32 vectors of growing size.
    func elementwise() {
        if compile { return elementwiseCompiled() }
        for n in sizes(or: [1_000, 10_000, 100_000, 1_000_000, 10_000_000]) {
            var rng = RandomGenerator(seed: 1)
            let x = Tensor<Float>.normal(shape: [n], using: &rng), y = Tensor<Float>.normal(shape: [n], using: &rng)
            let ops: [(String, () -> Void)] = [
                ("add", { _ = x + y }), ("mul", { _ = x * y }), ("relu", { _ = x.relu() }),
                ("exp", { _ = x.exp() }), ("tanh", { _ = x.tanh() }), ("sigmoid", { _ = x.sigmoid() }), ("log", { _ = y.abs().log() }),
                ("sum", { _ = x.sum() }),
            ]
            for (name, body) in ops {
                let t = Timing.measure(minTotal: 0.5, targetRepeat: 0.05, body)
                emit([("bench", .string("elementwise")), ("op", .string(name)), ("dtype", .string("float32")), ("n", .number(Double(n))),
                      ("threads", .number(Double(threads))), ("ns_per_element_median", .number(t.medianSeconds * 1e9 / Double(n))),
                      ("median_s", .number(t.medianSeconds)), ("others_cores", .number(t.othersCores))],
                     text: "\(pad(name, 8)) n=\(pad("\(n)", 9)) \(fmt(t.medianSeconds * 1e9 / Double(n), digits: 3)) ns/element (median)")
            }
        }
    }

    /// Value and gradient of f(x) = Σ x·sin(x) + exp(−x²)·tanh(x) over float32 vectors: the
    /// compiled program (one fused pass: read x, write the gradient, sum the value) against a
    /// plain copy of the same bytes (read n, write n) and the eager library, in one run.
    func elementwiseCompiled() {
        let f = compiled { (x: Traced<Float>) in (x * x.sin() + (-(x * x)).exp() * x.tanh()).sum() }
        let eager = { (x: Tensor<Float>) in (x * x.sin() + (-(x * x)).exp() * x.tanh()).sum() }
        for n in sizes(or: [1_000_000, 10_000_000]) {
            var rng = RandomGenerator(seed: 1)
            let x = Tensor<Float>.normal(shape: [n], using: &rng)
            var copy = Tensor<Float>(repeating: 0, shape: [n])
            _ = f.valueWithGradient(at: x)
            let tc = x.withUnsafeBufferPointer { src in
                copy.withUnsafeMutableBufferPointer { dst in
                    Timing.measure(minTotal: 1, targetRepeat: 0.05) { dst.baseAddress!.update(from: src.baseAddress!, count: n) }
                }
            }
            let tf = Timing.measure(minTotal: 1, targetRepeat: 0.05) { _ = f.valueWithGradient(at: x) }
            let te = Timing.measure(minTotal: 1, targetRepeat: 0.05) { _ = valueWithGradient(at: x, of: eager) }
            let bytes = Double(2 * n * MemoryLayout<Float>.stride)
            for (impl, t) in [("copy", tc), ("nabla.compiled", tf), ("nabla.eager", te)] {
                emit([("bench", .string("elementwise-fused")), ("impl", .string(impl)), ("dtype", .string("float32")), ("n", .number(Double(n))),
                      ("threads", .number(Double(threads))), ("ms_median", .number(t.medianSeconds * 1000)),
                      ("gb_per_s", .number(bytes / t.medianSeconds / 1e9)), ("fraction_of_copy", .number(tc.medianSeconds / t.medianSeconds)),
                      ("others_cores", .number(t.othersCores))],
                     text: "\(pad(impl, 15)) n=\(pad("\(n)", 9)) \(fmt(t.medianSeconds * 1000, digits: 4)) ms (median), \(fmt(bytes / t.medianSeconds / 1e9, digits: 3)) GB/s, \(fmt(100 * tc.medianSeconds / t.medianSeconds, digits: 3)) % of the copy's bandwidth")
            }
        }
    }

    /// The cost of one tiny op (4-element operands), forward only and forward + backward.
    func overhead() {
        let a: Tensor<Float> = [1, 2, 3, 4], b: Tensor<Float> = [0.5, 0.25, 2, 1]
        let seed = Tensor<Float>.ones(shape: [4])
        let m: Tensor<Float> = [[1, 2], [3, 4]]
        let ops: [(String, (Tensor<Float>, Tensor<Float>) -> Tensor<Float>)] = [
            ("add", { $0 + $1 }), ("mul", { $0 * $1 }), ("tanh", { x, _ in x.tanh() }),
            ("sum", { x, _ in x.sum().reshaped(to: [1]).broadcast(to: [4]) }),
            ("matmul_2x2", { x, y in Tensor.matmul(x.reshaped(to: [2, 2]), y.reshaped(to: [2, 2])).reshaped(to: [4]) }),
        ]
        _ = m
        for (name, op) in ops {
            let fwd = Timing.measure { _ = op(a, b) }
            let ga = a.requiringGradient(), gb = b.requiringGradient()
            let fb = Timing.measure {
                let z = op(ga, gb)
                _ = gradients(of: z, with: seed, wrt: [ga, gb])
            }
            emit([("bench", .string("overhead")), ("op", .string(name)), ("dtype", .string("float32")), ("elements", .number(4)),
                  ("ns_forward_median", .number(fwd.medianSeconds * 1e9)), ("ns_forward_min", .number(fwd.minSeconds * 1e9)),
                  ("ns_forward_backward_median", .number(fb.medianSeconds * 1e9)), ("ns_forward_backward_min", .number(fb.minSeconds * 1e9)),
                  ("others_cores", .number(fb.othersCores))],
                 text: "\(pad(name, 12)) forward \(fmt(fwd.medianSeconds * 1e9, digits: 4)) ns   forward+backward \(fmt(fb.medianSeconds * 1e9, digits: 4)) ns (medians)")
        }
    }
}
