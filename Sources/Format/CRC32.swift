import CGSLoRAZlib
import Foundation

/// CRC-32 as zlib computes it (IEEE 802.3 polynomial, reflected, init and final xor 0xFFFFFFFF): the checksum every
/// .gslr preamble and tensor table entry carries (spec/FORMAT.md §6).
public enum CRC32 {
    /// The CRC of `p`, continuing from `seed` (the CRC of the bytes before `p`; 0 to start).
    public static func of(_ p: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        guard var base = p.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return seed }
        var crc = UInt(seed)
        var left = p.count
        // zlib takes a 32-bit length; feed 1 GiB at a time.
        while left > 0 {
            let n = min(left, 1 << 30)
            crc = CGSLoRAZlib.crc32(crc, base, uInt(n))
            base += n
            left -= n
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    /// The CRC of A followed by B, from CRC(A), CRC(B) and B's length (zlib's crc32_combine).
    public static func combine(_ a: UInt32, _ b: UInt32, lengthOfB: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: CGSLoRAZlib.crc32_combine(UInt(a), UInt(b), Int(lengthOfB)))
    }

    /// CRCs of many buffers using every core: buffers are cut into pieces of at most `piece` bytes, the pieces are
    /// hashed in parallel and recombined. `progress` gets the bytes hashed so far (called under a lock).
    public static func ofEach(_ buffers: [UnsafeRawBufferPointer], piece: Int = 32 << 20, progress: ((Int) -> Void)? = nil) -> [UInt32] {
        struct Job { let buffer: Int; let start: Int; let count: Int }
        var pieces: [Job] = []
        for (i, b) in buffers.enumerated() {
            var at = 0
            repeat {
                let n = min(piece, b.count - at)
                pieces.append(Job(buffer: i, start: at, count: n))
                at += n
            } while at < b.count
        }
        // Workers write disjoint slots of `results`, read the buffers only, and touch `next`, `done` and `progress`
        // under the lock.
        nonisolated(unsafe) let results = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: pieces.count)
        defer { results.deallocate() }
        nonisolated(unsafe) let buffers = buffers, progress = progress
        let jobs = pieces, lock = NSLock()
        nonisolated(unsafe) var next = 0, done = 0
        let workers = min(ProcessInfo.processInfo.activeProcessorCount, max(jobs.count, 1))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                lock.lock()
                let j = next
                next += 1
                lock.unlock()
                guard j < jobs.count else { return }
                let job = jobs[j]
                results[j] = of(UnsafeRawBufferPointer(rebasing: buffers[job.buffer][job.start..<(job.start + job.count)]))
                if let progress {
                    lock.lock()
                    done += job.count
                    progress(done)
                    lock.unlock()
                }
            }
        }
        var crcs = [UInt32](repeating: 0, count: buffers.count)
        var first = Set<Int>()
        for (j, job) in jobs.enumerated() {
            crcs[job.buffer] = first.insert(job.buffer).inserted ? results[j] : combine(crcs[job.buffer], results[j], lengthOfB: job.count)
        }
        return crcs
    }

    public static func of(_ bytes: [UInt8], seed: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { of($0, seed: seed) }
    }

    /// Eight lowercase hex digits, as the header stores a CRC.
    public static func hex(_ crc: UInt32) -> String {
        let s = String(crc, radix: 16)
        return String(repeating: "0", count: 8 - s.count) + s
    }

    /// The CRC spelled by exactly eight lowercase hex digits, else nil.
    public static func parse(_ s: String) -> UInt32? {
        let u = Array(s.utf8)
        guard u.count == 8, u.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
        return UInt32(s, radix: 16)
    }
}
