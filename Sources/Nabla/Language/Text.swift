import Foundation

/// A text cannot be used for a language model: empty, not UTF-8, too short, or a prompt with
/// characters the model does not know.
public struct TextError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(_ message: String) { self.message = message }
}

/// Characters ↔ token ids: the vocabulary is the text's distinct characters (Unicode scalars)
/// sorted by code point, so for plain ASCII text "\n" comes first, then " ".
public struct CharacterTokenizer: Sendable, Codable, Equatable {
    /// The vocabulary, in id order.
    public let characters: [String]
    let index: [UInt32: Int]

    enum CodingKeys: String, CodingKey { case characters }

    public init(text: String) throws {
        let scalars = Set(text.unicodeScalars.map(\.value))
        guard !scalars.isEmpty else { throw TextError("the text is empty") }
        try self.init(characters: scalars.sorted().map { String(Unicode.Scalar($0)!) })
    }

    public init(characters: [String]) throws {
        var index: [UInt32: Int] = [:]
        for (i, c) in characters.enumerated() {
            guard c.unicodeScalars.count == 1, let s = c.unicodeScalars.first else { throw TextError("vocabulary entry \(i) (\(c.debugDescription)) is not one character") }
            guard index.updateValue(i, forKey: s.value) == nil else { throw TextError("the vocabulary lists \(c.debugDescription) twice") }
        }
        guard !characters.isEmpty else { throw TextError("the vocabulary is empty") }
        self.characters = characters
        self.index = index
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(characters: c.decode([String].self, forKey: .characters))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(characters, forKey: .characters)
    }

    public var count: Int { characters.count }

    /// The ids of `text`; throws naming the characters outside the vocabulary.
    public func encode(_ text: String) throws -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(text.unicodeScalars.count)
        var unknown: [String] = []
        for s in text.unicodeScalars {
            if let i = index[s.value] { ids.append(i) } else if unknown.count < 10, !unknown.contains(String(s)) { unknown.append(String(s)) }
        }
        guard unknown.isEmpty else {
            throw TextError("\(unknown.map { $0.debugDescription }.joined(separator: ", ")) \(unknown.count == 1 ? "is" : "are") not in the model's vocabulary of \(count) characters")
        }
        return ids
    }

    public func decode(_ ids: [Int]) -> String { ids.map { characters[$0] }.joined() }
}

/// A text as token ids, split by position into training (the first 90 %) and validation (the
/// rest), with random context windows for batches.
public struct TextCorpus: Sendable {
    public let tokenizer: CharacterTokenizer
    public let train: [Int]
    public let validation: [Int]

    /// Reads a UTF-8 text file (checked) and tokenizes it with its own vocabulary, or with
    /// `tokenizer` (a resumed run's).
    public init(file path: String, tokenizer: CharacterTokenizer? = nil, trainFraction: Double = 0.9) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw TextError("\(path): cannot read the file") }
        guard !data.isEmpty else { throw TextError("\(path) is empty") }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TextError("\(path) is not UTF-8 text (a binary file?); give a plain text file")
        }
        if text.unicodeScalars.contains(where: { $0.value == 0 }) { throw TextError("\(path) holds NUL bytes: a binary file, not text") }
        try self.init(text: text, tokenizer: tokenizer, trainFraction: trainFraction, name: path)
    }

    public init(text: String, tokenizer: CharacterTokenizer? = nil, trainFraction: Double = 0.9, name: String = "the text") throws {
        guard !text.isEmpty else { throw TextError("\(name) is empty") }
        let t = try tokenizer ?? CharacterTokenizer(text: text)
        let ids: [Int]
        do { ids = try t.encode(text) } catch let e as TextError { throw TextError("\(name): \(e.message)") }
        let cut = Int(trainFraction * Double(ids.count))
        self.tokenizer = t
        train = Array(ids[..<cut])
        validation = Array(ids[cut...])
    }

    /// Checks that both parts hold at least one window of `context` + 1 tokens.
    public func check(context: Int) throws {
        for (name, part) in [("training", train), ("validation", validation)] where part.count < context + 1 {
            throw TextError("the \(name) part has \(part.count) characters, fewer than one window of \(context) + 1; give a longer text or a shorter --context")
        }
    }

    /// `size` windows of `context` tokens from `part`, starting at uniform random positions:
    /// inputs [B, T] and targets [B, T] (the inputs shifted by one).
    public static func batch(from part: [Int], size: Int, context: Int, generator: inout RandomGenerator) -> (inputs: IndexTensor, targets: IndexTensor) {
        var x: [Int] = [], y: [Int] = []
        x.reserveCapacity(size * context)
        y.reserveCapacity(size * context)
        for _ in 0..<size {
            let start = generator.nextInt(below: part.count - context)
            x.append(contentsOf: part[start..<(start + context)])
            y.append(contentsOf: part[(start + 1)..<(start + context + 1)])
        }
        return (IndexTensor(shape: [size, context], values: x), IndexTensor(shape: [size, context], values: y))
    }
}

extension TextCorpus {
    /// The bundled corpus: eight Shakespeare plays, 1,036,483 characters (public domain).
    public static var bundledShakespearePath: String? {
        Bundle.module.url(forResource: "shakespeare", withExtension: "txt", subdirectory: "Resources/datasets")?.path
    }
}
