/// Nabla's pseudo-random generator: xoshiro256** seeded through SplitMix64.
///
/// Every value it produces is computed with integer operations and correctly rounded IEEE
/// arithmetic only (its normal deviates use the Marsaglia polar method with a logarithm
/// written here rather than the platform's), so a seed gives the same numbers on every platform.
///
/// - uniform: `(next() >> 11) * 2⁻⁵³`, in [0, 1).
/// - normal: Marsaglia's polar method; the second deviate of each pair is kept for the next call.
public struct RandomGenerator: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64
    private var spareNormal: Double?

    public init(seed: UInt64) {
        var sm = seed
        func splitMix() -> UInt64 {
            sm &+= 0x9E37_79B9_7F4A_7C15
            var z = sm
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// The complete state as text (`s0,s1,s2,s3[,spare]`), for checkpoints: a generator made
    /// from it continues the same sequence.
    public var snapshot: String {
        ([s0, s1, s2, s3] + (spareNormal.map { [$0.bitPattern] } ?? [])).map { String($0) }.joined(separator: ",")
    }

    public init?(snapshot: String) {
        let words = snapshot.split(separator: ",").compactMap { UInt64($0) }
        guard words.count == 4 || words.count == 5, words.count == snapshot.split(separator: ",").count else { return nil }
        (s0, s1, s2, s3) = (words[0], words[1], words[2], words[3])
        spareNormal = words.count == 5 ? Double(bitPattern: words[4]) : nil
    }

    /// Uniform in [0, 1).
    public mutating func nextUniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Standard normal deviate.
    public mutating func nextNormal() -> Double {
        if let s = spareNormal { spareNormal = nil; return s }
        while true {
            let u = 2 * nextUniform() - 1, v = 2 * nextUniform() - 1
            let s = u * u + v * v
            if s > 0 && s < 1 {
                let f = (-2 * portableLog(s) / s).squareRoot()
                spareNormal = v * f
                return u * f
            }
        }
    }

    /// Uniform integer in `0..<bound`, without modulo bias.
    public mutating func nextInt(below bound: Int) -> Int {
        require(bound > 0, "nextInt(below:): bound must be positive")
        return Int(next(upperBound: UInt64(bound)))
    }

    /// A random permutation of `0..<n` (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 { for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, nextInt(below: i + 1)) } }
        return p
    }
}

/// Natural logarithm from IEEE arithmetic only (same bits on every platform), for x > 0.
func portableLog(_ x: Double) -> Double {
    var m = x.significand  // [1, 2)
    var e = Double(x.exponent)
    if m > 1.4142135623730951 { m /= 2; e += 1 }
    let s = (m - 1) / (m + 1), s2 = s * s
    var term = s, sum = 0.0
    var k = 1.0
    for _ in 0..<14 { sum += term / k; term *= s2; k += 2 }
    return 2 * sum + e * 0.6931471805599453
}
