import Foundation
import Nabla

/// A check of a job's collectives with known answers, and their speed: what to run first on a
/// new cluster (`mpirun -np N nabla distributed check`).
public struct CollectiveCheck: Sendable {
    public struct Result: Sendable {
        public var name: String
        public var passed: Bool
        public var detail: String
    }

    public var results: [Result] = []
    /// All-reduce of `bandwidthElements` float32 values: median seconds and the bus bandwidth
    /// (2·(N−1)/N · bytes / time, NCCL's definition, comparable across N).
    public var allReduceSeconds = 0.0, busBandwidth = 0.0
    public let bandwidthElements: Int
    public var passed: Bool { results.allSatisfy(\.passed) }

    /// Runs every collective on `world` (all processes call it) and checks each result against
    /// the value it must have.
    public init(on world: Communicator, bandwidthElements: Int = 1 << 20) {
        self.bandwidthElements = bandwidthElements
        let (r, n) = (Double(world.rank), Double(world.size))
        func record(_ name: String, _ ok: Bool, _ detail: String) { results.append(Result(name: name, passed: ok, detail: detail)) }

        world.barrier()
        record("barrier", true, "\(world.size) process\(world.size == 1 ? "" : "es") met")

        var b = world.isPrimary ? Tensor<Float>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]) : Tensor<Float>(repeating: -1, shape: [2, 3])
        world.broadcast(&b)
        record("broadcast float32", b.scalars == [1, 2, 3, 4, 5, 6], "rank 0's [2, 3] tensor everywhere")

        var s = Tensor<Double>([r + 1, 2 * r, 1])
        world.allReduce(&s)
        let expected = [n * (n + 1) / 2, n * (n - 1), n]
        record("all-reduce sum float64", s.scalars == expected, "Σ(rank+1) = \(Int(expected[0])), Σ2·rank = \(Int(expected[1])), Σ1 = \(Int(n))")

        var m = Tensor<Float>([Float(r), -Float(r)])
        world.allReduce(&m, .max)
        record("all-reduce max float32", m.scalars == [Float(n - 1), 0], "max rank = \(Int(n - 1))")

        let g = world.allGather(Tensor<Float>(repeating: Float(r), shape: [world.rank + 1, 2]))
        let gathered = (0..<world.size).flatMap { k in Array(repeating: Float(k), count: 2 * (k + 1)) }
        record("all-gather (uneven rows)", g.shape == [world.size * (world.size + 1) / 2, 2] && g.scalars == gathered,
               "rank k sends k+1 rows of k: \(g.shape[0]) rows in rank order")

        let bytes = world.broadcast(bytes: world.isPrimary ? Array("∇ from rank 0".utf8) : [])
        record("broadcast bytes", String(decoding: bytes, as: UTF8.self) == "∇ from rank 0", "\(bytes.count) bytes")

        // Non-blocking all-reduce, progressed by test() while this process does other work.
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: bandwidthElements)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: Float(r + 1))
        let pending = world.startAllReduce(buffer)
        var polls = 0
        while !pending.test() { polls += 1 }
        pending.wait()
        let total = Float(n * (n + 1) / 2)
        record("non-blocking all-reduce", buffer.allSatisfy { $0 == total }, "\(bandwidthElements) float32 values summed to \(Int(total)) after \(polls) polls")

        // Bandwidth: the median of timed blocking all-reduces (the same count everywhere).
        var times: [Double] = []
        for i in 0..<25 {
            world.barrier()
            let t = Date()
            world.allReduce(buffer)
            if i >= 5 { times.append(Date().timeIntervalSince(t)) }
        }
        allReduceSeconds = times.sorted()[times.count / 2]
        let byteCount = Double(bandwidthElements * MemoryLayout<Float>.stride)
        busBandwidth = world.size > 1 ? 2 * (n - 1) / n * byteCount / allReduceSeconds : 0
    }
}
