import CNablaKernels
import Foundation

extension Graph {
    /// The program run op by op by the eager library (the reference the compiled program is
    /// checked against, and how constants are folded). Differentiable like any eager code.
    public func evaluate(_ inputs: [Tensor<Scalar>]) -> [Tensor<Scalar>] {
        require(inputs.count == inputShapes.count, "compiled program: \(inputs.count) arguments for \(inputShapes.count) inputs")
        var values: [Tensor<Scalar>?] = Array(repeating: nil, count: nodes.count)
        let live = liveNodes()
        for (i, node) in nodes.enumerated() where live[i] {
            values[i] = evaluate(node, node.arguments.map { values[$0]! }, inputs)
        }
        return outputs.map { values[$0]! }
    }

    func evaluate(_ node: GraphNode, _ a: [Tensor<Scalar>], _ inputs: [Tensor<Scalar>]) -> Tensor<Scalar> {
        switch node.primitive {
        case .input(let k):
            require(inputs[k].shape == inputShapes[k], "compiled program: argument \(k) has shape \(inputs[k].shape), the program was traced for \(inputShapes[k])")
            return inputs[k]
        case .constant(let c): return constants[c]
        case .scalar(let v): return Tensor(Scalar(v))
        case .unary(let k):
            let x = a[0]
            switch k {
            case .neg: return -x
            case .exp: return x.exp()
            case .log: return x.log()
            case .sin: return x.sin()
            case .cos: return x.cos()
            case .tanh: return x.tanh()
            case .sqrt: return x.squareRoot()
            case .abs: return x.abs()
            case .sigmoid: return x.sigmoid()
            case .relu: return x.relu()
            case .step: return x.detached() .> Tensor(0)
            case .sign: return x.detached().sign()
            }
        case .binary(let k):
            let x = a[0], y = a[1]
            switch k {
            case .add: return x + y
            case .sub: return x - y
            case .mul: return x * y
            case .div: return x / y
            case .maximum: return Tensor.maximum(x, y)
            case .minimum: return Tensor.minimum(x, y)
            case .pow: return Tensor.pow(x, y)
            case .greater: return x.detached() .> y.detached()
            case .maxWeight: return Tensor.binaryKernel(Int32(NB_MAX_WEIGHT), x.detached(), y.detached(), "maxWeight")
            }
        case .select: return Tensor.where(a[0].detached() .!= Tensor(0), a[1], a[2])
        case .powScalar(let p): return a[0].pow(Scalar(p))
        case .sum(let axes): return a[0].sum(axes: axes)
        case .broadcast: return a[0].broadcast(to: node.shape)
        case .reshape: return a[0].reshaped(to: node.shape)
        case .transpose(let p): return a[0].permuted(p)
        case .slice(let start):
            return a[0].slice(zip(start, node.shape).map { (start: $0, end: $0 + $1, step: 1) })
        case .pad(let low):
            let strides = contiguousStrides(node.shape)
            return a[0].stridedWrite(offset: zip(low, strides).map { $0 * $1 }.reduce(0, +), strides: strides, shape: node.shape)
        case .matmul(let ta, let tb): return Tensor.matmul(a[0], a[1], transposeA: ta, transposeB: tb)
        case .opaque(let k): return opaques[k].apply(a)
        }
    }

    /// Constant folding: every node whose arguments are all constants is evaluated now; then
    /// what the outputs do not use is dropped.
    func folded() -> Graph {
        let g = Graph()
        var map = [Int](repeating: -1, count: nodes.count)
        var inputs: [Int] = []
        for s in inputShapes { inputs.append(g.addInput(shape: s)) }
        for (i, node) in nodes.enumerated() {
            let args = node.arguments.map { map[$0] }
            var foldable = !args.isEmpty
            for a in args {
                switch g.nodes[a].primitive {
                case .constant, .scalar: continue
                default: foldable = false
                }
            }
            switch node.primitive {
            // Broadcasting and padding a constant would only spread it over memory: they stay.
            case .opaque, .broadcast, .pad: foldable = false
            default: break
            }
            if foldable {
                let values = args.map { a -> Tensor<Scalar> in
                    switch g.nodes[a].primitive {
                    case .constant(let c): return g.constants[c]
                    case .scalar(let v): return Tensor(Scalar(v))
                    default: fatalError("unreachable")
                    }
                }
                map[i] = g.addConstant(withoutGradients { evaluate(node, values, []) })
            } else {
                map[i] = g.rebuild(node, from: self, args: args, inputs: inputs)
            }
        }
        g.outputs = outputs.map { map[$0] }
        return g.pruned()
    }

    /// The program after the optimization passes: constant folding, then (as the nodes are
    /// rebuilt) algebraic simplification and common-subexpression elimination, then dead-code
    /// removal.
    public func optimized() -> Graph { folded() }
}

/// A program lowered for execution: element-wise chains fused into kernels run by the C
/// interpreter over cache-sized blocks, matrix products through GEMM, every intermediate in one
/// arena planned by liveness (so a call allocates only its outputs).
public final class Executable<Scalar: TensorScalar>: @unchecked Sendable {
    public let graph: Graph<Scalar>

    enum Home {
        case input(Int)
        case constant(Tensor<Scalar>)
        case arena(offset: Int)
        case output(Int)
        case alias(Int)
    }

    enum Step {
        case kernel(Int)
        case transpose(source: Int, target: Int, permutation: [Int])
        case matmul(a: Int, b: Int, c: Int, transposeA: Bool, transposeB: Bool)
        case opaque(Int, arguments: [Int], target: Int)
        case linear(x: Int, w: Int, b: Int, target: Int, relu: Bool)
    }

    struct Kernel {
        var domain: [Int]
        var loads: [(value: Int, load: nb_fused_load)]
        var consts: [Double]
        var instructions: [nb_fused_instr]
        var slots: Int
        var outputs: [(value: Int, output: nb_fused_output)]
    }

    private(set) var homes: [Home?]
    private(set) var steps: [Step] = []
    private(set) var kernels: [Kernel] = []
    private var arenaCount = 0
    private var arena: TensorStorage<Scalar>?
    private let lock = NSLock()

    /// A kernel as the C interpreter reads it, built once; a call only writes the buffers'
    /// addresses into its loads and outputs.
    final class Prepared {
        let kernel: UnsafeMutablePointer<nb_fused_kernel>
        let loads: UnsafeMutablePointer<nb_fused_load>
        let outputs: UnsafeMutablePointer<nb_fused_output>
        let consts: UnsafeMutablePointer<Double>
        let instructions: UnsafeMutablePointer<nb_fused_instr>
        let loadValues: [Int], outputValues: [Int]

        init(_ k: Kernel) {
            loads = .allocate(capacity: Swift.max(k.loads.count, 1))
            outputs = .allocate(capacity: Swift.max(k.outputs.count, 1))
            consts = .allocate(capacity: Swift.max(k.consts.count, 1))
            instructions = .allocate(capacity: Swift.max(k.instructions.count, 1))
            for (i, l) in k.loads.enumerated() { (loads + i).initialize(to: l.load) }
            for (i, o) in k.outputs.enumerated() { (outputs + i).initialize(to: o.output) }
            for (i, c) in k.consts.enumerated() { (consts + i).initialize(to: c) }
            for (i, c) in k.instructions.enumerated() { (instructions + i).initialize(to: c) }
            loadValues = k.loads.map(\.value)
            outputValues = k.outputs.map(\.value)
            kernel = .allocate(capacity: 1)
            var c = nb_fused_kernel()
            c.ndim = Int32(k.domain.count)
            withUnsafeMutableBytes(of: &c.shape) { b in
                let p = b.bindMemory(to: Int.self)
                for (d, n) in k.domain.enumerated() { p[d] = n }
            }
            c.nloads = Int32(k.loads.count); c.loads = UnsafePointer(loads)
            c.nconsts = Int32(k.consts.count); c.consts = UnsafePointer(consts)
            c.ninstr = Int32(k.instructions.count); c.instr = UnsafePointer(instructions)
            c.nslots = Int32(k.slots)
            c.nout = Int32(k.outputs.count); c.out = UnsafePointer(outputs)
            c.threads = 1
            kernel.initialize(to: c)
        }

        deinit {
            loads.deallocate(); outputs.deallocate(); consts.deallocate(); instructions.deallocate(); kernel.deallocate()
        }
    }
    private var prepared: [Prepared] = []
    /// Per value: the value whose buffer it uses (itself, or what a reshape aliases).
    private var storageRoot: [Int] = []
    /// Per value: its address during a call.
    private var addresses: [UnsafeMutableRawPointer?] = []

    /// Kernels, products and other steps, for the text form.
    public var summary: String {
        var lines: [String] = []
        for step in steps {
            switch step {
            case .kernel(let k):
                let kernel = kernels[k]
                // How each load reads along the inner dimension: in place, broadcast, strided.
                let inner = Swift.max(kernel.domain.count - 1, 0)
                let reads = kernel.loads.map { l -> String in
                    let stride = kernel.domain.isEmpty ? 1 : withUnsafeBytes(of: l.load.strides) { $0.bindMemory(to: Int.self)[inner] }
                    return "%\(l.value)" + (stride == 1 ? "" : stride == 0 ? " broadcast" : " stride \(stride)")
                }
                lines.append("fused kernel over \(kernel.domain): \(kernel.instructions.count) instructions, \(kernel.outputs.count) outputs (values \(kernel.outputs.map { "%\($0.value)" }.joined(separator: ", "))) from \(reads.joined(separator: ", "))")
            case .transpose(let s, let t, let p): lines.append("transpose %\(s) \(p) -> %\(t)")
            case .matmul(let a, let b, let c, let ta, let tb): lines.append("gemm %\(a)\(ta ? "ᵀ" : "") · %\(b)\(tb ? "ᵀ" : "") -> %\(c)")
            case .linear(let x, let w, let b, let t, let relu): lines.append("dense %\(x) · %\(w)ᵀ + %\(b)\(relu ? ", ReLU" : "") -> %\(t)")
            case .opaque(let k, let args, let t): lines.append("eager \(graph.opaques[k].name)(\(args.map { "%\($0)" }.joined(separator: ", "))) -> %\(t)")
            }
        }
        lines.append("arena: \(arenaCount) elements")
        return lines.joined(separator: "\n")
    }

    /// Every fused kernel's register program, one instruction a line (slots s0…: the loads,
    /// then the constants, then results).
    public var listing: String {
        var lines: [String] = []
        for (k, kernel) in kernels.enumerated() {
            lines.append("kernel \(k) over \(kernel.domain), \(kernel.slots) slots:")
            for (i, l) in kernel.loads.enumerated() { lines.append("  s\(i) = load %\(l.value)") }
            for (i, c) in kernel.consts.enumerated() { lines.append("  s\(kernel.loads.count + i) = \(c)") }
            for ins in kernel.instructions {
                let name = Executable.opcodeName(ins.op)
                var operands = ["s\(ins.a)"]
                if ins.op >= Int32(NB_F_MULK) {
                    operands.append("\(ins.imm)")
                    if ins.op != Int32(NB_F_MULK) { operands.append("s\(ins.c)") }
                } else {
                    if ins.op >= Int32(NB_F_ADD) && ins.op != Int32(NB_F_MASK) { operands.append("s\(ins.b)") }
                    if ins.op >= Int32(NB_F_SELECT) && ins.op != Int32(NB_F_MASK) { operands.append("s\(ins.c)") }
                    if ins.op == Int32(NB_F_MASK) { operands.append("dimension \(ins.dim) in \(ins.lo)..<\(ins.hi)") }
                    if ins.op == Int32(NB_F_POWS) { operands.append("\(ins.imm)") }
                }
                lines.append("  s\(ins.dst) = \(name) \(operands.joined(separator: ", "))\(ins.out > 0 ? " → %\(kernel.outputs[Int(ins.out) - 1].value)" : "")")
            }
            for o in kernel.outputs { lines.append("  %\(o.value) \(o.output.accumulate != 0 ? "+=" : "=") s\(o.output.src)") }
        }
        return lines.joined(separator: "\n")
    }

    static func opcodeName(_ op: Int32) -> String {
        switch Int(op) {
        case Int(NB_F_NEG): return "neg"
        case Int(NB_F_EXP): return "exp"
        case Int(NB_F_LOG): return "log"
        case Int(NB_F_SIN): return "sin"
        case Int(NB_F_COS): return "cos"
        case Int(NB_F_TANH): return "tanh"
        case Int(NB_F_SQRT): return "sqrt"
        case Int(NB_F_ABS): return "abs"
        case Int(NB_F_SIGMOID): return "sigmoid"
        case Int(NB_F_RELU): return "relu"
        case Int(NB_F_STEP): return "step"
        case Int(NB_F_SIGN): return "sign"
        case Int(NB_F_POWS): return "pow"
        case Int(NB_F_ADD): return "add"
        case Int(NB_F_SUB): return "sub"
        case Int(NB_F_MUL): return "mul"
        case Int(NB_F_DIV): return "div"
        case Int(NB_F_MAX): return "max"
        case Int(NB_F_MIN): return "min"
        case Int(NB_F_POW): return "powv"
        case Int(NB_F_GT): return "greater"
        case Int(NB_F_MAXW): return "maxweight"
        case Int(NB_F_SELECT): return "select"
        case Int(NB_F_MASK): return "mask"
        case Int(NB_F_MULADD): return "muladd"
        case Int(NB_F_MULSUB): return "mulsub"
        case Int(NB_F_NMULADD): return "nmuladd"
        case Int(NB_F_MULK): return "mulk"
        case Int(NB_F_MULADDK): return "muladdk"
        case Int(NB_F_MULSUBK): return "mulsubk"
        case Int(NB_F_NMULADDK): return "nmuladdk"
        default: return "op\(op)"
        }
    }

    public init(_ graph: Graph<Scalar>) {
        self.graph = graph
        let nodes = graph.nodes
        let count = nodes.count
        homes = Array(repeating: nil, count: count)
        var consumers = [[Int]](repeating: [], count: count)
        for (i, n) in nodes.enumerated() { for a in Set(n.arguments) { consumers[a].append(i) } }
        let outputSet = Set(graph.outputs)

        // Dense layers: x·wᵀ + b (and a ReLU after it) read by nothing else become one step of
        // the library's dense kernel, which adds the bias and applies the ReLU as the product
        // is stored.
        var linear: [Int: (x: Int, w: Int, b: Int, relu: Bool)] = [:]
        var absorbed = Set<Int>()
        for (i, n) in nodes.enumerated() {
            guard case .binary(.add) = n.primitive, !outputSet.contains(i), n.shape.count == 2 else { continue }
            for (mm, b) in [(n.arguments[0], n.arguments[1]), (n.arguments[1], n.arguments[0])] {
                guard case .matmul(false, true) = nodes[mm].primitive, consumers[mm] == [i], !outputSet.contains(mm),
                      nodes[b].shape == [n.shape[1]], nodes[mm].shape == n.shape else { continue }
                let (x, w) = (nodes[mm].arguments[0], nodes[mm].arguments[1])
                if consumers[i].count == 1, case .unary(.relu) = nodes[consumers[i][0]].primitive, !outputSet.contains(i) {
                    linear[consumers[i][0]] = (x, w, b, true)
                    absorbed.formUnion([mm, i])
                } else {
                    linear[i] = (x, w, b, false)
                    absorbed.insert(mm)
                }
                break
            }
        }
        func fusible(_ i: Int) -> Bool { nodes[i].primitive.isElementwise && linear[i] == nil }

        // Which values live in memory.
        var materialized = [Bool](repeating: false, count: count)
        for i in nodes.indices where !absorbed.contains(i) {
            if outputSet.contains(i) || !fusible(i) { materialized[i] = true; continue }
            for c in consumers[i] where !absorbed.contains(c) {
                if case .sum = nodes[c].primitive { continue }
                if !fusible(c) { materialized[i] = true }
            }
        }
        for (_, l) in linear { materialized[l.x] = true; materialized[l.w] = true; materialized[l.b] = true }

        // Kernel roots, grouped by domain into multi-output kernels.
        var roots: [Int] = []
        for (i, n) in nodes.enumerated() {
            if case .sum = n.primitive { roots.append(i); continue }
            if case .scalar = n.primitive { continue }
            if materialized[i] && fusible(i) { roots.append(i) }
        }
        func domain(_ r: Int) -> [Int] {
            if case .sum = nodes[r].primitive { return nodes[nodes[r].arguments[0]].shape }
            return nodes[r].shape
        }
        func leaves(_ r: Int) -> Set<Int> {
            var found = Set<Int>(), seen = Set<Int>()
            var stack = nodes[r].arguments
            while let v = stack.popLast() {
                guard seen.insert(v).inserted else { continue }
                if materialized[v] { found.insert(v) } else { stack.append(contentsOf: nodes[v].arguments) }
            }
            return found
        }
        var groupOf = [Int](repeating: -1, count: count)
        var groups: [(position: Int, domain: [Int], roots: [Int])] = []
        var produced = [Int](repeating: -1, count: count)  // the step position that writes a value
        for (i, n) in nodes.enumerated() where materialized[i] {
            switch n.primitive {
            case .input, .constant, .scalar: produced[i] = -1
            case .reshape: produced[i] = produced[n.arguments[0]]
            default: produced[i] = i
            }
        }
        // A sum over all elements fits in a kernel over a larger domain of the same rank (its
        // summand masked to zero outside its own): the value and the gradient of a function of
        // shifted slices (Rosenbrock's) then share one pass over the input.
        func isTotalSum(_ r: Int) -> Bool {
            if case .sum = nodes[r].primitive { return nodes[r].shape.isEmpty }
            return false
        }
        func fits(_ small: [Int], _ big: [Int]) -> Bool { small.count == big.count && zip(small, big).allSatisfy { $0 <= $1 } }
        for r in roots {
            let d = domain(r), l = leaves(r)
            var placed = false
            for gi in groups.indices where groups[gi].roots.count < Int(NB_FUSED_MAX_OUT) {
                let g = groups[gi]
                var grown: [Int]?
                if g.domain == d || (isTotalSum(r) && fits(d, g.domain)) {
                    grown = g.domain
                } else if fits(g.domain, d) && g.roots.allSatisfy(isTotalSum) {
                    grown = d
                }
                guard let newDomain = grown else { continue }
                // A sum of a value this kernel writes reads it from the kernel's own registers
                // (a bias gradient's column sums join the pass that makes the gradient).
                func ownSummand(_ v: Int) -> Bool {
                    guard case .sum = nodes[r].primitive, nodes[r].arguments[0] == v, groupOf[v] == gi else { return false }
                    return d == g.domain
                }
                if l.allSatisfy({ produced[$0] < groups[gi].position || ownSummand($0) }) {
                    groups[gi].domain = newDomain
                    groups[gi].roots.append(r)
                    groupOf[r] = gi
                    produced[r] = groups[gi].position
                    placed = true
                    break
                }
            }
            if !placed {
                groups.append((r, d, [r]))
                groupOf[r] = groups.count - 1
                produced[r] = r
            }
        }

        // Homes: inputs, constants, aliases (reshapes), outputs, the arena.
        for (i, n) in nodes.enumerated() where materialized[i] {
            switch n.primitive {
            case .input(let k): homes[i] = .input(k)
            case .constant(let c): homes[i] = .constant(graph.constants[c])
            case .scalar(let v): homes[i] = .constant(Tensor(Scalar(v)))
            case .reshape: homes[i] = .alias(n.arguments[0])
            default: break
            }
        }
        func root(_ v: Int) -> Int {
            var v = v
            while case .alias(let a)? = homes[v] { v = a }
            return v
        }
        for (k, o) in graph.outputs.enumerated() where homes[root(o)] == nil { homes[root(o)] = .output(k) }

        // Steps in order of position.
        var lastUse = [Int](repeating: -1, count: count)
        func use(_ v: Int, at p: Int) { let r = root(v); lastUse[r] = Swift.max(lastUse[r], p) }
        var stepAt: [(position: Int, step: Step)] = []
        for (i, n) in nodes.enumerated() where materialized[i] && groupOf[i] < 0 {
            if let l = linear[i] {
                stepAt.append((i, .linear(x: l.x, w: l.w, b: l.b, target: i, relu: l.relu)))
                for a in [l.x, l.w, l.b] { use(a, at: i) }
                continue
            }
            switch n.primitive {
            case .transpose(let p):
                stepAt.append((i, .transpose(source: n.arguments[0], target: i, permutation: p)))
                use(n.arguments[0], at: i)
            case .matmul(let ta, let tb):
                stepAt.append((i, .matmul(a: n.arguments[0], b: n.arguments[1], c: i, transposeA: ta, transposeB: tb)))
                for a in n.arguments { use(a, at: i) }
            case .opaque(let k):
                stepAt.append((i, .opaque(k, arguments: n.arguments, target: i)))
                for a in n.arguments { use(a, at: i) }
            default: break
            }
        }
        for (gi, group) in groups.enumerated() {
            let kernel = Executable.lowerKernel(graph, domain: group.domain, roots: group.roots, materialized: materialized)
            for l in kernel.loads { use(l.value, at: group.position) }
            kernels.append(kernel)
            stepAt.append((group.position, .kernel(gi)))
        }
        stepAt.sort { $0.position < $1.position }
        steps = stepAt.map(\.step)
        for o in graph.outputs { use(o, at: Int.max) }

        // Arena: first fit, a value's space free again after its last use.
        var defs: [(position: Int, value: Int)] = []
        for i in 0..<count where materialized[i] && homes[i] == nil { defs.append((produced[i], i)) }
        defs.sort { $0.position < $1.position || ($0.position == $1.position && $0.value < $1.value) }
        var busy: [(start: Int, end: Int, until: Int)] = []
        let align = 64 / MemoryLayout<Scalar>.stride
        for (p, v) in defs {
            busy.removeAll { $0.until < p }
            let size = Swift.max(1, (shapeCount(nodes[v].shape) + align - 1) / align * align)
            var start = 0
            for b in busy.sorted(by: { $0.start < $1.start }) {
                if start + size <= b.start { break }
                start = Swift.max(start, b.end)
            }
            busy.append((start, start + size, Swift.max(lastUse[v], p)))
            homes[v] = .arena(offset: start)
            arenaCount = Swift.max(arenaCount, start + size)
        }
        prepared = kernels.map(Prepared.init)
        storageRoot = (0..<count).map(root)
        addresses = Array(repeating: nil, count: count)
    }

    // MARK: Lowering one kernel

    struct Entry: Hashable { var broadcast: Bool; var offset: Int }
    struct MemoKey: Hashable { var value: Int; var map: [Entry] }
    enum Operand: Hashable { case load(Int), constant(Int), temp(Int) }

    static func lowerKernel(_ graph: Graph<Scalar>, domain: [Int], roots: [Int], materialized: [Bool]) -> Kernel {
        let nodes = graph.nodes
        let rank = domain.count
        require(rank <= Int(NB_FUSED_MAX_DIMS), "compiled program: a fused kernel over \(domain) has more than \(NB_FUSED_MAX_DIMS) dimensions")
        var loads: [(value: Int, load: nb_fused_load)] = []
        var consts: [Double] = []
        var constIndex: [Double: Int] = [:]
        var code: [(op: Int32, a: Operand, b: Operand?, c: Operand?, dim: Int, lo: Int, hi: Int, imm: Double)] = []
        var memo: [MemoKey: Operand] = [:]
        let far = Int.max / 4

        func constant(_ v: Double) -> Operand {
            if let i = constIndex[v] { return .constant(i) }
            consts.append(v)
            constIndex[v] = consts.count - 1
            return .constant(consts.count - 1)
        }
        func instr(_ op: Int32, _ a: Operand, _ b: Operand? = nil, _ c: Operand? = nil, dim: Int = 0, lo: Int = 0, hi: Int = 0, imm: Double = 0) -> Operand {
            code.append((op, a, b, c, dim, lo, hi, imm))
            return .temp(code.count - 1)
        }
        func load(_ v: Int, _ m: [Entry]) -> Operand {
            let s = nodes[v].shape
            let strides = contiguousStrides(s)
            var l = nb_fused_load()
            var offset = 0
            withUnsafeMutableBytes(of: &l.strides) { $0.bindMemory(to: Int.self).update(repeating: 0) }
            withUnsafeMutableBytes(of: &l.lo) { $0.bindMemory(to: Int.self).update(repeating: -far) }
            withUnsafeMutableBytes(of: &l.hi) { $0.bindMemory(to: Int.self).update(repeating: far) }
            for k in 0..<s.count {
                let d = rank - s.count + k, e = m[k]
                if e.broadcast {
                    if e.offset < 0 || e.offset >= s[k] { return constant(0) }
                    offset += e.offset * strides[k]
                } else {
                    offset += e.offset * strides[k]
                    withUnsafeMutableBytes(of: &l.strides) { $0.bindMemory(to: Int.self)[d] = strides[k] }
                    withUnsafeMutableBytes(of: &l.lo) { $0.bindMemory(to: Int.self)[d] = -e.offset }
                    withUnsafeMutableBytes(of: &l.hi) { $0.bindMemory(to: Int.self)[d] = s[k] - e.offset }
                }
            }
            l.offset = offset
            loads.append((v, l))
            return .load(loads.count - 1)
        }
        // The map of an operand of shape `a` read by a node of shape `o` under map m.
        func broadcastMap(_ m: [Entry], _ a: [Int], _ o: [Int]) -> [Entry] {
            (0..<a.count).map { k in
                let j = o.count - a.count + k
                return a[k] == 1 && o[j] != 1 ? Entry(broadcast: true, offset: 0) : m[j]
            }
        }
        func emit(_ v: Int, _ m: [Entry], root: Bool = false) -> Operand {
            let key = MemoKey(value: v, map: m)
            if let o = memo[key] { return o }
            let node = nodes[v]
            let result: Operand
            if materialized[v] && !root {
                if case .scalar(let c) = node.primitive { result = constant(c) } else { result = load(v, m) }
            } else {
                let args = node.arguments
                switch node.primitive {
                case .scalar(let c): result = constant(c)
                case .unary(let k): result = instr(Executable.code(k), emit(args[0], m))
                case .powScalar(let p): result = instr(Int32(NB_F_POWS), emit(args[0], m), imm: p)
                case .binary(let k):
                    let a = emit(args[0], broadcastMap(m, nodes[args[0]].shape, node.shape))
                    let b = emit(args[1], broadcastMap(m, nodes[args[1]].shape, node.shape))
                    result = instr(Executable.code(k), a, b)
                case .select:
                    let ops = args.map { emit($0, broadcastMap(m, nodes[$0].shape, node.shape)) }
                    result = instr(Int32(NB_F_SELECT), ops[0], ops[1], ops[2])
                case .broadcast: result = emit(args[0], broadcastMap(m, nodes[args[0]].shape, node.shape))
                case .slice(let start):
                    result = emit(args[0], zip(m, start).map { Entry(broadcast: $0.broadcast, offset: $0.offset + $1) })
                case .pad(let low):
                    let inner = nodes[args[0]].shape
                    var r = emit(args[0], zip(m, low).map { Entry(broadcast: $0.broadcast, offset: $0.offset - $1) })
                    for k in 0..<low.count where low[k] > 0 || low[k] + inner[k] < node.shape[k] {
                        let e = m[k]
                        if e.broadcast {
                            if e.offset < low[k] || e.offset >= low[k] + inner[k] { r = constant(0) }
                        } else {
                            r = instr(Int32(NB_F_MASK), r, dim: rank - low.count + k, lo: low[k] - e.offset, hi: low[k] - e.offset + inner[k])
                        }
                    }
                    result = r
                default:
                    fatalError("compiled program: \(node.primitive) is not element-wise")
                }
            }
            memo[key] = result
            return result
        }

        let identity = [Entry](repeating: Entry(broadcast: false, offset: 0), count: rank)
        var outs: [(value: Int, src: Operand, strides: [Int], accumulate: Bool)] = []
        for r in roots {
            if case .sum(let axes) = nodes[r].primitive {
                var src = emit(nodes[r].arguments[0], identity)
                // A total sum over a smaller domain than the kernel's: zero outside its own.
                let own = nodes[nodes[r].arguments[0]].shape
                for k in 0..<rank where own[k] < domain[k] {
                    src = instr(Int32(NB_F_MASK), src, dim: k, lo: 0, hi: own[k])
                }
                let outStrides = contiguousStrides(nodes[r].shape)
                var strides: [Int] = [], j = 0
                for d in 0..<rank {
                    if axes.contains(d) { strides.append(0) } else { strides.append(outStrides[j]); j += 1 }
                }
                outs.append((r, src, strides, true))
            } else {
                outs.append((r, emit(r, identity, root: true), contiguousStrides(domain), false))
            }
        }

        // A product read only by the sum or difference after it joins that instruction
        // (a·b + c, a·b − c, c − a·b, each rounded as the two apart): one pass fewer.
        var uses = [Int](repeating: 0, count: code.count)
        for c in code { for case .temp(let t)? in [c.a, c.b, c.c] as [Operand?] { uses[t] += 1 } }
        for o in outs { if case .temp(let t) = o.src { uses[t] += 1 } }
        var dead = [Bool](repeating: false, count: code.count)
        for p in code.indices where code[p].op == Int32(NB_F_ADD) || code[p].op == Int32(NB_F_SUB) {
            func product(_ o: Operand?) -> Int? {
                guard case .temp(let q)? = o, code[q].op == Int32(NB_F_MUL), uses[q] == 1, !dead[q] else { return nil }
                return q
            }
            let c = code[p]
            if let q = product(c.a) {
                code[p] = (c.op == Int32(NB_F_ADD) ? Int32(NB_F_MULADD) : Int32(NB_F_MULSUB), code[q].a, code[q].b, c.b, 0, 0, 0, 0)
                dead[q] = true
            } else if let q = product(c.b) {
                code[p] = (c.op == Int32(NB_F_ADD) ? Int32(NB_F_MULADD) : Int32(NB_F_NMULADD), code[q].a, code[q].b, c.a, 0, 0, 0, 0)
                dead[q] = true
            }
        }

        // A constant factor of a product rides in the instruction (x·k, x·k ± c, c − x·k): the
        // pass reads one block fewer (a·b is b·a exactly, so the bits do not change).
        let immediate: [Int32: Int32] = [Int32(NB_F_MUL): Int32(NB_F_MULK), Int32(NB_F_MULADD): Int32(NB_F_MULADDK),
                                         Int32(NB_F_MULSUB): Int32(NB_F_MULSUBK), Int32(NB_F_NMULADD): Int32(NB_F_NMULADDK)]
        for p in code.indices where !dead[p] {
            guard let k = immediate[code[p].op] else { continue }
            let c = code[p]
            if case .constant(let i)? = c.b {
                code[p] = (k, c.a, nil, c.c, 0, 0, 0, consts[i])
            } else if case .constant(let i) = c.a, let b = c.b {
                code[p] = (k, b, nil, c.c, 0, 0, 0, consts[i])
            }
        }

        // Slots: loads, constants, then the instructions' results, a slot reused once its
        // value has been read for the last time.
        let nl = loads.count, nc = consts.count
        var last = [Int](repeating: -1, count: code.count)
        for (p, c) in code.enumerated() {
            for case .temp(let t)? in [c.a, c.b, c.c] as [Operand?] { last[t] = p }
        }
        for o in outs { if case .temp(let t) = o.src { last[t] = code.count } }
        // A mask may hand on its operand's block instead of copying it (a block wholly inside
        // the kept range): that operand's slot then stays reserved as long as the mask's result.
        for p in stride(from: code.count - 1, through: 0, by: -1) where code[p].op == Int32(NB_F_MASK) {
            if case .temp(let t) = code[p].a { last[t] = Swift.max(last[t], last[p]) }
        }
        var slotOf = [Int](repeating: -1, count: code.count)
        var free: [Int] = []
        var next = nl + nc
        func slot(_ o: Operand) -> Int32 {
            switch o {
            case .load(let i): return Int32(i)
            case .constant(let i): return Int32(nl + i)
            case .temp(let t): return Int32(slotOf[t])
            }
        }
        var instructions: [nb_fused_instr] = []
        var instructionIndex: [Int: Int] = [:]
        for (p, c) in code.enumerated() where !dead[p] {
            instructionIndex[p] = instructions.count
            var ins = nb_fused_instr()
            ins.op = c.op
            ins.a = slot(c.a)
            ins.b = c.b.map(slot) ?? ins.a
            ins.c = c.c.map(slot) ?? ins.a
            // The result never shares a slot with its operands (sin and cos read theirs twice).
            let s: Int
            if let f = free.popLast() { s = f } else { s = next; next += 1 }
            slotOf[p] = s
            var released = Set<Int>()
            for case .temp(let t)? in [c.a, c.b, c.c] as [Operand?] where last[t] == p && released.insert(t).inserted {
                free.append(slotOf[t])
            }
            ins.dst = Int32(s)
            ins.dim = Int32(c.dim)
            ins.lo = c.lo
            ins.hi = c.hi
            ins.imm = c.imm
            instructions.append(ins)
        }
        require(next <= Int(NB_FUSED_MAX_SLOTS), "compiled program: a fused kernel needs \(next) slots, more than \(NB_FUSED_MAX_SLOTS)")
        // An output computed by an instruction (not a mask, which may hand on its operand)
        // is written by it straight into the output.
        for (k, o) in outs.enumerated() where !o.accumulate {
            guard case .temp(let t) = o.src, !dead[t], code[t].op != Int32(NB_F_MASK),
                  let i = instructionIndex[t], instructions[i].out == 0 else { continue }
            instructions[i].out = Int32(k + 1)
        }
        var outputs: [(value: Int, output: nb_fused_output)] = []
        for o in outs {
            var out = nb_fused_output()
            withUnsafeMutableBytes(of: &out.strides) { b in
                let p = b.bindMemory(to: Int.self)
                p.update(repeating: 0)
                for (d, s) in o.strides.enumerated() { p[d] = s }
            }
            out.src = slot(o.src)
            out.accumulate = o.accumulate ? 1 : 0
            out.count = shapeCount(nodes[o.value].shape)
            outputs.append((o.value, out))
        }
        return Kernel(domain: domain, loads: loads, consts: consts, instructions: instructions, slots: next, outputs: outputs)
    }

    static func code(_ k: UnaryKind) -> Int32 {
        switch k {
        case .neg: return Int32(NB_F_NEG)
        case .exp: return Int32(NB_F_EXP)
        case .log: return Int32(NB_F_LOG)
        case .sin: return Int32(NB_F_SIN)
        case .cos: return Int32(NB_F_COS)
        case .tanh: return Int32(NB_F_TANH)
        case .sqrt: return Int32(NB_F_SQRT)
        case .abs: return Int32(NB_F_ABS)
        case .sigmoid: return Int32(NB_F_SIGMOID)
        case .relu: return Int32(NB_F_RELU)
        case .step: return Int32(NB_F_STEP)
        case .sign: return Int32(NB_F_SIGN)
        }
    }

    static func code(_ k: BinaryKind) -> Int32 {
        switch k {
        case .add: return Int32(NB_F_ADD)
        case .sub: return Int32(NB_F_SUB)
        case .mul: return Int32(NB_F_MUL)
        case .div: return Int32(NB_F_DIV)
        case .maximum: return Int32(NB_F_MAX)
        case .minimum: return Int32(NB_F_MIN)
        case .pow: return Int32(NB_F_POW)
        case .greater: return Int32(NB_F_GT)
        case .maxWeight: return Int32(NB_F_MAXW)
        }
    }

    // MARK: Running

    /// Runs the program on `inputs` (shapes as traced); returns its outputs.
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public func run(_ inputs: [Tensor<Scalar>]) -> [Tensor<Scalar>] {
        checkArguments(inputs.map(\.shape))
        let nodes = graph.nodes
        // Outputs that live in their own buffer get a new one; the rest (an input or a constant
        // returned as it is, a value in the arena) are shared or copied out.
        var outStorage: [TensorStorage<Scalar>?] = Array(repeating: nil, count: graph.outputs.count)
        for (k, o) in graph.outputs.enumerated() {
            if case .output(let j)? = homes[storageRoot[o]], j == k { outStorage[k] = TensorStorage<Scalar>.make(count: shapeCount(nodes[o].shape)) }
        }
        lock.lock()
        defer { lock.unlock() }
        execute(input: { inputs[$0].storage.base }, output: { outStorage[$0]!.base })
        var result: [Tensor<Scalar>] = []
        result.reserveCapacity(graph.outputs.count)
        for o in graph.outputs {
            let shape = nodes[o].shape
            switch homes[storageRoot[o]]! {
            case .output(let j): result.append(Tensor(storage: outStorage[j]!, shape: shape))
            case .input(let i): result.append(Tensor(storage: inputs[i].storage, shape: shape))
            case .constant(let t): result.append(Tensor(storage: t.storage, shape: shape))
            case .arena, .alias:
                let s = TensorStorage<Scalar>.make(count: shapeCount(shape))
                s.base.update(from: addresses[o]!.assumingMemoryBound(to: Scalar.self), count: s.count)
                result.append(Tensor(storage: s, shape: shape))
            }
        }
        withExtendedLifetime(inputs) {}
        return result
    }

    /// Runs the program on the arguments at `inputs` (contiguous, of the traced shapes) and
    /// writes output k to `outputs[k]` (room for its elements, not overlapping an input):
    /// nothing is allocated after the first call.
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public func run(inputs: [UnsafePointer<Scalar>], outputs: [UnsafeMutablePointer<Scalar>]) {
        require(inputs.count == graph.inputShapes.count && outputs.count == graph.outputs.count,
                "compiled program: \(inputs.count) arguments and \(outputs.count) results for \(graph.inputShapes.count) inputs and \(graph.outputs.count) outputs")
        lock.lock()
        defer { lock.unlock() }
        execute(input: { UnsafeMutablePointer(mutating: inputs[$0]) }, output: { outputs[$0] })
        for (k, o) in graph.outputs.enumerated() {
            if case .output(let j)? = homes[storageRoot[o]], j == k { continue }
            outputs[k].update(from: addresses[o]!.assumingMemoryBound(to: Scalar.self), count: shapeCount(graph.nodes[o].shape))
        }
    }

    func checkArguments(_ shapes: [[Int]]) {
        require(shapes.count == graph.inputShapes.count, "compiled program: \(shapes.count) arguments for \(graph.inputShapes.count) inputs")
        for (k, s) in shapes.enumerated() where s != graph.inputShapes[k] {
            usageFailure("compiled program: argument \(k) has shape \(s), the program was traced for \(graph.inputShapes[k])")
        }
    }

    /// The steps, with every value's address from its home (the caller holds `lock`).
    private func execute(input: (Int) -> UnsafeMutablePointer<Scalar>, output: (Int) -> UnsafeMutablePointer<Scalar>) {
        if arena == nil && arenaCount > 0 { arena = TensorStorage<Scalar>.make(count: arenaCount) }
        let nodes = graph.nodes
        for i in 0..<nodes.count {
            let r = storageRoot[i]
            guard r == i else { addresses[i] = addresses[r]; continue }
            switch homes[i] {
            case .input(let k)?: addresses[i] = UnsafeMutableRawPointer(input(k))
            case .constant(let t)?: addresses[i] = UnsafeMutableRawPointer(t.storage.base)
            case .arena(let offset)?: addresses[i] = UnsafeMutableRawPointer(arena!.base + offset)
            case .output(let k)?: addresses[i] = UnsafeMutableRawPointer(output(k))
            default: addresses[i] = nil
            }
        }
        func pointer(_ v: Int) -> UnsafeMutablePointer<Scalar> { addresses[v]!.assumingMemoryBound(to: Scalar.self) }
        let threads = ComputeBackend.threads > 0 ? ComputeBackend.threads : ComputeBackend.processorCount
        for step in steps {
            switch step {
            case .kernel(let k):
                let p = prepared[k]
                for (j, v) in p.loadValues.enumerated() { p.loads[j].base = UnsafeRawPointer(addresses[v]) }
                for (j, v) in p.outputValues.enumerated() { p.outputs[j].base = addresses[v] }
                p.kernel.pointee.threads = Int32(threads)
                if Scalar.self == Double.self { nb_fused_run_f64(p.kernel) } else { nb_fused_run_f32(p.kernel) }
            case .transpose(let s, let t, let perm):
                let inShape = nodes[s].shape, outShape = nodes[t].shape
                let own = contiguousStrides(inShape)
                let strides = perm.map { own[$0] }
                if shapeCount(outShape) > 0 { Scalar._copyStrided(Int32(outShape.count), outShape, pointer(s), strides, pointer(t)) }
            case .matmul(let a, let b, let c, let ta, let tb):
                let sa = nodes[a].shape, sb = nodes[b].shape, sc = nodes[c].shape
                let k = ta ? sa[0] : sa[1]
                if sc[0] * sc[1] == 0 { break }
                if k == 0 { Scalar._fill(sc[0] * sc[1], 0, pointer(c)); break }
                Scalar._gemm(ta, tb, sc[0], sc[1], k, 1, pointer(a), sa[1], pointer(b), sb[1], 0, pointer(c), sc[1])
            case .linear(let x, let w, let b, let t, let relu):
                let sx = nodes[x].shape, sw = nodes[w].shape
                if sx[0] * sw[0] == 0 { break }
                if sx[1] == 0 {
                    // An empty product: the bias (through the ReLU) in every row.
                    let out = pointer(t), bias = pointer(b)
                    for r in 0..<sx[0] { for c in 0..<sw[0] { out[r * sw[0] + c] = relu ? Swift.max(bias[c], 0) : bias[c] } }
                    break
                }
                Scalar._linear(sx[0], sw[0], sx[1], pointer(x), pointer(w), pointer(b), pointer(t), relu)
            case .opaque(let k, let args, let t):
                let xs = args.map { v -> Tensor<Scalar> in
                    let s = nodes[v].shape
                    let storage = TensorStorage<Scalar>.make(count: shapeCount(s))
                    storage.base.update(from: pointer(v), count: storage.count)
                    return Tensor(storage: storage, shape: s)
                }
                let y = withoutGradients { graph.opaques[k].apply(xs) }
                require(y.shape == nodes[t].shape, "compiled program: \(graph.opaques[k].name) returned shape \(y.shape), traced as \(nodes[t].shape)")
                pointer(t).update(from: y.storage.base, count: y.count)
                withExtendedLifetime(y) {}
            }
        }
    }
}
