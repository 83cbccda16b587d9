import Foundation

/// Seeded random changes to training images that keep their class: shifts of up to `shift`
/// pixels along each axis (the image moved, the uncovered border filled with 0 — a random crop of
/// the zero-padded image) and, with `flip`, a left–right mirror half of the time (for clothes,
/// not for digits).
///
/// Each image's change depends only on the seed, the epoch and the image's row number, so a
/// resumed run augments exactly as an uninterrupted one, whatever the batches.
public struct ImageAugmentation: Sendable, Codable, Equatable, CustomStringConvertible {
    public var shift: Int
    public var flip: Bool

    public init(shift: Int = 0, flip: Bool = false) {
        require(shift >= 0 && shift <= 64, "ImageAugmentation: shift \(shift) is not between 0 and 64 pixels")
        (self.shift, self.flip) = (shift, flip)
    }

    /// `shift:N`, `flip`, or both separated by a comma (`shift:2,flip`).
    public init(parsing text: String) throws {
        var shift = 0, flip = false
        for part in text.lowercased().split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if part == "flip" {
                flip = true
            } else if part.hasPrefix("shift:"), let n = Int(part.dropFirst(6)), n >= 1, n <= 64 {
                shift = n
            } else {
                throw RunSettingsError("--augment \(text): write shift:N (1 to 64 pixels), flip, or shift:N,flip")
            }
        }
        guard shift > 0 || flip else { throw RunSettingsError("--augment \(text): write shift:N (1 to 64 pixels), flip, or shift:N,flip") }
        self.init(shift: shift, flip: flip)
    }

    public var description: String {
        ([shift > 0 ? "shift:\(shift)" : nil, flip ? "flip" : nil] as [String?]).compactMap { $0 }.joined(separator: ",")
    }

    /// Rows of `height` × `width` pixels (the images of data rows `indices`), each changed as
    /// `seed`, `epoch` and its row number decide.
    public func apply<Scalar: TensorScalar>(_ images: Tensor<Scalar>, indices: [Int], height: Int, width: Int, seed: UInt64, epoch: Int) -> Tensor<Scalar> {
        require(images.rank == 2 && images.shape[1] == height * width && indices.count == images.shape[0],
                "ImageAugmentation.apply: images \(images.shape) are not \(indices.count) rows of \(height) × \(width) pixels")
        let source = images.scalars
        var out = [Scalar](repeating: 0, count: source.count)
        let span = 2 * shift + 1
        for (i, row) in indices.enumerated() {
            var g = RandomGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(truncatingIfNeeded: epoch) &* 0xBF58_476D_1CE4_E5B9 ^ UInt64(truncatingIfNeeded: row))
            let dy = shift > 0 ? g.nextInt(below: span) - shift : 0
            let dx = shift > 0 ? g.nextInt(below: span) - shift : 0
            let mirror = flip && g.nextUniform() < 0.5
            let base = i * height * width
            for y in 0..<height {
                let sy = y - dy
                guard sy >= 0 && sy < height else { continue }
                for x in 0..<width {
                    var sx = x - dx
                    guard sx >= 0 && sx < width else { continue }
                    if mirror { sx = width - 1 - sx }
                    out[base + y * width + x] = source[base + sy * width + sx]
                }
            }
        }
        return Tensor(shape: images.shape, scalars: out)
    }
}
