/// A trainable tensor of a ``Module``: its value, the gradient of the last backward pass
/// (``Module/valueWithGradient(_:)``), and whether it is frozen.
///
/// Parameters are reference types so that a model's stored properties can be found and updated
/// in place by name (`encoder.0.weight`) without registration code.
public final class Parameter<Scalar: TensorScalar> {
    public var value: Tensor<Scalar>
    /// Set by a backward pass through ``Module/valueWithGradient(_:)``; nil for frozen parameters.
    public var gradient: Tensor<Scalar>?
    /// A frozen parameter gets no gradient and is left alone by optimizers.
    public var isFrozen = false

    public init(_ value: Tensor<Scalar>) { self.value = value.detached() }

    public var shape: [Int] { value.shape }
}

/// State of a module that is not trained by gradients (running statistics, counters). Saved and
/// loaded with the parameters; `isInteger` buffers are stored as 64-bit integers in files.
public final class Buffer<Scalar: TensorScalar> {
    public var value: Tensor<Scalar>
    public let isInteger: Bool

    public init(_ value: Tensor<Scalar>, isInteger: Bool = false) {
        self.value = value.detached()
        self.isInteger = isInteger
    }
}

/// The base of every layer and model.
///
/// A module's parameters, buffers and submodules are its stored properties, found by reflection:
/// declare `let weight: Parameter<Float>` or `let encoder: Sequential<Float>` and they are listed,
/// named, saved, loaded and optimized. Arrays and optionals of modules and parameters work too
/// (`blocks.0.attention.inProjWeight`).
///
/// ```swift
/// final class TwoLayer: Module<Float> {
///     let hidden = Linear<Float>(inputSize: 4, outputSize: 16)
///     let output = Linear<Float>(inputSize: 16, outputSize: 3)
///     func callAsFunction(_ x: Tensor<Float>) -> Tensor<Float> { output(hidden(x).tanh()) }
/// }
/// ```
open class Module<Scalar: TensorScalar> {
    /// Training mode (dropout active, batch statistics) or evaluation mode. Set it on a whole
    /// model with ``train()`` and ``eval()``.
    public var isTraining = true

    public init() {}

    /// Direct children by name: parameters, buffers and modules (anything else is ignored).
    /// The default reads the stored properties; override it to name children differently.
    open func namedChildren() -> [(String, Any)] {
        var out: [(String, Any)] = []
        var mirror: Mirror? = Mirror(reflecting: self)
        var levels: [[(String, Any)]] = []
        while let m = mirror {
            var level: [(String, Any)] = []
            for child in m.children {
                guard let label = child.label, !label.hasPrefix("$__lazy") else { continue }
                level.append((label.hasPrefix("_") ? String(label.dropFirst()) : label, child.value))
            }
            levels.append(level)
            mirror = m.superclassMirror
        }
        // Superclass properties first, as they were declared first.
        for level in levels.reversed() { out += level }
        return out
    }

    // MARK: Walking the tree

    /// Visits every parameter, buffer and module below this one, each once, in declaration order.
    func walk(prefix: String = "", seen: inout Set<ObjectIdentifier>,
              parameter: (String, Parameter<Scalar>) -> Void, buffer: (String, Buffer<Scalar>) -> Void,
              module: (String, Module<Scalar>) -> Void) {
        func visit(_ name: String, _ value: Any) {
            if let p = value as? Parameter<Scalar> {
                if seen.insert(ObjectIdentifier(p)).inserted { parameter(name, p) }
            } else if let b = value as? Buffer<Scalar> {
                if seen.insert(ObjectIdentifier(b)).inserted { buffer(name, b) }
            } else if let m = value as? Module<Scalar> {
                if seen.insert(ObjectIdentifier(m)).inserted {
                    module(name, m)
                    m.walk(prefix: name + ".", seen: &seen, parameter: parameter, buffer: buffer, module: module)
                }
            } else {
                let mirror = Mirror(reflecting: value)
                switch mirror.displayStyle {
                case .collection?:
                    for (i, c) in mirror.children.enumerated() { visit("\(name).\(i)", c.value) }
                case .optional?:
                    if let c = mirror.children.first { visit(name, c.value) }
                default: break
                }
            }
        }
        for (label, value) in namedChildren() { visit(prefix + label, value) }
    }

    /// Every parameter with its dotted name (`layers.0.weight`), in declaration order.
    public var namedParameters: [(name: String, parameter: Parameter<Scalar>)] {
        var out: [(String, Parameter<Scalar>)] = []
        var seen = Set<ObjectIdentifier>()
        walk(seen: &seen, parameter: { out.append(($0, $1)) }, buffer: { _, _ in }, module: { _, _ in })
        return out
    }

    /// Every buffer with its dotted name.
    public var namedBuffers: [(name: String, buffer: Buffer<Scalar>)] {
        var out: [(String, Buffer<Scalar>)] = []
        var seen = Set<ObjectIdentifier>()
        walk(seen: &seen, parameter: { _, _ in }, buffer: { out.append(($0, $1)) }, module: { _, _ in })
        return out
    }

    /// Every module below this one (not including it) with its dotted name.
    public var namedModules: [(name: String, module: Module<Scalar>)] {
        var out: [(String, Module<Scalar>)] = []
        var seen = Set<ObjectIdentifier>([ObjectIdentifier(self)])
        walk(seen: &seen, parameter: { _, _ in }, buffer: { _, _ in }, module: { out.append(($0, $1)) })
        return out
    }

    public var parameters: [Parameter<Scalar>] { namedParameters.map(\.parameter) }

    /// The parameters as the training hot path sees them: found once and remembered (like an
    /// optimizer that is handed a model's parameters once). Call ``refreshParameters()`` after
    /// replacing a submodule or a parameter object of a module that has already been trained.
    var trainingParameters: [Parameter<Scalar>] {
        if let cached = parameterCache.list { return cached }
        let list = parameters
        parameterCache.list = list
        return list
    }
    /// A box, so that the walk over stored properties does not see the remembered list.
    final class ParameterCache { var list: [Parameter<Scalar>]? }
    let parameterCache = ParameterCache()

    /// Forgets the remembered parameter list (see ``valueWithGradient(_:)``); needed only after
    /// the module's structure changed.
    public func refreshParameters() { parameterCache.list = nil }
    public var trainableParameters: [Parameter<Scalar>] { parameters.filter { !$0.isFrozen } }

    /// The number of scalars in all parameters (or only the trainable ones).
    public func parameterCount(trainableOnly: Bool = false) -> Int {
        parameters.filter { !trainableOnly || !$0.isFrozen }.reduce(0) { $0 + $1.value.count }
    }

    /// Training mode for this module and everything below it.
    public func train() { setTraining(true) }
    /// Evaluation mode for this module and everything below it.
    public func eval() { setTraining(false) }
    public func setTraining(_ training: Bool) {
        isTraining = training
        for (_, m) in namedModules { m.isTraining = training }
    }

    /// Freezes (or unfreezes) every parameter below this module.
    public func freeze(_ frozen: Bool = true) {
        for p in parameters {
            p.isFrozen = frozen
            if frozen { p.gradient = nil }
        }
    }

    // MARK: Gradients

    /// Clears every parameter's stored gradient.
    public func clearGradients() { for p in parameters { p.gradient = nil } }

    /// The norm of each parameter's stored gradient, by name (parameters without one are left out).
    public var gradientNorms: [(name: String, norm: Double)] {
        namedParameters.compactMap { name, p in
            p.gradient.map { g in (name, g.withUnsafeBufferPointer { b in b.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }) }
        }
    }

    /// A copy of every parameter's and buffer's value, by name (a state dictionary).
    public func stateDictionary() -> [String: Tensor<Scalar>] {
        var out: [String: Tensor<Scalar>] = [:]
        for (n, p) in namedParameters { out[n] = p.value }
        for (n, b) in namedBuffers { out[n] = b.value }
        return out
    }
}

/// A module that maps one tensor to one tensor, the kind ``Sequential`` chains.
public protocol Layer<Scalar>: AnyObject {
    associatedtype Scalar: TensorScalar
    func callAsFunction(_ input: Tensor<Scalar>) -> Tensor<Scalar>
}

/// Layers applied one after the other. Its children are named by position: `0.weight`, `2.bias`.
public final class Sequential<Scalar: TensorScalar>: Module<Scalar>, Layer {
    public let layers: [any Layer<Scalar>]

    public init(_ layers: [any Layer<Scalar>]) {
        self.layers = layers
        super.init()
    }
    public convenience init(_ layers: any Layer<Scalar>...) { self.init(layers) }

    /// Each layer in turn; a `Linear` followed by a ReLU runs as one dense-ReLU primitive
    /// (the same values, one pass over the output fewer).
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public func callAsFunction(_ input: Tensor<Scalar>) -> Tensor<Scalar> {
        var x = input, i = 0
        while i < layers.count {
            if let linear = layers[i] as? Linear<Scalar>, i + 1 < layers.count,
               let next = layers[i + 1] as? Activation<Scalar>, next.kind == .relu {
                x = linear(x, thenReLU: true)
                i += 2
            } else {
                x = layers[i](x)
                i += 1
            }
        }
        return x
    }

    public override func namedChildren() -> [(String, Any)] {
        layers.enumerated().map { (String($0.offset), $0.element as Any) }
    }
}

/// Gives every module methods that mention its own type (``valueWithGradient(_:)``).
public protocol ModuleProtocol: AnyObject {}
extension Module: ModuleProtocol {}

extension ModuleProtocol {
    /// Evaluates `loss` (a scalar computed from this module) and stores the gradient of the
    /// result in each trainable parameter's ``Parameter/gradient``.
    ///
    /// ```swift
    /// let loss = model.valueWithGradient { m in crossEntropy(logits: m(x), targets: y) }
    /// optimizer.step(model)
    /// ```
    @discardableResult
    public func valueWithGradient<Scalar>(_ loss: (Self) throws -> Tensor<Scalar>) rethrows -> Tensor<Scalar> where Self: Module<Scalar> {
        try (self as Module<Scalar>).recordedValueWithGradient { try loss(self) }
    }
}

extension Module {
    /// ``ModuleProtocol/valueWithGradient(_:)`` without `Self`, so that it is specialized for
    /// the element types (generic code looks up type metadata on every call).
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    func recordedValueWithGradient(_ loss: () throws -> Tensor<Scalar>) rethrows -> Tensor<Scalar> {
        try recordedValueWithGradient(loss, onGradientReady: nil)
    }

    /// ``ModuleProtocol/valueWithGradient(_:)`` that also calls `onGradientReady(i, gradient)`
    /// during the backward pass, as soon as the gradient of ``trainableParameters``[i] is final
    /// (nil: the loss does not depend on it), before the gradients of the parameters it comes
    /// after (those nearer the input) are computed. Data-parallel training starts sending each
    /// gradient then, so communication overlaps the rest of the backward pass.
    @discardableResult
    public func valueWithGradient(_ loss: () throws -> Tensor<Scalar>,
                                  onGradientReady: @escaping (Int, Tensor<Scalar>?) -> Void) rethrows -> Tensor<Scalar> {
        try recordedValueWithGradient(loss, onGradientReady: onGradientReady)
    }

    func recordedValueWithGradient(_ loss: () throws -> Tensor<Scalar>, onGradientReady: ((Int, Tensor<Scalar>?) -> Void)?) rethrows -> Tensor<Scalar> {
        let trainable = trainingParameters.filter { !$0.isFrozen }
        for p in trainable { p.value = p.value.requiringGradient() }
        defer { for p in trainable { p.value = p.value.detached() } }
        let value = try withGradientRecording(true) { try loss() }
        require(value.count == 1, "Module.valueWithGradient: the loss has shape \(value.shape); it must be a scalar")
        let grads = Backpropagation.run(output: value, seed: Tensor(repeating: 1, shape: value.shape), targets: trainable.map { $0.value.node! }, keepingGraph: false,
                                        onTargetReady: onGradientReady)
        for (p, g) in zip(trainable, grads) { p.gradient = g ?? Tensor(repeating: 0, shape: p.shape) }
        return value.detached()
    }

}

extension Sequential {
    /// The inputs of the last layer and its outputs (features and logits of a classifier), in
    /// one pass without recording.
    public func lastLayerInputsAndOutputs(_ x: Tensor<Scalar>) -> (inputs: Tensor<Scalar>, outputs: Tensor<Scalar>) {
        require(!layers.isEmpty, "Sequential.lastLayerInputsAndOutputs: the network has no layers")
        return withoutGradients {
            let h = layers.dropLast().reduce(x) { $1($0) }
            return (h, layers.last!(h))
        }
    }
}

extension Module: CustomStringConvertible {
    /// The module tree with each module's own parameters (name and shape) and parameter
    /// counts, as `print(model)` shows it:
    ///
    ///     Classifier: 2,410 parameters
    ///       encoder: Sequential (2,080)
    ///         0: Linear  weight [32, 64], bias [32]  (2,080)
    ///         1: Activation
    ///       head: Linear  weight [10, 32], bias [10]  (330)
    public var description: String {
        let parameters = namedParameters
        func typeName(_ m: Module) -> String { String(String(describing: type(of: m)).prefix { $0 != "<" }) }
        func grouped(_ n: Int) -> String {
            let digits = Array(String(n))
            return String(digits.enumerated().flatMap { i, c in (i > 0 && (digits.count - i) % 3 == 0 ? [","] : []) + [c] })
        }
        func count(under prefix: String) -> Int {
            parameters.filter { $0.name.hasPrefix(prefix + ".") }.reduce(0) { $0 + $1.parameter.value.count }
        }
        func own(_ prefix: String) -> String {
            parameters.compactMap { entry -> String? in
                let rest = prefix.isEmpty ? entry.name : entry.name.hasPrefix(prefix + ".") ? String(entry.name.dropFirst(prefix.count + 1)) : nil
                guard let rest, !rest.contains(".") else { return nil }
                return "\(rest) \(entry.parameter.shape)\(entry.parameter.isFrozen ? " (frozen)" : "")"
            }.joined(separator: ", ")
        }
        let total = parameters.reduce(0) { $0 + $1.parameter.value.count }
        var lines = ["\(typeName(self)): \(grouped(total)) parameter\(total == 1 ? "" : "s")" + (own("").isEmpty ? "" : "  " + own(""))]
        for (name, module) in namedModules {
            let depth = name.split(separator: ".").count
            let mine = own(name), n = count(under: name)
            lines.append(String(repeating: "  ", count: depth) + "\(name.split(separator: ".").last!): \(typeName(module))"
                         + (mine.isEmpty ? "" : "  " + mine) + (n > 0 ? "  (\(grouped(n)))" : ""))
        }
        return lines.joined(separator: "\n")
    }
}

extension Sequential {
    /// The network's outputs for the rows of `x`, computed `rows` at a time and joined: the values
    /// of `self(x)` (to the rounding of products of other shapes) for layers that treat rows
    /// independently, as in evaluation mode, without the activations of every row at once —
    /// gigabytes for a convolutional network over a whole data set. Chunks of 64 rows keep a
    /// convolution's window matrices in the buffer cache (512 rows took 25 % longer, in page faults).
    public func outputs(_ x: Tensor<Scalar>, rows chunk: Int = 64) -> Tensor<Scalar> {
        require(chunk >= 1, "Sequential.outputs: rows must be at least 1, got \(chunk)")
        let n = x.shape.first ?? 0
        guard n > chunk else { return self(x) }
        return Tensor.concatenate(stride(from: 0, to: n, by: chunk).map { self(x.slice(axis: 0, start: $0, end: Swift.min($0 + chunk, n))) }, axis: 0)
    }
}
