import Foundation

/// An SVG line chart of one or more series against a shared x axis: training and validation
/// curves, loss against iterations.
public struct LinePlot {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        /// Draw the points as dots, unjoined (a scatter plot).
        public var markersOnly: Bool
        public init(name: String, points: [(x: Double, y: Double)], markersOnly: Bool = false) {
            (self.name, self.points, self.markersOnly) = (name, points, markersOnly)
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// Plot log10(y) (for losses spanning decades); non-positive values are left out.
    public var logarithmic: Bool
    public var width = 640.0, height = 400.0

    public init(title: String, xLabel: String, yLabel: String, series: [Series], logarithmic: Bool = false) {
        (self.title, self.xLabel, self.yLabel, self.series, self.logarithmic) = (title, xLabel, yLabel, series, logarithmic)
    }

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    /// "Nice" tick positions covering [lo, hi].
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        let span = hi - lo
        guard span > 0, span.isFinite else { return [lo] }
        let raw = span / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var t = (lo / step).rounded(.up) * step
        var out: [Double] = []
        while t <= hi + step * 1e-9 { out.append(Swift.abs(t) < step * 1e-9 ? 0 : t); t += step }   // no "-0"
        return out
    }

    public var svg: String {
        let right = 20.0, top = 56.0, bottom = 50.0
        let transformed = series.map { s in
            s.points.compactMap { p -> (Double, Double)? in
                guard p.x.isFinite, p.y.isFinite else { return nil }
                if logarithmic { return p.y > 0 ? (p.x, log10(p.y)) : nil }
                return (p.x, p.y)
            }
        }
        let all = transformed.flatMap { $0 }
        var (x0, x1) = (all.map(\.0).min() ?? 0, all.map(\.0).max() ?? 1)
        var (y0, y1) = (all.map(\.1).min() ?? 0, all.map(\.1).max() ?? 1)
        if x1 <= x0 { x1 = x0 + 1 }
        if y1 <= y0 { (y0, y1) = (y0 - 0.5, y1 + 0.5) }
        let pad = (y1 - y0) * 0.05
        (y0, y1) = (y0 - pad, y1 + pad)
        func label(_ v: Double) -> String {
            let value = logarithmic ? pow(10, v) : v
            return Swift.abs(value) >= 1e4 || (Swift.abs(value) < 1e-3 && value != 0) ? String(format: "%.1e", value) : String(format: "%.4g", value)
        }
        // The left margin holds the widest y-tick label and, left of it, the rotated axis title.
        let yTicks = LinePlot.ticks(y0, y1)
        let widestLabel = Double(yTicks.map { label($0).count }.max() ?? 4)
        let left = Swift.max(60, 30 + 7.2 * widestLabel + 10)
        let plotW = width - left - right, plotH = height - top - bottom
        func sx(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * plotW }
        func sy(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * plotH }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(width / 2))" y="22" text-anchor="middle" font-size="15">\(escape(title))</text>

        """
        for t in yTicks {
            s += "<line x1=\"\(f(left))\" y1=\"\(f(sy(t)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(sy(t)))\" stroke=\"#e5e5e5\"/>"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(sy(t) + 4))\" text-anchor=\"end\">\(label(t))</text>\n"
        }
        for t in LinePlot.ticks(x0, x1) {
            s += "<line x1=\"\(f(sx(t)))\" y1=\"\(f(top + plotH))\" x2=\"\(f(sx(t)))\" y2=\"\(f(top + plotH + 5))\" stroke=\"#333\"/>"
            s += "<text x=\"\(f(sx(t)))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">\(String(format: "%.4g", t))</text>\n"
        }
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#333\"/>\n"
        s += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 10))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        s += "<text x=\"16\" y=\"\(f(top + plotH / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(f(top + plotH / 2)))\">\(escape(yLabel + (logarithmic ? " (log scale)" : "")))</text>\n"
        for (i, pts) in transformed.enumerated() where !pts.isEmpty {
            let color = LinePlot.colors[i % LinePlot.colors.count]
            if series[i].markersOnly {
                for p in pts { s += "<circle cx=\"\(f(sx(p.0)))\" cy=\"\(f(sy(p.1)))\" r=\"2.2\" fill=\"\(color)\" fill-opacity=\"0.7\"/>" }
                s += "\n"
            } else {
                let path = pts.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(f(sx($0.element.0))),\(f(sy($0.element.1)))" }.joined(separator: " ")
                s += "<path d=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            }
            if pts.count == 1 && !series[i].markersOnly { s += "<circle cx=\"\(f(sx(pts[0].0)))\" cy=\"\(f(sy(pts[0].1)))\" r=\"3\" fill=\"\(color)\"/>\n" }
            // The legend runs along the top margin, above the data (never over a curve).
            let lx = left + series[..<i].reduce(0.0) { $0 + 40 + 7 * Double($1.name.count) }, ly = top - 12
            s += "<line x1=\"\(f(lx))\" y1=\"\(f(ly - 4))\" x2=\"\(f(lx + 20))\" y2=\"\(f(ly - 4))\" stroke=\"\(color)\" stroke-width=\"2\"/>"
            s += "<text x=\"\(f(lx + 25))\" y=\"\(f(ly))\">\(escape(series[i].name))</text>\n"
        }
        return s + "</svg>\n"
    }

    func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    public func write(to path: String) throws { try writeAtomically(svg, to: path) }
}
