import Foundation

/// An SVG contour plot of a function of two variables with optimization paths drawn over it:
/// the picture people expect of gradient descent.
public struct ContourPlot {
    public struct Path {
        public var label: String
        /// A second, smaller legend line (e.g. iterations and final value).
        public var detail: String
        public var points: [(Double, Double)]
        public init(label: String, detail: String = "", points: [(Double, Double)]) { self.label = label; self.detail = detail; self.points = points }
    }

    public var title: String
    public var xLabel = "x", yLabel = "y"
    public var xRange: ClosedRange<Double>
    public var yRange: ClosedRange<Double>
    public var function: (Double, Double) -> Double
    public var paths: [Path] = []
    /// Known minimizers, marked with a star.
    public var minimizers: [(Double, Double)] = []
    /// A feasible set to shade (its boundary; `closed: false` draws a segment), and its name.
    public var feasibleSet: (points: [(Double, Double)], closed: Bool, label: String)?

    public init(title: String, xRange: ClosedRange<Double>, yRange: ClosedRange<Double>, function: @escaping (Double, Double) -> Double) {
        self.title = title
        self.xRange = xRange
        self.yRange = yRange
        self.function = function
    }

    static let palette = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]

    /// Round tick positions covering the range.
    static func ticks(_ r: ClosedRange<Double>, count: Int = 6) -> [Double] {
        let span = r.upperBound - r.lowerBound
        guard span > 0, span.isFinite else { return [r.lowerBound] }
        let raw = span / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var t = ceil(r.lowerBound / step) * step
        var out: [Double] = []
        while t <= r.upperBound + step * 1e-9 { out.append(abs(t) < step * 1e-9 ? 0 : t); t += step }
        return out
    }

    static func label(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e6 { return String(Int(v)) }
        return String(format: "%g", v)
    }

    /// The plot as an SVG document.
    public func svg(width: Int = 760, height: Int = 600) -> String {
        let left = 70.0, right = 190.0, top = 50.0, bottom = 60.0
        let pw = Double(width) - left - right, ph = Double(height) - top - bottom
        let (x0, x1, y0, y1) = (xRange.lowerBound, xRange.upperBound, yRange.lowerBound, yRange.upperBound)
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * ph }
        func f2(_ v: Double) -> String { String(format: "%.2f", v) }

        // Sample the function; contour levels evenly spaced in log(1 + f − min).
        let n = 140
        var z = [[Double]](repeating: [Double](repeating: 0, count: n + 1), count: n + 1)
        var zmin = Double.infinity, zmax = -Double.infinity
        for i in 0...n {
            for j in 0...n {
                let v = function(x0 + (x1 - x0) * Double(j) / Double(n), y0 + (y1 - y0) * Double(i) / Double(n))
                z[i][j] = v
                if v.isFinite { zmin = min(zmin, v); zmax = max(zmax, v) }
            }
        }
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" font-family="Helvetica, Arial, sans-serif">
        <rect width="100%" height="100%" fill="white"/>
        <defs><clipPath id="plot"><rect x="\(f2(left))" y="\(f2(top))" width="\(f2(pw))" height="\(f2(ph))"/></clipPath></defs>
        <text x="\(f2(left + pw / 2))" y="28" text-anchor="middle" font-size="17" font-weight="bold">\(escape(title))</text>

        """
        if zmin.isFinite && zmax > zmin {
            let t = { (v: Double) -> Double in log1p(v - zmin) }
            let levels = 18
            let tmax = t(zmax)
            svg += "<g clip-path=\"url(#plot)\" fill=\"none\" stroke-width=\"1\">\n"
            for k in 1..<levels {
                let level = zmin + expm1(tmax * Double(k) / Double(levels))
                var d = ""
                for i in 0..<n {
                    for j in 0..<n {
                        let c = [z[i][j], z[i][j + 1], z[i + 1][j + 1], z[i + 1][j]]
                        guard c.allSatisfy({ $0.isFinite }) else { continue }
                        let corners = [(j, i), (j + 1, i), (j + 1, i + 1), (j, i + 1)]
                        var crossings: [(Double, Double)] = []
                        for e in 0..<4 {
                            let a = c[e], b = c[(e + 1) % 4]
                            if (a < level) != (b < level) {
                                let s = (level - a) / (b - a)
                                let (ja, ia) = corners[e], (jb, ib) = corners[(e + 1) % 4]
                                let gx = Double(ja) + s * Double(jb - ja), gy = Double(ia) + s * Double(ib - ia)
                                crossings.append((px(x0 + (x1 - x0) * gx / Double(n)), py(y0 + (y1 - y0) * gy / Double(n))))
                            }
                        }
                        var q = 0
                        while q + 1 < crossings.count {
                            d += "M\(f2(crossings[q].0)) \(f2(crossings[q].1))L\(f2(crossings[q + 1].0)) \(f2(crossings[q + 1].1))"
                            q += 2
                        }
                    }
                }
                let shade = Int(200 - 130 * Double(k) / Double(levels))
                if !d.isEmpty { svg += "<path d=\"\(d)\" stroke=\"rgb(\(shade),\(shade + 20),\(min(255, shade + 55)))\"/>\n" }
            }
            svg += "</g>\n"
        }
        // Frame, ticks, labels.
        svg += "<rect x=\"\(f2(left))\" y=\"\(f2(top))\" width=\"\(f2(pw))\" height=\"\(f2(ph))\" fill=\"none\" stroke=\"#333\"/>\n"
        for tx in ContourPlot.ticks(xRange) {
            svg += "<line x1=\"\(f2(px(tx)))\" y1=\"\(f2(top + ph))\" x2=\"\(f2(px(tx)))\" y2=\"\(f2(top + ph + 5))\" stroke=\"#333\"/>"
            svg += "<text x=\"\(f2(px(tx)))\" y=\"\(f2(top + ph + 20))\" text-anchor=\"middle\" font-size=\"12\">\(ContourPlot.label(tx))</text>\n"
        }
        for ty in ContourPlot.ticks(yRange) {
            svg += "<line x1=\"\(f2(left - 5))\" y1=\"\(f2(py(ty)))\" x2=\"\(f2(left))\" y2=\"\(f2(py(ty)))\" stroke=\"#333\"/>"
            svg += "<text x=\"\(f2(left - 9))\" y=\"\(f2(py(ty) + 4))\" text-anchor=\"end\" font-size=\"12\">\(ContourPlot.label(ty))</text>\n"
        }
        svg += "<text x=\"\(f2(left + pw / 2))\" y=\"\(f2(Double(height) - 18))\" text-anchor=\"middle\" font-size=\"14\">\(escape(xLabel))</text>\n"
        svg += "<text x=\"20\" y=\"\(f2(top + ph / 2))\" text-anchor=\"middle\" font-size=\"14\" transform=\"rotate(-90 20 \(f2(top + ph / 2)))\">\(escape(yLabel))</text>\n"

        // Paths, over the feasible set.
        svg += "<g clip-path=\"url(#plot)\">\n"
        if let region = feasibleSet, !region.points.isEmpty {
            let pts = region.points.map { "\(f2(px($0.0))),\(f2(py($0.1)))" }.joined(separator: " ")
            svg += region.closed
                ? "<polygon points=\"\(pts)\" fill=\"#2ca02c\" fill-opacity=\"0.12\" stroke=\"#2ca02c\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n"
                : "<polyline points=\"\(pts)\" fill=\"none\" stroke=\"#2ca02c\" stroke-width=\"4\" stroke-opacity=\"0.6\"/>\n"
        }
        for (k, path) in paths.enumerated() {
            let color = ContourPlot.palette[k % ContourPlot.palette.count]
            let pts = path.points.filter { $0.0.isFinite && $0.1.isFinite && abs($0.0) < 1e6 && abs($0.1) < 1e6 }
            guard let first = pts.first, let last = pts.last else { continue }
            let d = pts.map { "\(f2(px($0.0))),\(f2(py($0.1)))" }.joined(separator: " ")
            svg += "<polyline points=\"\(d)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" stroke-opacity=\"0.9\" stroke-linejoin=\"round\"/>\n"
            if pts.count <= 60 {
                for p in pts { svg += "<circle cx=\"\(f2(px(p.0)))\" cy=\"\(f2(py(p.1)))\" r=\"2.2\" fill=\"\(color)\"/>" }
                svg += "\n"
            }
            svg += "<circle cx=\"\(f2(px(first.0)))\" cy=\"\(f2(py(first.1)))\" r=\"5\" fill=\"white\" stroke=\"#000\" stroke-width=\"1.5\"/>\n"
            svg += "<circle cx=\"\(f2(px(last.0)))\" cy=\"\(f2(py(last.1)))\" r=\"5\" fill=\"\(color)\" stroke=\"#000\" stroke-width=\"1\"/>\n"
        }
        for m in minimizers {
            svg += "<text x=\"\(f2(px(m.0)))\" y=\"\(f2(py(m.1) + 6))\" text-anchor=\"middle\" font-size=\"18\" fill=\"#000\">★</text>\n"
        }
        svg += "</g>\n"

        // Legend.
        let lx = left + pw + 18
        var ly = top + 8
        svg += "<text x=\"\(f2(lx))\" y=\"\(f2(ly))\" font-size=\"13\" font-weight=\"bold\">Methods</text>\n"
        ly += 20
        for (k, path) in paths.enumerated() {
            let color = ContourPlot.palette[k % ContourPlot.palette.count]
            svg += "<line x1=\"\(f2(lx))\" y1=\"\(f2(ly - 4))\" x2=\"\(f2(lx + 22))\" y2=\"\(f2(ly - 4))\" stroke=\"\(color)\" stroke-width=\"3\"/>"
            svg += "<text x=\"\(f2(lx + 28))\" y=\"\(f2(ly))\" font-size=\"12\">\(escape(path.label))</text>\n"
            if !path.detail.isEmpty {
                ly += 14
                svg += "<text x=\"\(f2(lx + 28))\" y=\"\(f2(ly))\" font-size=\"10\" fill=\"#555\">\(escape(path.detail))</text>\n"
            }
            ly += 20
        }
        ly += 10
        svg += "<circle cx=\"\(f2(lx + 11))\" cy=\"\(f2(ly - 4))\" r=\"5\" fill=\"white\" stroke=\"#000\" stroke-width=\"1.5\"/><text x=\"\(f2(lx + 28))\" y=\"\(f2(ly))\" font-size=\"12\">start</text>\n"
        ly += 20
        svg += "<circle cx=\"\(f2(lx + 11))\" cy=\"\(f2(ly - 4))\" r=\"5\" fill=\"#999\" stroke=\"#000\"/><text x=\"\(f2(lx + 28))\" y=\"\(f2(ly))\" font-size=\"12\">end</text>\n"
        if let region = feasibleSet {
            ly += 20
            svg += "<rect x=\"\(f2(lx + 2))\" y=\"\(f2(ly - 10))\" width=\"18\" height=\"12\" fill=\"#2ca02c\" fill-opacity=\"0.2\" stroke=\"#2ca02c\" stroke-dasharray=\"4 2\"/><text x=\"\(f2(lx + 28))\" y=\"\(f2(ly))\" font-size=\"12\">\(escape(region.label))</text>\n"
        }
        if !minimizers.isEmpty {
            ly += 20
            svg += "<text x=\"\(f2(lx + 11))\" y=\"\(f2(ly + 2))\" text-anchor=\"middle\" font-size=\"16\">★</text><text x=\"\(f2(lx + 28))\" y=\"\(f2(ly))\" font-size=\"12\">minimum</text>\n"
        }
        svg += "</svg>\n"
        return svg
    }

    func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
