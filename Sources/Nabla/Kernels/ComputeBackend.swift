import CNablaKernels
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where Nabla's arithmetic runs: which BLAS was found, which instruction set the built-in
/// kernels use, and how many threads they may take.
///
/// A BLAS is looked up at run time: `NABLA_BLAS=/path/to/lib.so` names one, `NABLA_BLAS=none`
/// uses only the built-in kernels; otherwise OpenBLAS (Linux) or Accelerate (macOS) is used
/// when installed. `NABLA_NO_AVX2=1` forces the portable variants of the built-in kernels.
public enum ComputeBackend {
    /// A description of the matrix-product library in use.
    public static var blasName: String { String(cString: nb_blas_name()) }
    /// Whether a BLAS library was loaded.
    public static var hasBLAS: Bool { nb_blas_available() != 0 }
    /// Whether the AVX2/FMA variants of the built-in kernels are in use.
    public static var usesAVX2: Bool { nb_cpu_has_avx2_fma() != 0 }
    /// Whether the AVX-512 variant of the built-in matrix product is in use.
    public static var usesAVX512: Bool { nb_cpu_has_avx512() != 0 }

    /// Instruction sets of the built-in kernels, from portable to widest.
    public enum InstructionSet: Int, Sendable, CaseIterable {
        case portable = 0, avx2 = 1, avx512 = 2
    }

    /// The instruction set the built-in kernels use. Setting it can only lower it below what the
    /// processor supports (for testing every variant, or for comparison).
    public static var instructionSet: InstructionSet {
        get { InstructionSet(rawValue: Int(nb_cpu_has_avx2_fma() + nb_cpu_has_avx512()))! }
        set { _ = nb_set_instruction_level(Int32(newValue.rawValue)) }
    }

    /// The widest instruction set this processor supports for the built-in kernels.
    public static let widestInstructionSet: InstructionSet = {
        let current = nb_cpu_has_avx2_fma() + nb_cpu_has_avx512()
        let widest = nb_set_instruction_level(2)
        _ = nb_set_instruction_level(current)
        return InstructionSet(rawValue: Int(widest))!
    }()

    /// Use the built-in kernels even when a BLAS is loaded (for comparison and testing).
    public static var forcesBuiltinKernels: Bool = false {
        didSet { nb_blas_set_disabled(forcesBuiltinKernels ? 1 : 0) }
    }

    /// Processors available to this process.
    public static let processorCount: Int = Swift.max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// Threads that BLAS and Nabla's kernels may use (0, the default: every processor).
    public static var threads: Int {
        get { Int(nb_get_num_threads()) }
        set { nb_set_num_threads(Int32(newValue)) }
    }

    /// Element-wise work below this many elements of a cheap op (add, multiply) runs on one
    /// thread; expensive ops (exp, tanh, ...) split at a proportionally smaller count. Measured
    /// with `nabla bench elementwise --threads 2`: below it, waking a second thread costs more
    /// than it saves.
    public static var parallelThreshold: Int = {
        if let s = getenv("NABLA_PARALLEL_THRESHOLD"), let v = Int(String(cString: s)), v > 0 { return v }
        return 1 << 17
    }()

    /// Relative cost per element of a unary kernel (1 for the cheapest).
    @inlinable static func unaryCost(_ op: Int32) -> Int {
        switch Int(op) {
        case Int(NB_EXP), Int(NB_LOG), Int(NB_TANH), Int(NB_SIGMOID): return 4
        case Int(NB_GELU), Int(NB_GELU_TANH), Int(NB_SOFTPLUS), Int(NB_ERF), Int(NB_SIN), Int(NB_COS), Int(NB_TAN),
             Int(NB_POW_SCALAR), Int(NB_ELU), Int(NB_EXPM1), Int(NB_LOG1P): return 16
        default: return 1
        }
    }

    /// Runs `body` over `0..<count` in contiguous chunks, on several threads when the work is
    /// large enough to pay for them.
    @inlinable static func parallelize(count: Int, cost: Int, _ body: (Int, Int) -> Void) {
        let t = threads > 0 ? threads : processorCount
        guard t > 1, count * cost >= parallelThreshold else { body(0, count); return }
        let chunks = Swift.min(t, Swift.max(1, count * cost / Swift.max(1, parallelThreshold / 2)))
        if chunks <= 1 { body(0, count); return }
        // Nabla's own worker threads: Dispatch's concurrentPerform ran most chunks on the calling
        // thread on Linux (perf: 116 k samples on it against 16 k on each worker).
        withoutActuallyEscaping(body) { body in
            var job = ParallelJob(body: body, count: count, chunks: chunks)
            withUnsafeMutablePointer(to: &job) { pointer in
                nb_parallel_run(Int32(chunks), { context, i in
                    let job = context!.assumingMemoryBound(to: ParallelJob.self).pointee
                    job.body(Int(i) * job.count / job.chunks, (Int(i) + 1) * job.count / job.chunks)
                }, pointer)
            }
        }
    }

    /// One call of ``parallelize(count:cost:_:)``, as the worker threads see it.
    @usableFromInline struct ParallelJob {
        @usableFromInline let body: (Int, Int) -> Void
        @usableFromInline let count: Int, chunks: Int
        @usableFromInline init(body: @escaping (Int, Int) -> Void, count: Int, chunks: Int) {
            self.body = body; self.count = count; self.chunks = chunks
        }
    }

    /// Calls the BLAS matrix product directly, with nothing of Nabla's around it (used to measure
    /// Nabla's own overhead). Returns false when no BLAS is loaded.
    public static func rawGEMM<Scalar: TensorScalar>(m: Int, n: Int, k: Int, a: UnsafePointer<Scalar>, b: UnsafePointer<Scalar>, c: UnsafeMutablePointer<Scalar>) -> Bool {
        if Scalar.self == Float.self {
            return a.withMemoryRebound(to: Float.self, capacity: m * k) { pa in
                b.withMemoryRebound(to: Float.self, capacity: k * n) { pb in
                    c.withMemoryRebound(to: Float.self, capacity: m * n) { nb_raw_sgemm(m, n, k, pa, pb, $0) != 0 } } }
        }
        return a.withMemoryRebound(to: Double.self, capacity: m * k) { pa in
            b.withMemoryRebound(to: Double.self, capacity: k * n) { pb in
                c.withMemoryRebound(to: Double.self, capacity: m * n) { nb_raw_dgemm(m, n, k, pa, pb, $0) != 0 } } }
    }
}
