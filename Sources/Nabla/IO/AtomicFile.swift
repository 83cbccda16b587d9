import Foundation

/// A file that could not be written, with the reason.
public struct FileWriteError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "cannot write \(path): \(reason)" }
}

/// Writes `contents` to `path` atomically: to a temporary file in the same folder, then renamed
/// over the destination, so a reader never sees a half-written file.
public func writeAtomically(_ contents: String, to path: String) throws {
    try writeAtomically(Data(contents.utf8), to: path)
}

/// Writes `data` to `path` atomically (see ``writeAtomically(_:to:)-(String,_)``).
public func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent()
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
        throw FileWriteError(path: path, reason: "the folder \(dir.path) does not exist")
    }
    let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).\(UUID().uuidString.prefix(8))\(temporarySuffix)")
    // Written with the system calls themselves, so that a failure reports the system's reason
    // (no space left on device, file too large) and leaves nothing behind.
    let fd = open(tmp.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard fd >= 0 else { throw FileWriteError(path: path, reason: String(cString: strerror(errno))) }
    var failure: Int32 = 0
    data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                failure = errno
                return
            }
            offset += n
        }
    }
    if failure == 0 && fsync(fd) != 0 { failure = errno }
    if close(fd) != 0 && failure == 0 { failure = errno }
    if failure != 0 {
        unlink(tmp.path)
        throw FileWriteError(path: path, reason: String(cString: strerror(failure)))
    }
    if rename(tmp.path, url.path) != 0 {
        let reason = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: tmp)
        throw FileWriteError(path: path, reason: reason)
    }
}

/// The ending of the temporary files of ``writeAtomically(_:to:)-(Data,_)`` (hidden: they start with a dot).
let temporarySuffix = ".tmp"

/// Removes the temporary files that atomic writes of a killed process left in `folder`; call it
/// before a process starts writing there again.
public func removeAbandonedTemporaryFiles(in folder: String) {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
    for name in names where name.hasPrefix(".") && name.hasSuffix(temporarySuffix) {
        try? FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent(name))
    }
}

/// The contents of `path`, or a ``TensorFileError`` saying why it cannot be read.
func readFile(_ path: String) throws -> Data {
    do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        throw TensorFileError(path: path, message: "cannot read the file (\((error as NSError).localizedDescription))")
    }
}
