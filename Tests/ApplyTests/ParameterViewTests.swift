import Foundation
import GSLoRAFormat
import GSLoRAModel
import XCTest

/// Parameters loaded from a .gslr are views of the mapped file (no second copy), run exactly like copied ones, and a
/// write into them stays in this process's memory; tensors that cannot be used in place are converted copies.
final class ParameterViewTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try AdapterTestKit.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    func path(_ n: String) -> String { dir.appendingPathComponent(n).path }

    func writeBackbone(dtype: DType = .f32) throws -> (ModelConfig, String) {
        let c = AdapterTestKit.config()
        let p = path("base-\(dtype.rawValue).gslr")
        try AdapterTestKit.writeBackbone(p, config: c, weights: try AdapterTestKit.weights(c, seed: 3, dtype: dtype))
        return (c, p)
    }

    func images(_ c: ModelConfig, batch: Int) -> [Float] {
        var rng = SplitMix64(seed: 21)
        return (0..<(batch * c.channels * c.imageSize * c.imageSize)).map { _ in rng.nextUnitFloat() }
    }

    func fileHash(_ p: String) throws -> String { SHA256.hex(SHA256.hash([UInt8](try Data(contentsOf: URL(fileURLWithPath: p))))) }

    /// Whether `b`'s elements lie inside `file`'s mapping.
    func pointsIntoMapping(_ b: FloatBuffer, _ file: GSLRFile) -> Bool {
        let m = file.mapping.bytes.buffer, start = Int(bitPattern: m.baseAddress), p = Int(bitPattern: b.pointer)
        return p >= start && p + b.count * 4 <= start + m.count
    }

    func testFloat32ParametersAreViewsOfTheMappedFileAndRunLikeCopies() throws {
        let (c, p) = try writeBackbone()
        let file = try GSLRFile.open(p)
        let viewed = try ViTParameters(config: c, weights: file.allTensors())
        XCTAssertEqual(viewed.allBuffers.count, file.tensors.count)
        for (i, b) in viewed.allBuffers.enumerated() {
            XCTAssertTrue(b.isView, "parameter \(i) is a copy")
            XCTAssertTrue(pointsIntoMapping(b, file), "parameter \(i) is not inside the mapping")
            XCTAssertEqual(Int(bitPattern: b.pointer) % FloatBuffer.alignment, 0)
        }
        XCTAssertTrue(file.mapping.bytes.owner.isWritable, "views are only made of copy-on-write memory")
        // The same values in memory of their own.
        let copied = try ViTParameters(config: c, weights: try GSLRFile.open(p).allTensors())
        copied.allBuffers.forEach { $0.detach() }
        for (v, k) in zip(viewed.allBuffers, copied.allBuffers) {
            XCTAssertFalse(k.isView)
            XCTAssertEqual(v.array, k.array)
        }
        let batch = 3, x = images(c, batch: batch), labels = [0, 2, 3]
        for mode in [ForwardMode.eval, .train(dropout: 0.1)] {
            let a = try ViT(config: c, parameters: viewed), b = try ViT(config: c, parameters: copied)
            let oa = try x.withUnsafeBufferPointer { try a.forward(images: $0, batch: batch, labels: labels, mode: mode) }
            let ob = try x.withUnsafeBufferPointer { try b.forward(images: $0, batch: batch, labels: labels, mode: mode) }
            XCTAssertEqual(oa.embeddings.map(\.bitPattern), ob.embeddings.map(\.bitPattern), "\(mode)")
            XCTAssertEqual(oa.logits.map(\.bitPattern), ob.logits.map(\.bitPattern), "\(mode)")
            XCTAssertEqual(oa.marginLogits?.map(\.bitPattern), ob.marginLogits?.map(\.bitPattern), "\(mode)")
            XCTAssertFalse(oa.logits.isEmpty)
        }
        print("ParameterViewTests: \(viewed.allBuffers.count) view parameters of \(p)")
    }

    func testOtherDtypesAreConvertedCopies() throws {
        for dtype in [DType.f16, .bf16, .f64] {
            let (c, p) = try writeBackbone(dtype: dtype)
            let file = try GSLRFile.open(p)
            let params = try ViTParameters(config: c, weights: file.allTensors())
            for (b, t) in zip(params.allBuffers, file.allTensors()) {
                XCTAssertFalse(b.isView, "\(dtype.rawValue) \(t.name)")
                XCTAssertFalse(pointsIntoMapping(b, file))
                XCTAssertEqual(b.array, try t.floats(), "\(dtype.rawValue) \(t.name)")
            }
            // Nothing was viewed, so the mapping was left read-only.
            XCTAssertFalse(file.mapping.bytes.owner.isWritable, dtype.rawValue)
        }
    }

    func testMisalignedAndReadOnlyFloat32TensorsAreCopied() throws {
        let c = AdapterTestKit.config()
        var tensors = try AdapterTestKit.weights(c, seed: 4)
        // Shift one tensor's bytes 4 bytes off a 64-byte boundary, and hand another over in memory that is not writable.
        let misaligned = tensors.firstIndex { $0.name == "blocks.0.mlp.fc1.weight" }!
        let readOnly = tensors.firstIndex { $0.name == "blocks.1.attn.qkv.weight" }!
        let reference = try tensors.map { try $0.floats() }
        do {
            let t = tensors[misaligned], n = t.data.count
            let o = ByteOwner.allocate(n + 4), dst = UnsafeMutableRawPointer(mutating: o.base.baseAddress!) + 4
            dst.copyMemory(from: t.data.buffer.baseAddress!, byteCount: n)
            tensors[misaligned] = Tensor(
                name: t.name, dtype: t.dtype, shape: t.shape, data: Bytes(owner: o, buffer: UnsafeRawBufferPointer(start: dst, count: n)))
        }
        do {
            let t = tensors[readOnly], n = t.data.count
            let raw = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 64)
            raw.copyMemory(from: t.data.buffer.baseAddress!, byteCount: n)
            let o = ByteOwner(base: UnsafeRawBufferPointer(start: raw, count: n)) { raw.deallocate() }
            tensors[readOnly] = Tensor(name: t.name, dtype: t.dtype, shape: t.shape, data: Bytes(owner: o))
        }
        XCTAssertTrue(tensors[misaligned].data.owner.isWritable)
        XCTAssertNotEqual(Int(bitPattern: tensors[misaligned].data.buffer.baseAddress) % 64, 0)
        XCTAssertFalse(tensors[readOnly].data.owner.makeWritable(), "memory handed over without a way to unprotect it stays read-only")

        let params = try ViTParameters(config: c, weights: tensors)
        // AdapterTestKit.weights lists the tensors in `allBuffers` order.
        XCTAssertEqual(params.allBuffers.count, tensors.count)
        for (i, (t, b)) in zip(tensors, params.allBuffers).enumerated() {
            // Aligned float32 tensors in writable memory (ordinary allocations) are used in place; the two others not.
            XCTAssertEqual(b.isView, i != misaligned && i != readOnly, t.name)
            XCTAssertEqual(b.array, reference[i], t.name)
        }
    }

    func testWritingIntoViewsLeavesTheFileUnchanged() throws {
        let (c, p) = try writeBackbone()
        let before = try fileHash(p)
        let file = try GSLRFile.open(p)
        let params = try ViTParameters(config: c, weights: file.allTensors())
        let original = params.allBuffers.map(\.array)
        // An SGD-like step on every parameter, in place.
        for b in params.allBuffers {
            XCTAssertTrue(b.isView)
            for i in 0..<b.count { b.pointer[i] = b.pointer[i] * 0.5 - 0.25 }
        }
        for (b, o) in zip(params.allBuffers, original) { XCTAssertEqual(b.array, o.map { $0 * 0.5 - 0.25 }) }
        XCTAssertEqual(try fileHash(p), before, "a write into a view reached the file")
        let reopened = try GSLRFile.open(p)
        for (t, o) in zip(reopened.allTensors(), original) { XCTAssertEqual(try t.floats(), o, t.name) }
        XCTAssertEqual(reopened.verify(), [])
    }

    func testDetachAndGrowthLeaveTheTensorAlone() throws {
        let (c, p) = try writeBackbone()
        let file = try GSLRFile.open(p)
        let tensors = file.allTensors()
        let params = try ViTParameters(config: c, weights: tensors)
        let w = params.blocks[0].fc1.weight, t = try file.tensor("blocks.0.mlp.fc1.weight"), values = try t.floats()
        XCTAssertTrue(w.isView)
        w.detach()
        XCTAssertFalse(w.isView)
        XCTAssertFalse(pointsIntoMapping(w, file))
        XCTAssertEqual(w.array, values)
        w.fill(7)
        XCTAssertEqual(try t.floats(), values, "a detached buffer still wrote into the tensor")

        let b = params.blocks[0].fc2.weight, u = try file.tensor("blocks.0.mlp.fc2.weight"), kept = try u.floats()
        XCTAssertTrue(b.isView)
        b.reserve(b.count - 1)
        XCTAssertTrue(b.isView, "shrinking keeps the view")
        b.reserve(b.count + 2)
        XCTAssertFalse(b.isView, "growing a view gives it memory of its own")
        XCTAssertEqual(b.array, [Float](repeating: 0, count: b.count))
        XCTAssertEqual(try u.floats(), kept)
    }
}
