import CNablaKernels

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

    /// Use the built-in kernels even when a BLAS is loaded (for comparison and testing).
    public static var forcesBuiltinKernels: Bool = false {
        didSet { nb_blas_set_disabled(forcesBuiltinKernels ? 1 : 0) }
    }

    /// Threads that BLAS and Nabla's kernels may use (0: the library's default).
    public static var threads: Int {
        get { Int(nb_get_num_threads()) }
        set { nb_set_num_threads(Int32(newValue)) }
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
