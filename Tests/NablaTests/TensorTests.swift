import Nabla
import Testing

@Suite struct TensorTests {
    @Test func nestedLiteralsAndShapes() {
        let t: Tensor<Double> = [[1, 2, 3], [4, 5, 6]]
        #expect(t.shape == [2, 3])
        #expect(t.scalars == [1, 2, 3, 4, 5, 6])
        #expect(t[element: 1, 2] == 6)
        #expect(t[1].scalars == [4, 5, 6])
        #expect(t.rows == [[1, 2, 3], [4, 5, 6]])
        let s: Tensor<Float> = 2.5
        #expect(s.shape == [] && s.scalar == 2.5)
    }

    @Test func creation() {
        #expect(Tensor<Double>.zeros(shape: [2, 2]).scalars == [0, 0, 0, 0])
        #expect(Tensor<Float>.ones(shape: [3]).scalars == [1, 1, 1])
        #expect(Tensor<Double>.full(shape: [2], value: 7).scalars == [7, 7])
        #expect(Tensor<Double>.arange(0, 1, step: 0.25).scalars == [0, 0.25, 0.5, 0.75])
        #expect(Tensor<Double>.arange(5, 0, step: -2).scalars == [5, 3, 1])
        #expect(Tensor<Double>.linspace(0, 1, count: 5).scalars == [0, 0.25, 0.5, 0.75, 1])
        #expect(Tensor<Double>.identity(3).scalars == [1, 0, 0, 0, 1, 0, 0, 0, 1])
    }

    @Test func copyOnWriteKeepsValueSemantics() {
        let a: Tensor<Double> = [1, 2, 3]
        var b = a
        b[element: 0] = 10
        #expect(a.scalars == [1, 2, 3])
        #expect(b.scalars == [10, 2, 3])
        let c = a.reshaped(to: [3, 1])
        b = c
        b[element: 2, 0] = -1
        #expect(a.scalars == [1, 2, 3] && c.scalars == [1, 2, 3])
    }

    @Test func broadcastingFollowsNumPy() {
        let a = Tensor<Double>(shape: [2, 1, 3], scalars: [1, 2, 3, 4, 5, 6])
        let b = Tensor<Double>(shape: [4, 1], scalars: [10, 20, 30, 40])
        let c = a + b
        #expect(c.shape == [2, 4, 3])
        #expect(c[element: 1, 2, 0] == 4 + 30)
        #expect(broadcastShapes([3, 1], [2, 1, 4]) == [2, 3, 4])
        #expect(broadcastShapes([3], [4]) == nil)
        #expect((a * 2).scalars == [2, 4, 6, 8, 10, 12])
    }

    @Test func slicingTransposeConcatenateStack() {
        let t = Tensor<Double>.arange(0, 12).reshaped(to: [3, 4])
        #expect(t.slice([(0, 3, 2), (1, 4, 2)]).scalars == [1, 3, 9, 11])
        #expect(t.slice(axis: 1, start: -2, end: 4).scalars == [2, 3, 6, 7, 10, 11])
        #expect(t.T.shape == [4, 3] && t.T[element: 3, 1] == 7)
        #expect(t.permuted([1, 0]).scalars == t.T.scalars)
        let c = Tensor.concatenate([t, t * 0], axis: 1)
        #expect(c.shape == [3, 8] && c[element: 2, 3] == 11 && c[element: 2, 7] == 0)
        let s = Tensor.stack([t, t], axis: 2)
        #expect(s.shape == [3, 4, 2] && s[element: 1, 1, 1] == 5)
        #expect(t.expandingDimension(at: 0).shape == [1, 3, 4])
        #expect(t.reshaped(to: [2, -1]).shape == [2, 6])
    }

    @Test func gatherIndexSelectWhereClampComparisons() {
        let t: Tensor<Double> = [[1, 2, 3], [4, 5, 6]]
        #expect(t.gather(axis: 1, index: IndexTensor(shape: [2, 2], values: [2, 0, 1, 1])).scalars == [3, 1, 5, 5])
        #expect(t.indexSelect(axis: 1, indices: [2, 2, 0]).scalars == [3, 3, 1, 6, 6, 4])
        #expect((t .> 3).scalars == [0, 0, 0, 1, 1, 1])
        #expect(Tensor.where(t .>= 5, t, Tensor(0)).scalars == [0, 0, 0, 0, 5, 6])
        #expect(t.clamped(min: 2, max: 5).scalars == [2, 2, 3, 4, 5, 5])
        #expect(t.argmax(axis: 1) == [2, 2])
    }

    @Test func reductions() {
        let t: Tensor<Double> = [[1, 5, 3], [4, 2, 6]]
        #expect(t.sum().scalar == 21)
        #expect(t.sum(axis: 0).scalars == [5, 7, 9])
        #expect(t.mean(axis: 1, keepingDimensions: true).shape == [2, 1])
        #expect(t.max(axes: [1]).scalars == [5, 6])
        #expect(t.min().scalar == 1)
        #expect(isClose(t.variance(axes: [1], correction: 0).scalars, [8.0 / 3, 8.0 / 3]))
        #expect(isClose(t.softmax(axis: 1).sum(axis: 1).scalars, [1, 1]))
    }

    @Test func descriptionIsReadable() {
        let t: Tensor<Double> = [[1, 2], [3, 4.5]]
        #expect(t.description == "[[1.0, 2.0],\n [3.0, 4.5]]")
        #expect(Tensor<Float>.arange(0, 20).description.contains("..."))
    }

    @Test func floatAndDoubleAgree() {
        let d = randn([4, 5], seed: 3)
        let f = Tensor<Float>(converting: d)
        let viaFloat = Tensor<Double>(converting: (f.tanh() * f).sum(axis: 1))
        #expect(isClose(viaFloat, (d.tanh() * d).sum(axis: 1), tolerance: 1e-5))
    }

    @Test func randomGeneratorIsSeededAndWellDistributed() {
        var a = RandomGenerator(seed: 42), b = RandomGenerator(seed: 42), c = RandomGenerator(seed: 43)
        let x = Tensor<Double>.normal(shape: [20000], using: &a)
        let y = Tensor<Double>.normal(shape: [20000], using: &b)
        let z = Tensor<Double>.normal(shape: [20000], using: &c)
        #expect(x.scalars == y.scalars)
        #expect(x.scalars != z.scalars)
        #expect(Swift.abs(x.mean().scalar) < 0.03)
        #expect(Swift.abs(x.standardDeviation().scalar - 1) < 0.03)
        var g = RandomGenerator(seed: 1)
        let u = Tensor<Double>.uniform(shape: [20000], low: -1, high: 3, using: &g)
        #expect(u.min().scalar >= -1 && u.max().scalar < 3 && Swift.abs(u.mean().scalar - 1) < 0.05)
        let bern = Tensor<Double>.bernoulli(shape: [20000], probability: 0.3, using: &g)
        #expect(Swift.abs(bern.mean().scalar - 0.3) < 0.02)
        let p = g.permutation(50)
        #expect(p.sorted() == Array(0..<50) && p != Array(0..<50))
    }

    @Test func randomGeneratorUsesTheDocumentedAlgorithm() {
        // xoshiro256** seeded by SplitMix64: the state for seed 0 is the first four SplitMix64
        // outputs (0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f, 0xf88bb8a8724c81ec),
        // and the first output is rotl(s1 * 5, 7) * 9.
        var g = RandomGenerator(seed: 0)
        let s1: UInt64 = 0x6e789e6aa1b965f4
        let expected = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        #expect(g.next() == expected)
    }
}
