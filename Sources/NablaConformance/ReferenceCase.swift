import Foundation
import Nabla

/// A problem with a reference file, naming the file and (when known) the case.
public struct ReferenceFileError: Error, CustomStringConvertible {
    public var file: String
    public var caseID: String?
    public var message: String
    public var description: String {
        caseID.map { "\(file): case '\($0)': \(message)" } ?? "\(file): \(message)"
    }
}

/// A tensor as stored in a reference file.
public struct ReferenceTensor: Sendable {
    public var dtype: String
    public var shape: [Int]
    public var data: [Double]

    public var doubleTensor: Tensor<Double> { Tensor(shape: shape, scalars: data) }
    public var indexTensor: IndexTensor { IndexTensor(shape: shape, values: data.map { Int($0) }) }
}

/// One case of a reference file (see the format description shipped with the test fixtures).
public struct ReferenceCase: Sendable {
    public var file: String
    public var id: String
    public var kind: String
    public var rtol: Double
    public var atol: Double
    public var config: [String: JSONValue]
    public var inputs: [String: JSONValue]
    public var expected: [String: JSONValue]

    func fail(_ message: String) -> ReferenceFileError { ReferenceFileError(file: file, caseID: id, message: message) }

    static func parseTensor(_ v: JSONValue, _ what: String, _ c: ReferenceCase) throws -> ReferenceTensor {
        guard let o = v.object, let dtype = o["dtype"]?.string, let shapeV = o["shape"]?.array, let dataV = o["data"]?.array else {
            throw c.fail("\(what) is not a tensor object with dtype, shape and data")
        }
        let shape = try shapeV.map { d -> Int in
            guard let n = d.number, n >= 0, n == n.rounded() else { throw c.fail("\(what) has a bad shape entry") }
            return Int(n)
        }
        guard ["float64", "int64", "bool"].contains(dtype) else { throw c.fail("\(what) has unknown dtype '\(dtype)'") }
        let data = try dataV.map { d -> Double in
            if let n = d.number { return n }
            if let b = d.bool { return b ? 1 : 0 }
            throw c.fail("\(what) has a non-numeric element")
        }
        guard data.count == shape.reduce(1, *) else {
            throw c.fail("\(what) has \(data.count) elements but shape \(shape) needs \(shape.reduce(1, *))")
        }
        return ReferenceTensor(dtype: dtype, shape: shape, data: data)
    }

    // MARK: Inputs

    public func has(_ name: String) -> Bool { inputs[name] != nil && inputs[name]?.isNull == false }

    public func tensor(_ name: String) throws -> ReferenceTensor {
        guard let v = inputs[name] else { throw fail("missing input '\(name)'") }
        return try ReferenceCase.parseTensor(v, "input '\(name)'", self)
    }

    public func input(_ name: String) throws -> Tensor<Double> { try tensor(name).doubleTensor }
    public func index(_ name: String) throws -> IndexTensor { try tensor(name).indexTensor }

    public func tensorList(_ name: String) throws -> [Tensor<Double>] {
        guard let a = inputs[name]?.array else { throw fail("input '\(name)' is not a list of tensors") }
        return try a.enumerated().map { try ReferenceCase.parseTensor($1, "input '\(name)'[\($0)]", self).doubleTensor }
    }

    // MARK: Config

    public func number(_ key: String) throws -> Double {
        guard let v = config[key]?.number else { throw fail("config '\(key)' is missing or not a number") }
        return v
    }
    public func optionalNumber(_ key: String) throws -> Double? {
        guard let v = config[key], !v.isNull else { return nil }
        guard let n = v.number else { throw fail("config '\(key)' is not a number") }
        return n
    }
    public func int(_ key: String) throws -> Int { Int(try number(key)) }
    public func optionalInt(_ key: String) throws -> Int? { try optionalNumber(key).map { Int($0) } }
    public func bool(_ key: String) throws -> Bool {
        guard let v = config[key]?.bool else { throw fail("config '\(key)' is missing or not a boolean") }
        return v
    }
    public func string(_ key: String) throws -> String {
        guard let v = config[key]?.string else { throw fail("config '\(key)' is missing or not a string") }
        return v
    }
    /// An integer list, or a single integer repeated `count` times.
    public func ints(_ key: String, count: Int? = nil) throws -> [Int] {
        if let n = config[key]?.number { return Array(repeating: Int(n), count: count ?? 1) }
        guard let a = config[key]?.array else { throw fail("config '\(key)' is missing or not a list") }
        return try a.map { guard let n = $0.number else { throw fail("config '\(key)' has a non-number") }; return Int(n) }
    }
    /// `axis` as a list of axes: nil when null, one axis for a number, several for a list.
    public func axes(_ key: String = "axis") throws -> [Int]? {
        guard let v = config[key], !v.isNull else { return nil }
        return try ints(key)
    }

    // MARK: Expected values

    public func expectedTensor(_ path: [String]) throws -> ReferenceTensor? {
        var v: JSONValue? = .object(expected)
        for p in path { v = v?[p] }
        guard let v else { return nil }
        return try ReferenceCase.parseTensor(v, "expected '\(path.joined(separator: "."))'", self)
    }
}

/// A reference file: its cases in order.
public struct ReferenceFile: Sendable {
    public var path: String
    public var area: String
    public var cases: [ReferenceCase]

    public init(path: String) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ReferenceFileError(file: path, caseID: nil, message: "cannot read the file (\(error.localizedDescription))")
        }
        let root: JSONValue
        do { root = try JSONDecoder().decode(JSONValue.self, from: data) } catch {
            throw ReferenceFileError(file: path, caseID: nil, message: "not valid JSON (\(error))")
        }
        guard let o = root.object else { throw ReferenceFileError(file: path, caseID: nil, message: "the top level is not a JSON object") }
        guard o["format"]?.number == 1 else { throw ReferenceFileError(file: path, caseID: nil, message: "unsupported or missing 'format' (expected 1)") }
        guard let cases = o["cases"]?.array else { throw ReferenceFileError(file: path, caseID: nil, message: "missing 'cases' list") }
        self.path = path
        area = o["area"]?.string ?? ""
        self.cases = try cases.enumerated().map { i, c in
            guard let co = c.object, let id = co["id"]?.string else {
                throw ReferenceFileError(file: path, caseID: "#\(i)", message: "case has no string 'id'")
            }
            guard let kind = co["kind"]?.string else { throw ReferenceFileError(file: path, caseID: id, message: "case has no string 'kind'") }
            guard let tol = co["tolerance"]?.object, let rtol = tol["rtol"]?.number, let atol = tol["atol"]?.number else {
                throw ReferenceFileError(file: path, caseID: id, message: "case has no tolerance with rtol and atol")
            }
            return ReferenceCase(file: path, id: id, kind: kind, rtol: rtol, atol: atol,
                                 config: co["config"]?.object ?? [:], inputs: co["inputs"]?.object ?? [:],
                                 expected: co["expected"]?.object ?? [:])
        }
    }
}
