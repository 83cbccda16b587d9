import Foundation
import Nabla

/// A one-line progress bar on a terminal (epoch, batch, loss, samples/s, ETA), redrawn in
/// place; plain lines, one per epoch, when standard output is not a terminal.
final class ProgressDisplay {
    let isTerminal = isatty(STDOUT_FILENO) != 0
    let quiet: Bool
    var lastDraw = Date.distantPast
    var epochStart = Date()

    init(quiet: Bool) { self.quiet = quiet }

    func batch(_ p: TrainingProgress) {
        guard isTerminal, !quiet else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) > 0.1 || p.batch == p.batches - 1 else { return }
        lastDraw = now
        let width = 24, filled = Int(Double(width) * Double(p.batch + 1) / Double(p.batches))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let rate = p.seconds > 0 ? Double(p.samplesSeen) / p.seconds : 0
        let remaining = rate > 0 ? Double(p.samplesPerEpoch * (p.epochs - p.epoch) - p.samplesSeen) / rate : 0
        let line = "epoch \(p.epoch + 1)/\(p.epochs) \(bar) \(p.batch + 1)/\(p.batches)  loss \(fmt(p.loss, digits: 4))  \(Int(rate)) samples/s  ETA \(duration(remaining))"
        FileHandle.standardOutput.write(("\r\u{1B}[2K" + line).data(using: .utf8)!)
    }

    func epoch(_ r: EpochRecord, metricName: String) {
        guard !quiet else { return }
        var line = "epoch \(r.epoch)  train loss \(fmt(r.trainLoss, digits: 5))"
        if let v = r.validation["loss"] { line += "  val loss \(fmt(v, digits: 5))" }
        if let m = r.validation[metricName] { line += "  val \(metricName) \(fmt(m, digits: 4))" }
        line += "  lr \(fmt(r.learningRate, digits: 3))  \(fmt(r.seconds, digits: 2)) s"
        if isTerminal { FileHandle.standardOutput.write("\r\u{1B}[2K".data(using: .utf8)!) }
        print(line)
        fflush(stdout)
    }

    func duration(_ s: Double) -> String {
        guard s.isFinite, s >= 0 else { return "?" }
        return s < 60 ? "\(Int(s.rounded()))s" : "\(Int(s / 60))m\(String(format: "%02d", Int(s) % 60))s"
    }
}
