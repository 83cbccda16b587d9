import Foundation
import Nabla

/// Data-parallel training, as PyTorch's DistributedDataParallel and Horovod do it: the same model
/// in every process, each process computing the gradient of its own contiguous share of every
/// global batch, the gradients averaged over the processes by all-reduce, then the same
/// optimizer step everywhere, so the models stay identical.
///
/// The gradients travel in buckets of a few megabytes, filled in reverse parameter order (the
/// order in which the backward pass finishes them). A bucket is sent, with a non-blocking
/// all-reduce, as soon as the last of its gradients is final, while the backward pass goes on
/// computing the gradients of the layers nearer the input; buckets are always started in the
/// same order in every process, as MPI requires. Each share's gradient is weighted by its
/// fraction of the batch, so the result is the gradient of the mean loss over the whole global
/// batch — the same step one process would take, whatever the number of processes.
///
/// ```swift
/// let world = try Communicator.world()
/// let parallel = DataParallel(model: model, communicator: world)
/// parallel.synchronizeParameters()              // rank 0's initial weights everywhere
/// parallel.attach(to: trainer)                  // each step: this process's share, averaged gradients
/// try trainer.fit()
/// ```
public final class DataParallel<Scalar: TensorScalar> {
    public let model: Module<Scalar>
    public let communicator: Communicator
    /// The size of the buckets after the first, in bytes.
    public let bucketBytes: Int
    /// The size of the first bucket (the last layers' gradients), in bytes: small, so that the
    /// first all-reduce starts early in the backward pass.
    public let firstBucketBytes: Int
    /// Micro-batches per step: each process splits its share into this many pieces, runs them
    /// one after another (less memory) and sends the accumulated gradient once.
    public var accumulationSteps: Int

    /// The parameters' places in the buckets.
    struct Layout {
        var parameters: [Parameter<Scalar>]
        /// Per parameter: its bucket and offset in that bucket.
        var bucketOf: [Int], offsetOf: [Int]
        /// Per bucket: its parameters (indices) and its length in scalars.
        var members: [[Int]], lengths: [Int]
    }
    var layout: Layout?
    var buffers: [UnsafeMutableBufferPointer<Scalar>] = []

    public init(model: Module<Scalar>, communicator: Communicator, bucketBytes: Int = 4 << 20, firstBucketBytes: Int = 256 << 10,
                accumulationSteps: Int = 1) {
        communicator.check(bucketBytes > 0 && firstBucketBytes > 0 && accumulationSteps >= 1,
                           "DataParallel: bucket sizes (\(bucketBytes), \(firstBucketBytes) bytes) and accumulation steps (\(accumulationSteps)) must be positive")
        (self.model, self.communicator, self.bucketBytes, self.firstBucketBytes, self.accumulationSteps) =
            (model, communicator, bucketBytes, firstBucketBytes, accumulationSteps)
    }

    deinit { for b in buffers { b.deallocate() } }

    /// Rank 0's parameters and buffers in every process (call once, before training).
    public func synchronizeParameters() {
        guard communicator.size > 1 else { return }
        for p in model.parameters { communicator.broadcast(&p.value) }
        for b in model.namedBuffers.map(\.buffer) { communicator.broadcast(&b.value) }
    }

    /// Gives each process its own dropout masks: rank r > 0 reseeds every ``Dropout`` generator
    /// from its current state (rank 0's, after ``synchronizeParameters()`` or a resumed
    /// checkpoint) mixed with r. Without it every process would drop the same units for the i-th
    /// row of its share. Rank 0 keeps its stream, which is the one checkpoints record; a resumed
    /// run draws the other ranks' masks afresh from it.
    public func separateRandomStreams() {
        guard communicator.rank > 0 else { return }
        for (_, m) in model.namedModules {
            guard let d = m as? Dropout<Scalar> else { continue }
            var g = d.generator
            d.generator = RandomGenerator(seed: g.next() ^ (0x9E37_79B9_7F4A_7C15 &* UInt64(communicator.rank)))
        }
    }

    /// This process's contiguous share of a global batch: rank r of N gets rows
    /// [r·B/N, (r+1)·B/N) (rounded down), so shares differ by at most one row and their
    /// concatenation in rank order is the batch.
    public func share(of rows: [Int]) -> ArraySlice<Int> {
        let (r, n, b) = (communicator.rank, communicator.size, rows.count)
        return rows[(r * b / n)..<((r + 1) * b / n)]
    }

    /// Makes every ``Trainer`` step compute this process's share and average the gradients (the
    /// trainer keeps this object).
    public func attach(to trainer: Trainer<Scalar>) {
        communicator.check(trainer.model === model, "DataParallel.attach(to:): the trainer trains another model")
        let loss = trainer.loss
        trainer.stepGradient = { _, rows in self.valueWithGradient(rows: rows, loss: loss) }
    }

    /// The mean loss over the global batch `rows` (identical in every process), with its gradient
    /// — the average of the processes' share gradients, weighted by share size — stored in each
    /// trainable parameter. `loss(model, rows)` is the mean loss of some rows; every process
    /// calls this with the same global batch.
    public func valueWithGradient(rows: [Int], loss: (Module<Scalar>, [Int]) -> Tensor<Scalar>) -> Double {
        let layout = prepareLayout()
        // Running statistics (batch norm) follow rank 0's, as DistributedDataParallel's
        // broadcast_buffers does, so every process evaluates and saves the same model.
        if communicator.size > 1 { for (_, b) in model.namedBuffers { communicator.broadcast(&b.value) } }
        let total = Double(rows.count)
        let mine = Array(share(of: rows))
        for b in buffers { UnsafeMutableRawBufferPointer(b).initializeMemory(as: UInt8.self, repeating: 0) }
        // The micro-batches of this share: contiguous, the last one sent during its backward pass.
        let k = Swift.max(1, Swift.min(accumulationSteps, mine.count))
        let pieces = (0..<k).map { i in Array(mine[(i * mine.count / k)..<((i + 1) * mine.count / k)]) }
        var localLoss = 0.0
        var remaining = layout.members.map(\.count)
        var pending: [PendingReduction?] = Array(repeating: nil, count: layout.members.count)
        var started = 0
        let lossSlot = layout.lengths.count - 1   // the loss rides in the last bucket, after its gradients
        func startReady() {
            // In bucket order only: every process starts the same collectives in the same order.
            while started < layout.members.count && remaining[started] == 0 {
                if started == lossSlot { buffers[started][layout.lengths[started] - 1] = Scalar(localLoss) }
                pending[started] = communicator.startAllReduce(buffers[started])
                started += 1
            }
            for p in pending[..<started] { p?.test() }
        }
        for (i, piece) in pieces.enumerated() where !piece.isEmpty {
            let weight = Scalar(Double(piece.count) / total)
            let last = i == pieces.count - 1
            // (The loss is added up before the backward pass, which may send the bucket it rides in.)
            model.valueWithGradient({
                let value = loss(self.model, piece)
                localLoss += Double(weight) * Double(value.scalar)
                return value
            }, onGradientReady: { [self] j, g in
                if let g { addGradient(g, weight: weight, parameter: j, layout) }
                if last {
                    remaining[layout.bucketOf[j]] -= 1
                    startReady()
                }
            })
        }
        // Parameters the loss does not reach (and an empty share) count as zero gradients.
        for b in remaining.indices { remaining[b] = 0 }
        startReady()
        for p in pending { p?.wait() }
        for (j, p) in layout.parameters.enumerated() {
            // (Bulk copies of bytes: element by element, generic code copies through witness tables.)
            let source = UnsafeRawPointer(buffers[layout.bucketOf[j]].baseAddress! + layout.offsetOf[j])
            var g = Tensor<Scalar>(repeating: 0, shape: p.shape)
            g.withUnsafeMutableBufferPointer { UnsafeMutableRawPointer($0.baseAddress!).copyMemory(from: source, byteCount: $0.count * MemoryLayout<Scalar>.stride) }
            p.gradient = g
        }
        return Double(buffers[lossSlot][layout.lengths[lossSlot] - 1])
    }

    func addGradient(_ g: Tensor<Scalar>, weight: Scalar, parameter j: Int, _ layout: Layout) {
        let target = buffers[layout.bucketOf[j]].baseAddress! + layout.offsetOf[j]
        g.withUnsafeBufferPointer { Scalar._axpy($0.count, weight, $0.baseAddress!, target) }
    }

    /// The buckets, made on the first step (and again if the trainable parameters change).
    func prepareLayout() -> Layout {
        let parameters = model.trainableParameters
        if let layout, layout.parameters.count == parameters.count, zip(layout.parameters, parameters).allSatisfy({ $0 === $1 }) { return layout }
        var bucketOf = [Int](repeating: 0, count: parameters.count), offsetOf = bucketOf
        var members: [[Int]] = [[]], lengths = [0]
        let scalarBytes = MemoryLayout<Scalar>.stride
        for j in parameters.indices.reversed() {
            let n = parameters[j].value.count
            let cap = members.count == 1 ? firstBucketBytes : bucketBytes
            if !members[members.count - 1].isEmpty && (lengths[lengths.count - 1] + n) * scalarBytes > cap {
                members.append([])
                lengths.append(0)
            }
            bucketOf[j] = members.count - 1
            offsetOf[j] = lengths[lengths.count - 1]
            members[members.count - 1].append(j)
            lengths[lengths.count - 1] += n
        }
        lengths[lengths.count - 1] += 1   // the loss
        for b in buffers { b.deallocate() }
        buffers = lengths.map { n in
            let b = UnsafeMutableBufferPointer<Scalar>.allocate(capacity: n)
            b.initialize(repeating: 0)
            return b
        }
        let l = Layout(parameters: parameters, bucketOf: bucketOf, offsetOf: offsetOf, members: members, lengths: lengths)
        layout = l
        return l
    }

    /// The buckets' sizes in bytes, in the order they are sent.
    public var bucketSizes: [Int] {
        prepareLayout().lengths.map { $0 * MemoryLayout<Scalar>.stride }
    }
}
