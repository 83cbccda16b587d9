import Foundation
import Nabla
import Testing

@Suite struct PCATests {
    struct Reference: Decodable {
        var components: [[Double]], explained_variance: [Double], explained_variance_ratio: [Double], mean: [Double]
    }

    /// Components and explained variance as scikit-learn computes them on digits (the fixture is
    /// its output), to 1e-8 up to sign.
    @Test(arguments: [PCA.Solver.exact, .randomized])
    func matchesScikitLearnOnDigits(_ solver: PCA.Solver) throws {
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: fixture("pca-digits.json"))))
        let x = try Dataset.bundled(.digits).features
        let k = solver == .exact ? 10 : 5
        let pca = try PCA(components: k, fittedOn: x, solver: solver, iterations: 30)
        let tolerance = solver == .exact ? 1e-8 : 1e-6
        for c in 0..<k {
            let ours = Array(pca.components.scalars[(c * 64)..<((c + 1) * 64)]), theirs = reference.components[c]
            let sign = zip(ours, theirs).reduce(0.0) { $0 + $1.0 * $1.1 } < 0 ? -1.0 : 1.0
            let worst = zip(ours, theirs).map { Swift.abs(sign * $0 - $1) }.max()!
            #expect(worst <= tolerance, "component \(c): \(worst)")
            #expect(Swift.abs(pca.explainedVariance[c] - reference.explained_variance[c]) <= tolerance * reference.explained_variance[c])
            #expect(Swift.abs(pca.explainedVarianceRatio[c] - reference.explained_variance_ratio[c]) <= tolerance * reference.explained_variance_ratio[c])
        }
        #expect(zip(pca.mean, reference.mean).allSatisfy { Swift.abs($0 - $1) <= 1e-12 })
    }

    @Test func allComponentsRebuildTheDataAndBadRequestsAreRefused() throws {
        var rng = RandomGenerator(seed: 4)
        let x = Tensor<Double>.normal(shape: [30, 6], using: &rng)
        let pca = try PCA(components: 6, fittedOn: x)
        let back = pca.inverseTransform(pca.transform(x))
        #expect(zip(back.scalars, x.scalars).allSatisfy { Swift.abs($0 - $1) < 1e-12 })
        #expect(Swift.abs(pca.explainedVarianceRatio.reduce(0, +) - 1) < 1e-12)
        #expect { try PCA(components: 7, fittedOn: x) } throws: { "\($0)".contains("at most 6") }
        #expect { try PCA(components: 1, fittedOn: Tensor(shape: [2, 1], scalars: [1, .nan])) } throws: { "\($0)".contains("NaN") }
    }
}
