import Nabla
import NablaConformance
let r = ConformanceRunner.standard.run(paths: Array(CommandLine.arguments.dropFirst()))
for c in r.results where c.status != .passed { print(c.file, c.id, c.error ?? -1, c.message ?? "") }
for e in r.fileErrors { print(e) }
print(r.summaryLine)
