import ArgumentParser
import Foundation
import Nabla
import NablaConformance

extension Train {
    /// `nabla train --stream FILE.csv`: learn from rows as they arrive (see ``StreamingLearner``).
    func runStream(_ path: String) throws {
        do {
            let source = try CSVStream(path: path)
            let targetName = target ?? source.header.last!
            guard source.header.contains(targetName) else { throw RunSettingsError("--stream \(path): no column '\(targetName)' (columns: \(source.header.prefix(10).joined(separator: ", ")))") }
            let features = source.header.filter { $0 != targetName }
            guard let spec = ModelSpec(parsing: model, activation: activation, dropout: dropout), spec.kind != .svm else {
                throw RunSettingsError("--stream trains linear, logistic or mlp models by gradient steps; '\(model)' is not one")
            }
            let classNames = classes.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            if let classNames { guard classNames.count >= 2, Set(classNames).count == classNames.count else { throw RunSettingsError("--classes needs at least two distinct names") } }
            guard spec.supports(classNames == nil ? .regression : .classification) else {
                throw RunSettingsError("the \(spec.kind.rawValue) model does not do \(classNames == nil ? "regression (give --classes for classification)" : "classification")")
            }
            let batchSize = Int(batch ?? "32") ?? 32
            let learner = StreamingLearner(spec: spec, features: features, target: targetName, classes: classNames,
                                           learningRate: learningRate ?? 1e-3, batchSize: batchSize, seed: seed)
            let folder = out ?? "runs/stream-\(Int(Date().timeIntervalSince1970))"
            guard !FileManager.default.fileExists(atPath: file(folder, ModelCard.fileName)) else { throw RunSettingsError("--out \(folder) already holds a model; choose another folder") }
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            signal(SIGINT) { _ in interruptRequested = 1 }
            let start = Date()
            var lastCheckpoint = Date(), lastLine = Date.distantPast, chunks = 0
            let chunkRows = 8 * batchSize   // a chunk: eight batches
            func status() -> String {
                "\(learner.rowsSeen) rows" + (learner.prequentialAccuracy.map { ", prequential accuracy \(fmt($0, digits: 4))" } ?? "")
                    + (learner.prequentialLoss.map { ", prequential loss \(fmt($0, digits: 4))" } ?? "")
            }
            while interruptRequested == 0 {
                guard let chunk = try source.nextChunk(maxRows: chunkRows, atEnd: !follow) else {
                    if !follow { break }
                    usleep(200_000)
                    continue
                }
                try learner.learn(chunk, path: path)
                chunks += 1
                if !quiet && !json && Date().timeIntervalSince(lastLine) >= 1 { print(status()); lastLine = Date() }
                if Date().timeIntervalSince(lastCheckpoint) >= checkpointEvery {
                    try learner.save(to: folder)
                    lastCheckpoint = Date()
                }
            }
            guard learner.rowsSeen > 0 else { throw RunSettingsError("--stream \(path): no data rows arrived") }
            try learner.save(to: folder)
            let summary = OrderedJSON([("rows", .number(Double(learner.rowsSeen))), ("chunks", .number(Double(chunks))),
                                       ("prequential_loss", learner.prequentialLoss.map { .number($0) } ?? .null),
                                       ("prequential_accuracy", learner.prequentialAccuracy.map { .number($0) } ?? .null),
                                       ("seconds", .number(Date().timeIntervalSince(start))), ("run_folder", .string(folder))]).text
            try writeAtomically(summary + "\n", to: file(folder, "summary.json"))
            if json { print(summary) } else if !quiet { print("learned from \(status()); model in \(folder) (nabla predict \(folder) --data …)") }
            if interruptRequested != 0 { throw ExitCode(130) }
        } catch let e as ExitCode { throw e } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
    }
}
