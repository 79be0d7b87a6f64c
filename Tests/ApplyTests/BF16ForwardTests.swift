import Foundation
import GSLoRAModel
import TestSupport
import XCTest

/// The opt-in bf16 precision: the bf16 linear against float64, and every forward parity fixture run in bf16 against
/// PyTorch within a bf16 tolerance derived below (float32 stays the precision parity is tested on at 1e-4).
final class BF16ForwardTests: XCTestCase {
    /// bf16 keeps an 8-bit significand (7 stored bits + the implicit one), so round-to-nearest-even has unit
    /// roundoff u = 2⁻⁸: a rounded value is x·(1 + δ) with |δ| ≤ u.
    static let unitRoundoff = 0x1p-8

    /// Worst-case error of one bf16 product: x̃·w̃ = x·w·(1 + δx)(1 + δw), and the float32 sum of K such terms adds
    /// at most γ_K = K·2⁻²⁴/(1 − K·2⁻²⁴) (standard summation bound). So per output element
    /// |ŷ − y| ≤ ((1 + u)²(1 + γ_K) − 1) · Σ_k |x_k|·|w_k|. This is a bound, not an estimate: it cannot be exceeded
    /// by correct rounding in any summation order.
    static func productBound(k: Int) -> Double {
        let u = unitRoundoff, eps = 0x1p-24, gamma = Double(k) * eps / (1 - Double(k) * eps)
        return (1 + u) * (1 + u) * (1 + gamma) - 1
    }

    /// Tolerance of a whole bf16 forward against PyTorch (max-abs error over max-abs reference, Tolerance.maxRelative).
    /// Derivation (statistical; a worst-case bound over a deep network is useless, 2u per product summed linearly):
    /// - each product rounds input and weight independently; modelling δ as uniform on [−u, u] (RMS u/√3), one
    ///   term's relative error δx + δw has RMS σ₁ = u·√(2/3) ≈ 3.2e-3, and a dot product of independent-sign terms
    ///   carries that same relative RMS error;
    /// - L = 1 + 6·depth products lie in series (patch embedding; per block qkv, attention's Q·Kᵀ and P·V, proj,
    ///   fc1, fc2). LayerNorm, GELU, softmax and the residual adds pass relative errors on with gain ≈ 1, and
    ///   independent roundings add in quadrature: σ_L = √L·σ₁;
    /// - the largest of N roughly Gaussian deviations is about √(2 ln N)·σ_L, measured against the largest reference
    ///   value (≥ the typical one, so this errs safe);
    /// - a factor 2 covers the Gaussian tail beyond its expected maximum and gains above 1 (attention scores feed
    ///   exp); the float32 reference's own parity error Tolerance.forward is added.
    /// Face fixture (depth 2, N = 30 logits): ≈ 0.060. Observed bf16 errors are 10–60× smaller (the residual stream
    /// dilutes each branch's error); a Q/K/V slice shifted in the last block alone gives 0.06–0.54 on these fixtures.
    static func forwardTolerance(depth: Int, count: Int) -> Double {
        let sigma1 = unitRoundoff * (2.0 / 3).squareRoot()
        let layers = Double(1 + 6 * depth)
        return 2 * (2 * log(Double(max(count, 2)))).squareRoot() * layers.squareRoot() * sigma1 + Tolerance.forward
    }

    /// oneDNN has no bf16 product on CPUs without AVX-512 (it says "unimplemented"): there the precision is refused
    /// with that message (checked here) and the numeric tests cannot run. Every machine this project targets has it.
    override func setUpWithError() throws {
        let one = FloatBuffer([1])
        var out: Float = 0, x: Float = 1
        do {
            try BF16Matmul().product(weight: one, outFeatures: 1, inFeatures: 1, input: &x, lda: 1, rows: 1, out: &out, ldc: 1)
        } catch let ModelError.oneDNN(call, status) where status == "unimplemented" {
            XCTAssertTrue("\(ModelError.oneDNN(call: call, status: status))".contains("use precision float32"))
            throw XCTSkip("oneDNN has no bf16 matrix product on this CPU (\(call)); bf16 needs AVX-512")
        }
    }

    // MARK: - the bf16 linear

    /// Random weights and inputs (including a weight row range and strided input and output) against a float64
    /// reference: every element within the worst-case bound, and the error is bf16-sized (float32 products would
    /// be ≈1e-7), which shows the bf16 path ran.
    func testBF16ProductAgainstFloat64() throws {
        var rng = SplitMix64(seed: 11)
        let inF = 300, totalOut = 200, firstRow = 40, outF = 150, rows = 67, lda = inF + 5, ldc = outF + 3
        let weight = FloatBuffer((0..<(totalOut * inF)).map { _ in rng.nextUnitFloat() * 2 - 1 })
        let input = (0..<(rows * lda)).map { _ in rng.nextUnitFloat() * 6 - 3 }
        var out = [Float](repeating: .nan, count: rows * ldc)
        let mm = BF16Matmul()
        try input.withUnsafeBufferPointer { x in
            try out.withUnsafeMutableBufferPointer { y in
                try mm.product(
                    weight: weight, firstRow: firstRow, outFeatures: outF, inFeatures: inF, input: x.baseAddress!, lda: lda,
                    rows: rows, out: y.baseAddress!, ldc: ldc)
            }
        }
        let bound = Self.productBound(k: inF)
        var worstOfBound = 0.0, worstRelative = 0.0, maxRef = 0.0
        for r in 0..<rows {
            for j in 0..<outF {
                var exact = 0.0, magnitude = 0.0
                for k in 0..<inF {
                    let t = Double(input[r * lda + k]) * Double(weight[(firstRow + j) * inF + k])
                    exact += t
                    magnitude += abs(t)
                }
                let err = abs(Double(out[r * ldc + j]) - exact)
                XCTAssertLessThanOrEqual(err, bound * magnitude, "row \(r) column \(j)")
                worstOfBound = max(worstOfBound, err / (bound * magnitude))
                worstRelative = max(worstRelative, err)
                maxRef = max(maxRef, abs(exact))
            }
            for j in outF..<ldc { XCTAssertTrue(out[r * ldc + j].isNaN, "row \(r): column \(j) beyond the output was written") }
        }
        worstRelative /= maxRef
        XCTAssertGreaterThan(worstRelative, 1e-5, "error \(worstRelative) is float32-sized: the bf16 path did not run")
        XCTAssertFalse(mm.implementations.isEmpty)
        XCTAssertEqual(mm.packedWeightBytes >= outF * inF * 2, true, "packed \(mm.packedWeightBytes) bytes for \(outF)×\(inF) bf16")
    }

    /// Inputs are rounded to nearest, ties to even: through an identity weight (exact in bf16) each output is its
    /// input rounded. 37 columns cover the vector loop and its tail.
    func testInputsRoundToNearestEven() throws {
        let n = 37
        let identity = FloatBuffer((0..<(n * n)).map { $0 / n == $0 % n ? 1 : 0 })
        let ulp: Float = 0x1p-7 // bf16 spacing in [1, 2)
        // (input, expected): below/above half an ulp, ties to the even neighbour, negatives, an exact value, zero.
        let cases: [(Float, Float)] = [
            (1 + ulp / 2, 1), (1 + 3 * ulp / 2, 1 + 2 * ulp), (1 + ulp * 0.49, 1), (1 + ulp * 0.51, 1 + ulp),
            (-(1 + 3 * ulp / 2), -(1 + 2 * ulp)), (3.140625, 3.140625), (0, 0), (-0.0, 0)
        ]
        let input = (0..<n).map { cases[$0 % cases.count].0 }, expected = (0..<n).map { cases[$0 % cases.count].1 }
        var out = [Float](repeating: .nan, count: n)
        try input.withUnsafeBufferPointer { x in
            try out.withUnsafeMutableBufferPointer { y in
                try BF16Matmul().product(
                    weight: identity, outFeatures: n, inFeatures: n, input: x.baseAddress!, lda: n, rows: 1,
                    out: y.baseAddress!, ldc: n)
            }
        }
        XCTAssertEqual(out, expected)
    }

    func testBadSizesAreRefused() throws {
        let weight = FloatBuffer(count: 12)
        var out = [Float](repeating: 0, count: 16)
        let input = [Float](repeating: 1, count: 16)
        try input.withUnsafeBufferPointer { x in
            try out.withUnsafeMutableBufferPointer { y in
                // Rows 2..<5 of a [4, 3] weight do not exist; a row stride shorter than a row is not a matrix.
                XCTAssertThrowsError(
                    try BF16Matmul().product(
                        weight: weight, firstRow: 2, outFeatures: 3, inFeatures: 3,
                        input: x.baseAddress!, lda: 3, rows: 1, out: y.baseAddress!, ldc: 3))
                XCTAssertThrowsError(
                    try BF16Matmul().product(
                        weight: weight, outFeatures: 4, inFeatures: 3, input: x.baseAddress!,
                        lda: 2, rows: 1, out: y.baseAddress!, ldc: 4))
                XCTAssertThrowsError(
                    try BF16Matmul().product(
                        weight: weight, outFeatures: 4, inFeatures: 3, input: x.baseAddress!,
                        lda: 3, rows: Int.max / 2, out: y.baseAddress!, ldc: 4))
            }
        }
    }

    // MARK: - forward against PyTorch

    typealias Case = ForwardParityTests.Case

    /// Every parity file with a forward pass and a fresh model (the tests switch its precision).
    func cases() throws -> [Case] { try ForwardParityTests.cases() }

    /// bf16 within its tolerance of PyTorch, and not equal to our float32 output (else the bf16 path did not run).
    func check(_ bf16: [Float], float32: [Float], _ expected: Any?, depth: Int, _ what: String) throws {
        let ref = try FixtureArray(expected, what)
        XCTAssertEqual(bf16.count, ref.values.count, "\(what): element count")
        guard bf16.count == ref.values.count, float32.count == bf16.count else { return }
        let tol = Self.forwardTolerance(depth: depth, count: bf16.count)
        let err = Tolerance.maxRelative(bf16, ref.values)
        XCTAssertLessThanOrEqual(err, tol, "\(what): bf16 max-abs relative error \(err), tolerance \(tol)")
        XCTAssertGreaterThan(Tolerance.maxRelative(bf16, float32.map(Double.init)), 0, "\(what): bf16 output equals the float32 output")
        XCTAssertLessThanOrEqual(Tolerance.maxRelative(float32, ref.values), Tolerance.forward, "\(what): float32 reference run")
    }

    func testBF16ForwardMatchesPyTorchWithinBF16Tolerance() throws {
        let all = try cases()
        XCTAssertGreaterThanOrEqual(all.count, 3, "expected the face, torchvision and timm parity files")
        for c in all {
            let m = c.model, depth = m.config.depth
            func both(_ images: FixtureArray, labels: [Int]?) throws -> (ViTOutput, ViTOutput) {
                m.precision = .float32
                let f = try m.forward(images: images.floats, batch: images.shape[0], labels: labels)
                m.precision = .bf16
                let b = try m.forward(images: images.floats, batch: images.shape[0], labels: labels)
                return (b, f)
            }
            if let fwd = c.json["forward"] as? [String: Any] {
                let inputs = try XCTUnwrap(c.json["inputs"] as? [String: Any], "\(c.name): no inputs")
                for group in fwd.keys.sorted() {
                    let g = try XCTUnwrap(fwd[group] as? [String: Any])
                    let images = try FixtureArray(inputs["\(group)_images"], "\(c.name) \(group)_images")
                    let (b, f) = try both(images, labels: try XCTUnwrap(g["labels"] as? [Int]))
                    let tag = "\(c.name) \(group)"
                    try check(b.embeddings, float32: f.embeddings, g["embedding"], depth: depth, "\(tag) embedding")
                    try check(b.logits, float32: f.logits, g["logits_plain"], depth: depth, "\(tag) plain logits")
                    try check(
                        try XCTUnwrap(b.marginLogits), float32: try XCTUnwrap(f.marginLogits), g["logits_margin"], depth: depth,
                        "\(tag) margin logits")
                }
                if let protos = c.json["prototypes"] as? [String: Any], protos["proto_embeddings"] != nil {
                    let (b, f) = try both(try FixtureArray(inputs["proto_images"], "\(c.name) proto_images"), labels: nil)
                    try check(b.embeddings, float32: f.embeddings, protos["proto_embeddings"], depth: depth, "\(c.name) prototype embeddings")
                }
            } else {
                let (b, f) = try both(try FixtureArray(c.json["input"], "\(c.name) input"), labels: nil)
                try check(b.logits, float32: f.logits, c.json["logits"], depth: depth, "\(c.name) logits")
                if c.json["cls_features_after_norm"] != nil {
                    try check(b.embeddings, float32: f.embeddings, c.json["cls_features_after_norm"], depth: depth, "\(c.name) cls features")
                }
            }
            XCTAssertFalse(m.bf16.implementations.isEmpty, "\(c.name): no oneDNN primitive was made")
        }
    }

    /// LoRA stays live in bf16: with adapters, the bf16 output is nearer the float32 output with the adapters than the
    /// float32 output without them (the adapters' effect must stand out of the bf16 rounding for this to mean anything).
    func testLiveLoRAAppliesInBF16() throws {
        var checked = 0
        for c in try cases() where !c.model.adapters.isEmpty {
            let cfg = c.model.config, n = 4
            var rng = SplitMix64(seed: 9)
            let images = (0..<(n * cfg.channels * cfg.imageSize * cfg.imageSize)).map { _ in rng.nextUnitFloat() }
            let live = try c.model.forward(images: images, batch: n).embeddings.map(Double.init)
            let plain = try ViT(config: cfg, parameters: c.model.parameters).forward(images: images, batch: n).embeddings.map(Double.init)
            c.model.precision = .bf16
            let bf16 = try c.model.forward(images: images, batch: n).embeddings
            let toLive = Tolerance.maxRelative(bf16, live), toPlain = Tolerance.maxRelative(bf16, plain)
            XCTAssertLessThan(toLive, toPlain, "\(c.name): bf16 with LoRA is \(toLive) from float32 with LoRA, \(toPlain) from without")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 0, "no parity fixture carries LoRA")
    }

    // MARK: - GS-LoRA training (frozen weights)

    /// Tolerance of LoRA gradients in bf16 against float32 (max-abs error over max-abs value, all factors together).
    /// The same statistical model as `forwardTolerance`, with the backward's products in series too: the input
    /// gradients through fc2, fc1, proj, attention (dO·Vᵀ, then dS·K or dSᵀ·Q) and qkv of every block (6·depth) on top
    /// of the forward's 1 + 6·depth; each
    /// factor gradient is a product of a bf16-carried activation and a bf16-carried output gradient, so both chains
    /// count. The float32 gradient is itself within Tolerance.gradient of PyTorch (LoRAGradientParityTests).
    static func gradientTolerance(depth: Int, count: Int) -> Double {
        let sigma1 = unitRoundoff * (2.0 / 3).squareRoot()
        let layers = Double(1 + 12 * depth)
        return 2 * (2 * log(Double(max(count, 2)))).squareRoot() * layers.squareRoot() * sigma1
    }

    /// A rank-4 adapter with non-zero A and B on every FFN layer, so gradients flow into both factors.
    func trainableModel(_ c: Case) throws -> ViT {
        let adapter = try LoRAAdapter(config: c.model.config, rank: 4, seed: 5)
        var rng = SplitMix64(seed: 6)
        for f in adapter.fc1 + adapter.fc2 { for i in 0..<f.b.count { f.b.pointer[i] = (rng.nextUnitFloat() - 0.5) * 0.1 } }
        return try ViT(config: c.model.config, parameters: c.model.parameters, adapters: [adapter])
    }

    /// The LoRA gradients of one training-mode forward and backward (no dropout) from a fixed embedding gradient.
    func loraGradients(_ m: ViT, images: [Float], batch: Int, gradEmbeddings: [Float]) throws -> [Float] {
        _ = try m.forward(images: images, batch: batch, labels: (0..<batch).map { $0 % m.config.numClasses }, mode: .train(dropout: 0))
        let g = ViTGradients(model: m, parameters: false)
        try m.backward(gradEmbeddings: gradEmbeddings, into: g)
        return g.lora.flatMap { ($0.fc1 + $0.fc2).flatMap { $0.a.array + $0.b.array } }
    }

    /// GS-LoRA trains in bf16 too: the frozen layers' and attention's products, forward and backward, run in bf16,
    /// LoRA's own products and gradients in float32. On every fixture model, the LoRA gradients stay within the
    /// derived tolerance of the float32 ones, and differ from them (the bf16 backward really ran).
    func testLoRAGradientsInBF16WithinTolerance() throws {
        let all = try cases()
        XCTAssertFalse(all.isEmpty, "no parity fixture")
        for c in all {
            let m = try trainableModel(c), cfg = m.config, batch = 3
            var rng = SplitMix64(seed: 7)
            let images = (0..<(batch * cfg.channels * cfg.imageSize * cfg.imageSize)).map { _ in rng.nextUnitFloat() }
            let dE = (0..<(batch * cfg.width)).map { _ in rng.nextUnitFloat() - 0.5 }
            let f32 = try loraGradients(m, images: images, batch: batch, gradEmbeddings: dE)
            m.precision = .bf16
            let bf16 = try loraGradients(m, images: images, batch: batch, gradEmbeddings: dE)
            let tol = Self.gradientTolerance(depth: cfg.depth, count: f32.count)
            let err = Tolerance.maxRelative(bf16, f32.map(Double.init))
            XCTAssertLessThanOrEqual(err, tol, "\(c.name): LoRA gradients in bf16 are \(err) from float32, tolerance \(tol)")
            XCTAssertGreaterThan(err, 0, "\(c.name): bf16 gradients equal the float32 ones")
            XCTAssertTrue(m.bf16.packedWeightBytes > 0)
        }
    }

    /// All-parameter training would change the weights under their packed bf16 copies: its backward is refused in
    /// bf16, and runs again in float32.
    func testAllParameterBackwardIsRefusedInBF16() throws {
        let c = try XCTUnwrap(try cases().first, "no parity fixture")
        let m = c.model, cfg = m.config
        let images = [Float](repeating: 0.5, count: 2 * cfg.channels * cfg.imageSize * cfg.imageSize)
        let dE = [Float](repeating: 0.1, count: 2 * cfg.width)
        m.precision = .bf16
        _ = try m.forward(images: images, batch: 2, labels: [0, 1], mode: .train(dropout: 0))
        XCTAssertThrowsError(try m.backward(gradEmbeddings: dE, into: ViTGradients(model: m, parameters: true))) { error in
            XCTAssertTrue("\(error)".contains("float32"), "\(error)")
        }
        m.precision = .float32
        _ = try m.forward(images: images, batch: 2, labels: [0, 1], mode: .train(dropout: 0))
        XCTAssertNoThrow(try m.backward(gradEmbeddings: dE, into: ViTGradients(model: m, parameters: true)))
    }
}
