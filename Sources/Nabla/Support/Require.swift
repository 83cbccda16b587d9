/// Stops the program with `message` when `condition` is false, in release builds too.
///
/// Swift's `precondition` keeps its check under `-O` but drops its message, so a user of a
/// release build would see only "Illegal instruction". API misuse (shapes that do not agree, an
/// axis or class out of range) goes through here, so the message naming the operation and the
/// shapes always reaches the user.
@inlinable @inline(__always)
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
             file: StaticString = #fileID, line: UInt = #line) {
    if _slowPath(!condition()) { usageFailure(message(), file: file, line: line) }
}

/// "1 iteration", "2 iterations": a count with its noun, singular or plural.
func counted(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }

/// Stops the program with `message`, in release builds too (see ``require(_:_:file:line:)``).
@usableFromInline @inline(never)
func usageFailure(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    fatalError(message, file: file, line: line)
}
