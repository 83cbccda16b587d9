import Foundation

/// A compiled program whose every value is a single number (a function of a few scalars, its
/// gradient): one register per value, run by a loop over its instructions, with nothing
/// allocated per call. Get one from ``CompiledFunction/scalarProgram(_:arity:)``.
///
/// ```swift
/// let f = compiled { (v: [Traced<Double>]) in [v[0] * v[0] + v[1] * v[1] + v[0] * v[1]] }
/// let program = f.scalarProgram(.valueAndGradient, arity: 2)
/// var out = [0.0, 0.0, 0.0]                 // value, ∂f/∂x, ∂f/∂y
/// program.run([1, 3], into: &out)           // out == [13, 5, 7]
/// ```
///
/// A program keeps its registers between calls: use it from one thread at a time (or one per
/// thread).
public final class ScalarProgram<Scalar: TensorScalar> {
    typealias Instruction = ScalarInstruction

    let code: UnsafeMutableBufferPointer<Instruction>
    let inputRegisters: [Int]
    let outputRegisters: [Int]
    private let registers: UnsafeMutablePointer<Scalar>

    /// Number of arguments and of results.
    public var inputCount: Int { inputRegisters.count }
    public var outputCount: Int { outputRegisters.count }

    /// nil when some value of `graph` has more than one element or needs the eager library.
    init?(_ graph: Graph<Scalar>) {
        var code: [Instruction] = []
        var registers = [Scalar](repeating: 0, count: graph.nodes.count)
        var inputs = [Int](repeating: -1, count: graph.inputShapes.count)
        for (i, n) in graph.nodes.enumerated() {
            guard shapeCount(n.shape) == 1 else { return nil }
            let a = n.arguments
            switch n.primitive {
            case .input(let k): inputs[k] = i
            case .constant(let c): registers[i] = graph.constants[c].scalars[0]
            case .scalar(let v): registers[i] = Scalar(v)
            case .unary(let k): code.append(.unary(k, i, a[0]))
            case .binary(let k): code.append(.binary(k, i, a[0], a[1]))
            case .select: code.append(.select(i, a[0], a[1], a[2]))
            case .powScalar(let p): code.append(.pow(i, a[0], p))
            case .sum, .broadcast, .reshape, .transpose, .slice, .pad: code.append(.copy(i, a[0]))
            case .matmul: code.append(.binary(.mul, i, a[0], a[1]))
            case .opaque: return nil
            }
        }
        guard !inputs.contains(-1) else { return nil }
        self.code = .allocate(capacity: code.count)
        _ = self.code.initialize(from: code)
        self.inputRegisters = inputs
        self.outputRegisters = graph.outputs
        self.registers = .allocate(capacity: Swift.max(registers.count, 1))
        self.registers.initialize(from: registers, count: registers.count)
    }

    deinit {
        code.deinitialize()
        code.deallocate()
        registers.deallocate()
    }

    /// Runs the program on `inputs`, writing its results into `outputs` (which must hold
    /// `outputCount` numbers).
    public func run(_ inputs: UnsafeBufferPointer<Scalar>, into outputs: UnsafeMutableBufferPointer<Scalar>) {
        require(inputs.count == inputRegisters.count && outputs.count >= outputRegisters.count,
                "compiled scalar program: \(inputs.count) arguments and room for \(outputs.count) results; it takes \(inputRegisters.count) and gives \(outputRegisters.count)")
        let r = registers
        for (k, reg) in inputRegisters.enumerated() { r[reg] = inputs[k] }
        executeScalarProgram(code, r)
        for (k, reg) in outputRegisters.enumerated() { outputs[k] = r[reg] }
    }

    /// Runs the program on `inputs`, writing its results into `outputs` (resized if needed).
    public func run(_ inputs: [Scalar], into outputs: inout [Scalar]) {
        if outputs.count < outputRegisters.count { outputs = [Scalar](repeating: 0, count: outputRegisters.count) }
        inputs.withUnsafeBufferPointer { i in outputs.withUnsafeMutableBufferPointer { o in run(i, into: o) } }
    }
}

/// One instruction of a ``ScalarProgram``: registers are indices.
enum ScalarInstruction {
    case unary(UnaryKind, Int, Int)                 // kind, destination, argument
    case binary(BinaryKind, Int, Int, Int)
    case select(Int, Int, Int, Int)
    case pow(Int, Int, Double)
    case copy(Int, Int)
}

// Specialized for both precisions, so the arithmetic is not dispatched through the protocol.
@_specialize(where S == Double)
@_specialize(where S == Float)
func executeScalarProgram<S: TensorScalar>(_ code: UnsafeMutableBufferPointer<ScalarInstruction>, _ r: UnsafeMutablePointer<S>) {
    for instruction in code {
        switch instruction {
        case .unary(let k, let d, let x): r[d] = scalarApply(k, r[x])
        case .binary(let k, let d, let x, let y): r[d] = scalarApply(k, r[x], r[y])
        case .select(let d, let c, let x, let y): r[d] = r[c] != 0 ? r[x] : r[y]
        case .pow(let d, let x, let p): r[d] = S(Foundation.pow(Double(r[x]), p))
        case .copy(let d, let x): r[d] = r[x]
        }
    }
}

@inline(__always) func scalarApply<S: TensorScalar>(_ k: UnaryKind, _ x: S) -> S {
    switch k {
    case .neg: return -x
    case .sqrt: return x.squareRoot()
    case .abs: return Swift.abs(x)
    case .relu: return !(x <= 0) ? x : 0
    case .step: return x > 0 ? 1 : 0
    case .sign: return x > 0 ? 1 : (x < 0 ? -1 : x)
    default: return S(Graph<S>.apply(k, Double(x)))
    }
}

@inline(__always) func scalarApply<S: TensorScalar>(_ k: BinaryKind, _ a: S, _ b: S) -> S {
    switch k {
    case .add: return a + b
    case .sub: return a - b
    case .mul: return a * b
    case .div: return a / b
    case .greater: return a > b ? 1 : 0
    default: return S(Graph<S>.apply(k, Double(a), Double(b)))
    }
}

extension CompiledFunction {
    /// The program of `variant` for `arity` 0-d arguments as a ``ScalarProgram`` (nothing
    /// allocated per call), or nil when some value of it is not a single number.
    public func scalarProgram(_ variant: Variant, arity: Int) -> ScalarProgram<Scalar>? {
        ScalarProgram(executable(variant, shapes: Array(repeating: [], count: arity)).graph)
    }
}
