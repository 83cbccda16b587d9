import Foundation

/// The element types a tensor file can hold.
public enum StoredDType: String, Sendable, CaseIterable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL

    public var byteCount: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }

    public var isInteger: Bool { ![.F64, .F32, .F16, .BF16].contains(self) }
}

/// One named array of a tensor file: element type, shape and little-endian bytes.
public struct StoredTensor: Sendable, Equatable {
    public var dtype: StoredDType
    public var shape: [Int]
    public var bytes: [UInt8]

    public init(dtype: StoredDType, shape: [Int], bytes: [UInt8]) {
        require(bytes.count == shape.reduce(1, *) * dtype.byteCount,
                     "StoredTensor: \(bytes.count) bytes do not hold \(shape) elements of \(dtype.rawValue)")
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// A tensor's values as F32 or F64 (its own precision), or as I64 when `asInteger`.
    public init<Scalar: TensorScalar>(_ tensor: Tensor<Scalar>, asInteger: Bool = false) {
        if asInteger {
            self.init(dtype: .I64, shape: tensor.shape, bytes: tensor.scalars.flatMap { v -> [UInt8] in
                withUnsafeBytes(of: Int64(Double(v)).littleEndian, Array.init)
            })
        } else if Scalar.self == Double.self {
            self.init(dtype: .F64, shape: tensor.shape, bytes: tensor.scalars.flatMap { v -> [UInt8] in
                withUnsafeBytes(of: (v as! Double).bitPattern.littleEndian, Array.init)
            })
        } else {
            self.init(dtype: .F32, shape: tensor.shape, bytes: tensor.scalars.flatMap { v -> [UInt8] in
                withUnsafeBytes(of: Float(Double(v)).bitPattern.littleEndian, Array.init)
            })
        }
    }

    public var count: Int { shape.reduce(1, *) }

    /// The bytes that `shape` elements of `elementSize` bytes take, or nil when the count
    /// overflows or a dimension is negative. Readers check sizes from a file with this before
    /// comparing them with the file's length or allocating anything.
    public static func byteCount(shape: [Int], elementSize: Int) -> Int? {
        var total = elementSize
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, overflow) = total.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            total = p
        }
        return total
    }

    /// Every element converted to Double (exact for every type but 64-bit integers beyond 2⁵³).
    public var doubles: [Double] {
        var out = [Double](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            for i in 0..<out.count {
                let o = i * dtype.byteCount
                switch dtype {
                case .F64: out[i] = Double(bitPattern: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self).littleEndian)
                case .F32: out[i] = Double(Float(bitPattern: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self).littleEndian))
                case .F16: out[i] = halfToDouble(raw.loadUnaligned(fromByteOffset: o, as: UInt16.self).littleEndian)
                case .BF16: out[i] = Double(Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: o, as: UInt16.self).littleEndian) << 16))
                case .I64: out[i] = Double(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int64.self)))
                case .I32: out[i] = Double(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int32.self)))
                case .I16: out[i] = Double(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int16.self)))
                case .I8: out[i] = Double(raw.load(fromByteOffset: o, as: Int8.self))
                case .U8, .BOOL: out[i] = Double(raw[o])
                }
            }
        }
        return out
    }

    /// The values as a tensor (converted to `Scalar`).
    public func tensor<Scalar: TensorScalar>(as: Scalar.Type = Scalar.self) -> Tensor<Scalar> {
        if dtype == .F32, Scalar.self == Float.self {
            return Tensor(shape: shape, scalars: bytes.withUnsafeBytes { raw in
                (0..<count).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self).littleEndian) as! Scalar }
            })
        }
        return Tensor(shape: shape, scalars: doubles.map { Scalar($0) })
    }
}

func halfToDouble(_ h: UInt16) -> Double {
    let sign = (h >> 15) != 0 ? -1.0 : 1.0
    let exponent = Int((h >> 10) & 0x1F), mantissa = Double(h & 0x3FF)
    switch exponent {
    case 0: return sign * mantissa * 0x1p-24
    case 31: return mantissa == 0 ? sign * .infinity : .nan
    default: return sign * (1 + mantissa / 1024) * Double(sign: .plus, exponent: exponent - 15, significand: 1)
    }
}

/// A problem with a tensor file: which file and what is wrong with it.
public struct TensorFileError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String
    public init(path: String, message: String) { self.path = path; self.message = message }
    public var description: String { "\(path): \(message)" }
}

/// The safetensors format: an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the tensors' bytes. Files written here are read by
/// the reference implementation, and its files are read here; every offset is checked, so a
/// truncated or corrupt file gets an error, never a crash.
public enum SafeTensors {
    /// Named tensors and the free-form string metadata of a file.
    public struct Archive: Sendable, Equatable {
        public var tensors: [String: StoredTensor]
        public var metadata: [String: String]
        public init(tensors: [String: StoredTensor] = [:], metadata: [String: String] = [:]) {
            self.tensors = tensors
            self.metadata = metadata
        }
    }

    /// The file's bytes: tensors in name order, the header padded with spaces to 8 bytes.
    public static func encode(_ archive: Archive) -> Data {
        var header: [String: Any] = [:]
        if !archive.metadata.isEmpty { header["__metadata__"] = archive.metadata }
        var offset = 0
        let names = archive.tensors.keys.sorted()
        for name in names {
            let t = archive.tensors[name]!
            header[name] = ["dtype": t.dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + t.bytes.count]] as [String: Any]
            offset += t.bytes.count
        }
        var json = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var data = Data()
        data.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(json)
        for name in names { data.append(contentsOf: archive.tensors[name]!.bytes) }
        return data
    }

    public static func write(_ archive: Archive, to path: String) throws {
        try writeAtomically(encode(archive), to: path)
    }

    public static func read(_ path: String) throws -> Archive {
        try decode(readFile(path), path: path)
    }

    public static func decode(_ data: Data, path: String = "<data>") throws -> Archive {
        func fail(_ m: String) -> TensorFileError { TensorFileError(path: path, message: m) }
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else { throw fail("not a safetensors file: \(bytes.count) bytes, shorter than the 8-byte header length") }
        let n = bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard n <= UInt64(bytes.count - 8) else {
            throw fail("the header claims \(n) bytes but only \(bytes.count - 8) follow (truncated or not a safetensors file)")
        }
        let headerEnd = 8 + Int(n)
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd])), let header = object as? [String: Any] else {
            throw fail("the header is not a JSON object")
        }
        let buffer = bytes.count - headerEnd
        var archive = Archive()
        var ranges: [(Int, Int, String)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw fail("metadata '\(k)' is not a string") }
                    archive.metadata[k] = s
                }
                continue
            }
            guard let e = value as? [String: Any] else { throw fail("entry '\(name)' is not an object") }
            guard let ds = e["dtype"] as? String, let dtype = StoredDType(rawValue: ds) else {
                throw fail("tensor '\(name)' has unsupported dtype \(e["dtype"].map { "\($0)" } ?? "(none)")")
            }
            guard let shapeValues = e["shape"] as? [Any], let offsets = e["data_offsets"] as? [Any], offsets.count == 2 else {
                throw fail("tensor '\(name)' needs a shape and two data_offsets")
            }
            func int(_ v: Any) -> Int? {
                guard let n = v as? NSNumber else { return nil }
                let d = n.doubleValue
                return d >= 0 && d == d.rounded() && d < 9e15 ? Int(d) : nil
            }
            let shape = shapeValues.compactMap(int)
            guard shape.count == shapeValues.count else { throw fail("tensor '\(name)' has a shape entry that is not a non-negative integer") }
            guard let begin = int(offsets[0]), let end = int(offsets[1]), begin <= end else {
                throw fail("tensor '\(name)' has bad data_offsets")
            }
            guard let needed = StoredTensor.byteCount(shape: shape, elementSize: dtype.byteCount) else {
                throw fail("tensor '\(name)' has a shape \(shape) whose size overflows")
            }
            guard end - begin == needed else {
                throw fail("tensor '\(name)' spans \(end - begin) bytes but \(shape) elements of \(ds) need \(needed)")
            }
            guard end <= buffer else { throw fail("tensor '\(name)' ends at byte \(end) of a \(buffer)-byte data section (truncated file?)") }
            ranges.append((begin, end, name))
            archive.tensors[name] = StoredTensor(dtype: dtype, shape: shape, bytes: Array(bytes[(headerEnd + begin)..<(headerEnd + end)]))
        }
        ranges.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        var position = 0
        for (b, e, name) in ranges {
            guard b == position else { throw fail(b < position ? "tensor '\(name)' overlaps another" : "a gap in the data section before tensor '\(name)'") }
            position = e
        }
        guard position == buffer else { throw fail("\(buffer - position) bytes after the last tensor are not described by the header") }
        return archive
    }
}
