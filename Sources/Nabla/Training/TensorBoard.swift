import Foundation

/// Writes scalars as TensorBoard event records (`events.out.tfevents.*`), which TensorBoard and
/// its Python event reader open: each record is a length, its masked CRC-32C, a serialized
/// `Event` message and that message's masked CRC-32C.
public final class TensorBoardWriter {
    public let path: String
    let handle: FileHandle

    /// Creates `folder/events.out.tfevents.<time>.<host>` and writes the file-version event.
    public init(folder: String) throws {
        let time = Date().timeIntervalSince1970
        let host = ProcessInfo.processInfo.hostName.replacingOccurrences(of: "/", with: "_")
        path = (folder as NSString).appendingPathComponent("events.out.tfevents.\(Int(time)).\(host)")
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw FileWriteError(path: path, reason: "cannot create the event file")
        }
        handle = h
        try write(TensorBoardWriter.event(wallTime: time, step: 0, fileVersion: "brain.Event:2"))
    }

    /// When the records last reached the disk (`synchronize` costs milliseconds on some disks:
    /// it runs at most every few seconds, and when the writer is closed).
    var lastSync = Date()

    deinit {
        try? handle.synchronize()
        try? handle.close()
    }

    /// One scalar summary per tag at `step`.
    public func add(scalars: [String: Double], step: Int) throws {
        var summary: [UInt8] = []
        for (tag, value) in scalars.sorted(by: { $0.key < $1.key }) {
            var v: [UInt8] = []
            Proto.bytes(1, Array(tag.utf8), into: &v)
            Proto.fixed32(2, Float(value).bitPattern, into: &v)
            Proto.bytes(1, v, into: &summary)
        }
        try write(TensorBoardWriter.event(wallTime: Date().timeIntervalSince1970, step: step, summary: summary))
    }

    static func event(wallTime: Double, step: Int, fileVersion: String? = nil, summary: [UInt8]? = nil) -> [UInt8] {
        var e: [UInt8] = []
        Proto.fixed64(1, wallTime.bitPattern, into: &e)
        Proto.varint(2, UInt64(bitPattern: Int64(step)), into: &e)
        if let fileVersion { Proto.bytes(3, Array(fileVersion.utf8), into: &e) }
        if let summary { Proto.bytes(5, summary, into: &e) }
        return e
    }

    func write(_ message: [UInt8]) throws {
        var record: [UInt8] = []
        let length = withUnsafeBytes(of: UInt64(message.count).littleEndian, Array.init)
        record += length
        record += withUnsafeBytes(of: CRC32C.masked(length).littleEndian, Array.init)
        record += message
        record += withUnsafeBytes(of: CRC32C.masked(message).littleEndian, Array.init)
        try handle.write(contentsOf: record)
        if Date().timeIntervalSince(lastSync) >= 5 {
            try handle.synchronize()
            lastSync = Date()
        }
    }

    /// Reads back the scalars of an event file: (step, tag, value) in order. Checks every CRC.
    public static func readScalars(_ path: String) throws -> [(step: Int, tag: String, value: Float)] {
        let bytes = [UInt8](try readFile(path))
        var out: [(Int, String, Float)] = []
        var i = 0
        func fail(_ m: String) -> TensorFileError { TensorFileError(path: path, message: m) }
        func u32(_ at: Int) -> UInt32 { bytes[at..<at + 4].enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) } }
        while i < bytes.count {
            guard i + 12 <= bytes.count else { throw fail("truncated record header at byte \(i)") }
            let n = Int(bytes[i..<i + 8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
            guard u32(i + 8) == CRC32C.masked(Array(bytes[i..<i + 8])) else { throw fail("bad length checksum at byte \(i)") }
            guard i + 12 + n + 4 <= bytes.count else { throw fail("truncated record at byte \(i)") }
            let message = Array(bytes[(i + 12)..<(i + 12 + n)])
            guard u32(i + 12 + n) == CRC32C.masked(message) else { throw fail("bad data checksum at byte \(i)") }
            var step = 0
            var summaries: [[UInt8]] = []
            Proto.fields(message) { field, _, value, data in
                if field == 2 { step = Int(Int64(bitPattern: value)) }
                if field == 5, let data { summaries.append(data) }
            }
            for s in summaries {
                Proto.fields(s) { field, _, _, value in
                    guard field == 1, let value else { return }
                    var tag = "", v: Float = .nan
                    Proto.fields(value) { f, _, raw, data in
                        if f == 1, let data { tag = String(decoding: data, as: UTF8.self) }
                        if f == 2 { v = Float(bitPattern: UInt32(truncatingIfNeeded: raw)) }
                    }
                    out.append((step, tag, v))
                }
            }
            i += 12 + n + 4
        }
        return out
    }
}

/// Just enough of the protocol-buffer wire format for event files.
enum Proto {
    static func rawVarint(_ v: UInt64, into out: inout [UInt8]) {
        var v = v
        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        out.append(UInt8(v))
    }
    static func varint(_ field: Int, _ v: UInt64, into out: inout [UInt8]) { rawVarint(UInt64(field << 3), into: &out); rawVarint(v, into: &out) }
    static func fixed64(_ field: Int, _ v: UInt64, into out: inout [UInt8]) {
        rawVarint(UInt64(field << 3 | 1), into: &out)
        out += withUnsafeBytes(of: v.littleEndian, Array.init)
    }
    static func fixed32(_ field: Int, _ v: UInt32, into out: inout [UInt8]) {
        rawVarint(UInt64(field << 3 | 5), into: &out)
        out += withUnsafeBytes(of: v.littleEndian, Array.init)
    }
    static func bytes(_ field: Int, _ b: [UInt8], into out: inout [UInt8]) {
        rawVarint(UInt64(field << 3 | 2), into: &out)
        rawVarint(UInt64(b.count), into: &out)
        out += b
    }

    /// Calls `visit(field, wireType, numeric value, bytes)` for each field; stops quietly at malformed input.
    static func fields(_ m: [UInt8], _ visit: (Int, Int, UInt64, [UInt8]?) -> Void) {
        var i = 0
        func readVarint() -> UInt64? {
            var v: UInt64 = 0, shift: UInt64 = 0
            while i < m.count, shift < 64 {
                let b = m[i]; i += 1
                v |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return v }
                shift += 7
            }
            return nil
        }
        while i < m.count {
            guard let key = readVarint() else { return }
            let (field, wire) = (Int(key >> 3), Int(key & 7))
            switch wire {
            case 0: guard let v = readVarint() else { return }; visit(field, wire, v, nil)
            case 1: guard i + 8 <= m.count else { return }
                visit(field, wire, m[i..<i + 8].enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }, nil); i += 8
            case 5: guard i + 4 <= m.count else { return }
                visit(field, wire, m[i..<i + 4].enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }, nil); i += 4
            case 2: guard let n = readVarint(), i + Int(n) <= m.count else { return }
                visit(field, wire, 0, Array(m[i..<i + Int(n)])); i += Int(n)
            default: return
            }
        }
    }
}

/// CRC-32C (Castagnoli), masked as TensorFlow's record format requires.
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }
    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
    static func masked(_ bytes: [UInt8]) -> UInt32 {
        let c = checksum(bytes)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}

/// CRC-32C of "123456789", the standard check value (0xE3069283), for tests of the checksum.
public enum CRC32CCheck {
    public static var value: UInt32 { CRC32C.checksum(Array("123456789".utf8)) }
}
