import Foundation
import Nabla
import Testing

func temporaryPath(_ name: String) -> String {
    NSTemporaryDirectory() + "nabla-\(UUID().uuidString.prefix(8))-\(name)"
}

/// Removes the files or folders a test wrote.
func removeTemporary(_ paths: String...) {
    for path in paths {
        try? FileManager.default.removeItem(atPath: path)
    }
}

final class Net: Module<Float>, Layer {
    let hidden = Linear<Float>(inputSize: 3, outputSize: 5)
    let norm = BatchNorm<Float>(featureCount: 5)
    let output = Linear<Float>(inputSize: 5, outputSize: 2)
    func callAsFunction(_ x: Tensor<Float>) -> Tensor<Float> { output(norm(hidden(x)).relu()) }
}

@Suite struct TensorFileTests {
    @Test func safetensorsBytesFollowTheFormat() throws {
        let archive = SafeTensors.Archive(tensors: ["b": StoredTensor(Tensor<Float>([1, -2])), "a": StoredTensor(Tensor<Double>(0.5), asInteger: true)],
                                          metadata: ["k": "v"])
        let data = [UInt8](SafeTensors.encode(archive))
        let n = Int(data[0]) | Int(data[1]) << 8
        #expect(data[2..<8].allSatisfy { $0 == 0 } && n % 8 == 0)
        let header = String(decoding: data[8..<(8 + n)], as: UTF8.self)
        #expect(header.hasPrefix(#"{"__metadata__":{"k":"v"},"a":{"data_offsets":[0,8],"dtype":"I64","shape":[]},"b":{"data_offsets":[8,16],"dtype":"F32","shape":[2]}}"#))
        #expect(Array(data[(8 + n)...]) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0])
        #expect(try SafeTensors.decode(Data(data)) == archive)
    }

    @Test func modelRoundTripsExactly() throws {
        let (a, b) = GlobalRandom.withSeed(3) { (Net(), Net()) }
        _ = a(Tensor<Float>(shape: [4, 3], scalars: (0..<12).map { Float($0) / 7 }))   // moves the running statistics
        let path = temporaryPath("model.safetensors")
        defer { removeTemporary(path) }
        try a.save(to: path, metadata: ["note": "test"])
        try b.load(from: path)
        for ((n1, p1), (n2, p2)) in zip(a.namedParameters, b.namedParameters) { #expect(n1 == n2 && p1.value.scalars == p2.value.scalars) }
        for ((_, x), (_, y)) in zip(a.namedBuffers, b.namedBuffers) { #expect(x.value.scalars == y.value.scalars) }
        #expect(b.norm.batchesTracked.value.scalar == 1)
        #expect(try SafeTensors.read(path).tensors["norm.num_batches_tracked"]?.dtype == .I64)
    }

    @Test func mismatchedFileIsRejectedWithEveryProblemAndChangesNothing() throws {
        let path = temporaryPath("other.safetensors")
        defer { removeTemporary(path) }
        var archive = Net().archive()
        archive.tensors["hidden.weight"] = StoredTensor(Tensor<Float>.zeros(shape: [4, 3]))
        archive.tensors["output.bias"] = nil
        archive.tensors["extra"] = StoredTensor(Tensor<Float>(1))
        archive.tensors["norm.weight"] = StoredTensor(Tensor<Double>.ones(shape: [5]))
        try SafeTensors.write(archive, to: path)
        let net = Net()
        let before = net.hidden.weight.value.scalars
        do {
            try net.load(from: path)
            Issue.record("loading succeeded")
        } catch let e as StateMismatchError {
            #expect(e.missing == ["output.bias"] && e.unexpected == ["extra"])
            #expect(e.shapeMismatches.map(\.name) == ["hidden.weight"] && e.shapeMismatches[0].found == [4, 3])
            #expect(e.dtypeMismatches.map(\.name) == ["norm.weight"])
            #expect(e.description.contains("output.bias") && e.description.contains(path))
        }
        #expect(net.hidden.weight.value.scalars == before)
    }

    @Test func everyTruncationOfAFileIsAnErrorNotACrash() throws {
        let data = SafeTensors.encode(Net().archive())
        for length in stride(from: 0, to: data.count, by: 7) {
            #expect(throws: TensorFileError.self) { try SafeTensors.decode(data.prefix(length), path: "cut.safetensors") }
        }
        var corrupt = [UInt8](data)
        corrupt[0] = 0xFF; corrupt[5] = 0x7F   // a header length far beyond the file
        let error = #expect(throws: TensorFileError.self) { try SafeTensors.decode(Data(corrupt), path: "bad.safetensors") }
        #expect(error?.description.hasPrefix("bad.safetensors: the header claims") == true)
        #expect(throws: TensorFileError.self) { try SafeTensors.read("/nonexistent/file.safetensors") }
    }

    @Test func optimizerStateResumesExactly() throws {
        let x = Tensor<Float>(shape: [6, 3], scalars: (0..<18).map { Float($0 % 5) - 2 }), y = IndexTensor([0, 1, 1, 0, 1, 0])
        let (a, b) = GlobalRandom.withSeed(4) { (Net(), Net()) }
        try b.load(a.archive())
        var optA = Optimizer<Float>(rule: Adam(), learningRate: 0.01), optB = optA
        func step(_ m: Net, _ o: inout Optimizer<Float>) { m.valueWithGradient { crossEntropy(logits: $0(x), targets: y) }; o.step(m) }
        for _ in 0..<3 { step(a, &optA); step(b, &optB) }
        let modelPath = temporaryPath("m.safetensors"), statePath = temporaryPath("o.safetensors")
        defer { removeTemporary(modelPath, statePath) }
        try b.save(to: modelPath)
        try optB.save(to: statePath, for: b)
        let c = Net()
        var optC = Optimizer<Float>(rule: Adam(), learningRate: 0.01)
        try c.load(from: modelPath)
        try optC.load(from: statePath, for: c)
        #expect(optC.stepCount == 3)
        for _ in 0..<2 { step(a, &optA); step(c, &optC) }
        for (p, q) in zip(a.parameters, c.parameters) { #expect(p.value.scalars == q.value.scalars) }
    }

    @Test func npyRoundTripsAndReadsOtherLayouts() throws {
        let t = Tensor<Double>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let path = temporaryPath("a.npy")
        defer { removeTemporary(path) }
        try NPY.write(t, to: path)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect((10 + Int(bytes[8])) % 64 == 0)
        #expect(try NPY.read(path).tensor(as: Double.self).scalars == t.scalars)
        // A big-endian int32 array in Fortran order, as NumPy writes it.
        var header = "{'descr': '>i4', 'fortran_order': True, 'shape': (2, 3), }"
        header += String(repeating: " ", count: 64 - (10 + header.count + 1) % 64) + "\n"
        var data = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.count), 0] + Array(header.utf8)
        for v: Int32 in [1, 4, 2, 5, 3, 6] { data += withUnsafeBytes(of: v.bigEndian, Array.init) }
        let read = try NPY.decode(Data(data))
        #expect(read.shape == [2, 3] && read.doubles == [1, 2, 3, 4, 5, 6])
        #expect(throws: TensorFileError.self) { try NPY.decode(Data(data.prefix(data.count - 2))) }
        #expect(throws: TensorFileError.self) { try NPY.decode(Data("not numpy".utf8)) }
    }

    @Test func idxFilesPlainAndGzipped() throws {
        let d = try Dataset.readIDX(images: fixture("tiny-images-idx3-ubyte.gz"), labels: fixture("tiny-labels-idx1-ubyte"))
        #expect(d.features.shape == [5, 12] && d.targets == [3, 1, 4, 1, 0] && d.classCount == 5)
        #expect(d.features.rows[0].map { Int(($0 * 255).rounded()) } == [255, 228, 34, 121, 243, 189, 6, 131, 102, 168, 82, 193])
        #expect(d.features.rows[4].map { Int(($0 * 255).rounded()) } == [36, 109, 238, 69, 51, 81, 228, 211, 202, 58, 202, 65])
        var gz = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture("tiny-images-idx3-ubyte.gz"))))
        #expect(throws: TensorFileError.self) { try Gzip.decompress(Array(gz.prefix(gz.count - 5))) }
        gz[gz.count - 9] ^= 0xFF   // the last byte of the compressed data
        #expect(throws: TensorFileError.self) { try Gzip.decompress(gz) }
    }

    @Test func npzReadsNumPysCompressedArchivesAndRoundTrips() throws {
        let arrays = try NPZ.read(fixture("arrays.npz"))
        #expect(Set(arrays.keys) == ["weights", "counts", "big"])
        #expect(arrays["weights"]!.dtype == .F32 && arrays["weights"]!.doubles == (0..<12).map { Double(Float($0) / 7) })
        #expect(arrays["counts"]!.doubles == [1, 2, 3])
        let big = arrays["big"]!.doubles
        #expect(big.count == 2000 && big[49] == 1 && big[50] == 0 && isClose(big[1], 1.0 / 49, tolerance: 1e-15))
        let path = temporaryPath("out.npz")
        defer { removeTemporary(path) }
        let t = Tensor<Double>(shape: [2, 2], scalars: [1, -2, 3.5, 4])
        try NPZ.write(["a": t, "b": t * 2], to: path)
        let back = try NPZ.read(path)
        #expect(back["a"]!.doubles == t.scalars && back["b"]!.doubles == [2, -4, 7, 8])
    }
}
