import ArgumentParser
import Foundation
import Nabla
import NablaConformance
import NablaDistributed

/// `nabla distributed check`: the collectives of an MPI job, checked and timed.
struct Distributed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Data-parallel training across processes and machines (MPI).",
        discussion: """
        Build with MPI (Open MPI: scripts/setup --mpi), then start N processes with mpirun:
          swift build -c release --traits MPI
          mpirun -np 2 .build/release/nabla distributed check
          mpirun -np 2 .build/release/nabla train --distributed --data digits --batch 64
        On one machine, keep MPI's traffic on shared memory and loopback: add
        --mca btl self,vader --mca oob_tcp_if_include lo (and --allow-run-as-root as root).
        """,
        subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every collective against known answers and time an all-reduce (run it under mpirun first on a new cluster).")
        @Option(help: "float32 values in the timed all-reduce.") var elements: Int = 1 << 20
        @Flag(help: "One JSON object.") var json = false

        func validate() throws {
            guard elements >= 1, elements <= 1 << 28 else { throw ValidationError("--elements must be between 1 and 268435456, got \(elements)") }
        }

        func run() throws {
            let world: Communicator
            do { world = try Communicator.world() } catch { throw ValidationError("\(error)") }
            let check = CollectiveCheck(on: world, bandwidthElements: elements)
            world.finalize()
            guard world.isPrimary else { if !check.passed { throw ExitCode.failure }; return }
            if json {
                print(OrderedJSON([("processes", .number(Double(world.size))), ("transport", .string(world.transport)), ("passed", .bool(check.passed)),
                                   ("checks", .array(check.results.map { .object(["name": .string($0.name), "passed": .bool($0.passed), "detail": .string($0.detail)]) })),
                                   ("allreduce_elements", .number(Double(elements))), ("allreduce_ms_median", .number(check.allReduceSeconds * 1e3)),
                                   ("bus_bandwidth_gb_s", .number(check.busBandwidth / 1e9))]).text)
            } else {
                print("\(world.size) process\(world.size == 1 ? "" : "es") over \(world.transport)\(Communicator.isMPIBuild ? "" : " (this build has no MPI: swift build -c release --traits MPI)")")
                for r in check.results { print("\(r.passed ? "ok  " : "FAIL") \(pad(r.name, 26)) \(r.detail)") }
                print("all-reduce of \(elements) float32 (\(fmt(Double(elements * 4) / 1e6, digits: 3)) MB): \(fmt(check.allReduceSeconds * 1e3, digits: 3)) ms (median)\(world.size > 1 ? ", bus bandwidth \(fmt(check.busBandwidth / 1e9, digits: 3)) GB/s" : "")")
            }
            if !check.passed { throw ExitCode.failure }
        }
    }
}
