import Foundation

/// An 8-bit grayscale or RGB image, written as PNG (for sample grids and heat maps).
///
/// The encoder writes the minimal valid file: the signature, IHDR, one IDAT holding a zlib
/// stream of stored (uncompressed) deflate blocks — each row prefixed by filter type 0 — with its
/// Adler-32, and IEND; every chunk with its CRC-32. Any PNG reader opens it; it is larger than a
/// compressed file would be (a 28×28 digit is under 1 KB either way).
public struct PNGImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// 1 (grayscale) or 3 (RGB).
    public let channels: Int
    /// Row-major, `channels` bytes per pixel.
    public private(set) var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        require(width >= 1 && height >= 1 && width <= 1 << 24 && height <= 1 << 24 && (channels == 1 || channels == 3),
                "PNGImage: \(width)×\(height) with \(channels) channels (sizes from 1 to 2²⁴, 1 or 3 channels)")
        require(pixels.count == width * height * channels,
                "PNGImage: \(pixels.count) bytes for \(width)×\(height)×\(channels)")
        (self.width, self.height, self.channels, self.pixels) = (width, height, channels, pixels)
    }

    /// A grayscale image from values in [0, 1] (clamped; NaN is black), row-major [height, width].
    public init(gray values: [Double], width: Int, height: Int) {
        require(values.count == width * height, "PNGImage(gray:): \(values.count) values for \(width)×\(height)")
        self.init(width: width, height: height, channels: 1, pixels: values.map(PNGImage.byte))
    }

    static func byte(_ v: Double) -> UInt8 { v.isNaN ? 0 : UInt8((Swift.min(Swift.max(v, 0), 1) * 255).rounded()) }

    /// Images [N, H, W] (values in [0, 1]) tiled `columns` to a row with `padding` pixels of
    /// `background` between and around them.
    public static func grid(_ images: Tensor<Double>, columns: Int? = nil, padding: Int = 2, background: Double = 1) -> PNGImage {
        require(images.rank == 3 && images.shape[0] >= 1, "PNGImage.grid: images of shape \(images.shape) are not [N, H, W] with N ≥ 1")
        require(padding >= 0 && padding <= 64, "PNGImage.grid: padding \(padding) is not between 0 and 64")
        let (n, h, w) = (images.shape[0], images.shape[1], images.shape[2])
        let cols = Swift.max(1, Swift.min(columns ?? Int(Double(n).squareRoot().rounded(.up)), n))
        let rows = (n + cols - 1) / cols
        let width = cols * w + (cols + 1) * padding, height = rows * h + (rows + 1) * padding
        var pixels = [UInt8](repeating: byte(background), count: width * height)
        let v = images.scalars
        for k in 0..<n {
            let (r, c) = (k / cols, k % cols)
            let y0 = padding + r * (h + padding), x0 = padding + c * (w + padding)
            for y in 0..<h { for x in 0..<w { pixels[(y0 + y) * width + x0 + x] = byte(v[(k * h + y) * w + x]) } }
        }
        return PNGImage(width: width, height: height, channels: 1, pixels: pixels)
    }

    /// The PNG file's bytes.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var header = [UInt8]()
        PNGImage.appendBigEndian(UInt32(width), to: &header)
        PNGImage.appendBigEndian(UInt32(height), to: &header)
        header += [8, channels == 1 ? 0 : 2, 0, 0, 0]   // bit depth 8; gray or RGB; deflate; filter 0; no interlace
        PNGImage.appendChunk("IHDR", header, to: &out)
        // Raw scanlines, each after its filter byte (0: none).
        let stride = width * channels
        var raw = [UInt8]()
        raw.reserveCapacity(height * (stride + 1))
        for y in 0..<height { raw.append(0); raw += pixels[(y * stride)..<((y + 1) * stride)] }
        PNGImage.appendChunk("IDAT", PNGImage.zlibStored(raw), to: &out)
        PNGImage.appendChunk("IEND", [], to: &out)
        return out
    }

    /// Writes the file atomically.
    public func write(to path: String) throws { try writeAtomically(Data(encoded()), to: path) }

    /// A zlib stream (RFC 1950) of stored deflate blocks (RFC 1951 §3.2.4), at most 65,535 bytes each.
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]   // deflate, 32 KB window; check bits: 0x7801 % 31 == 0
        var offset = 0
        repeat {
            let n = Swift.min(65_535, data.count - offset)
            let final: UInt8 = offset + n == data.count ? 1 : 0
            out += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += data[offset..<(offset + n)]
            offset += n
        } while offset < data.count
        appendBigEndian(adler32(data), to: &out)
        return out
    }

    static func adler32(_ data: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        var i = 0
        while i < data.count {
            let end = Swift.min(i + 5552, data.count)   // the most bytes before the sums can overflow
            while i < end { a += UInt32(data[i]); b += a; i += 1 }
            a %= 65_521; b %= 65_521
        }
        return b << 16 | a
    }

    static func appendBigEndian(_ v: UInt32, to out: inout [UInt8]) {
        out += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }

    static func appendChunk(_ type: String, _ data: [UInt8], to out: inout [UInt8]) {
        appendBigEndian(UInt32(data.count), to: &out)
        let typed = Array(type.utf8) + data
        out += typed
        appendBigEndian(crc32(typed), to: &out)
    }
}
