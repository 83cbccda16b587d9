import Foundation

/// How the next token is drawn from the model's logits.
public struct SamplingOptions: Sendable {
    /// Softmax temperature; 0 means greedy (the most likely token every time).
    public var temperature: Double
    /// Keep only the `topK` most likely tokens (nil: all).
    public var topK: Int?
    public var seed: UInt64
    /// GPT: reuse the keys and values of earlier positions (a KV cache) instead of running the
    /// whole window again for every token.
    public var useCache: Bool

    public init(temperature: Double = 0.8, topK: Int? = 40, seed: UInt64 = 0, useCache: Bool = true) {
        (self.temperature, self.topK, self.seed, self.useCache) = (temperature, topK, seed, useCache)
    }

    public func check() throws {
        guard temperature >= 0, temperature.isFinite else { throw TextError("--temperature must be ≥ 0 (0 is greedy), got \(temperature)") }
        if let k = topK, k < 1 { throw TextError("--top-k must be at least 1, got \(k)") }
    }
}

extension AnyLanguageModel {
    /// Continues `prompt` (token ids, at least one) by `count` tokens, calling `onToken` with each
    /// as it is drawn (to stream it); returns the new tokens. GPT reads at most its context: past
    /// it, the cached generation starts a fresh cache from the last half-context of tokens.
    public func generate(prompt: [Int], count: Int, options: SamplingOptions, onToken: (Int) -> Void = { _ in }) throws -> [Int] {
        try options.check()
        guard !prompt.isEmpty else { throw TextError("the prompt is empty; give at least one character") }
        var g = RandomGenerator(seed: options.seed)
        var tokens = prompt
        var out: [Int] = []
        module.eval()
        defer { module.train() }
        switch self {
        case .gpt(let m):
            let context = m.configuration.contextLength
            if options.useCache {
                // The prompt in one pass; when the context is full, a fresh cache of the last
                // half-context, in one pass again.
                var (logits, cache) = m.prefill(Array(tokens.suffix(context)))
                func refill() { (logits, cache) = m.prefill(Array(tokens.suffix(context / 2 + 1))) }
                for _ in 0..<count {
                    let next = AnyLanguageModel.draw(logits, options, &g)
                    tokens.append(next); out.append(next); onToken(next)
                    if cache.count >= context { refill() } else { logits = m.nextLogits(after: next, cache: &cache) }
                }
            } else {
                for _ in 0..<count {
                    let window = Array(tokens.suffix(context))
                    let logits = withoutGradients { m(IndexTensor(shape: [1, window.count], values: window)) }
                    let next = AnyLanguageModel.draw(logits.slice(axis: 1, start: window.count - 1, end: window.count).reshaped(to: [m.vocabularySize]), options, &g)
                    tokens.append(next); out.append(next); onToken(next)
                }
            }
        case .lstm(let m):
            var (logits, state) = withoutGradients { m.run(IndexTensor(shape: [1, tokens.count], values: tokens), state: nil) }
            var last = logits.slice(axis: 1, start: tokens.count - 1, end: tokens.count).reshaped(to: [m.vocabularySize])
            for _ in 0..<count {
                let next = AnyLanguageModel.draw(last, options, &g)
                out.append(next); onToken(next)
                (logits, state) = withoutGradients { m.run(IndexTensor(shape: [1, 1], values: [next]), state: state) }
                last = logits.reshaped(to: [m.vocabularySize])
            }
        }
        return out
    }

    /// A token from `logits` [V]: greedy at temperature 0, else softmax(logits / T) over the top k.
    static func draw(_ logits: Tensor<Float>, _ o: SamplingOptions, _ g: inout RandomGenerator) -> Int {
        let values = logits.scalars.map(Double.init)
        if o.temperature == 0 { return values.indices.max { values[$0] < values[$1] || (values[$0] == values[$1] && $0 > $1) }! }
        var order = Array(values.indices)
        if let k = o.topK, k < values.count {
            order.sort { values[$0] > values[$1] || (values[$0] == values[$1] && $0 < $1) }
            order = Array(order.prefix(k))
        }
        let top = order.map { values[$0] / o.temperature }
        let peak = top.max()!
        let weights = top.map { Foundation.exp($0 - peak) }
        var u = g.nextUniform() * weights.reduce(0, +)
        for (i, w) in weights.enumerated() {
            u -= w
            if u <= 0 { return order[i] }
        }
        return order[order.count - 1]
    }
}
