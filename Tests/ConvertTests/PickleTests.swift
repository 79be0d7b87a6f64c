import Foundation
import GSLoRAConvert
import XCTest

/// Builds pickle bytes opcode by opcode, for tests of the restricted unpickler.
struct PickleBytes {
    var b: [UInt8] = [0x80, 2]

    mutating func op(_ o: UInt8...) { b += o }
    mutating func str(_ s: String) {
        let u = Array(s.utf8)
        b.append(0x58)
        TestZip.le(UInt32(u.count), &b)
        b += u
    }
    mutating func int(_ i: Int32) {
        b.append(0x4a)
        TestZip.le(i, &b)
    }
    mutating func long(_ i: Int64) {
        b += [0x8a, 8]
        TestZip.le(i, &b)
    }
    mutating func global(_ module: String, _ name: String) {
        b.append(0x63)
        b += Array((module + "\n" + name + "\n").utf8)
    }
    mutating func tuple(_ items: [Int64]) {
        b.append(0x28)
        for i in items { long(i) }
        b.append(0x74)
    }
    /// `_rebuild_tensor_v2(persistent_load(('storage', torch.<type>, key, 'cpu', numel)), offset, size, stride, False, OrderedDict())`.
    /// `view` adds the legacy format's sixth pid element (view key, element offset, element count).
    mutating func tensor(
        key: String, type: String = "FloatStorage", numel: Int64, offset: Int64 = 0, size: [Int64], stride: [Int64],
        view: (String, Int64, Int64)? = nil
    ) {
        global("torch._utils", "_rebuild_tensor_v2")
        b.append(0x28)
        b.append(0x28)
        str("storage"); global("torch", type); str(key); str("cpu"); long(numel)
        if let (k, o, n) = view {
            b.append(0x28); str(k); long(o); long(n); b.append(0x74)
        }
        b.append(0x74)
        b.append(0x51) // BINPERSID
        long(offset)
        tuple(size)
        tuple(stride)
        b.append(0x89)
        global("collections", "OrderedDict")
        b += [0x29, 0x52, 0x74, 0x52]
    }
    mutating func stop() { b.append(0x2e) }
}

/// A torch-style zip holding `pickle` as data.pkl and the given storage records.
func checkpointZip(_ pickle: [UInt8], storages: [(String, [UInt8])] = [], prefix: String = "archive") -> [UInt8] {
    var z = TestZip()
    z.records = [.init(name: prefix + "/data.pkl", data: pickle)]
    for (k, d) in storages { z.records.append(.init(name: prefix + "/data/" + k, data: d)) }
    z.records.append(.init(name: prefix + "/byteorder", data: Array("little".utf8)))
    z.records.append(.init(name: prefix + "/version", data: Array("3\n".utf8)))
    return z.bytes()
}

/// A canonical text of a checkpoint value, for comparing whole trees.
func render(_ v: CheckpointValue) -> String {
    switch v {
    case let .tensor(t): return "T(\(t.dtype.torchName)\(t.shape))"
    case let .dict(items): return "{" + items.map { "\($0.key): \(render($0.value))" }.joined(separator: ", ") + "}"
    case let .list(items): return "[" + items.map(render).joined(separator: ", ") + "]"
    case let .tuple(items): return "(" + items.map(render).joined(separator: ", ") + ")"
    case let .string(s): return "'\(s)'"
    case let .int(i): return String(i)
    case let .float(d): return "f\(d)"
    case let .bool(b): return b ? "True" : "False"
    case .none: return "None"
    case let .bytes(b): return "b\(b)"
    case let .symbol(s): return "<\(s)>"
    }
}

final class PickleTests: TempFolderCase {
    func load(_ name: String, _ pickle: [UInt8], storages: [(String, [UInt8])] = []) throws -> CheckpointValue {
        try TorchCheckpoint.load(try file(name, checkpointZip(pickle, storages: storages)))
    }

    /// Plain data pickled by CPython with every protocol 0-5 loads to the same tree.
    func testCPythonPicklesOfEveryProtocol() throws {
        let expected =
            "{a: [1, -2, f2.5, 'xé中', None, True, False, (1, 2, 3, 4)], b: b[0, 255], big: <-1180591620717411303424>, "
            + "i64: -9223372036854775808, s: [7], f: [], od: {k: 1}, 3: 'int key', nested: {t: (), l: []}}"
        XCTAssertEqual(pythonPickles.map(\.protocol), Array(0...5))
        for (proto, hex) in pythonPickles {
            var bytes: [UInt8] = []
            var i = hex.startIndex
            while i < hex.endIndex {
                let j = hex.index(i, offsetBy: 2)
                bytes.append(UInt8(hex[i..<j], radix: 16)!)
                i = j
            }
            XCTAssertEqual(render(try load("p\(proto).pth", bytes)), expected, "protocol \(proto)")
        }
    }

    func testTensorsFromStorages() throws {
        var p = PickleBytes()
        p.op(0x7d, 0x28) // EMPTY_DICT MARK
        p.str("t"); p.tensor(key: "0", numel: 6, size: [3, 2], stride: [1, 3]) // transposed view
        p.str("s"); p.tensor(key: "0", numel: 6, offset: 2, size: [2], stride: [1]) // slice of the same storage
        p.str("z"); p.tensor(key: "1", type: "LongStorage", numel: 1, size: [], stride: [])
        p.str("e"); p.tensor(key: "2", type: "HalfStorage", numel: 0, size: [0, 5], stride: [5, 1])
        p.str("x"); p.tensor(key: "3", type: "BoolStorage", numel: 1, size: [4], stride: [0]) // expanded
        p.op(0x75); p.stop()
        let floats: [Float] = [0, 1, 2, 3, 4, 5]
        let v = try load(
            "t.pth", p.b,
            storages: [
                ("0", floats.withUnsafeBytes { Array($0) }), ("1", withUnsafeBytes(of: Int64(-7)) { Array($0) }), ("2", []), ("3", [1])
            ])
        XCTAssertEqual(render(v), "{t: T(float32[3, 2]), s: T(float32[2]), z: T(int64[]), e: T(float16[0, 5]), x: T(bool[4])}")
        let t = TorchFlat.tensors(v)
        XCTAssertEqual((0..<6).map { TorchFlat.element(t["t"]!, $0) }, [0, 3, 1, 4, 2, 5])
        XCTAssertEqual((0..<2).map { TorchFlat.element(t["s"]!, $0) }, [2, 3])
        XCTAssertEqual(TorchFlat.integer(t["z"]!, 0), -7)
        XCTAssertEqual(t["e"]!.data.count, 0)
        let x = t["x"]!
        withExtendedLifetime(x) { XCTAssertEqual(Array(x.data.buffer), [1, 1, 1, 1]) }
    }

    func testParameterAndBuildStateAreAccepted() throws {
        var p = PickleBytes()
        p.global("collections", "OrderedDict"); p.op(0x29, 0x52) // OrderedDict()
        p.op(0x28)
        p.str("w")
        p.global("torch._utils", "_rebuild_parameter")
        p.op(0x28)
        p.tensor(key: "0", numel: 1, size: [1], stride: [1])
        p.op(0x88) // requires_grad
        p.global("collections", "OrderedDict"); p.op(0x29, 0x52)
        p.op(0x74, 0x52)
        p.op(0x7d, 0x62) // BUILD with an empty dict state on the parameter
        p.op(0x75)
        p.op(0x7d); p.str("_metadata"); p.op(0x7d, 0x73, 0x62) // BUILD {'_metadata': {}} on the OrderedDict
        p.stop()
        let v = try load("param.pth", p.b, storages: [("0", [0, 0, 0x80, 0x3f])])
        XCTAssertEqual(render(v), "{w: T(float32[1])}")
        XCTAssertEqual(TorchFlat.element(TorchFlat.tensors(v)["w"]!, 0), 1)
    }

    func testDtypeAndDeviceSymbols() throws {
        var p = PickleBytes()
        p.op(0x5d, 0x28)
        p.global("torch", "bfloat16")
        p.global("torch", "device"); p.str("cuda"); p.op(0x4b, 1, 0x86, 0x52)
        p.global("torch", "Size"); p.tuple([2, 3]); p.op(0x85, 0x52)
        p.op(0x65); p.stop()
        XCTAssertEqual(render(try load("sym.pth", p.b)), "[<torch.bfloat16>, <device(cuda:1)>, (2, 3)]")
    }

    /// A legacy file assembled from its five pickles and storage section, with a storage view.
    func testLegacyLayoutWithStorageView() throws {
        var magic = PickleBytes()
        magic.op(0x8a, 10)
        magic.b += [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]
        magic.stop()
        var version = PickleBytes()
        version.op(0x4d, 0xe9, 0x03)
        version.stop()
        var info = PickleBytes()
        info.op(0x7d); info.str("little_endian"); info.op(0x88, 0x73); info.stop()
        var object = PickleBytes()
        object.op(0x7d, 0x28)
        object.str("root"); object.tensor(key: "100", numel: 6, size: [2, 3], stride: [3, 1])
        object.str("view"); object.tensor(key: "100", numel: 6, size: [3], stride: [1], view: ("200", 2, 3))
        object.str("tail"); object.tensor(key: "100", numel: 6, offset: 1, size: [2], stride: [1], view: ("200", 2, 3))
        object.op(0x75); object.stop()
        var keys = PickleBytes()
        keys.op(0x5d, 0x28); keys.str("100"); keys.op(0x65); keys.stop()
        var storage: [UInt8] = []
        TestZip.le(UInt64(6), &storage)
        storage += ([0, 1, 2, 3, 4, 5] as [Float]).withUnsafeBytes { Array($0) }
        let bytes = magic.b + version.b + info.b + object.b + keys.b + storage
        let path = try file("legacy-built.pth", bytes)
        XCTAssertEqual(try detectFormat(path: path), .torchLegacy)
        let v = try TorchCheckpoint.load(path)
        XCTAssertEqual(render(v), "{root: T(float32[2, 3]), view: T(float32[3]), tail: T(float32[2])}")
        let t = TorchFlat.tensors(v)
        XCTAssertEqual((0..<6).map { TorchFlat.element(t["root"]!, $0) }, [0, 1, 2, 3, 4, 5])
        XCTAssertEqual((0..<3).map { TorchFlat.element(t["view"]!, $0) }, [2, 3, 4])
        XCTAssertEqual((0..<2).map { TorchFlat.element(t["tail"]!, $0) }, [3, 4])
        // The same file with a view past its root, and with a storage count that disagrees with the pickle.
        var badView = PickleBytes()
        badView.op(0x7d); badView.str("w"); badView.tensor(key: "100", numel: 6, size: [3], stride: [1], view: ("200", 5, 3)); badView.op(0x73); badView.stop()
        let p1 = try file("legacy-bad-view.pth", magic.b + version.b + info.b + badView.b + keys.b + storage)
        XCTAssertTrue(errorText("bad view") { _ = try TorchCheckpoint.load(p1) }.contains("exceeds storage '100'"))
        var wrongCount = storage
        wrongCount[0] = 7
        let p2 = try file("legacy-bad-count.pth", magic.b + version.b + info.b + object.b + keys.b + wrongCount)
        XCTAssertTrue(errorText("bad count") { _ = try TorchCheckpoint.load(p2) }.contains("holds 7 elements, its pickle declares 6"))
        let p3 = try file("legacy-missing-key.pth", magic.b + version.b + info.b + object.b + PickleBytes(b: [0x80, 2, 0x5d, 0x2e]).b)
        XCTAssertTrue(errorText("missing key") { _ = try TorchCheckpoint.load(p3) }.contains("has no data after the key list"))
    }

    func testSharedReferencesConvertOnce() throws {
        // L0 = [None], L(k+1) = [Lk, Lk]: 2^60 leaves if expanded naively; converted once per object it is instant.
        var p = PickleBytes()
        p.op(0x5d, 0x4e, 0x61, 0x71, 0) // [None]
        for k in 1...60 { p.op(0x5d, 0x28, 0x68, UInt8(k - 1), 0x68, UInt8(k - 1), 0x65, 0x71, UInt8(k)) }
        p.stop()
        let text = errorText("dag") { _ = try self.load("dag.pth", p.b) }
        XCTAssertTrue(text.contains("expand the object to more than"), text)
        var small = PickleBytes()
        small.op(0x5d, 0x4e, 0x61, 0x71, 0)
        for k in 1...10 { small.op(0x5d, 0x28, 0x68, UInt8(k - 1), 0x68, UInt8(k - 1), 0x65, 0x71, UInt8(k)) }
        small.stop()
        let v = try load("dag10.pth", small.b)
        XCTAssertEqual(TorchFlat.leaves(v).count, 1 << 10)
    }
}

let pythonPickles: [(protocol: Int, hex: String)] = [
    (
        0,
        "286470300a56610a70310a286c70320a49310a61492d320a6146322e350a615678e95c75346532640a70330a614e614930310a61493030"
            + "0a612849310a49320a49330a49340a7470340a617356620a70350a635f636f646563730a656e636f64650a70360a28565c7530303030ff"
            + "0a70370a566c6174696e310a70380a7470390a527031300a73566269670a7031310a4c2d31313830353931363230373137343131333033"
            + "3432344c0a73566936340a7031320a4c2d393232333337323033363835343737353830384c0a7356730a7031330a635f5f6275696c7469"
            + "6e5f5f0a7365740a7031340a28286c7031350a49370a61747031360a527031370a7356660a7031380a635f5f6275696c74696e5f5f0a66"
            + "726f7a656e7365740a7031390a28286c7032300a747032310a527032320a73566f640a7032330a63636f6c6c656374696f6e730a4f7264"
            + "65726564446963740a7032340a2874527032350a566b0a7032360a49310a737349330a56696e74206b65790a7032370a73566e65737465"
            + "640a7032380a28647032390a56740a7033300a287473566c0a7033310a286c7033320a73732e"
    ),
    (
        1,
        "7d71002858010000006171015d7102284b014afeffffff474004000000000000580600000078c3a9e4b8ad71034e4930310a4930300a28"
            + "4b014b024b034b04747104655801000000627105635f636f646563730a656e636f64650a710628580300000000c3bf710758060000006c"
            + "6174696e31710874710952710a5803000000626967710b4c2d313138303539313632303731373431313330333432344c0a580300000069"
            + "3634710c4c2d393232333337323033363835343737353830384c0a580100000073710d635f5f6275696c74696e5f5f0a7365740a710e28"
            + "5d710f4b07617471105271115801000000667112635f5f6275696c74696e5f5f0a66726f7a656e7365740a7113285d7114747115527116"
            + "58020000006f64711763636f6c6c656374696f6e730a4f726465726564446963740a71182952711958010000006b711a4b01734b035807"
            + "000000696e74206b6579711b58060000006e6573746564711c7d711d28580100000074711e2958010000006c711f5d712075752e"
    ),
    (
        2,
        "80027d71002858010000006171015d7102284b014afeffffff474004000000000000580600000078c3a9e4b8ad71034e8889284b014b02"
            + "4b034b04747104655801000000627105635f636f646563730a656e636f64650a7106580300000000c3bf710758060000006c6174696e31"
            + "710886710952710a5803000000626967710b8a090000000000000000c05803000000693634710c8a080000000000000080580100000073"
            + "710d635f5f6275696c74696e5f5f0a7365740a710e5d710f4b07618571105271115801000000667112635f5f6275696c74696e5f5f0a66"
            + "726f7a656e7365740a71135d711485711552711658020000006f64711763636f6c6c656374696f6e730a4f726465726564446963740a71"
            + "182952711958010000006b711a4b01734b035807000000696e74206b6579711b58060000006e6573746564711c7d711d28580100000074"
            + "711e2958010000006c711f5d712075752e"
    ),
    (
        3,
        "80037d71002858010000006171015d7102284b014afeffffff474004000000000000580600000078c3a9e4b8ad71034e8889284b014b02"
            + "4b034b04747104655801000000627105430200ff7106580300000062696771078a090000000000000000c0580300000069363471088a08"
            + "00000000000000805801000000737109636275696c74696e730a7365740a710a5d710b4b076185710c52710d580100000066710e636275"
            + "696c74696e730a66726f7a656e7365740a710f5d711085711152711258020000006f64711363636f6c6c656374696f6e730a4f72646572"
            + "6564446963740a71142952711558010000006b71164b01734b035807000000696e74206b6579711758060000006e657374656471187d71"
            + "1928580100000074711a2958010000006c711b5d711c75752e"
    ),
    (
        4,
        "800495c0000000000000007d94288c0161945d94284b014afeffffff4740040000000000008c0678c3a9e4b8ad944e8889284b014b024b"
            + "034b047494658c016294430200ff948c03626967948a090000000000000000c08c03693634948a0800000000000000808c0173948f9428"
            + "4b07908c0166942891948c026f64948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b0173"
            + "4b038c07696e74206b6579948c066e6573746564947d94288c017494298c016c945d9475752e"
    ),
    (
        5,
        "800595c0000000000000007d94288c0161945d94284b014afeffffff4740040000000000008c0678c3a9e4b8ad944e8889284b014b024b"
            + "034b047494658c016294430200ff948c03626967948a090000000000000000c08c03693634948a0800000000000000808c0173948f9428"
            + "4b07908c0166942891948c026f64948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b0173"
            + "4b038c07696e74206b6579948c066e6573746564947d94288c017494298c016c945d9475752e"
    )
]
