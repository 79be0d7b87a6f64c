import Foundation
import GSLoRAConvert
import GSLoRAFormat
import TestSupport
import XCTest

/// `PthWriter` output read back with our own reader: same tree, same tensor bytes, torch's record layout.
final class PthWriterTests: TempFolderCase {
    func assertSameTensors(_ a: CheckpointValue, _ b: CheckpointValue, _ what: String) {
        let x = TorchFlat.tensors(a), y = TorchFlat.tensors(b)
        XCTAssertEqual(Set(x.keys), Set(y.keys), what)
        for (k, t) in x {
            guard let u = y[k] else { continue }
            XCTAssertEqual(t.dtype, u.dtype, "\(what) \(k)")
            XCTAssertEqual(t.shape, u.shape, "\(what) \(k)")
            withExtendedLifetime((t, u)) {
                XCTAssertTrue(t.data.buffer.elementsEqual(u.data.buffer), "\(what) \(k): bytes differ")
            }
        }
    }

    /// Torch's record order and 64-byte data alignment.
    func assertTorchLayout(_ path: String, storages: Int) throws {
        let archive = try ZipArchive(path: path)
        let names = archive.records.map { String($0.name.dropFirst(archive.prefix.count + 1)) }
        XCTAssertEqual(
            names,
            ["data.pkl", ".format_version", ".storage_alignment", "byteorder"] + (0..<storages).map { "data/\($0)" }
                + ["version", ".data/serialization_id"])
        for r in archive.records {
            XCTAssertEqual(r.dataOffset % 64, 0, r.name)
            XCTAssertEqual(r.method, 0, r.name)
        }
        for (name, text) in [("byteorder", "little"), ("version", "3\n"), (".format_version", "1"), (".storage_alignment", "64")] {
            let b = try archive.read(name)
            withExtendedLifetime(b) { XCTAssertEqual(String(decoding: b.buffer, as: UTF8.self), text, name) }
        }
        let id = try archive.read(".data/serialization_id")
        withExtendedLifetime(id) { XCTAssertTrue(id.count == 40 && id.buffer.allSatisfy { (48...57).contains($0) }) }
    }

    func testEveryFixtureRoundTrips() throws {
        let files = FixtureLoadTests.loadable()
        XCTAssertFalse(files.isEmpty)
        for url in files {
            let original = try TorchCheckpoint.load(url.path)
            let out = folder.appendingPathComponent(url.lastPathComponent).path
            try PthWriter.write(out, original)
            XCTAssertEqual(try detectFormat(path: out), .torchZip)
            let back = try TorchCheckpoint.load(out)
            XCTAssertEqual(render(back), render(original), url.lastPathComponent)
            assertSameTensors(original, back, url.lastPathComponent)
            XCTAssertEqual(try ZipArchive(path: out).prefix, url.deletingPathExtension().lastPathComponent)
        }
    }

    func testSyntheticValuesRoundTrip() throws {
        var tensors: [(key: String, value: CheckpointValue)] = []
        for (i, dtype) in DType.allCases.enumerated() {
            let bytes = (0..<(6 * dtype.size)).map { UInt8(truncatingIfNeeded: $0 * 37 + i) }
            let data = dtype == .bool ? Bytes(copying: [1, 0, 1, 1, 0, 0]) : Bytes(copying: bytes)
            tensors.append((dtype.torchName, .tensor(Tensor(name: dtype.torchName, dtype: dtype, shape: [2, 3], data: data))))
        }
        let scalar = Tensor(name: "s", shape: [], floats: [3.25])
        let shared = Tensor(name: "shared", shape: [4], floats: [1, 2, 3, 4])
        let special = Tensor(name: "special", shape: [6], floats: [.nan, .infinity, -.infinity, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude])
        let empty = Tensor(name: "e", dtype: .f32, shape: [0, 3], data: Bytes(copying: [UInt8]()))
        tensors += [
            ("scalar", .tensor(scalar)), ("empty", .tensor(empty)), ("a", .tensor(shared)), ("b", .tensor(shared)),
            ("special", .tensor(special))
        ]
        let value: CheckpointValue = .dict([
            (key: "tensors", value: .dict(tensors)),
            (key: "epoch", value: .int(3)),
            (key: "ints", value: .list([.int(0), .int(255), .int(256), .int(65536), .int(-1), .int(Int(Int32.min)), .int(Int.max), .int(Int.min)])),
            (key: "floats", value: .tuple([.float(71.5), .float(-0.0), .float(1e-308), .float(.infinity)])),
            (key: "text", value: .string("ViT-P8S8 é 中")),
            (key: "flags", value: .list([.bool(true), .bool(false), .none])),
            (key: "raw", value: .bytes([0, 255, 10, 92])),
            (key: "dtype", value: .symbol("torch.float16")),
            (key: "device", value: .symbol("device(cpu)")),
            (
                key: "nested",
                value: .list([
                    .dict([]), .list([]), .tuple([]), .tuple([.int(1)]), .tuple([.int(1), .int(2), .int(3), .int(4)]),
                    .dict([(key: "deep", value: .list([.list([.tensor(scalar)])]))])
                ])
            )
        ])
        let out = folder.appendingPathComponent("synthetic.pth").path
        try PthWriter.write(out, value)
        let back = try TorchCheckpoint.load(out)
        XCTAssertEqual(render(back), render(value))
        assertSameTensors(value, back, "synthetic")
        // Shared tensors (a, b and the two uses of `scalar`) are one storage each: 10 dtypes + scalar, empty, shared, special.
        try assertTorchLayout(out, storages: DType.allCases.count + 4)
        // Same value, same bytes.
        let again = folder.appendingPathComponent("again.pth").path
        try PthWriter.write(again, value, archiveName: "synthetic")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), try Data(contentsOf: URL(fileURLWithPath: again)))
    }

    func testWriteFailureNamesTheFile() throws {
        let bad = folder.appendingPathComponent("no/such/folder/x.pth").path
        let text = errorText("unwritable") { try PthWriter.write(bad, .dict([])) }
        XCTAssertTrue(text.contains(bad), text)
        XCTAssertFalse(FileManager.default.fileExists(atPath: bad))
    }
}
