import Foundation

/// NumPy's `.npy` format for single arrays: version 1.0 written (2.0 and 3.0 read too), little-
/// and big-endian floats and integers, C or Fortran order.
public enum NPY {
    /// The file's bytes for `tensor` (`<f4` or `<f8`).
    public static func encode<Scalar: TensorScalar>(_ tensor: Tensor<Scalar>) -> Data {
        let stored = StoredTensor(tensor)
        let shape = tensor.shape.isEmpty ? "()" : tensor.shape.count == 1 ? "(\(tensor.shape[0]),)" : "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(stored.dtype == .F64 ? "<f8" : "<f4")', 'fortran_order': False, 'shape': \(shape), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        withUnsafeBytes(of: UInt16(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        data.append(contentsOf: stored.bytes)
        return data
    }

    public static func write<Scalar: TensorScalar>(_ tensor: Tensor<Scalar>, to path: String) throws {
        try writeAtomically(encode(tensor), to: path)
    }

    public static func read(_ path: String) throws -> StoredTensor {
        try decode(readFile(path), path: path)
    }

    /// The array of an `.npy` file, converted to little-endian C order.
    public static func decode(_ data: Data, path: String = "<data>") throws -> StoredTensor {
        func fail(_ m: String) -> TensorFileError { TensorFileError(path: path, message: m) }
        let b = [UInt8](data)
        guard b.count >= 10, b[0] == 0x93, Array(b[1..<6]) == Array("NUMPY".utf8) else { throw fail("not an .npy file (bad magic string)") }
        let major = b[6]
        let (headerLength, start): (Int, Int)
        switch major {
        case 1: (headerLength, start) = (Int(b[8]) | Int(b[9]) << 8, 10)
        case 2, 3:
            guard b.count >= 12 else { throw fail("truncated header") }
            (headerLength, start) = (Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24, 12)
        default: throw fail("unsupported .npy version \(major)")
        }
        guard start + headerLength <= b.count, let header = String(bytes: b[start..<(start + headerLength)], encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw fail("truncated header")
        }
        func field(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let descrField = field("descr"), descrField.hasPrefix("'"), let descrEnd = descrField.dropFirst().firstIndex(of: "'") else {
            throw fail("header has no 'descr'")
        }
        let descr = String(descrField[descrField.index(after: descrField.startIndex)..<descrEnd])
        guard let orderField = field("fortran_order") else { throw fail("header has no 'fortran_order'") }
        let fortran = orderField.hasPrefix("True")
        guard let shapeField = field("shape"), shapeField.hasPrefix("("), let close = shapeField.firstIndex(of: ")") else { throw fail("header has no 'shape'") }
        let dims = shapeField[shapeField.index(after: shapeField.startIndex)..<close].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let shape = try dims.map { d -> Int in
            guard let n = Int(d), n >= 0 else { throw fail("bad shape entry '\(d)'") }
            return n
        }
        let endian = descr.first
        let code = String(descr.dropFirst())
        let types: [String: StoredDType] = ["f8": .F64, "f4": .F32, "f2": .F16, "i8": .I64, "i4": .I32, "i2": .I16, "i1": .I8, "u1": .U8, "b1": .BOOL]
        guard let dtype = types[code], endian == "<" || endian == ">" || endian == "|" || endian == "=" else {
            throw fail("unsupported element type '\(descr)' (supported: float16/32/64, int8/16/32/64, uint8, bool)")
        }
        let size = dtype.byteCount
        let body = start + headerLength
        guard let needed = StoredTensor.byteCount(shape: shape, elementSize: size) else {
            throw fail("shape \(shape) is too large (its size overflows)")
        }
        guard b.count - body >= needed else {
            throw fail("truncated data: \(shape) elements of '\(descr)' need \(needed) bytes, the file has \(b.count - body)")
        }
        let count = needed / Swift.max(size, 1)
        var bytes = Array(b[body..<(body + count * size)])
        if endian == ">" && size > 1 {
            for i in 0..<count { bytes[(i * size)..<((i + 1) * size)].reverse() }
        }
        if fortran && shape.count > 1 {
            // Element at column-major position p goes to its row-major position.
            var out = bytes
            var idx = [Int](repeating: 0, count: shape.count)
            for p in 0..<count {
                var r = 0
                for d in 0..<shape.count { r = r * shape[d] + idx[d] }
                out.replaceSubrange((r * size)..<((r + 1) * size), with: bytes[(p * size)..<((p + 1) * size)])
                var d = 0
                while d < shape.count { idx[d] += 1; if idx[d] < shape[d] { break }; idx[d] = 0; d += 1 }
            }
            bytes = out
        }
        return StoredTensor(dtype: dtype, shape: shape, bytes: bytes)
    }
}
