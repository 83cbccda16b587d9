import Foundation

/// Per-call timing with the rule of the peers' benchmark scripts: warm up (≥ 1 call and
/// ≥ 0.3 s), calibrate `inner` so one repeat lasts ≥ 0.2 s, then repeat until there are ≥ 5
/// repeats and ≥ 2 s measured (stopping at 60 s once there are 3). Median and minimum per call.
struct Timing {
    var medianSeconds: Double
    var minSeconds: Double
    var repeats: Int
    var inner: Int
    var othersCores: Double

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    static func measure(minRepeats: Int = 5, minTotal: Double = 2.0, targetRepeat: Double = 0.2,
                        warmup: Double = 0.3, maxTotal: Double = 60, _ body: () -> Void) -> Timing {
        let t0 = now()
        var warm = 0
        while warm < 1 || now() - t0 < warmup { body(); warm += 1 }
        var times: [Double] = []
        var total = 0.0
        var inner = 1
        let (busy0, self0, wall0) = (busyJiffies(), selfCPU(), now())
        while true {
            let t = now()
            for _ in 0..<inner { body() }
            let dt = now() - t
            if dt >= targetRepeat || inner >= 1 << 24 {
                times.append(dt / Double(inner)); total += dt; break
            }
            inner = max(inner * 2, Int(Double(inner) * targetRepeat / max(dt, 1e-9) * 1.1))
        }
        while (times.count < minRepeats || total < minTotal) && !(total >= maxTotal && times.count >= 3) {
            let t = now()
            for _ in 0..<inner { body() }
            let dt = now() - t
            times.append(dt / Double(inner)); total += dt
        }
        let wall = now() - wall0
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        let others = max(0, (Double(busyJiffies() - busy0) / hz - (selfCPU() - self0)) / wall)
        times.sort()
        let mid = times.count / 2
        let median = times.count % 2 == 1 ? times[mid] : 0.5 * (times[mid - 1] + times[mid])
        return Timing(medianSeconds: median, minSeconds: times[0], repeats: times.count, inner: inner,
                      othersCores: (others * 100).rounded() / 100)
    }

    /// Several bodies timed side by side: each is warmed up and calibrated as in `measure`, then
    /// their repeats alternate, so a slow spell of a noisy machine falls on all of them alike.
    static func measureInterleaved(minRepeats: Int = 5, minTotal: Double = 2.0, targetRepeat: Double = 0.2,
                                   maxTotal: Double = 60, _ bodies: [() -> Void]) -> [Timing] {
        var inner = [Int](repeating: 1, count: bodies.count)
        for (i, body) in bodies.enumerated() {
            let t0 = now()
            var warm = 0
            while warm < 1 || now() - t0 < 0.3 { body(); warm += 1 }
            while true {
                let t = now()
                for _ in 0..<inner[i] { body() }
                let dt = now() - t
                if dt >= targetRepeat || inner[i] >= 1 << 24 { break }
                inner[i] = max(inner[i] * 2, Int(Double(inner[i]) * targetRepeat / max(dt, 1e-9) * 1.1))
            }
        }
        var times = [[Double]](repeating: [], count: bodies.count)
        var totals = [Double](repeating: 0, count: bodies.count)
        let (busy0, self0, wall0) = (busyJiffies(), selfCPU(), now())
        while times.contains(where: { $0.count < minRepeats }) || totals.contains(where: { $0 < minTotal }) {
            if totals.allSatisfy({ $0 >= maxTotal }) && times.allSatisfy({ $0.count >= 3 }) { break }
            for (i, body) in bodies.enumerated() {
                let t = now()
                for _ in 0..<inner[i] { body() }
                let dt = now() - t
                times[i].append(dt / Double(inner[i])); totals[i] += dt
            }
        }
        let wall = now() - wall0
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        let others = max(0, (Double(busyJiffies() - busy0) / hz - (selfCPU() - self0)) / wall)
        return times.enumerated().map { i, ts in
            let sorted = ts.sorted()
            let mid = sorted.count / 2
            let median = sorted.count % 2 == 1 ? sorted[mid] : 0.5 * (sorted[mid - 1] + sorted[mid])
            return Timing(medianSeconds: median, minSeconds: sorted[0], repeats: sorted.count, inner: inner[i],
                          othersCores: (others * 100).rounded() / 100)
        }
    }

    /// Busy jiffies of the whole machine (all but idle and iowait), from /proc/stat.
    static func busyJiffies() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/stat", encoding: .utf8), let line = s.split(separator: "\n").first else { return 0 }
        let v = line.split(separator: " ").dropFirst().compactMap { Int($0) }
        guard v.count >= 5 else { return 0 }
        return v.reduce(0, +) - v[3] - v[4]
    }

    static func selfCPU() -> Double {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) * 1e-6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) * 1e-6
    }
}
