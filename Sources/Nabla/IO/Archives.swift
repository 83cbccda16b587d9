import CNablaKernels
import Foundation

/// gzip streams (RFC 1952), as MNIST's files are distributed.
public enum Gzip {
    public static func isGzip(_ bytes: [UInt8]) -> Bool { bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B }

    /// The decompressed bytes of every member, checked against their CRC-32 and length.
    public static func decompress(_ bytes: [UInt8], path: String = "<data>") throws -> [UInt8] {
        func fail(_ m: String) -> TensorFileError { TensorFileError(path: path, message: m) }
        var out: [UInt8] = []
        var pos = 0
        while pos < bytes.count {
            guard bytes.count - pos >= 18, bytes[pos] == 0x1F, bytes[pos + 1] == 0x8B else {
                if pos > 0 && bytes[pos...].allSatisfy({ $0 == 0 }) { break }   // padding after the last member
                throw fail(pos == 0 ? "not a gzip file" : "trailing data after the gzip stream")
            }
            guard bytes[pos + 2] == 8 else { throw fail("unknown gzip compression method \(bytes[pos + 2])") }
            let flags = bytes[pos + 3]
            var p = pos + 10
            if flags & 4 != 0 { guard p + 2 <= bytes.count else { throw fail("truncated gzip header") }; p += 2 + Int(bytes[p]) + Int(bytes[p + 1]) << 8 }
            for bit in [UInt8(8), 16] where flags & bit != 0 {   // file name, comment: zero-terminated
                while p < bytes.count && bytes[p] != 0 { p += 1 }
                p += 1
            }
            if flags & 2 != 0 { p += 2 }
            guard p < bytes.count else { throw fail("truncated gzip header") }
            let (data, used) = try inflate(Array(bytes[p...]), path: path)
            p += used
            guard p + 8 <= bytes.count else { throw fail("truncated: the gzip trailer is missing") }
            let crc = UInt32(bytes[p]) | UInt32(bytes[p + 1]) << 8 | UInt32(bytes[p + 2]) << 16 | UInt32(bytes[p + 3]) << 24
            let size = UInt32(bytes[p + 4]) | UInt32(bytes[p + 5]) << 8 | UInt32(bytes[p + 6]) << 16 | UInt32(bytes[p + 7]) << 24
            guard crc32(data) == crc, UInt32(truncatingIfNeeded: data.count) == size else { throw fail("corrupt: the gzip checksum does not match") }
            out += data
            pos = p + 8
        }
        return out
    }

    /// Raw DEFLATE data: the bytes and how much input they used.
    static func inflate(_ input: [UInt8], path: String) throws -> ([UInt8], Int) {
        var outPointer: UnsafeMutablePointer<UInt8>? = nil
        var length = 0, consumed = 0
        let status = input.withUnsafeBufferPointer { nb_inflate($0.baseAddress, $0.count, &outPointer, &length, &consumed) }
        guard status == 0 else {
            throw TensorFileError(path: path, message: status == -2 ? "truncated compressed data" : "corrupt compressed data (inflate error \(status))")
        }
        defer { nb_free(outPointer) }
        return (length == 0 ? [] : Array(UnsafeBufferPointer(start: outPointer, count: length)), consumed)
    }
}

func crc32(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBufferPointer { UInt32(nb_crc32(0, $0.baseAddress, $0.count)) } }

/// Zip archives as NumPy's `.npz` files use them: entries stored or deflated; written stored.
enum ZipArchive {
    static func u16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
    static func u32(_ b: [UInt8], _ i: Int) -> Int { u16(b, i) | u16(b, i + 2) << 16 }

    static func read(_ b: [UInt8], path: String) throws -> [(name: String, data: [UInt8])] {
        func fail(_ m: String) -> TensorFileError { TensorFileError(path: path, message: m) }
        guard b.count >= 22 else { throw fail("not a zip (.npz) file: too short") }
        var end = -1
        for i in stride(from: b.count - 22, through: Swift.max(0, b.count - 22 - 65_535), by: -1) where u32(b, i) == 0x0605_4B50 { end = i; break }
        guard end >= 0 else { throw fail("not a zip (.npz) file: no end-of-archive record") }
        let count = u16(b, end + 10), directory = u32(b, end + 16)
        guard count != 0xFFFF, directory != 0xFFFF_FFFF else { throw fail("zip64 archives are not supported") }
        var entries: [(String, [UInt8])] = []
        var p = directory
        for _ in 0..<count {
            guard p + 46 <= b.count, u32(b, p) == 0x0201_4B50 else { throw fail("corrupt zip directory") }
            let method = u16(b, p + 10), crc = u32(b, p + 16), compressed = u32(b, p + 20), size = u32(b, p + 24)
            let nameLength = u16(b, p + 28), extra = u16(b, p + 30), comment = u16(b, p + 32), local = u32(b, p + 42)
            guard p + 46 + nameLength <= b.count else { throw fail("corrupt zip directory") }
            let name = String(decoding: b[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
            p += 46 + nameLength + extra + comment
            guard local + 30 <= b.count, u32(b, local) == 0x0403_4B50 else { throw fail("corrupt zip entry '\(name)'") }
            let start = local + 30 + u16(b, local + 26) + u16(b, local + 28)
            guard start + compressed <= b.count else { throw fail("truncated zip entry '\(name)'") }
            let raw = Array(b[start..<(start + compressed)])
            let data: [UInt8]
            switch method {
            case 0: data = raw
            case 8: data = try Gzip.inflate(raw, path: "\(path)[\(name)]").0
            default: throw fail("zip entry '\(name)' uses compression method \(method); only stored and deflated are supported")
            }
            guard data.count == size, Int(crc32(data)) == crc else { throw fail("zip entry '\(name)' fails its checksum") }
            entries.append((name, data))
        }
        return entries
    }

    static func write(_ entries: [(name: String, data: [UInt8])]) -> [UInt8] {
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func le32(_ v: Int) -> [UInt8] { le16(v & 0xFFFF) + le16(v >> 16 & 0xFFFF) }
        var out: [UInt8] = [], directory: [UInt8] = []
        for (name, data) in entries {
            let n = Array(name.utf8), crc = Int(crc32(data)), offset = out.count
            let common = le16(20) + le16(0) + le16(0) + le16(0) + le16(0x21) + le32(crc) + le32(data.count) + le32(data.count) + le16(n.count) + le16(0)
            out += le32(0x0403_4B50) + common + n + data
            directory += le32(0x0201_4B50) + le16(20) + common + le16(0) + le16(0) + le16(0) + le32(0) + le32(offset) + n
        }
        let directoryOffset = out.count
        out += directory
        out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(entries.count) + le16(entries.count) + le32(directory.count) + le32(directoryOffset) + le16(0)
        return out
    }
}

/// NumPy's `.npz`: named `.npy` arrays in a zip archive (compressed or not).
public enum NPZ {
    public static func read(_ path: String) throws -> [String: StoredTensor] {
        var out: [String: StoredTensor] = [:]
        for (name, data) in try ZipArchive.read([UInt8](readFile(path)), path: path) where name.hasSuffix(".npy") {
            out[String(name.dropLast(4))] = try NPY.decode(Data(data), path: "\(path)[\(name)]")
        }
        return out
    }

    /// Writes the arrays (uncompressed) atomically.
    public static func write<Scalar: TensorScalar>(_ arrays: [String: Tensor<Scalar>], to path: String) throws {
        let entries = arrays.keys.sorted().map { (name: $0 + ".npy", data: [UInt8](NPY.encode(arrays[$0]!))) }
        try writeAtomically(Data(ZipArchive.write(entries)), to: path)
    }
}

/// The IDX format of MNIST: a magic number giving the element type and rank, big-endian sizes,
/// then the elements; gzip'd files are recognized and decompressed.
public enum IDX {
    public static func read(_ path: String) throws -> StoredTensor {
        var b = [UInt8](try readFile(path))
        if Gzip.isGzip(b) { b = try Gzip.decompress(b, path: path) }
        func fail(_ m: String) -> TensorFileError { TensorFileError(path: path, message: m) }
        guard b.count >= 4, b[0] == 0, b[1] == 0 else { throw fail("not an IDX file (bad magic number)") }
        let types: [UInt8: (StoredDType, Int)] = [0x08: (.U8, 1), 0x09: (.I8, 1), 0x0B: (.I16, 2), 0x0C: (.I32, 4), 0x0D: (.F32, 4), 0x0E: (.F64, 8)]
        guard let (dtype, size) = types[b[2]] else { throw fail("unknown IDX element type 0x\(String(b[2], radix: 16))") }
        let rank = Int(b[3])
        guard b.count >= 4 + 4 * rank else { throw fail("truncated IDX header") }
        let shape = (0..<rank).map { d in (0..<4).reduce(0) { $0 << 8 | Int(b[4 + 4 * d + $1]) } }
        let start = 4 + 4 * rank
        guard let needed = StoredTensor.byteCount(shape: shape, elementSize: size) else { throw fail("shape \(shape) is too large (its size overflows)") }
        guard b.count - start >= needed else { throw fail("truncated: \(shape) elements need \(needed) bytes, the file has \(b.count - start)") }
        let count = needed / size
        // The elements in place (no second copy of a large file).
        b.removeSubrange(0..<start)
        b.removeSubrange((count * size)...)
        if size > 1 { for i in 0..<count { b[(i * size)..<((i + 1) * size)].reverse() } }   // big-endian → little-endian
        return StoredTensor(dtype: dtype, shape: shape, bytes: b)
    }
}

extension IDX {
    /// Where the labels of an MNIST-style images file sit: beside it, "images" and "idx3-ubyte"
    /// in its name changed to "labels" and "idx1-ubyte" (the folders stay as they are).
    public static func labelsPath(forImages images: String) -> String {
        let name = (images as NSString).lastPathComponent
            .replacingOccurrences(of: "images", with: "labels").replacingOccurrences(of: "idx3-ubyte", with: "idx1-ubyte")
        return ((images as NSString).deletingLastPathComponent as NSString).appendingPathComponent(name)
    }
}

extension IDX {
    /// MNIST-style images and labels, read and checked: the images' first axis and the labels
    /// agree, the labels are class numbers, `limit` keeps the first rows only.
    struct LabelledImages {
        var images: StoredTensor
        var count: Int
        var pixels: Int
        var labels: [Double]
        var classCount: Int

        /// Pixel row-major values, U8 scaled to [0, 1] (as float32 division by 255 gives them).
        func floats() -> [Float] {
            if images.dtype == .U8 { return images.bytes.prefix(count * pixels).map { Float($0) / 255 } }
            return images.doubles.prefix(count * pixels).map { Float($0) }
        }
    }

    static func readLabelled(images: String, labels: String, limit: Int?) throws -> LabelledImages {
        let x = try IDX.read(images), y = try IDX.read(labels)
        guard x.shape.count >= 2, y.shape.count == 1, x.shape[0] == y.shape[0] else {
            throw DataFileError(path: images, message: "images \(x.shape) and labels \(y.shape) (\(labels)) do not agree")
        }
        let n = Swift.min(Swift.max(limit ?? x.shape[0], 0), x.shape[0])
        // (With no images the other dimensions are unchecked by the size test: multiply safely.)
        guard let d = StoredTensor.byteCount(shape: Array(x.shape.dropFirst()), elementSize: 1), n > 0, d > 0 else { throw DataFileError(path: images, message: "images \(x.shape) hold no samples or no pixels") }
        let classes = Array(y.doubles.prefix(n))
        // Labels are class indices: whole numbers from 0, and (as the classes are listed one by one)
        // fewer than 65,536 of them.
        if let bad = classes.firstIndex(where: { !($0 >= 0 && $0 < 65_536 && $0 == $0.rounded()) }) {
            throw DataFileError(path: labels, message: "label \(bad) is \(classes[bad]); labels must be class numbers 0 to 65535")
        }
        // Each class becomes an output of the model: more classes than images (and than a
        // thousand) means the labels are not class numbers.
        let classCount = Int(classes.max() ?? 0) + 1
        guard classCount <= Swift.max(1000, n) else {
            throw DataFileError(path: labels, message: "the largest label, \(classCount - 1), implies \(classCount) classes for \(n) images")
        }
        return LabelledImages(images: x, count: n, pixels: d, labels: classes, classCount: classCount)
    }
}

extension IDX {
    /// An MNIST-style images file (plain or gzip'd) without labels: rows of pixels [n, rows·cols]
    /// scaled to [0, 1] (unsigned bytes divided by 255).
    public static func images(_ path: String) throws -> Tensor<Double> {
        let x = try IDX.read(path)
        guard x.shape.count >= 2, x.shape[0] > 0, let d = StoredTensor.byteCount(shape: Array(x.shape.dropFirst()), elementSize: 1), d > 0 else {
            throw DataFileError(path: path, message: "images \(x.shape) hold no samples or no pixels")
        }
        let scale = x.dtype == .U8 ? 1.0 / 255 : 1
        return Tensor(shape: [x.shape[0], d], scalars: x.doubles.map { $0 * scale })
    }
}

extension Dataset {
    /// MNIST-style IDX files (plain or gzip'd): images [n, rows, cols] as features scaled to [0, 1],
    /// labels [n] as classes. `limit` keeps the first rows only.
    public static func readIDX(images: String, labels: String, limit: Int? = nil) throws -> Dataset {
        let r = try IDX.readLabelled(images: images, labels: labels, limit: limit)
        let scale = r.images.dtype == .U8 ? 1.0 / 255 : 1
        return Dataset(features: Tensor(shape: [r.count, r.pixels], scalars: r.images.doubles.prefix(r.count * r.pixels).map { $0 * scale }),
                       targets: r.labels, featureNames: (0..<r.pixels).map { "pixel_\($0)" }, task: .classification,
                       classNames: (0..<r.classCount).map(String.init))
    }
}
