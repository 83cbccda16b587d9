import Foundation

/// Why a file's tensors do not fit a model: every missing, unexpected, mis-shaped and mis-typed
/// name, listed together.
public struct StateMismatchError: Error, CustomStringConvertible {
    public var path: String
    public var missing: [String] = []
    public var unexpected: [String] = []
    public var shapeMismatches: [(name: String, expected: [Int], found: [Int])] = []
    public var dtypeMismatches: [(name: String, expected: String, found: String)] = []

    public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && shapeMismatches.isEmpty && dtypeMismatches.isEmpty }

    public var description: String {
        var lines = ["\(path) does not match the model:"]
        if !missing.isEmpty { lines.append("  missing from the file: \(missing.joined(separator: ", "))") }
        if !unexpected.isEmpty { lines.append("  in the file but not in the model: \(unexpected.joined(separator: ", "))") }
        for m in shapeMismatches { lines.append("  \(m.name): the model has shape \(m.expected), the file \(m.found)") }
        for m in dtypeMismatches { lines.append("  \(m.name): the model holds \(m.expected), the file \(m.found)") }
        return lines.joined(separator: "\n")
    }
}

extension Module {
    /// Every parameter and buffer under its dotted name (F32 or F64; integer buffers as I64).
    public func archive(metadata: [String: String] = [:]) -> SafeTensors.Archive {
        var a = SafeTensors.Archive(metadata: metadata)
        for (n, p) in namedParameters { a.tensors[n] = StoredTensor(p.value) }
        for (n, b) in namedBuffers { a.tensors[n] = StoredTensor(b.value, asInteger: b.isInteger) }
        return a
    }

    /// Saves parameters and buffers as a safetensors file, atomically.
    public func save(to path: String, metadata: [String: String] = [:]) throws {
        try SafeTensors.write(archive(metadata: metadata), to: path)
    }

    /// Loads parameters and buffers from a safetensors file. Names, shapes and dtypes are all
    /// checked first and every problem reported at once; nothing changes unless all match.
    /// `convertingTypes` accepts floating-point tensors of another precision.
    public func load(from path: String, convertingTypes: Bool = false) throws {
        try load(SafeTensors.read(path), path: path, convertingTypes: convertingTypes)
    }

    public func load(_ archive: SafeTensors.Archive, path: String = "<archive>", convertingTypes: Bool = false) throws {
        let own: StoredDType = Scalar.self == Double.self ? .F64 : .F32
        var error = StateMismatchError(path: path)
        var targets: [(String, [Int], Bool, (Tensor<Scalar>) -> Void)] = []
        for (n, p) in namedParameters { targets.append((n, p.shape, false, { p.value = $0 })) }
        for (n, b) in namedBuffers { targets.append((n, b.value.shape, b.isInteger, { b.value = $0 })) }
        let known = Set(targets.map(\.0))
        error.unexpected = archive.tensors.keys.filter { !known.contains($0) }.sorted()
        for (name, shape, isInteger, _) in targets {
            guard let t = archive.tensors[name] else { error.missing.append(name); continue }
            if t.shape != shape { error.shapeMismatches.append((name, shape, t.shape)) }
            let fits = isInteger ? t.dtype.isInteger : (t.dtype == own || (convertingTypes && !t.dtype.isInteger))
            if !fits { error.dtypeMismatches.append((name, isInteger ? "integers" : own.rawValue, t.dtype.rawValue)) }
        }
        guard error.isEmpty else { throw error }
        for (name, _, _, assign) in targets { assign(archive.tensors[name]!.tensor()) }
    }
}

/// What ``Module/loadMatching(_:convertingTypes:)`` took from a file and what it left.
public struct StateLoadReport: Sendable, CustomStringConvertible {
    /// Names loaded from the file.
    public var loaded: [String] = []
    /// Names in both whose shapes differ (kept as initialized), with the model's and the file's shapes.
    public var shapeMismatches: [(name: String, model: [Int], file: [Int])] = []
    /// The model's names that the file lacks (kept as initialized).
    public var missing: [String] = []
    /// The file's names the model has no place for (ignored).
    public var unused: [String] = []

    public var description: String {
        var lines = ["loaded \(loaded.count) tensors\(loaded.isEmpty ? "" : ": " + loaded.joined(separator: ", "))"]
        for m in shapeMismatches { lines.append("kept as initialized: \(m.name) (the model has shape \(m.model), the file \(m.file))") }
        if !missing.isEmpty { lines.append("kept as initialized (not in the file): \(missing.joined(separator: ", "))") }
        if !unused.isEmpty { lines.append("ignored (not in the model): \(unused.joined(separator: ", "))") }
        return lines.joined(separator: "\n")
    }
}

extension Module {
    /// Loads the tensors of `archive` whose names and shapes match this model's, for fine-tuning
    /// from another model: everything else stays as initialized, and the report says what was
    /// loaded and what was not. Floating-point tensors of another precision are converted when
    /// `convertingTypes`.
    @discardableResult
    public func loadMatching(_ archive: SafeTensors.Archive, convertingTypes: Bool = true) -> StateLoadReport {
        var report = StateLoadReport()
        let own: StoredDType = Scalar.self == Double.self ? .F64 : .F32
        var known = Set<String>()
        func take(_ name: String, _ shape: [Int], _ isInteger: Bool, _ assign: (Tensor<Scalar>) -> Void) {
            known.insert(name)
            guard let t = archive.tensors[name] else { report.missing.append(name); return }
            guard t.shape == shape else { report.shapeMismatches.append((name, shape, t.shape)); return }
            let fits = isInteger ? t.dtype.isInteger : (t.dtype == own || (convertingTypes && !t.dtype.isInteger))
            guard fits else { report.shapeMismatches.append((name, shape, t.shape)); return }
            assign(t.tensor())
            report.loaded.append(name)
        }
        for (n, p) in namedParameters { take(n, p.shape, false) { p.value = $0 } }
        for (n, b) in namedBuffers { take(n, b.value.shape, b.isInteger) { b.value = $0 } }
        report.unused = archive.tensors.keys.filter { !known.contains($0) }.sorted()
        return report
    }

    /// Freezes the parameters named by `selectors`: a number k is the k-th ``Linear`` layer (from
    /// 0, in order), a name is a parameter or everything under a module of that name (`0`,
    /// `encoder.1`). Throws naming the selectors that match nothing. Returns the frozen names.
    @discardableResult
    public func freeze(selectors: [String]) throws -> [String] {
        let named = namedParameters
        let linears = namedModules.filter { $0.module is Linear<Scalar> }
        var frozen: [String] = [], unmatched: [String] = []
        for selector in selectors {
            let prefix: String
            if let k = Int(selector) {
                guard k >= 0 && k < linears.count else { unmatched.append(selector); continue }
                prefix = linears[k].name
            } else {
                prefix = selector
            }
            let hits = named.filter { $0.name == prefix || $0.name.hasPrefix(prefix + ".") }
            if hits.isEmpty { unmatched.append(selector); continue }
            for (name, p) in hits { p.isFrozen = true; p.gradient = nil; frozen.append(name) }
        }
        guard unmatched.isEmpty else {
            throw RunSettingsError("freeze: \(unmatched.joined(separator: ", ")) match no layer (\(linears.count) linear layers, numbered from 0; parameters: \(named.map(\.name).joined(separator: ", ")))")
        }
        return frozen
    }
}

extension Optimizer {
    /// The optimizer's state for `model`'s parameters: `state.<parameter>.<slot>` tensors, with
    /// the step counts in the metadata.
    public func archive(for model: Module<Scalar>) -> SafeTensors.Archive {
        let names = model.namedParameters.map(\.name)
        var a = SafeTensors.Archive(metadata: ["nabla.optimizer.step_count": String(stepCount)])
        for (i, s) in states.enumerated() where i < names.count {
            a.metadata["nabla.optimizer.steps.\(names[i])"] = String(s.step)
            for (slot, t) in s.slots { a.tensors["state.\(names[i]).\(slot)"] = StoredTensor(t) }
        }
        return a
    }

    public func save(to path: String, for model: Module<Scalar>) throws {
        try SafeTensors.write(archive(for: model), to: path)
    }

    /// Restores state saved by ``save(to:for:)`` for the same model; a file for another model (or
    /// none at all) is an error and changes nothing.
    public mutating func load(from path: String, for model: Module<Scalar>) throws {
        try restore(SafeTensors.read(path), for: model, path: path)
    }

    public mutating func restore(_ archive: SafeTensors.Archive, for model: Module<Scalar>, path: String = "<archive>") throws {
        func fail(_ m: String) -> TensorFileError { TensorFileError(path: path, message: m) }
        guard let countText = archive.metadata["nabla.optimizer.step_count"], let count = Int(countText) else {
            throw fail("not an optimizer state file (no step count in its metadata)")
        }
        let params = model.namedParameters
        var restored: [ParameterState<Scalar>] = []
        var used = Set<String>()
        for (name, p) in params {
            var s = ParameterState<Scalar>()
            if let steps = archive.metadata["nabla.optimizer.steps.\(name)"] {
                guard let n = Int(steps) else { throw fail("bad step count for '\(name)'") }
                s.step = n
            }
            for (key, t) in archive.tensors where key.hasPrefix("state.\(name).") {
                let slot = String(key.dropFirst("state.\(name).".count))
                guard !slot.contains(".") || !params.contains(where: { key.hasPrefix("state.\($0.name).") && $0.name.count > name.count }) else { continue }
                guard t.shape == p.shape else { throw fail("state '\(key)' has shape \(t.shape) but the parameter has \(p.shape)") }
                s.slots[slot] = t.tensor()
                used.insert(key)
            }
            restored.append(s)
        }
        let extra = archive.tensors.keys.filter { !used.contains($0) }.sorted()
        guard extra.isEmpty else { throw fail("state for parameters the model does not have: \(extra.joined(separator: ", "))") }
        states = restored
        stepCount = count
    }
}
