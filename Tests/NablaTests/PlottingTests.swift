import Foundation
@testable import Nabla
import Testing

@Suite struct PlottingTests {
    @Test func contourPlotDrawsContoursPathsAndLegend() {
        var plot = ContourPlot(title: "booth", xRange: -10...10, yRange: -10...10) { x, y in
            (x + 2 * y - 7) * (x + 2 * y - 7) + (2 * x + y - 5) * (2 * x + y - 5)
        }
        plot.paths = [ContourPlot.Path(label: "gd", detail: "20 iterations", points: [(0, 0), (0.5, 1), (1, 3)]),
                      ContourPlot.Path(label: "adam <fast>", points: [(0, 0), (2, 2)])]
        plot.minimizers = [(1, 3)]
        let svg = plot.svg()
        #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        #expect(svg.components(separatedBy: "<polyline").count - 1 == 2)
        #expect(svg.components(separatedBy: "<path d=").count - 1 >= 10)   // contour levels
        #expect(svg.contains(">gd</text>") && svg.contains("20 iterations") && svg.contains("adam &lt;fast&gt;"))
        #expect(svg.contains("★"))
        #expect(ContourPlot.ticks(-2...2) == [-2, -1, 0, 1, 2])
    }

    @Test func filesAreWrittenAtomicallyWithClearErrors() throws {
        let dir = NSTemporaryDirectory() + "nabla-write-\(UUID().uuidString)"
        defer { removeTemporary(dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/out.txt"
        try writeAtomically("first", to: path)
        try writeAtomically("second", to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "second")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["out.txt"])  // no temporary left behind
        do {
            try writeAtomically("x", to: dir + "/missing/out.txt")
            Issue.record("writing into a missing folder succeeded")
        } catch let e as FileWriteError {
            #expect(e.description.contains("missing") && e.description.contains("does not exist"))
        }
    }
}
