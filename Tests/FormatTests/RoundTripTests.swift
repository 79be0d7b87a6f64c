import GSLoRAFormat
import XCTest

final class RoundTripTests: XCTestCase {
    func testEveryDTypeIncludingEmptyAndScalar() throws {
        let dir = TempDir()
        var tensors: [Tensor] = []
        for (i, d) in DType.allCases.enumerated() {
            tensors.append(sampleTensor("\(d.rawValue).matrix", d, [3, 5], seed: UInt64(i + 1)))
            tensors.append(sampleTensor("\(d.rawValue).scalar", d, [], seed: UInt64(i + 100)))
            tensors.append(sampleTensor("\(d.rawValue).empty", d, [0, 4], seed: 7))
            tensors.append(sampleTensor("\(d.rawValue).rank8", d, [1, 2, 1, 2, 1, 2, 1, 3], seed: UInt64(i + 200)))
        }
        let path = dir.file("all.gslr")
        try GSLRWriter.write(path, header: GSLRHeader(kind: .tensors, metadata: ["source": .string("test")]), tensors: tensors)
        let f = try GSLRFile.open(path)
        XCTAssertEqual(f.kind, .tensors)
        XCTAssertEqual(f.majorVersion, 1)
        XCTAssertEqual(f.header.metadata["source"], .string("test"))
        XCTAssertEqual(f.tensors.map(\.name), tensors.map(\.name), "table keeps the writer's order")
        for t in tensors {
            let r = try f.tensor(t.name)
            XCTAssertEqual(r.dtype, t.dtype)
            XCTAssertEqual(r.shape, t.shape)
            XCTAssertEqual(bytesOf(r), bytesOf(t), t.name)
            let info = try f.info(t.name)
            XCTAssertEqual(info.offset % 64, 0)
            XCTAssertEqual(info.crc32, CRC32.of(t.data.buffer))
        }
        XCTAssertEqual(f.verify(), [])
        XCTAssertEqual(f.fingerprint, Fingerprint.of(tensors, binding: .none), "fingerprint from the table equals the one from the bytes")
        // The file ends exactly at the last tensor's last byte.
        let last = f.tensors.last!
        XCTAssertEqual(f.fileSize, f.dataStart + last.offset + last.length)
        XCTAssertEqual(f.allTensors().count, tensors.count)
    }

    func testNamesAreComparedAsBytes() throws {
        // "é" precomposed and decomposed are equal Swift Strings but different names in the format (spec §4.2).
        let dir = TempDir()
        let path = dir.file("names.gslr")
        let a = sampleTensor("caf\u{E9}", .u8, [2], seed: 1), b = sampleTensor("cafe\u{301}", .u8, [3], seed: 2)
        try GSLRWriter.write(path, header: GSLRHeader(kind: .tensors), tensors: [a, b])
        let f = try GSLRFile.open(path)
        XCTAssertEqual(try f.tensor("caf\u{E9}").shape, [2])
        XCTAssertEqual(try f.tensor("cafe\u{301}").shape, [3])
        XCTAssertThrowsError(try f.tensor("cafe")) { XCTAssertTrue("\($0)".contains("no tensor named 'cafe'")) }
    }

    func testViewsOutliveTheFileObject() throws {
        let dir = TempDir()
        let path = dir.file("v.gslr")
        let t = sampleTensor("w", .f32, [64, 64])
        try GSLRWriter.write(path, header: GSLRHeader(kind: .tensors), tensors: [t])
        var view: Tensor?
        do { view = try GSLRFile.open(path).tensor("w") }
        XCTAssertEqual(bytesOf(view!), bytesOf(t))
    }

    func testLargerAlignmentAndNoTensors() throws {
        let dir = TempDir()
        let a = dir.file("a.gslr")
        try GSLRWriter.write(
            a, header: GSLRHeader(kind: .tensors, alignment: 4096),
            tensors: [sampleTensor("x", .u8, [5]), sampleTensor("y", .i64, [7])])
        let f = try GSLRFile.open(a)
        XCTAssertEqual(f.dataStart % 4096, 0)
        XCTAssertEqual(try f.info("y").offset, 4096)
        let e = dir.file("empty.gslr")
        try GSLRWriter.write(e, header: GSLRHeader(kind: .tensors), tensors: [])
        let g = try GSLRFile.open(e)
        XCTAssertEqual(g.tensors.count, 0)
        XCTAssertEqual(g.fileSize, g.dataStart)
    }

    func testBackboneFile() throws {
        let dir = TempDir()
        let path = dir.file("backbone.gslr")
        let tensors = [sampleTensor("cls_token", .f32, [1, 1, 64]), sampleTensor("loss.weight", .f16, [3, 64])]
        let header = GSLRHeader(
            kind: .backbone, model: tinyConfig, classes: ["cat", "dog", "owl"],
            merged: [MergedTask(task: 1, adapterFingerprint: "sha256:" + String(repeating: "ab", count: 32))],
            metadata: ["epoch": .int(3), "args": .object(["lr": .number(0.01), "tags": .array([.string("a"), .null, .bool(true)])])])
        try GSLRWriter.write(path, header: header, tensors: tensors)
        let f = try GSLRFile.open(path)
        XCTAssertEqual(f.header.model, tinyConfig)
        XCTAssertEqual(f.header.classes ?? [], ["cat", "dog", "owl"])
        XCTAssertEqual(f.header.merged, header.merged)
        XCTAssertEqual(f.header.metadata, header.metadata)
        XCTAssertEqual(try f.tensor("loss.weight").shape, [3, 64])
    }

    func adapterHeader(base: String, prunedSecond: Bool) -> GSLRHeader {
        let members0 = ["blocks.0.mlp.fc1.lora_A", "blocks.0.mlp.fc1.lora_B"]
        let members1 = ["blocks.1.mlp.fc1.lora_A", "blocks.1.mlp.fc1.lora_B"]
        let task = TaskRecord(
            index: 2, forget: [10, 11], retain: [12, 13, 14], old: [0, 1],
            settings: ["lr": .number(1e-3), "epochs": .int(50), "grouping": .string("block")],
            metrics: ["acc_r": 71.25, "acc_f": 0.5])
        let adapter = AdapterInfo(
            rank: 4, alpha: 1, scaling: 0.25, targets: ["mlp.fc1"], grouping: "block",
            groups: [
                GroupRecord(name: "block0", members: members0, norm: 1.5, state: .kept),
                GroupRecord(name: "block1", members: members1, norm: 0.001, state: prunedSecond ? .pruned : .kept)
            ],
            task: task, baseFingerprint: base)
        return GSLRHeader(kind: .adapter, adapter: adapter)
    }

    func testAdapterFileKeepsPrunedGroupsInTheRecordOnly() throws {
        let dir = TempDir()
        let base = [sampleTensor("w", .f32, [4, 4])]
        let fp = Fingerprint.of(base, binding: .none)
        XCTAssertTrue(fp.hasPrefix(Fingerprint.prefix) && fp.count == Fingerprint.prefix.count + 64)
        let path = dir.file("task2.gslr")
        let kept = [sampleTensor("blocks.0.mlp.fc1.lora_A", .f32, [4, 64]), sampleTensor("blocks.0.mlp.fc1.lora_B", .f32, [128, 4])]
        try GSLRWriter.write(path, header: adapterHeader(base: fp, prunedSecond: true), tensors: kept)
        let f = try GSLRFile.open(path)
        let a = try XCTUnwrap(f.header.adapter)
        XCTAssertEqual(a, adapterHeader(base: fp, prunedSecond: true).adapter)
        XCTAssertEqual(a.groups.map(\.state), [.kept, .pruned])
        XCTAssertEqual(a.baseFingerprint, fp)
        XCTAssertFalse(f.contains("blocks.1.mlp.fc1.lora_A"))

        // A kept group whose members are missing is refused at write time.
        XCTAssertThrowsError(try GSLRWriter.write(dir.file("bad.gslr"), header: adapterHeader(base: fp, prunedSecond: false), tensors: kept)) {
            XCTAssertTrue("\($0)".contains("blocks.1.mlp.fc1.lora_A"), "\($0)")
        }
        XCTAssertThrowsError(try GSLRWriter.write(dir.file("bad.gslr"), header: adapterHeader(base: "sha256:nope", prunedSecond: true), tensors: kept))
        XCTAssertFalse(dir.contents.contains("bad.gslr"))
    }

    func testNonJSONNumbersAreRefusedByName() {
        let dir = TempDir()
        var task = TaskRecord(index: 1, forget: [0], retain: [1])
        task.metrics["loss"] = .nan
        let a = AdapterInfo(
            rank: 1, alpha: 1, scaling: 1, targets: [], grouping: "block", groups: [], task: task,
            baseFingerprint: Fingerprint.of([TensorInfo](), binding: .none))
        XCTAssertThrowsError(try GSLRWriter.write(dir.file("nan.gslr"), header: GSLRHeader(kind: .adapter, adapter: a), tensors: [])) {
            guard case .invalidInput? = $0 as? FormatError else { return XCTFail("\($0)") }
            XCTAssertTrue("\($0)".contains("loss"), "\($0)")
        }
        XCTAssertEqual(dir.contents, [])
    }

    func testFingerprintIsCanonical() {
        let a = sampleTensor("b", .f32, [2]), b = sampleTensor("a", .bf16, [])
        // Order-independent, and defined by the spec's canonical lines (§7); a `tensors` file has no binding line.
        XCTAssertEqual(Fingerprint.of([a, b], binding: .none), Fingerprint.of([b, a], binding: .none))
        let lines = "a\tBF16\t\t\(CRC32.hex(CRC32.of(b.data.buffer)))\nb\tF32\t2\t\(CRC32.hex(CRC32.of(a.data.buffer)))\n"
        XCTAssertEqual(Fingerprint.of([a, b], binding: .none), "gslr1.1-sha256:" + SHA256.hex(SHA256.hash(Array(lines.utf8))))
        var c = a
        c.shape = [2, 1]
        XCTAssertNotEqual(Fingerprint.of([c, b], binding: .none), Fingerprint.of([a, b], binding: .none))
    }

    func testFingerprintBindsConfigAndScaling() throws {
        let t = [sampleTensor("w", .f32, [2])]
        let infos = t.map { TensorInfo(name: $0.name, dtype: $0.dtype, shape: $0.shape, offset: 0, length: $0.data.count, crc32: CRC32.of($0.data.buffer)) }
        let table = "w\tF32\t2\t\(CRC32.hex(infos[0].crc32))\n"
        // The binding lines of spec §7, spelled out: binary64 values as their bit patterns.
        let modelLine =
            "#model\tface_vit\t40\t8\t3\t64\t2\t4\t16\t128\t3\tcosface\t4050000000000000\t3fd6666666666666\t3fa6a09e667f3bcc\t3ee4f8b588e368f1\t0\tcls\n"
        XCTAssertEqual(Fingerprint.of(infos, binding: .model(tinyConfig)), "gslr1.1-sha256:" + SHA256.hex(SHA256.hash(Array((modelLine + table).utf8))))
        let base = "sha256:" + String(repeating: "0", count: 64)
        let adapterLine = "#adapter\t3fd0000000000000\t\(base)\n"
        XCTAssertEqual(
            Fingerprint.of(infos, binding: .adapter(scaling: 0.25, base: base)),
            "gslr1.1-sha256:" + SHA256.hex(SHA256.hash(Array((adapterLine + table).utf8))))
        // Every bound value changes it: the config, the scaling, the base.
        var other = tinyConfig
        other.attentionScale = 0.25
        XCTAssertNotEqual(Fingerprint.of(infos, binding: .model(tinyConfig)), Fingerprint.of(infos, binding: .model(other)))
        XCTAssertNotEqual(
            Fingerprint.of(infos, binding: .adapter(scaling: 0.25, base: base)), Fingerprint.of(infos, binding: .adapter(scaling: 0.5, base: base)))
        XCTAssertNotEqual(
            Fingerprint.of([TensorInfo](), binding: .adapter(scaling: 0.25, base: base)),
            Fingerprint.of([TensorInfo](), binding: .adapter(scaling: 0.25, base: Fingerprint.of(infos, binding: .none))),
            "fully pruned adapters of different bases differ")
        // The 1.0 scheme (table only) stays comparable: a stored value is matched in the scheme it is spelled in.
        let old = Fingerprint.tableOnly(infos)
        XCTAssertEqual(old, "sha256:" + SHA256.hex(SHA256.hash(Array(table.utf8))))
        XCTAssertTrue(Fingerprint.matches(old, infos, binding: .model(tinyConfig)))
        XCTAssertTrue(Fingerprint.matches(Fingerprint.of(infos, binding: .model(tinyConfig)), infos, binding: .model(tinyConfig)))
        XCTAssertFalse(Fingerprint.matches(Fingerprint.of(infos, binding: .model(other)), infos, binding: .model(tinyConfig)))
    }

    func testFloatConversions() throws {
        let values: [Float] = [0, -0.0, 1, -2.5, 3.140625, 65504, 1e-8, .infinity, -.infinity, 1.00390625, 1.01171875]
        for d in [DType.f32, .f16, .bf16, .f64] {
            let t = Tensor(name: "x", shape: [values.count], floats: values, dtype: d)
            XCTAssertEqual(t.dtype, d)
            XCTAssertEqual(t.data.count, values.count * d.size)
            let back = try t.floats()
            for (v, b) in zip(values, back) {
                let expect: Float
                switch d {
                case .f16: expect = Float(Float16(v))
                case .bf16: expect = Float(bitPattern: UInt32(Tensor.bfloat16Bits(v)) << 16)
                default: expect = v
                }
                XCTAssertEqual(b.bitPattern, expect.bitPattern, "\(d) \(v)")
            }
        }
        // bf16 rounds to nearest, ties to even: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 and goes to 1 (even);
        // 1 + 3·2^-8 is a tie between 1 + 2^-7 and 1 + 2^-6 and goes to 1 + 2^-6.
        XCTAssertEqual(Tensor.bfloat16Bits(1.00390625), 0x3F80)
        XCTAssertEqual(Tensor.bfloat16Bits(1.01171875), 0x3F82)
        XCTAssertEqual(Tensor.bfloat16Bits(Float(bitPattern: 0x3F80_8001)), 0x3F81, "just above the tie rounds up")
        XCTAssertTrue(Float(bitPattern: UInt32(Tensor.bfloat16Bits(.nan)) << 16).isNaN)
        XCTAssertThrowsError(try sampleTensor("i", .i32, [2]).floats())
    }
}
