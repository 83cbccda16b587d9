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
            for builtin in [true, false] {
                ComputeBackend.forcesBuiltinKernels = builtin
                let c = Tensor.matmul(a, b, transposeA: ta, transposeB: tb)
                ComputeBackend.forcesBuiltinKernels = false
                #expect(c.shape == [m, n])
                #expect(isClose(c.scalars, expected, tolerance: 1e-12), "m=\(m) n=\(n) k=\(k) ta=\(ta) tb=\(tb) builtin=\(builtin)")
                let cf = Tensor.matmul(Tensor<Float>(converting: a), Tensor<Float>(converting: b), transposeA: ta, transposeB: tb)
                #expect(isClose(Tensor<Double>(converting: cf).scalars, expected, tolerance: 1e-4))
            }
        }
    }

    @Test func matmulIntoReusesTheDestination() {
        let a = randn([3, 4], seed: 3), b = randn([4, 2], seed: 4)
        var c = Tensor<Double>.zeros(shape: [6])
        Tensor.matmul(a, b, into: &c)
        #expect(c.shape == [3, 2])
        #expect(isClose(c, Tensor.matmul(a, b), tolerance: 1e-15))
    }

    @Test func elementwiseKernelsHandleLengthsAroundTheVectorWidth() {
        for n in [1, 3, 7, 8, 9, 15, 16, 17, 33, 1000] {
            let x = randn([n], seed: UInt64(n))
            let viaKernel = (x.exp() * x.tanh() - x.sigmoid()).sum().scalar
            let direct = x.scalars.reduce(0.0) { $0 + Foundation_exp($1) * Foundation_tanh($1) - 1 / (1 + Foundation_exp(-$1)) }
            #expect(Swift.abs(viaKernel - direct) < 1e-12 * Swift.max(1, Swift.abs(direct)))
        }
    }

    @Test func reportsTheBackendInUse() {
        #expect(!ComputeBackend.blasName.isEmpty)
    }
}
