import Foundation

/// A horizontal bar chart of named values, largest first (feature importances).
public struct BarChart {
    public var title: String
    public var bars: [(label: String, value: Double)]
    public var valueLabel: String

    public init(title: String, bars: [(label: String, value: Double)], valueLabel: String = "importance") {
        self.title = title
        self.bars = bars
        self.valueLabel = valueLabel
    }

    public func svg(width: Double = 720) -> String {
        let labelWidth = Swift.min(260, 20 + 7 * Double(bars.map(\.label.count).max() ?? 4))
        let rowHeight = 22.0, top = 56.0, bottom = 44.0, right = 70.0
        let height = top + bottom + rowHeight * Double(Swift.max(bars.count, 1))
        let plotW = width - labelWidth - right
        let largest = Swift.max(bars.map { Swift.abs($0.value) }.filter(\.isFinite).max() ?? 1, 1e-300)
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(width / 2))" y="24" text-anchor="middle" font-size="15">\(escape(title))</text>

        """
        for (i, bar) in bars.enumerated() {
            let y = top + Double(i) * rowHeight
            let w = bar.value.isFinite ? Swift.abs(bar.value) / largest * plotW : 0
            let color = bar.value >= 0 ? "#1f77b4" : "#d62728"
            s += "<text x=\"\(f(labelWidth - 8))\" y=\"\(f(y + 15))\" text-anchor=\"end\">\(escape(String(bar.label.prefix(34))))</text>"
            s += "<rect x=\"\(f(labelWidth))\" y=\"\(f(y + 4))\" width=\"\(f(w))\" height=\"\(f(rowHeight - 8))\" fill=\"\(color)\"/>"
            s += "<text x=\"\(f(labelWidth + w + 5))\" y=\"\(f(y + 15))\" fill=\"#444\">\(String(format: "%.3g", bar.value))</text>\n"
        }
        s += "<line x1=\"\(f(labelWidth))\" y1=\"\(f(top))\" x2=\"\(f(labelWidth))\" y2=\"\(f(height - bottom))\" stroke=\"#333\"/>\n"
        s += "<text x=\"\(f(labelWidth + plotW / 2))\" y=\"\(f(height - 14))\" text-anchor=\"middle\">\(escape(valueLabel))</text>\n"
        return s + "</svg>\n"
    }

    func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}

/// Images and their attributions side by side: for each row, the image in grey and the
/// attribution as a red (positive) / blue (negative) heat map, each on its own scale.
public struct AttributionHeatmaps {
    public var title: String
    /// Per row: a caption, the image's pixels and the attribution's, both of `side × side`.
    public var rows: [(caption: String, image: [Double], attribution: [Double])]
    public var side: Int

    public init(title: String, side: Int, rows: [(caption: String, image: [Double], attribution: [Double])]) {
        require(side > 0 && rows.allSatisfy { $0.image.count == side * side && $0.attribution.count == side * side },
                "AttributionHeatmaps: every image and attribution must have \(side)×\(side) values")
        (self.title, self.side, self.rows) = (title, side, rows)
    }

    public func svg(cell: Double = 120) -> String {
        let pixel = cell / Double(side), top = 50.0, gap = 20.0, captionHeight = 18.0
        let width = 40 + 2 * cell + gap + 40, height = top + Double(rows.count) * (cell + captionHeight + gap) + 10
        func f(_ v: Double) -> String { String(format: "%.2f", v) }
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(width / 2))" y="22" text-anchor="middle" font-size="15">\(title.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;"))</text>
        <text x="\(f(40 + cell / 2))" y="42" text-anchor="middle" fill="#555">input</text><text x="\(f(40 + cell + gap + cell / 2))" y="42" text-anchor="middle" fill="#555">attribution (red +, blue −)</text>

        """
        for (r, row) in rows.enumerated() {
            let y0 = top + Double(r) * (cell + captionHeight + gap)
            let (lo, hi) = (row.image.min() ?? 0, row.image.max() ?? 1)
            let scale = Swift.max(row.attribution.map { Swift.abs($0) }.filter(\.isFinite).max() ?? 1, 1e-300)
            for i in 0..<side {
                for j in 0..<side {
                    let v = row.image[i * side + j], g = hi > lo ? Int(255 * (1 - (v - lo) / (hi - lo))) : 255
                    s += "<rect x=\"\(f(40 + Double(j) * pixel))\" y=\"\(f(y0 + Double(i) * pixel))\" width=\"\(f(pixel + 0.3))\" height=\"\(f(pixel + 0.3))\" fill=\"rgb(\(g),\(g),\(g))\"/>"
                    let a = row.attribution[i * side + j].isFinite ? row.attribution[i * side + j] / scale : 0
                    let fade = Int(255 * (1 - Swift.min(1, Swift.abs(a))))
                    let color = a >= 0 ? "rgb(255,\(fade),\(fade))" : "rgb(\(fade),\(fade),255)"
                    s += "<rect x=\"\(f(40 + cell + gap + Double(j) * pixel))\" y=\"\(f(y0 + Double(i) * pixel))\" width=\"\(f(pixel + 0.3))\" height=\"\(f(pixel + 0.3))\" fill=\"\(color)\"/>"
                }
                s += "\n"
            }
            s += "<text x=\"\(f(40))\" y=\"\(f(y0 + cell + 14))\">\(row.caption.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;"))</text>\n"
        }
        return s + "</svg>\n"
    }

    /// The same picture as an RGB PNG without text: one row per image, the input in grey
    /// (dark is low) beside its heat map (red +, blue −, white 0), each pixel `scale` × `scale`.
    public func png(scale: Int = 6) -> PNGImage {
        require(scale >= 1 && scale <= 64, "AttributionHeatmaps.png: scale \(scale) is not between 1 and 64")
        let cell = side * scale, gap = 2 * scale
        let width = 2 * cell + 3 * gap, height = rows.count * cell + (rows.count + 1) * gap
        var pixels = [UInt8](repeating: 255, count: width * height * 3)
        func put(_ x: Int, _ y: Int, _ rgb: (UInt8, UInt8, UInt8)) {
            let k = (y * width + x) * 3
            (pixels[k], pixels[k + 1], pixels[k + 2]) = rgb
        }
        for (r, row) in rows.enumerated() {
            let y0 = gap + r * (cell + gap)
            let (lo, hi) = (row.image.filter(\.isFinite).min() ?? 0, row.image.filter(\.isFinite).max() ?? 1)
            let top = Swift.max(row.attribution.map { Swift.abs($0) }.filter(\.isFinite).max() ?? 1, 1e-300)
            for i in 0..<side {
                for j in 0..<side {
                    let v = row.image[i * side + j]
                    let g = hi > lo && v.isFinite ? UInt8((255 * (v - lo) / (hi - lo)).rounded()) : 0
                    let a = row.attribution[i * side + j].isFinite ? row.attribution[i * side + j] / top : 0
                    let fade = UInt8((255 * (1 - Swift.min(1, Swift.abs(a)))).rounded())
                    let heat: (UInt8, UInt8, UInt8) = a >= 0 ? (255, fade, fade) : (fade, fade, 255)
                    for dy in 0..<scale {
                        for dx in 0..<scale {
                            put(gap + j * scale + dx, y0 + i * scale + dy, (g, g, g))
                            put(2 * gap + cell + j * scale + dx, y0 + i * scale + dy, heat)
                        }
                    }
                }
            }
        }
        return PNGImage(width: width, height: height, channels: 3, pixels: pixels)
    }
}
