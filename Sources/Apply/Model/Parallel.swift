import Dispatch
import Foundation

/// Splits row-wise elementwise work over the cores. Small jobs stay on the calling thread.
///
/// The bodies are not `@Sendable`: they write through raw pointers into the caller's buffers. The contract is that
/// a body touches only what belongs to its own range, job or worker (and reads shared inputs), so the concurrent
/// calls never race; every call site is written that way.
enum Parallel {
    static let workers = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))

    /// Calls `body` on disjoint row ranges covering 0..<rows, concurrently when there is enough work.
    static func rows(_ rows: Int, elementsPerRow: Int, _ body: (Range<Int>) -> Void) {
        chunkedRows(rows, elementsPerRow: elementsPerRow) { _, range in body(range) }
    }

    /// How many row ranges `chunkedRows` splits this work into.
    static func chunks(rows: Int, elementsPerRow: Int) -> Int {
        rows * elementsPerRow < 1 << 15 ? 1 : max(1, min(workers, rows))
    }

    /// `rows` with the range's index in 0..<chunks(rows:elementsPerRow:), for per-range partial sums. The split
    /// depends only on the sizes and the core count, so sums reduced in index order are deterministic.
    static func chunkedRows(_ rows: Int, elementsPerRow: Int, _ body: (_ chunk: Int, Range<Int>) -> Void) {
        let chunks = chunks(rows: rows, elementsPerRow: elementsPerRow)
        if chunks <= 1 { body(0, 0..<rows); return }
        nonisolated(unsafe) let body = body
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            body(c, rows * c / chunks..<rows * (c + 1) / chunks)
        }
    }

    /// Calls `body(job, worker)` for every job in 0..<jobs; worker w takes jobs w, w + workers, …, so per-worker
    /// scratch is private.
    static func jobs(_ jobs: Int, _ body: @escaping (_ job: Int, _ worker: Int) -> Void) {
        let workers = min(Parallel.workers, jobs)
        nonisolated(unsafe) let body = body
        let run: @Sendable (Int) -> Void = { worker in
            for job in stride(from: worker, to: jobs, by: workers) { body(job, worker) }
        }
        if workers <= 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: run) }
    }
}
