import Foundation
import Nabla
#if MPI
import CMPI
#endif

/// How ``Communicator/allReduce(_:_:)`` combines the processes' values.
public enum Reduction: Sendable {
    case sum, max, min
}

/// A distributed run cannot start or go on.
public struct DistributedError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(_ message: String) { self.message = message }
}

/// The processes of one job and the collective operations among them: barrier, broadcast,
/// all-reduce and all-gather of tensors and bytes, blocking and (all-reduce) non-blocking.
///
/// Built with the `MPI` trait (`swift build -c release --traits MPI`), ``world()`` is MPI's
/// `COMM_WORLD`: the processes `mpirun -np N` started, on one machine or several. Without it,
/// ``world()`` is this process alone (rank 0 of 1) and every collective returns at once, so
/// code written for N processes runs unchanged as one.
///
/// Every process must call the same collectives in the same order with the same sizes (MPI's
/// rule); a process that fails calls ``abort(_:)``, which stops all of them rather than leaving
/// the others waiting.
public final class Communicator: @unchecked Sendable {
    /// This process's number, 0 ..< size; rank 0 is the one that prints and writes files.
    public let rank: Int
    public let size: Int
    /// What carries the messages: "MPI (…)" or "one process".
    public let transport: String
    /// How many of the job's processes run on this machine (they share its cores).
    public private(set) var localSize = 1
    public var isPrimary: Bool { rank == 0 }

    #if MPI
    let comm: MPI_Comm?
    init(rank: Int, size: Int, transport: String, comm: MPI_Comm?) {
        (self.rank, self.size, self.transport, self.comm) = (rank, size, transport, comm)
    }
    #else
    init(rank: Int, size: Int, transport: String) {
        (self.rank, self.size, self.transport) = (rank, size, transport)
    }
    #endif

    /// A communicator that only claims a rank and a size, with nothing to carry messages: for
    /// checking how work is shared out (``DataParallel/share(of:)``) without starting N processes.
    static func unconnected(rank: Int, size: Int) -> Communicator {
        #if MPI
        return Communicator(rank: rank, size: size, transport: "none", comm: nil)
        #else
        return Communicator(rank: rank, size: size, transport: "none")
        #endif
    }

    /// This process alone.
    public static let single: Communicator = {
        #if MPI
        return Communicator(rank: 0, size: 1, transport: "one process", comm: nil)
        #else
        return Communicator(rank: 0, size: 1, transport: "one process")
        #endif
    }()

    /// Whether this build of Nabla was made with the `MPI` trait.
    public static var isMPIBuild: Bool {
        #if MPI
        return true
        #else
        return false
        #endif
    }

    /// The number of processes the launcher (mpirun, srun) says this job has, from its
    /// environment; nil when the process was not started by one.
    public static var launcherSize: Int? {
        let env = ProcessInfo.processInfo.environment
        for key in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"] {
            if let v = env[key], let n = Int(v) { return n }
        }
        return nil
    }

    nonisolated(unsafe) static var worldInstance: Communicator?
    nonisolated(unsafe) static var finalized = false
    static let lock = NSLock()

    /// All the processes of this job: MPI's `COMM_WORLD` (MPI is initialized on the first call),
    /// or this process alone in a build without MPI. Throws when the job was started by `mpirun`
    /// with several processes but this build cannot talk MPI (each would train alone).
    public static func world() throws -> Communicator {
        lock.lock()
        defer { lock.unlock() }
        if let w = worldInstance { return w }
        #if MPI
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            var provided: Int32 = 0
            let rc = MPI_Init_thread(nil, nil, nabla_mpi_thread_funneled(), &provided)
            guard rc == nabla_mpi_success() else { throw DistributedError("MPI could not start (error \(rc)): \(errorString(rc))") }
        }
        var rank: Int32 = 0, size: Int32 = 1
        MPI_Comm_rank(nabla_mpi_comm_world(), &rank)
        MPI_Comm_size(nabla_mpi_comm_world(), &size)
        var version = [CChar](repeating: 0, count: 4096)
        var length: Int32 = 0
        MPI_Get_library_version(&version, &length)
        let library = String(decoding: version.prefix(Int(length)).prefix { $0 != 0 && $0 != 44 /* , */ }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let w = Communicator(rank: Int(rank), size: Int(size), transport: "MPI (\(library.trimmingCharacters(in: .whitespacesAndNewlines)))",
                             comm: nabla_mpi_comm_world())
        // The processes that share this machine's memory.
        var local: MPI_Comm? = nil
        if MPI_Comm_split_type(nabla_mpi_comm_world(), nabla_mpi_comm_type_shared(), rank, nabla_mpi_info_null(), &local) == nabla_mpi_success() {
            var n: Int32 = 1
            MPI_Comm_size(local, &n)
            w.localSize = Int(n)
            MPI_Comm_free(&local)
        }
        #else
        if let n = launcherSize, n > 1 {
            throw DistributedError("this nabla was built without MPI but started as one of \(n) processes (by mpirun); each would train alone. Build it with: swift build -c release --traits MPI")
        }
        let w = single
        #endif
        worldInstance = w
        return w
    }

    /// Threads for each process's kernels when several share a machine: its cores divided
    /// among them (at least one), so they do not fight over the cores.
    public var threadsPerProcess: Int {
        Swift.max(1, ProcessInfo.processInfo.activeProcessorCount / Swift.max(1, localSize))
    }

    /// Ends MPI (collective: every process calls it once, at the end). Nothing to do in one process.
    public func finalize() {
        #if MPI
        Communicator.lock.lock()
        defer { Communicator.lock.unlock() }
        guard comm != nil, !Communicator.finalized else { return }
        Communicator.finalized = true
        MPI_Finalize()
        #endif
    }

    /// Prints `message` (if any; with this process's rank when there are several) on standard
    /// error and ends every process of the job with `code`: none is left waiting for this one.
    public func abort(_ message: String, code: Int32 = 1) -> Never {
        let prefix = size > 1 ? "rank \(rank) of \(size): " : ""
        if !message.isEmpty { FileHandle.standardError.write(Data("\(prefix)\(message)\n".utf8)) }
        #if MPI
        if let comm { MPI_Abort(comm, code) }
        #endif
        exit(code)
    }

    /// Misuse stops every process with a message naming the operation (in release builds too).
    func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
        if !condition() { abort("error: \(message())") }
    }

    // MARK: Collectives

    /// Waits until every process has reached this call.
    public func barrier() {
        #if MPI
        if let comm { checked(MPI_Barrier(comm), "barrier") }
        #endif
    }

    /// Replaces `tensor` on every process with `root`'s (same shape everywhere).
    public func broadcast<Scalar: TensorScalar>(_ tensor: inout Tensor<Scalar>, root: Int = 0) {
        check(root >= 0 && root < size, "broadcast: root \(root) is not a rank of \(size) processes")
        guard size > 1 else { return }
        #if MPI
        // The sizes first, so that a mismatch is a message rather than corrupted memory.
        let own = [Double(tensor.shape.count), Double(tensor.count)]
        var header = Tensor<Double>(own)
        header.withUnsafeMutableBufferPointer { p in transfer(p, "broadcast") { MPI_Bcast($0, $1, $2, Int32(root), $3) } }
        check(header.scalars == own, "broadcast: this process has a tensor of shape \(tensor.shape), rank \(root) one of \(Int(header.scalars[1])) elements in \(Int(header.scalars[0])) dimensions")
        tensor.withUnsafeMutableBufferPointer { p in transfer(p, "broadcast") { MPI_Bcast($0, $1, $2, Int32(root), $3) } }
        #endif
    }

    /// `root`'s bytes on every process (the others' `bytes` are ignored).
    public func broadcast(bytes: [UInt8], root: Int = 0) -> [UInt8] {
        check(root >= 0 && root < size, "broadcast(bytes:): root \(root) is not a rank of \(size) processes")
        guard size > 1 else { return bytes }
        #if MPI
        var count = Tensor<Double>([Double(rank == root ? bytes.count : 0)])
        count.withUnsafeMutableBufferPointer { p in transfer(p, "broadcast") { MPI_Bcast($0, $1, $2, Int32(root), $3) } }
        var result = rank == root ? bytes : [UInt8](repeating: 0, count: Int(count.scalars[0]))
        result.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Swift.min(raw.count - offset, Int(Int32.max))
                checked(MPI_Bcast(raw.baseAddress! + offset, Int32(n), nabla_mpi_byte(), Int32(root), comm!), "broadcast")
                offset += n
            }
        }
        return result
        #else
        return bytes
        #endif
    }

    /// `root`'s string on every process.
    public func broadcast(string: String, root: Int = 0) -> String {
        String(decoding: broadcast(bytes: Array(string.utf8), root: root), as: UTF8.self)
    }

    /// Replaces `tensor` on every process with the element-wise sum (max, min) over all
    /// processes' tensors of the same shape.
    public func allReduce<Scalar: TensorScalar>(_ tensor: inout Tensor<Scalar>, _ operation: Reduction = .sum) {
        guard size > 1 else { return }
        tensor.withUnsafeMutableBufferPointer { allReduce($0, operation) }
    }

    /// The element-wise sum (max, min) over all processes, in place.
    public func allReduce<Scalar: TensorScalar>(_ buffer: UnsafeMutableBufferPointer<Scalar>, _ operation: Reduction = .sum) {
        guard size > 1 else { return }
        #if MPI
        let op = Communicator.mpiOp(operation)
        transfer(buffer, "allReduce") { ptr, n, type, comm in MPI_Allreduce(nabla_mpi_in_place(), ptr, n, type, op, comm) }
        #endif
    }

    /// A number's sum (max, min) over all processes.
    public func allReduce(_ value: Double, _ operation: Reduction = .sum) -> Double {
        var t = Tensor<Double>([value])
        allReduce(&t, operation)
        return t.scalars[0]
    }

    /// Starts summing `buffer` over all processes in place and returns at once; the sum is there
    /// after ``PendingReduction/wait()``. `buffer` must stay allocated and untouched until then.
    /// MPI moves the data forward whenever any process calls into it, so calling
    /// ``PendingReduction/test()`` now and then while computing keeps it going.
    public func startAllReduce<Scalar: TensorScalar>(_ buffer: UnsafeMutableBufferPointer<Scalar>, _ operation: Reduction = .sum) -> PendingReduction {
        let pending = PendingReduction(operation: "allReduce")
        guard size > 1 else { return pending }
        #if MPI
        let op = Communicator.mpiOp(operation)
        var offset = 0
        while offset < buffer.count {
            let n = Swift.min(buffer.count - offset, Int(Int32.max))
            var request = nabla_mpi_request_null()
            checked(MPI_Iallreduce(nabla_mpi_in_place(), buffer.baseAddress! + offset, Int32(n), Communicator.mpiType(Scalar.self), op, comm!, &request),
                    "startAllReduce")
            pending.requests.append(request)
            offset += n
        }
        #endif
        return pending
    }

    /// Every process's `tensor` stacked along the first axis in rank order. The first axis may
    /// differ between processes; the others must agree.
    public func allGather<Scalar: TensorScalar>(_ tensor: Tensor<Scalar>) -> Tensor<Scalar> {
        guard size > 1 else { return tensor }
        let rows = tensor.shape.first ?? 1
        let rowShape = Array(tensor.shape.dropFirst())
        let rowSize = rowShape.reduce(1, *)
        var counts = Tensor<Double>(repeating: 0, shape: [size, 2])
        counts.withUnsafeMutableBufferPointer { $0[2 * rank] = Double(rows); $0[2 * rank + 1] = Double(rowSize) }
        allReduce(&counts)
        let c = counts.scalars
        for r in 0..<size {
            check(Int(c[2 * r + 1]) == rowSize, "allGather: rank \(r) has rows of \(Int(c[2 * r + 1])) elements, this process \(rowShape) (\(rowSize))")
        }
        let rowCounts = (0..<size).map { Int(c[2 * $0]) }
        let total = rowCounts.reduce(0, +)
        var result = Tensor<Scalar>(repeating: 0, shape: [total] + rowShape)
        #if MPI
        let counts32 = rowCounts.map { $0 * rowSize }
        check(counts32.reduce(0, +) <= Int(Int32.max), "allGather: \(counts32.reduce(0, +)) elements are more than one MPI call carries")
        var displacements: [Int32] = [], acc = 0
        for n in counts32 { displacements.append(Int32(acc)); acc += n }
        let recv = counts32.map { Int32($0) }
        tensor.withUnsafeBufferPointer { send in
            result.withUnsafeMutableBufferPointer { out in
                checked(MPI_Allgatherv(send.baseAddress, Int32(send.count), Communicator.mpiType(Scalar.self), out.baseAddress, recv, displacements,
                                       Communicator.mpiType(Scalar.self), comm!), "allGather")
            }
        }
        #endif
        return result
    }

    // MARK: Plumbing

    #if MPI
    /// Runs a collective over `buffer` in pieces MPI's 32-bit counts can carry.
    func transfer<Scalar: TensorScalar>(_ buffer: UnsafeMutableBufferPointer<Scalar>, _ name: String,
                                        _ call: (UnsafeMutableRawPointer, Int32, MPI_Datatype?, MPI_Comm?) -> Int32) {
        guard let comm, buffer.count > 0 else { return }
        var offset = 0
        while offset < buffer.count {
            let n = Swift.min(buffer.count - offset, Int(Int32.max))
            checked(call(UnsafeMutableRawPointer(buffer.baseAddress! + offset), Int32(n), Communicator.mpiType(Scalar.self), comm), name)
            offset += n
        }
    }

    func checked(_ rc: Int32, _ name: String) {
        if rc != nabla_mpi_success() { abort("error: MPI \(name) failed: \(Communicator.errorString(rc))") }
    }

    static func errorString(_ rc: Int32) -> String {
        var text = [CChar](repeating: 0, count: Int(nabla_mpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(rc, &text, &length)
        return String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func mpiType<Scalar: TensorScalar>(_: Scalar.Type) -> MPI_Datatype? {
        switch MemoryLayout<Scalar>.size {
        case 4: return nabla_mpi_float()
        case 8: return nabla_mpi_double()
        default: fatalError("Communicator: \(Scalar.dtypeName) tensors cannot be sent (float32 and float64 can)")
        }
    }

    static func mpiOp(_ r: Reduction) -> MPI_Op? {
        switch r {
        case .sum: return nabla_mpi_op_sum()
        case .max: return nabla_mpi_op_max()
        case .min: return nabla_mpi_op_min()
        }
    }
    #endif
}

/// A non-blocking collective in flight (see ``Communicator/startAllReduce(_:_:)``).
public final class PendingReduction {
    let operation: String
    #if MPI
    var requests: [MPI_Request?] = []
    #endif

    init(operation: String) { self.operation = operation }

    /// Lets MPI move the data on; true when the collective has finished.
    @discardableResult
    public func test() -> Bool {
        #if MPI
        var done = true
        for i in requests.indices {
            var flag: Int32 = 0
            let rc = MPI_Test(&requests[i], &flag, nabla_mpi_status_ignore())
            if rc != nabla_mpi_success() { fail(rc) }
            if flag == 0 { done = false }
        }
        return done
        #else
        return true
        #endif
    }

    /// Blocks until the collective has finished.
    public func wait() {
        #if MPI
        for i in requests.indices {
            let rc = MPI_Wait(&requests[i], nabla_mpi_status_ignore())
            if rc != nabla_mpi_success() { fail(rc) }
        }
        requests.removeAll()
        #endif
    }

    #if MPI
    func fail(_ rc: Int32) -> Never {
        Communicator.worldInstance?.abort("error: MPI \(operation) failed: \(Communicator.errorString(rc))") ?? exit(1)
    }
    #endif
}
