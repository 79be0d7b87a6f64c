import Foundation
import GSLoRAAdapters
import GSLoRAFormat
import XCTest

final class PruneTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try AdapterTestKit.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    func path(_ n: String) -> String { dir.appendingPathComponent(n).path }

    /// An adapter whose block 1 is 100× weaker than block 0.
    func makeAdapter(depth: Int = 2) throws -> (ModelConfig, String, [Tensor]) {
        var c = AdapterTestKit.config()
        c.depth = depth
        var ts = AdapterTestKit.adapterTensors(c, rank: 3, seed: 5)
        for i in ts.indices where ts[i].name.hasPrefix("blocks.1.") {
            ts[i] = Tensor(name: ts[i].name, shape: ts[i].shape, floats: try ts[i].floats().map { $0 * 0.01 })
        }
        try AdapterTestKit.writeAdapter(path("a.gslr"), config: c, tensors: ts, base: Fingerprint.of([TensorInfo](), binding: .none), rank: 3)
        return (c, path("a.gslr"), ts)
    }

    /// ‖s·B·A‖_F² summed over `layers`, by forming every product in float64.
    func deltaSquared(_ ts: [Tensor], layers: [String], scaling: Double) throws -> Double {
        var total = 0.0
        for l in layers {
            let a = ts.first { $0.name == l + ".lora_A" }!, b = ts.first { $0.name == l + ".lora_B" }!
            let av = try a.floats(), bv = try b.floats()
            let r = a.shape[0], nIn = a.shape[1], nOut = b.shape[0]
            for o in 0..<nOut {
                for k in 0..<nIn {
                    var d = 0.0
                    for j in 0..<r { d += Double(bv[o * r + j]) * Double(av[j * nIn + k]) }
                    total += scaling * scaling * d * d
                }
            }
        }
        return total
    }

    func testThresholdPrunesWeakGroupAndReportsExactChange() throws {
        let (_, a, ts) = try makeAdapter()
        let before = try AdapterFile.open(a)
        let weak = before.info.groups[1].norm, strong = before.info.groups[0].norm
        XCTAssertLessThan(weak, strong)
        let r = try AdapterPrune.pruneFile(input: a, output: path("p.gslr"), rule: .threshold((weak + strong) / 2))
        XCTAssertEqual(r.groups.map(\.after), [.kept, .pruned])
        XCTAssertEqual(r.kept, 1)
        XCTAssertEqual(r.newlyPruned, 1)
        XCTAssertLessThan(r.bytesAfter, r.bytesBefore)
        XCTAssertEqual(r.bytesBefore, before.fileSize)
        XCTAssertTrue(r.warnings.isEmpty, "recorded norms are Σ‖T‖_F: \(r.warnings)")
        // Norms computed from the data: Σ‖T‖_F equals the record, the loss form is smaller.
        XCTAssertEqual(r.groups[0].frobeniusSum!, strong, accuracy: 1e-9 * strong)
        XCTAssertLessThan(r.groups[0].lossNorm!, r.groups[0].frobeniusSum!)
        // The relative change against a dense float64 computation.
        let s = before.info.scaling
        let all = (0..<2).flatMap { i in ["fc1", "fc2"].map { "blocks.\(i).mlp.\($0)" } }
        let total = try deltaSquared(ts, layers: all, scaling: s)
        let gone = try deltaSquared(ts, layers: all.filter { $0.hasPrefix("blocks.1.") }, scaling: s)
        XCTAssertEqual(r.change.norm, total.squareRoot(), accuracy: 1e-9 * total.squareRoot())
        XCTAssertEqual(r.change.relative, (gone / total).squareRoot(), accuracy: 1e-9)
        XCTAssertEqual(r.perTarget.map(\.target), ["mlp.fc1", "mlp.fc2"])
        let fc1 = try deltaSquared(ts, layers: ["blocks.0.mlp.fc1", "blocks.1.mlp.fc1"], scaling: s)
        let fc1Gone = try deltaSquared(ts, layers: ["blocks.1.mlp.fc1"], scaling: s)
        XCTAssertEqual(r.perTarget[0].relative, (fc1Gone / fc1).squareRoot(), accuracy: 1e-9)

        // The file: pruned members gone, the record kept with its norm, the base binding unchanged.
        let out = try AdapterFile.open(path("p.gslr"))
        XCTAssertEqual(Set(out.tensors.map(\.name)), Set(ts.filter { $0.name.hasPrefix("blocks.0.") }.map(\.name)))
        XCTAssertEqual(out.info.groups[1].state, .pruned)
        XCTAssertEqual(out.info.groups[1].norm, weak)
        XCTAssertEqual(out.info.baseFingerprint, before.info.baseFingerprint)
        XCTAssertEqual(r.outputFingerprint, out.fingerprint)
        for t in out.tensors { XCTAssertEqual(AdapterTestKit.bytes(t), AdapterTestKit.bytes(ts.first { $0.name == t.name }!)) }
    }

    func testKeepRanksByRecordedNormAndRepruningIsStable() throws {
        let (_, a, _) = try makeAdapter()
        let r = try AdapterPrune.pruneFile(input: a, output: path("k1.gslr"), rule: .keep(1))
        XCTAssertEqual(r.groups.map(\.after), [.kept, .pruned])
        // Pruning a pruned file again keeps its earlier decisions and removes nothing more at threshold 0.
        let again = try AdapterPrune.pruneFile(input: path("k1.gslr"), output: path("k1b.gslr"), rule: .threshold(0))
        XCTAssertEqual(again.groups.map(\.after), [.kept, .pruned])
        XCTAssertEqual(again.newlyPruned, 0)
        XCTAssertNil(again.groups[1].frobeniusSum, "no data left to measure a pruned group")
        XCTAssertEqual(again.change.relative, 0)
        let all = try AdapterPrune.pruneFile(input: a, output: path("k5.gslr"), rule: .keep(5))
        XCTAssertEqual(all.kept, 2)
    }

    func testLossFormRecordIsFlagged() throws {
        let (c, _, ts) = try makeAdapter()
        var groups: [GroupRecord] = []
        for i in 0..<c.depth {
            let members = ts.filter { $0.name.hasPrefix("blocks.\(i).") }
            let l2 = try members.reduce(0.0) { $0 + pow(try AdapterTestKit.frobenius($1), 2) }.squareRoot()
            groups.append(GroupRecord(name: "blocks.\(i)", members: members.map(\.name), norm: l2, state: .kept))
        }
        let info = AdapterInfo(
            rank: 3, alpha: 1, scaling: 1.0 / 3, targets: ["mlp.fc1", "mlp.fc2"], grouping: "block", groups: groups,
            task: TaskRecord(index: 1, forget: [0], retain: [1]), baseFingerprint: Fingerprint.of([TensorInfo](), binding: .none))
        try GSLRWriter.write(path("l2.gslr"), header: GSLRHeader(kind: .adapter, adapter: info), tensors: ts)
        let r = try AdapterPrune.pruneFile(input: path("l2.gslr"), output: path("l2p.gslr"), rule: .threshold(0))
        XCTAssertEqual(r.warnings.count, 2)
        XCTAssertTrue(r.warnings[0].contains("loss form"), r.warnings[0])
    }

    func testBadArgumentsAndInputs() throws {
        let (_, a, _) = try makeAdapter()
        XCTAssertThrowsError(try AdapterPrune.pruneFile(input: a, output: path("x.gslr"), rule: .threshold(-1)))
        XCTAssertThrowsError(try AdapterPrune.pruneFile(input: a, output: path("x.gslr"), rule: .threshold(.nan)))
        XCTAssertThrowsError(try AdapterPrune.pruneFile(input: a, output: path("x.gslr"), rule: .keep(-1)))
        XCTAssertThrowsError(try AdapterPrune.pruneFile(input: a, output: a, rule: .keep(1))) { e in
            XCTAssertEqual(e as? FormatError, .outputIsInput(file: a))
        }
        let c = AdapterTestKit.config()
        try AdapterTestKit.writeBackbone(path("b.gslr"), config: c, weights: try AdapterTestKit.weights(c, seed: 1))
        XCTAssertThrowsError(try AdapterPrune.pruneFile(input: path("b.gslr"), output: path("x.gslr"), rule: .keep(1))) { e in
            XCTAssertEqual(e as? AdapterError, .wrongKind(file: self.path("b.gslr"), expected: "adapter", actual: "backbone"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("x.gslr")))
    }
    func testMalformedFactorsAreRefused() throws {
        let base = Fingerprint.of([TensorInfo](), binding: .none)
        func write(_ name: String, _ ts: [Tensor], members: [String]? = nil, state: GroupState = .kept) throws -> String {
            let g = GroupRecord(name: "blocks.0", members: members ?? ts.map(\.name), norm: 1, state: state)
            let info = AdapterInfo(
                rank: 4, alpha: 1, scaling: 0.25, targets: ["mlp.fc1"], grouping: "block", groups: [g],
                task: TaskRecord(index: 1, forget: [0], retain: [1]), baseFingerprint: base)
            try GSLRWriter.write(path(name), header: GSLRHeader(kind: .adapter, adapter: info), tensors: ts)
            return path(name)
        }
        func zeros(_ name: String, _ shape: [Int]) -> Tensor { Tensor(name: name, shape: shape, floats: [Float](repeating: 0, count: shape.reduce(1, *))) }
        let cases: [(String, String)] = [
            (try write("rank.gslr", [zeros("blocks.0.mlp.fc1.lora_A", [4, 2]), zeros("blocks.0.mlp.fc1.lora_B", [16, 4])]), "rank ≤ min(in, out)"),
            (try write("pair.gslr", [zeros("blocks.0.mlp.fc1.lora_A", [2, 8]), zeros("blocks.0.mlp.fc1.lora_B", [16, 3])]), "does not match"),
            (try write("lone.gslr", [zeros("blocks.0.mlp.fc1.lora_A", [2, 8])]), "was not pruned"),
            (try write("name.gslr", [zeros("blocks.0.mlp.fc1.weight", [2, 8])]), "lora_A or .lora_B")
        ]
        for (file, why) in cases {
            XCTAssertThrowsError(try AdapterPrune.pruneFile(input: file, output: path("out.gslr"), rule: .threshold(0)), file) { e in
                XCTAssertTrue("\(e)".contains(file) && "\(e)".contains(why), "\(e)")
            }
        }
    }
}
