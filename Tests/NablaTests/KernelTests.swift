import CNablaKernels
import Dispatch
import Nabla
import Testing

@Suite(.serialized) struct KernelTests {
    func naiveProduct(_ a: [Double], _ b: [Double], m: Int, n: Int, k: Int, ta: Bool, tb: Bool) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for p in 0..<k {
            c[i * n + j] += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j])
        } } }
        return c
    }

    @Test(arguments: [(1, 1, 1), (7, 5, 3), (65, 130, 67), (300, 9, 260), (4, 520, 3)])
    func builtInAndBLASProductsMatchTheDefinition(_ dims: (Int, Int, Int)) {
        let (m, n, k) = dims
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = randn(ta ? [k, m] : [m, k], seed: 1), b = randn(tb ? [n, k] : [k, n], seed: 2)
            let expected = naiveProduct(a.scalars, b.scalars, m: m, n: n, k: k, ta: ta, tb: tb)
            for (builtin, isa) in [(false, ComputeBackend.widestInstructionSet)] + ComputeBackend.InstructionSet.allCases.map({ (true, $0) }) {
                ComputeBackend.forcesBuiltinKernels = builtin
                ComputeBackend.instructionSet = isa
                let c = Tensor.matmul(a, b, transposeA: ta, transposeB: tb)
                ComputeBackend.forcesBuiltinKernels = false
                ComputeBackend.instructionSet = ComputeBackend.widestInstructionSet
                #expect(c.shape == [m, n])
                #expect(isClose(c.scalars, expected, tolerance: 1e-12), "m=\(m) n=\(n) k=\(k) ta=\(ta) tb=\(tb) builtin=\(builtin) \(isa)")
                let cf = Tensor.matmul(Tensor<Float>(converting: a), Tensor<Float>(converting: b), transposeA: ta, transposeB: tb)
                #expect(isClose(Tensor<Double>(converting: cf).scalars, expected, tolerance: 1e-4))
            }
        }
    }

    /// A float32 kernel of gemm_small.c against the definition in Double, within the worst-case
    /// rounding bound (k + 4) u Σ|a||b|, for NN, TN and NT with alpha and beta, leading dimensions
    /// wider than the matrices (or `lda` when given), and nothing written past the last column.
    func checkFloatKernel(panel: Bool, m: Int, n: Int, k: Int, lda ldaOverride: Int? = nil) {
        for (ta, tb) in [(false, false), (true, false), (false, true)] {
            let (ra, ca) = ta ? (k, m) : (m, k), (rb, cb) = tb ? (n, k) : (k, n)
            let (lda, ldb, ldc) = (ldaOverride ?? ca + 3, cb + 5, n + 2)
            let a = randn([ra * lda], seed: 21).scalars.map { Double(Float($0)) }
            let b = randn([rb * ldb], seed: 22).scalars.map { Double(Float($0)) }
            let c0 = randn([m * ldc], seed: 23).scalars.map { Double(Float($0)) }
            var product = [Double](repeating: 0, count: m * n), scale = product
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0, t = 0.0
                    for p in 0..<k {
                        let x = ta ? a[p * lda + i] : a[i * lda + p], y = tb ? b[j * ldb + p] : b[p * ldb + j]
                        s += x * y
                        t += Swift.abs(x * y)
                    }
                    product[i * n + j] = s
                    scale[i * n + j] = t
                }
            }
            for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)] {
                let af = a.map(Float.init), bf = b.map(Float.init)
                var cf = c0.map(Float.init)
                let done = panel
                    ? nb_sgemm_panel_avx512(ta ? 1 : 0, tb ? 1 : 0, m, n, k, Float(alpha), af, lda, bf, ldb, Float(beta), &cf, ldc, 1)
                    : nb_sgemm_direct_avx512(ta ? 1 : 0, tb ? 1 : 0, m, n, k, Float(alpha), af, lda, bf, ldb, Float(beta), &cf, ldc, 1)
                #expect((done == 1) == ComputeBackend.usesAVX512, "m=\(m) n=\(n) k=\(k) ta=\(ta) tb=\(tb)")
                guard done == 1 else { continue }
                var bad = 0
                for i in 0..<m {
                    for j in 0..<ldc {
                        let got = Double(cf[i * ldc + j])
                        if j >= n {
                            if got != c0[i * ldc + j] { bad += 1 }
                            continue
                        }
                        let want = alpha * product[i * n + j] + beta * c0[i * ldc + j]
                        let bound = Double(k + 4) * 0x1p-24 * (Swift.abs(alpha) * scale[i * n + j] + Swift.abs(beta * c0[i * ldc + j]))
                        if !(Swift.abs(got - want) <= bound) { bad += 1 }
                    }
                }
                #expect(bad == 0, "\(panel ? "panel" : "direct") m=\(m) n=\(n) k=\(k) ta=\(ta) tb=\(tb) alpha=\(alpha) beta=\(beta): \(bad) wrong")
            }
        }
    }

    /// The direct kernels: tiles cut at every edge (rows not a multiple of the 12- or 4-row tile,
    /// columns not a multiple of 32 or 6, k not a multiple of 16, k past one 256-deep block).
    @Test(arguments: [(1, 1, 1), (2, 6, 16), (4, 16, 8), (13, 33, 17), (32, 256, 129), (37, 70, 300), (25, 7, 600)])
    func directFloatKernelsMatchTheDefinition(_ dims: (Int, Int, Int)) {
        checkFloatKernel(panel: false, m: dims.0, n: dims.1, k: dims.2)
    }

    /// The panel kernel: rows not a multiple of 6, columns not a multiple of 64 or 16, uneven k
    /// blocks; op(B) packed whole with C in several row blocks (90 × 1500 × 100), or packed one k
    /// block at a time (13 × 70 × 2100), over two column blocks (7 × 2100 × 130); and rows of A a
    /// multiple of 4 KiB apart, which are packed rather than read in place (lda = 1024).
    @Test(arguments: [(1, 1, 1, 0), (7, 70, 300, 0), (13, 16, 17, 0), (90, 1500, 100, 0), (13, 70, 2100, 0),
                      (7, 2100, 130, 0), (20, 100, 300, 1024)])
    func panelFloatKernelMatchesTheDefinition(_ dims: (Int, Int, Int, Int)) {
        checkFloatKernel(panel: true, m: dims.0, n: dims.1, k: dims.2, lda: dims.3 == 0 ? nil : dims.3)
    }

    /// The dense-layer epilogue of the panel kernel (bias added as each tile is stored, then ReLU)
    /// gives the bits of the bias copied into the output, the panel product with beta = 1 and
    /// v > 0 ? v : 0, over several k blocks and both blockings.
    @Test(arguments: [(300, 70, 100), (13, 70, 2100), (7, 130, 300)])
    func denseEpilogueMatchesBiasProductAndReLU(_ dims: (Int, Int, Int)) {
        let (m, n, k) = dims
        let x = randn([m * k], seed: 31).scalars.map(Float.init), w = randn([n * k], seed: 32).scalars.map(Float.init)
        let bias = randn([n], seed: 33).scalars.map(Float.init)
        for relu in [false, true] {
            var fused = [Float](repeating: .nan, count: m * n)
            let done = nb_linear_panel_avx512(m, n, k, x, k, w, k, bias, &fused, n, relu ? 1 : 0, 1)
            #expect((done == 1) == ComputeBackend.usesAVX512)
            guard done == 1 else { continue }
            var reference = (0..<(m * n)).map { bias[$0 % n] }
            #expect(nb_sgemm_panel_avx512(0, 1, m, n, k, 1, x, k, w, k, 1, &reference, n, 1) == 1)
            if relu { reference = reference.map { $0 > 0 ? $0 : 0 } }
            #expect(fused == reference, "m=\(m) n=\(n) k=\(k) relu=\(relu)")
        }
    }

    /// Split across threads, Nabla's kernels give the bits of one thread: the panel kernel by whole
    /// 64-column panels (products and dense layers, columns not a multiple of 64, more parts than
    /// panels), the direct kernels by rows, or by columns when there are few rows.
    @Test(arguments: [(0, 0, 300, 200, 70), (1, 0, 256, 784, 300), (0, 1, 130, 150, 800), (0, 1, 7, 40, 9), (1, 0, 10, 300, 50)])
    func kernelsSplitAcrossThreadsGiveTheSameBits(_ dims: (Int, Int, Int, Int, Int)) {
        let (ta, tb, m, n, k) = dims
        let a = randn([m * k], seed: 41).scalars.map(Float.init), b = randn([n * k], seed: 42).scalars.map(Float.init)
        let c0 = randn([m * n], seed: 43).scalars.map(Float.init), bias = randn([n], seed: 44).scalars.map(Float.init)
        let (lda, ldb) = (ta == 1 ? m : k, tb == 1 ? k : n)
        let kernels = [nb_sgemm_panel_avx512, nb_sgemm_direct_avx512]
        for (which, kernel) in kernels.enumerated() {
            var one = c0
            let done = kernel(Int32(ta), Int32(tb), m, n, k, 0.5, a, lda, b, ldb, 2, &one, n, 1)
            #expect((done == 1) == ComputeBackend.usesAVX512)
            guard done == 1 else { return }
            for parts: Int32 in [2, 3, 16] {
                var split = c0
                #expect(kernel(Int32(ta), Int32(tb), m, n, k, 0.5, a, lda, b, ldb, 2, &split, n, parts) == 1)
                #expect(split == one, "kernel \(which) parts=\(parts)")
            }
        }
        guard ta == 0 && tb == 1 else { return }
        var dense = [Float](repeating: .nan, count: m * n), denseSplit = dense
        #expect(nb_linear_panel_avx512(m, n, k, a, k, b, k, bias, &dense, n, 1, 1) == 1)
        #expect(nb_linear_panel_avx512(m, n, k, a, k, b, k, bias, &denseSplit, n, 1, 3) == 1)
        #expect(denseSplit == dense)
    }

    @Test func matmulIntoReusesTheDestination() {
        let a = randn([3, 4], seed: 3), b = randn([4, 2], seed: 4)
        var c = Tensor<Double>.zeros(shape: [6])
        Tensor.matmul(a, b, into: &c)
        #expect(c.shape == [3, 2])
        #expect(isClose(c, Tensor.matmul(a, b), tolerance: 1e-15))
    }

    @Test func elementwiseKernelsHandleLengthsAroundTheVectorWidth() {
        for n in [1, 3, 7, 8, 9, 15, 16, 17, 33, 1000, 300_000] {
            let x = randn([n], seed: UInt64(n))
            let viaKernel = (x.exp() * x.tanh() - x.sigmoid()).sum().scalar
            let direct = x.scalars.reduce(0.0) { $0 + Foundation_exp($1) * Foundation_tanh($1) - 1 / (1 + Foundation_exp(-$1)) }
            #expect(Swift.abs(viaKernel - direct) < 1e-12 * Swift.max(1, Swift.abs(direct)))
        }
    }

    /// Element-wise work split across Nabla's worker threads gives the bits of the one-thread
    /// computation, also while other threads split theirs at the same time (one job holds the
    /// workers; the others run their chunks themselves).
    @Test func splittingAcrossThreadsGivesIdenticalResults() {
        let x = Tensor<Float>(converting: randn([400_000], seed: 12)), y = Tensor<Float>(converting: randn([400_000], seed: 13))
        let saved = ComputeBackend.threads
        ComputeBackend.threads = 1
        let serial = ((x * y).exp().tanh() + x).scalars
        ComputeBackend.threads = 2
        let parallel = ((x * y).exp().tanh() + x).scalars
        var concurrent = [[Float]](repeating: [], count: 20)
        concurrent.withUnsafeMutableBufferPointer { out in
            DispatchQueue.concurrentPerform(iterations: 4) { t in
                for j in 0..<5 { out[t * 5 + j] = ((x * y).exp().tanh() + x).scalars }
            }
        }
        ComputeBackend.threads = saved
        #expect(serial == parallel)
        #expect(concurrent.allSatisfy { $0 == serial })
    }

    /// Training steps of a float network whose products are large enough to be split across
    /// threads (and whose element-wise work is too) give the same bits with one thread and two,
    /// where Nabla's own kernels do the products (with AVX-512, or without a BLAS). Where an
    /// external BLAS does them (OpenBLAS on an AVX2-only processor), its summation order may
    /// change with its thread count: the runs then agree to rounding.
    @Test func trainingStepsGiveTheSameBitsWithOneAndTwoThreads() {
        let x = Tensor<Float>(converting: randn([128, 784], seed: 14))
        let targets = (0..<128).map { $0 % 10 }
        func train(threads: Int) -> [[Float]] {
            let saved = ComputeBackend.threads
            ComputeBackend.threads = threads
            defer { ComputeBackend.threads = saved }
            let m = GlobalRandom.withSeed(6) {
                Sequential<Float>(Linear(inputSize: 784, outputSize: 256), Activation(.relu), Linear(inputSize: 256, outputSize: 10))
            }
            var opt = Optimizer<Float>(rule: Adam(), learningRate: 1e-3)
            for _ in 0..<3 {
                m.valueWithGradient { $0(x).softmaxCrossEntropy(targets: targets) }
                opt.step(m)
            }
            return m.parameters.map(\.value.scalars)
        }
        let one = train(threads: 1), two = train(threads: 2)
        if ComputeBackend.usesAVX512 || !ComputeBackend.hasBLAS {
            #expect(one == two)
        } else {
            for (a, b) in zip(one, two) {
                let scale = a.map { abs($0) }.max()!
                let diff = zip(a, b).map { abs($0 - $1) }.max()!
                #expect(diff <= 1e-4 * scale, "\(ComputeBackend.blasName): one thread and two differ by \(diff) (scale \(scale))")
            }
        }
    }

    /// The fused two-loop recursion gives the bits of the separate axpy, scaling and dot kernels
    /// it replaces, for lengths around the vector width and a ring that has wrapped.
    @Test(arguments: [(1, 0), (37, 1), (37, 4), (1000, 4), (1003, 3)])
    func lbfgsTwoLoopMatchesSeparateKernels(n: Int, count: Int) {
        var rng = RandomGenerator(seed: UInt64(n * 10 + count))
        let start = count > 1 ? count - 2 : 0
        let s = (0..<(count * n)).map { _ in rng.nextNormal() }, y = (0..<(count * n)).map { _ in rng.nextNormal() }
        let rho = (0..<count).map { _ in 1 / (1 + Swift.abs(rng.nextNormal())) }
        let g = (0..<n).map { _ in rng.nextNormal() }
        let hDiag = 0.7
        var q = [Double](repeating: 0, count: n), alpha = [Double](repeating: 0, count: Swift.max(count, 1))
        nb_lbfgs_direction_f64(n, count, start, s, y, rho, hDiag, g, &q, &alpha)

        var r = g.map { -$0 }
        var a = [Double](repeating: 0, count: count)
        let slot = { (k: Int) in ((start + k) % Swift.max(count, 1)) * n }
        for k in stride(from: count - 1, through: 0, by: -1) {
            a[k] = rho[(start + k) % count] * s.withUnsafeBufferPointer { nb_dot_f64(n, $0.baseAddress! + slot(k), r) }
            y.withUnsafeBufferPointer { nb_axpy_f64(n, -a[k], $0.baseAddress! + slot(k), &r) }
        }
        for i in 0..<n { r[i] *= hDiag }
        for k in 0..<count {
            let b = rho[(start + k) % count] * y.withUnsafeBufferPointer { nb_dot_f64(n, $0.baseAddress! + slot(k), r) }
            s.withUnsafeBufferPointer { nb_axpy_f64(n, a[k] - b, $0.baseAddress! + slot(k), &r) }
        }
        #expect(q == r)
    }

    /// Tensor buffers come back from the per-thread cache aligned, and a buffer freed on another
    /// thread (and that thread's end) leaves the values intact.
    @Test func tensorBuffersAreAlignedAndSurviveOtherThreads() async {
        for count in [1, 100, 1000, 100_000] {
            let t = Tensor<Float>(repeating: 1, shape: [count])
            t.withUnsafeBufferPointer { #expect(Int(bitPattern: $0.baseAddress!) % 64 == 0) }
        }
        let made = await _Concurrency.Task.detached { (0..<50).map { Tensor<Double>(repeating: Double($0), shape: [1000 + $0]) } }.value
        for (i, t) in made.enumerated() { #expect(t.scalars.allSatisfy { $0 == Double(i) }) }
        let sums = await withTaskGroup(of: Double.self) { group in
            for t in made { group.addTask { (t * 2).sum().scalar } }
            return await group.reduce(0, +)
        }
        var expected = 0.0
        for i in 0..<50 { expected += 2 * Double(i) * Double(1000 + i) }
        #expect(sums == expected)
    }

    /// The Adam kernel on values that meet subnormals (the AVX-512 kernel runs those vectors'
    /// products in double to avoid the processor's slow path) gives the bits of the float
    /// operations one by one, on every instruction set: magnitudes from 2⁻¹⁵⁰ to 2¹⁰, zeros, and
    /// moments stuck at the smallest subnormals.
    @Test(arguments: ComputeBackend.InstructionSet.allCases)
    func adamKernelIsExactOnSubnormals(_ isa: ComputeBackend.InstructionSet) {
        ComputeBackend.instructionSet = isa
        defer { ComputeBackend.instructionSet = ComputeBackend.widestInstructionSet }
        var rng = RandomGenerator(seed: 77)
        func value(_ nonnegative: Bool = false) -> Float {
            let r = rng.next()
            if r % 7 == 0 { return 0 }
            if r % 11 == 0 { return Float(bitPattern: UInt32(1 + (r >> 20) % 5)) }   // k · 2⁻¹⁴⁹
            let f = Float(sign: nonnegative || (r >> 30) & 1 == 0 ? .plus : .minus,
                          exponent: Int((r >> 8) % 160) - 150, significand: 1 + Float((r >> 40) % 1000) / 1000)
            return f
        }
        var mismatches = 0, checked = 0
        for trial in 0..<400 {
            let n = [37, 16, 100, 3][trial % 4]
            var x = (0..<n).map { _ in value() }, m = (0..<n).map { _ in value() }, v = (0..<n).map { _ in value(true) }
            let g = (0..<n).map { _ in value() }
            let b1: Float = trial % 3 == 0 ? Swift.abs(value()) : 0.9, b2: Float = trial % 5 == 0 ? Swift.abs(value()) : 0.999
            let cd: Float = trial % 2 == 0 ? 0 : value(), xs: Float = trial % 4 == 0 ? 1 - 1e-3 : 1
            let ss: Float = trial % 3 == 1 ? Swift.abs(value()) : 1e-3, eps: Float = trial % 6 == 0 ? Swift.abs(value()) : 1e-8
            var (ex, em, ev) = (x, m, v)
            for i in 0..<n {
                let gi = g[i] + ex[i] * cd, xi = ex[i] * xs
                let mi = em[i] * b1 + gi * (1 - b1)
                let vi = ev[i] * b2 + (gi * gi) * (1 - b2)
                ex[i] = xi - (mi * ss) / (vi.squareRoot() + eps)
                em[i] = mi; ev[i] = vi
            }
            nb_adam_f32(n, &x, g, &m, &v, b1, 1 - b1, b2, 1 - b2, cd, xs, ss, eps)
            for i in 0..<n {
                checked += 1
                let same = [(x[i], ex[i]), (m[i], em[i]), (v[i], ev[i])].allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
                if !same { mismatches += 1 }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(checked) lanes differ (\(isa))")
    }

    @Test func reportsTheBackendInUse() {
        #expect(ComputeBackend.blasName == "built-in" || ComputeBackend.hasBLAS)
        ComputeBackend.forcesBuiltinKernels = true
        #expect(ComputeBackend.blasName == "built-in")
        ComputeBackend.forcesBuiltinKernels = false
        if ComputeBackend.hasBLAS { #expect(ComputeBackend.blasName != "built-in") }
    }
}

extension KernelTests {
    /// Float exp, log and tanh run on Nabla's own vectorized code; compare with libm in Double.
    func worstRelativeError(_ xs: [Double], _ f: (Tensor<Float>) -> Tensor<Float>, _ reference: (Double) -> Double) -> Double {
        let got = f(Tensor<Float>(converting: Tensor<Double>(xs))).scalars
        var worst = 0.0
        for (x, y) in zip(xs, got) {
            let r = reference(Double(Float(x)))
            guard r.isFinite, Swift.abs(r) >= 1.2e-38, Swift.abs(r) < 3.4e38 else { continue }
            worst = Swift.max(worst, Swift.abs(Double(y) - r) / Swift.abs(r))
        }
        return worst
    }

    @Test(arguments: ComputeBackend.InstructionSet.allCases)
    func accuracyAcrossTheRange(_ isa: ComputeBackend.InstructionSet) {
        ComputeBackend.instructionSet = isa
        defer { ComputeBackend.instructionSet = ComputeBackend.widestInstructionSet }
        let wide = (0...20000).map { -87.0 + 175.0 * Double($0) / 20000 }
        #expect(worstRelativeError(wide, { $0.exp() }, Foundation_exp) < 3e-7)
        let positive = (0...20000).map { Foundation_exp(-80.0 + 160.0 * Double($0) / 20000) }
        #expect(worstRelativeError(positive, { $0.log() }, Foundation_log) < 3e-7)
        let aroundOne = (0...20000).map { 0.5 + Double($0) / 20000 }
        let logAbs = zip(aroundOne, Tensor<Float>(converting: Tensor<Double>(aroundOne)).log().scalars).map { Swift.abs(Double($1) - Foundation_log(Double(Float($0)))) }
        #expect(logAbs.max()! < 2e-7)
        let mid = (0...20000).map { -12.0 + 24.0 * Double($0) / 20000 }
        #expect(worstRelativeError(mid, { $0.tanh() }, Foundation_tanh) < 5e-7)
        #expect(worstRelativeError(mid, { $0.sigmoid() }, { 1 / (1 + Foundation_exp(-$0)) }) < 5e-7)
    }

    @Test(arguments: ComputeBackend.InstructionSet.allCases)
    func specialValues(_ isa: ComputeBackend.InstructionSet) {
        ComputeBackend.instructionSet = isa
        defer { ComputeBackend.instructionSet = ComputeBackend.widestInstructionSet }
        let x = Tensor<Float>([-.infinity, -1000, 0, 1000, .infinity, .nan])
        let e = x.exp().scalars
        #expect(e[0] == 0 && e[1] == 0 && e[2] == 1 && e[3] == .infinity && e[4] == .infinity && e[5].isNaN)
        let l = Tensor<Float>([0, -1, .infinity, .nan, 1, 1e-42]).log().scalars
        #expect(l[0] == -.infinity && l[1].isNaN && l[2] == .infinity && l[3].isNaN && l[4] == 0)
        #expect(Swift.abs(Double(l[5]) - Foundation_log(Double(Float(1e-42)))) < 1e-4)
        let t = Tensor<Float>([-.infinity, -20, 0, 20, .infinity, .nan]).tanh().scalars
        #expect(t[0] == -1 && t[1] == -1 && t[2] == 0 && t[3] == 1 && t[4] == 1 && t[5].isNaN)
    }
}
