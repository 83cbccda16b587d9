import Foundation
@testable import Nabla
import Testing

/// PNG files written by Nabla, read back by an independent decoder: chunk CRCs by a bitwise
/// CRC-32 written here, the zlib stream's header and Adler-32 checked here, the deflate data by
/// the package's inflater (which shares no code with the encoder), the scanlines unfiltered here.
@Suite struct PNGTests {
    func bitwiseCRC(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return ~c
    }
    func be32(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }

    /// Decodes a non-interlaced 8-bit gray or RGB PNG with filter 0 rows.
    func decode(_ file: [UInt8]) throws -> (width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        #expect(Array(file.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var i = 8, idat = [UInt8](), header = [UInt8](), types: [String] = []
        while i + 12 <= file.count {
            let n = be32(file, i), type = String(decoding: file[(i + 4)..<(i + 8)], as: UTF8.self)
            let body = Array(file[(i + 8)..<(i + 8 + n)])
            #expect(UInt32(be32(file, i + 8 + n)) == bitwiseCRC(Array(file[(i + 4)..<(i + 8 + n)])), "CRC of \(type)")
            types.append(type)
            if type == "IHDR" { header = body } else if type == "IDAT" { idat += body }
            i += 12 + n
        }
        #expect(types.first == "IHDR" && types.last == "IEND" && i == file.count)
        let (w, h) = (be32(header, 0), be32(header, 4))
        #expect(header[8] == 8 && (header[9] == 0 || header[9] == 2) && header[10] == 0 && header[11] == 0 && header[12] == 0)
        let channels = header[9] == 0 ? 1 : 3
        // zlib: CMF/FLG check, raw deflate, Adler-32 of the result.
        #expect((Int(idat[0]) << 8 | Int(idat[1])) % 31 == 0 && idat[0] & 0x0F == 8)
        let (raw, used) = try Gzip.inflate(Array(idat[2...]), path: "png")
        var a = 1, b = 0
        for byte in raw { a = (a + Int(byte)) % 65_521; b = (b + a) % 65_521 }
        #expect(be32(idat, 2 + used) == b << 16 | a)
        let stride = w * channels
        #expect(raw.count == h * (stride + 1))
        var pixels = [UInt8]()
        for y in 0..<h {
            #expect(raw[y * (stride + 1)] == 0)
            pixels += raw[(y * (stride + 1) + 1)..<((y + 1) * (stride + 1))]
        }
        return (w, h, channels, pixels)
    }

    @Test func grayAndRGBImagesDecodeToTheirPixels() throws {
        var g = RandomGenerator(seed: 5)
        let gray = PNGImage(width: 37, height: 11, channels: 1, pixels: (0..<(37 * 11)).map { _ in UInt8(g.nextUniform() * 255) })
        let rgb = PNGImage(width: 5, height: 4, channels: 3, pixels: (0..<60).map { UInt8(($0 * 37) % 256) })
        for image in [gray, rgb] {
            let d = try decode(image.encoded())
            #expect(d.width == image.width && d.height == image.height && d.channels == image.channels && d.pixels == image.pixels)
        }
        // Larger than one stored block (65,535 bytes).
        let big = PNGImage(width: 300, height: 300, channels: 1, pixels: (0..<90_000).map { UInt8($0 % 251) })
        #expect(try decode(big.encoded()).pixels == big.pixels)
    }

    /// A grid of [N, H, W] images in [0, 1]: tiles in row-major order, padding in the background.
    @Test func gridPlacesTheImages() throws {
        let images = Tensor<Double>(shape: [3, 2, 2], scalars: [0, 1, 1, 0, 0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1])
        let png = PNGImage.grid(images, columns: 2, padding: 1, background: 0)
        #expect(png.width == 2 * 2 + 3 && png.height == 2 * 2 + 3)
        let d = try decode(png.encoded())
        #expect(d.pixels[1 * 7 + 1] == 0 && d.pixels[1 * 7 + 2] == 255 && d.pixels[1 * 7 + 4] == 128 && d.pixels[4 * 7 + 1] == 255)
        #expect(d.pixels[0] == 0 && d.pixels[6 * 7 + 6] == 0)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-\(UUID().uuidString).png").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try png.write(to: path)
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) == png.encoded())
    }
}
