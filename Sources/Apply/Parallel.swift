import Dispatch
import Foundation

/// Splits row-wise elementwise work over the cores. Small jobs stay on the calling thread.
enum Parallel {
    static let workers = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))

    /// Calls `body` on disjoint row ranges covering 0..<rows, concurrently when there is enough work.
    static func rows(_ rows: Int, elementsPerRow: Int, _ body: (Range<Int>) -> Void) {
        let chunks = rows * elementsPerRow < 1 << 15 ? 1 : min(workers, rows)
        if chunks <= 1 { body(0..<rows); return }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            body(rows * c / chunks ..< rows * (c + 1) / chunks)
        }
    }
}
