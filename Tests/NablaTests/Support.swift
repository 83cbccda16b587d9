import Foundation
import Nabla
import Testing

/// Path of a bundled test fixture.
func fixture(_ name: String) -> String {
    // A name may hold a subfolder: "pca/pca-digits.json".
    let parts = name.split(separator: "/").map(String.init)
    let folder = (["Fixtures"] + parts.dropLast()).joined(separator: "/")
    let url = Bundle.module.url(forResource: parts.last ?? name, withExtension: nil, subdirectory: folder)
    precondition(url != nil, "missing fixture \(name)")
    return url!.path
}

func isClose(_ a: Double, _ b: Double, tolerance: Double = 1e-12) -> Bool { Swift.abs(a - b) <= tolerance * Swift.max(1, Swift.abs(b)) }

func isClose(_ a: [Double], _ b: [Double], tolerance: Double = 1e-9) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { Swift.abs($0 - $1) <= tolerance * Swift.max(1, Swift.abs($1)) }
}

func isClose(_ a: Tensor<Double>, _ b: Tensor<Double>, tolerance: Double = 1e-9) -> Bool {
    a.shape == b.shape && isClose(a.scalars, b.scalars, tolerance: tolerance)
}

func randn(_ shape: [Int], seed: UInt64) -> Tensor<Double> {
    var g = RandomGenerator(seed: seed)
    return Tensor.normal(shape: shape, using: &g)
}

/// Positive values in [0.5, 2).
func positive(_ shape: [Int], seed: UInt64) -> Tensor<Double> {
    var g = RandomGenerator(seed: seed)
    return Tensor.uniform(shape: shape, low: 0.5, high: 2, using: &g)
}

// libm through Foundation, named apart from Nabla's tensor methods.
func Foundation_sin(_ x: Double) -> Double { Foundation.sin(x) }
func Foundation_cos(_ x: Double) -> Double { Foundation.cos(x) }
func Foundation_tan(_ x: Double) -> Double { Foundation.tan(x) }
func Foundation_exp(_ x: Double) -> Double { Foundation.exp(x) }
func Foundation_log(_ x: Double) -> Double { Foundation.log(x) }
func Foundation_tanh(_ x: Double) -> Double { Foundation.tanh(x) }
