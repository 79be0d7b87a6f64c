import Foundation
import GSLoRACluster
import GSLoRAFormat
import GSLoRAModel
import GSLoRATraining
import XCTest

/// Ranks as threads of this process: each collective waits for every rank, sums the contributions in rank order
/// and hands everyone the result, as MPI_Allreduce does (up to summation order).
final class LocalGroup: @unchecked Sendable {
    let size: Int
    private let lock = NSCondition()
    private var arrived = 0, departed = 0, generation = 0
    private var slots: [[Double]]
    private var result: [Double] = []

    init(size: Int) {
        self.size = size
        slots = Array(repeating: [], count: size)
    }

    func exchange(_ rank: Int, _ values: [Double]) -> [Double] {
        lock.lock()
        defer { lock.unlock() }
        while departed > 0 { lock.wait() } // the previous collective is still being read
        let gen = generation
        slots[rank] = values
        arrived += 1
        if arrived == size {
            result = slots.dropFirst().reduce(slots[0]) { zip($0, $1).map { $0 + $1 } }
            arrived = 0
            departed = size
            generation += 1
            lock.broadcast()
        } else {
            while generation == gen { lock.wait() }
        }
        let r = result
        departed -= 1
        if departed == 0 { lock.broadcast() }
        return r
    }

    final class Member: Communicator {
        let group: LocalGroup
        let rank: Int
        var size: Int { group.size }
        var statistics = CommunicationStatistics()
        init(_ group: LocalGroup, rank: Int) {
            self.group = group
            self.rank = rank
        }
        func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
            let r = group.exchange(rank, buffer.map(Double.init))
            for i in 0..<buffer.count { buffer[i] = Float(r[i]) }
        }
        func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
            let r = group.exchange(rank, Array(buffer))
            for i in 0..<buffer.count { buffer[i] = r[i] }
        }
        func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws { XCTFail("not used") }
        func barrier() throws { _ = group.exchange(rank, []) }
        func abort(code: Int32) -> Never { fatalError("abort \(code)") }
    }
}

/// A GS-LoRA step split across ranks must compute the single-process step: the same global CEs, hinge gate,
/// accuracies and LoRA gradients (dropout drawn per global sample), up to float32 summation order.
final class DataParallelStepTests: XCTestCase {
    /// Per-rank partial sums re-associate float32 additions of a handful of terms per element; 1e-5 of the
    /// gradient's largest magnitude is ≈100 float32 ulps of headroom over that, and far below any real difference
    /// (a wrong gate, scale or mask moves gradients by O(1) of their size).
    static let bound = 1e-5

    func config() -> ModelConfig {
        ModelConfig(
            family: .faceViT, imageSize: 8, patchSize: 4, channels: 1, width: 16, depth: 2, heads: 2, headDim: 8, mlpWidth: 32,
            numClasses: 6, head: ModelConfig.Head(kind: .cosface, s: 16, m: 0.2), attentionScale: 0.25,
            layerNormEps: 1e-5, qkvBias: false)
    }

    func makeStep() throws -> GSLoRAStep {
        let c = config()
        let adapter = try LoRAAdapter(config: c, rank: 2, scaling: 1, seed: 5)
        var rng = SplitMix64(seed: 6)
        for f in adapter.fc1 + adapter.fc2 { for i in 0..<f.b.count { f.b.pointer[i] = 0.2 * (rng.nextUnitFloat() - 0.5) } }
        let model = try ViT(config: c, parameters: try ViTParameters.random(config: c, seed: 7), adapters: [adapter])
        model.dropoutSeed = 8
        return try GSLoRAStep(model: model)
    }

    struct Batch {
        var images: [Float]
        var labels: [Int]
        func rows(_ r: Range<Int>) -> Batch { Batch(images: Array(images[(r.lowerBound * 64)..<(r.upperBound * 64)]), labels: Array(labels[r])) }
    }

    func batch(_ n: Int, classes: [Int], seed: UInt64) -> Batch {
        var rng = SplitMix64(seed: seed)
        return Batch(images: (0..<(n * 64)).map { _ in rng.nextUnitFloat() }, labels: (0..<n).map { classes[$0 % classes.count] })
    }

    /// `prototypeMargin` switches GS-LoRA++'s terms on (w_f 0.5, w_r 0.3, random prototypes): a large margin keeps
    /// the prototype hinge open, 0 closes it.
    func check(ranks: Int, retain: Int, forget: Int, bound: Double, forgetFirst: Bool, prototypeMargin: Double? = nil) throws {
        let r = batch(retain, classes: [1, 2, 3, 4, 5], seed: 10), f = batch(forget, classes: [0], seed: 11)
        let settings = try ObjectiveSettings(
            beta: 0.2, bound: bound, alpha: 0.01, prototypeForgetWeight: prototypeMargin == nil ? 0 : 0.5,
            prototypeMargin: prototypeMargin ?? 18, prototypeRetainWeight: prototypeMargin == nil ? 0 : 0.3)
        var prng = SplitMix64(seed: 12)
        let prototypes = try prototypeMargin.map { _ in
            try PrototypeTable(classes: 6, dim: 16, values: (0..<96).map { _ in 2 * prng.nextUnitFloat() - 1 }, counts: Array(repeating: 1, count: 6))
        }
        let single = try makeStep()
        let one = try r.images.withUnsafeBufferPointer { rp in
            try f.images.withUnsafeBufferPointer { fp in
                try single.computeGradients(
                    retainImages: rp, retainLabels: r.labels, forgetImages: fp, forgetLabels: f.labels,
                    prototypes: prototypes, settings: settings, dropout: 0.1, forgetFirst: forgetFirst)
            }
        }
        let group = LocalGroup(size: ranks)
        // Each rank's thread uses its own step and writes its own slot of the results under the lock.
        nonisolated(unsafe) let steps = try (0..<ranks).map { _ in try makeStep() }
        nonisolated(unsafe) var results = [StepResult?](repeating: nil, count: ranks), errors = [Error?](repeating: nil, count: ranks)
        let lock = NSLock(), done = DispatchGroup()
        // One thread per rank (concurrentPerform may run fewer at once than there are ranks, and a collective waits
        // for all of them).
        @Sendable func rank(_ k: Int) {
            let rows = GlobalRows(retainTotal: retain, forgetTotal: forget, rank: k, size: ranks)
            let rb = r.rows(rows.retain), fb = f.rows(rows.forget)
            do {
                let res = try rb.images.withUnsafeBufferPointer { rp in
                    try fb.images.withUnsafeBufferPointer { fp in
                        try steps[k].computeGradients(
                            retainImages: rp, retainLabels: rb.labels, forgetImages: fp, forgetLabels: fb.labels,
                            rows: rows, communicator: LocalGroup.Member(group, rank: k), prototypes: prototypes,
                            settings: settings, dropout: 0.1, forgetFirst: forgetFirst)
                    }
                }
                lock.withLock { results[k] = res }
            } catch {
                lock.withLock { errors[k] = error }
            }
        }
        for k in 0..<ranks {
            done.enter()
            Thread {
                rank(k); done.leave()
            }.start()
        }
        done.wait()
        for e in errors.compactMap({ $0 }) { throw e }
        let tag =
            "\(ranks) ranks, \(retain)+\(forget) rows, BND \(bound), forgetFirst \(forgetFirst), prototype margin \(prototypeMargin.map { "\($0)" } ?? "–")"
        for (k, res) in results.enumerated() {
            let res = try XCTUnwrap(res)
            XCTAssertEqual(res.terms.ceRetain, one.terms.ceRetain, accuracy: 1e-5 * abs(one.terms.ceRetain), "\(tag) rank \(k) CE_r")
            XCTAssertEqual(res.terms.ceForget, one.terms.ceForget, accuracy: 1e-5 * abs(one.terms.ceForget), "\(tag) rank \(k) CE_f")
            XCTAssertEqual(res.terms.boundedForgetActive, one.terms.boundedForgetActive, "\(tag) gate")
            XCTAssertEqual(res.terms.klForget == nil, prototypes == nil, tag)
            if let kf = one.terms.klForget, let kr = one.terms.klRetain {
                XCTAssertEqual(try XCTUnwrap(res.terms.klForget), kf, accuracy: 1e-5 * abs(kf), "\(tag) rank \(k) K_f")
                XCTAssertEqual(try XCTUnwrap(res.terms.klRetain), kr, accuracy: 1e-5 * abs(kr), "\(tag) rank \(k) K_r")
                XCTAssertEqual(res.terms.prototypeTerm, one.terms.prototypeTerm, accuracy: 1e-5 * abs(one.terms.prototypeTerm), "\(tag) L_pro")
                XCTAssertEqual(res.terms.total, one.terms.total, accuracy: 1e-5 * abs(one.terms.total), "\(tag) total")
            }
            XCTAssertEqual(res.retainAccuracy, one.retainAccuracy, accuracy: 1e-9, tag)
            XCTAssertEqual(res.forgetAccuracy, one.forgetAccuracy, accuracy: 1e-9, tag)
            for i in 0..<single.factors.names.count {
                let a = steps[k].gradient(i), b = single.gradient(i)
                let scale = b.map { abs(Double($0)) }.max() ?? 0
                XCTAssertGreaterThan(scale, 0, "\(tag) \(single.factors.names[i]): zero gradient proves nothing")
                let err = zip(a, b).map { abs(Double($0) - Double($1)) }.max() ?? 0
                XCTAssertLessThanOrEqual(err, Self.bound * scale, "\(tag) rank \(k) \(single.factors.names[i])")
            }
        }
        print("data-parallel step checked: \(tag)")
    }

    func testTwoAndThreeRanksMatchOneProcess() throws {
        // BND 30 keeps the forget hinge open; BND 0.01 closes it (no forget gradient) — both gates are checked.
        for (ranks, retain, forget) in [(2, 4, 4), (3, 5, 4), (2, 6, 3)] {
            for bound in [30.0, 0.01] {
                try check(ranks: ranks, retain: retain, forget: forget, bound: bound, forgetFirst: false)
            }
        }
        try check(ranks: 2, retain: 4, forget: 3, bound: 30, forgetFirst: true)
    }

    /// GS-LoRA++: K_r and K_f summed over the ranks, the prototype hinge gated on the global K_f (open and closed).
    func testPrototypeTermsMatchOneProcess() throws {
        for margin in [1000.0, 0] {
            try check(ranks: 2, retain: 5, forget: 3, bound: 30, forgetFirst: false, prototypeMargin: margin)
        }
        try check(ranks: 3, retain: 6, forget: 2, bound: 30, forgetFirst: false, prototypeMargin: 1000)
    }

    /// A rank holding no forget row (global forget batch smaller than the ranks) still matches.
    func testRankWithoutForgetRows() throws {
        try check(ranks: 3, retain: 6, forget: 2, bound: 30, forgetFirst: false)
    }

    func testShardsPartitionInRankOrder() {
        for n in [0, 1, 5, 64] {
            for size in 1...5 {
                let parts = (0..<size).map { SingleProcess.shard(n, rank: $0, size: size) }
                XCTAssertEqual(parts.first?.lowerBound, 0)
                XCTAssertEqual(parts.last?.upperBound, n)
                for (a, b) in zip(parts, parts.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
                XCTAssertLessThanOrEqual((parts.map(\.count).max() ?? 0) - (parts.map(\.count).min() ?? 0), 1)
            }
        }
    }

    func testLauncherDetection() {
        XCTAssertFalse(Cluster.launched(environment: [:]))
        XCTAssertFalse(Cluster.launched(environment: ["SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"]))
        XCTAssertTrue(Cluster.launched(environment: ["OMPI_COMM_WORLD_SIZE": "2"]))
        XCTAssertTrue(Cluster.launched(environment: ["PMIX_RANK": "0"]))
        XCTAssertTrue(Cluster.launched(environment: ["SLURM_STEP_NUM_TASKS": "4"]))
        XCTAssertTrue((try? Cluster.world(environment: [:])) is SingleProcess, "no launcher: no MPI loaded")
    }
}
