import Foundation
import GSLoRAFormat

/// Image files decoded and preprocessed on all cores into one float32 [N, C, H, W] tensor: the engine of
/// `ImageFolder.load`, and usable directly for unlabelled inputs (e.g. inference on a list of files).
public enum ImageFiles {
    /// Decodes `paths` (JPEG or PNG, recognised by content) through `preprocessing`. Files that cannot be read or
    /// decoded are left out and reported, or with `strict: true` the first of them (in `paths` order) is thrown.
    /// Returns the images of the files kept, in `paths` order, and the indices into `paths` they came from.
    public static func load(_ paths: [String], preprocessing: Preprocessing, strict: Bool = false) throws
        -> (images: Tensor, kept: [Int], skipped: [SkippedImage])
    {
        try preprocessing.validate()
        let n = paths.count
        let size = preprocessing.valuesPerImage
        let (tensor, out) = allocateImages(n, preprocessing.channels, preprocessing.outputHeight, preprocessing.outputWidth, name: "images")

        let failures = UnsafeMutableBufferPointer<String?>.allocate(capacity: max(n, 1))
        failures.initialize(repeating: nil)
        defer {
            failures.deinitialize()
            failures.deallocate()
        }
        let shared = LoadContext(out: out, failures: failures, next: WorkCounter(n), table: OutputTable(preprocessing))
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, n))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            // Per thread: one decoder, one resize scratch and one file buffer, reused for every file.
            let decoder = ImageDecoder()
            let scratch = ResampleScratch()
            var file: [UInt8] = []
            while let i = shared.next.take() {
                do {
                    let length = try readFile(paths[i], into: &file, limit: ImageDecoder.maxFileBytes)
                    try file.withUnsafeBytes { try decoder.decode(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
                    decoder.pixels.withUnsafeBufferPointer { px in
                        preprocessing.run(
                            px.baseAddress!, width: decoder.width, height: decoder.height, channels: decoder.channels,
                            into: shared.out + i * size, scratch: scratch, table: shared.table)
                    }
                } catch let f as DecodeFailure {
                    shared.failures[i] = f.reason
                } catch let DataError.badImage(_, reason) {
                    shared.failures[i] = reason
                } catch {
                    shared.failures[i] = "\(error)"
                }
            }
        }

        var skipped: [SkippedImage] = []
        var kept: [Int] = []
        kept.reserveCapacity(n)
        for i in 0..<n {
            if let reason = failures[i] {
                if strict { throw DataError.badImage(path: paths[i], reason: reason) }
                skipped.append(SkippedImage(path: paths[i], reason: reason))
            } else {
                kept.append(i)
            }
        }
        // Close the gaps left by skipped files (k ≤ i, so copying front to back never overwrites a pending image).
        for (k, i) in kept.enumerated() where k != i {
            (out + k * size).update(from: out + i * size, count: size)
        }
        let images = Tensor(
            name: tensor.name, dtype: .f32, shape: [kept.count] + tensor.shape.dropFirst(),
            data: Bytes(
                owner: tensor.data.owner,
                buffer: UnsafeRawBufferPointer(rebasing: tensor.data.buffer[0..<(kept.count * size * 4)])))
        return (images, kept, skipped)
    }
}

/// What the decoding workers share: output pointers and the next-file counter.
private struct LoadContext: @unchecked Sendable {
    let out: UnsafeMutablePointer<Float>
    let failures: UnsafeMutableBufferPointer<String?>
    let next: WorkCounter
    let table: OutputTable
}

/// Hands out indices 0..<n to worker threads, one at a time, so uneven files balance across cores.
final class WorkCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    private let limit: Int

    init(_ limit: Int) { self.limit = limit }

    func take() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}
