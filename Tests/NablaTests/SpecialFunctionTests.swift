import CNablaKernels
import Foundation
import Nabla
import Testing

@Suite struct SpecialFunctionTests {
    /// The vectorized exp of the fused softmax kernel against libm: within 1 ulp on [−708, 0],
    /// exact at 0, and (next to) 0 below −708.
    @Test func vectorizedExpIsWithinOneUlp() {
        var g = RandomGenerator(seed: 17)
        var xs = (0..<100_000).map { _ in -708 * g.nextUniform() }
        xs += (0..<10_000).map { _ in -1e-6 * g.nextUniform() } + [0, -0.0, -1e-300, -0.5 * log(2.0), -708, -709, -800]
        var ys = xs
        nb_exp_nonpositive_f64(ys.count, &ys)
        var worst = 0.0
        for (x, y) in zip(xs, ys) {
            if x < -708 { #expect(y >= 0 && y < 1e-300); continue }
            let e = Foundation.exp(x)
            worst = Swift.max(worst, Swift.abs(y - e) / e.ulp)
        }
        #expect(worst <= 1, "worst error \(worst) ulp")
        #expect(ys[xs.firstIndex(of: 0)!] == 1)
    }
}
