import GSLoRAData
import GSLoRAFormat
import XCTest

final class DataPreprocessTests: XCTestCase {
    /// Runs `p` on an image and returns the floats scaled back to 0…255 levels (exact: x = v / 255).
    private func levels(_ p: Preprocessing, _ img: DecodedImage) throws -> [Int] {
        try p.validate()
        var out = [Float](repeating: -1, count: p.valuesPerImage)
        out.withUnsafeMutableBufferPointer { p.apply(img, into: $0) }
        return out.map { Int(($0 * 255).rounded()) }
    }

    private func gray(_ w: Int, _ h: Int, _ f: (Int, Int) -> Int) -> DecodedImage {
        var px: [UInt8] = []
        for y in 0..<h { for x in 0..<w { px.append(UInt8(f(x, y))) } }
        return DecodedImage(width: w, height: h, channels: 1, pixels: px)
    }

    /// torchvision's Resize(int) + CenterCrop sizes: short side to s, long side ⌊s·long/short⌋, offsets rounded
    /// half to even like Python's round().
    func testLayoutMatchesTorchvision() {
        let p = Preprocessing.imageNet()
        XCTAssertEqual(p.layout(sourceWidth: 500, sourceHeight: 375), .init(resizedWidth: 341, resizedHeight: 256, cropLeft: 58, cropTop: 16))
        XCTAssertEqual(p.layout(sourceWidth: 375, sourceHeight: 500), .init(resizedWidth: 256, resizedHeight: 341, cropLeft: 16, cropTop: 58))
        XCTAssertEqual(p.layout(sourceWidth: 500, sourceHeight: 333), .init(resizedWidth: 384, resizedHeight: 256, cropLeft: 80, cropTop: 16))
        // (257-224)/2 = 16.5 → 16 (even); (259-224)/2 = 17.5 → 18 (even).
        let q = Preprocessing(geometry: .resizeShortSide(224, crop: 224), channels: 3)
        XCTAssertEqual(q.layout(sourceWidth: 224, sourceHeight: 257), .init(resizedWidth: 224, resizedHeight: 257, cropLeft: 0, cropTop: 16))
        XCTAssertEqual(q.layout(sourceWidth: 259, sourceHeight: 224), .init(resizedWidth: 259, resizedHeight: 224, cropLeft: 18, cropTop: 0))
        XCTAssertEqual(
            Preprocessing.direct(size: 32, channels: 3).layout(sourceWidth: 28, sourceHeight: 28),
            .init(resizedWidth: 32, resizedHeight: 32, cropLeft: 0, cropTop: 0))
    }

    /// Shrinking 4 → 2 with the antialiased triangle (support 2): weights 3/7, 3/7, 1/7 and mirrored,
    /// so [0, 70, 140, 210] → [50, 160]. Enlarging 2 → 4 is plain bilinear with half-pixel centres:
    /// [0, 100] → [0, 25, 75, 100].
    func testHandComputedOneDimensionalResizes() throws {
        let row = gray(4, 1) { x, _ in [0, 70, 140, 210][x] }
        XCTAssertEqual(try levels(Preprocessing(geometry: .direct(height: 1, width: 2), channels: 1), row), [50, 160])
        let col = gray(1, 4) { _, y in [0, 70, 140, 210][y] }
        XCTAssertEqual(try levels(Preprocessing(geometry: .direct(height: 2, width: 1), channels: 1), col), [50, 160])
        let up = gray(2, 1) { x, _ in [0, 100][x] }
        XCTAssertEqual(try levels(Preprocessing(geometry: .direct(height: 1, width: 4), channels: 1), up), [0, 25, 75, 100])
    }

    /// A constant image stays constant through any shrink or enlargement.
    func testConstantImageStaysConstant() throws {
        for v in [0, 1, 128, 254, 255] {
            let img = gray(37, 23) { _, _ in v }
            for p in [
                Preprocessing(geometry: .direct(height: 5, width: 7), channels: 1),
                Preprocessing(geometry: .direct(height: 61, width: 90), channels: 3),
                Preprocessing(geometry: .resizeShortSide(11, crop: 9), channels: 1)
            ] {
                XCTAssertEqual(Set(try levels(p, img)), [v], "\(p.geometry) of constant \(v)")
            }
        }
    }

    /// Shrinking the ramp 2x by 4 reproduces the ramp at output centres where the filter window is whole
    /// (8j + 3), and at the edge averages the clipped window: (0·.625 + 2·.875 + 4·.875 + 6·.625 + 8·.375 +
    /// 10·.125) / 3.5 = 3.79 → 4. Stripes 255, 0, 0, … shrunk by 3 must average to 85 (triangle weights
    /// 1/3, 2/3, 1, 2/3, 1/3 over x = 3j−1 … 3j+3 hit 255 with weights 2/3 and 1/3); a 2-tap bilinear resize
    /// without antialiasing would sample two 0 pixels and give 0.
    func testAntialiasOnGradientAndCheckerboard() throws {
        let ramp = gray(128, 3) { x, _ in 2 * x }
        let out = try levels(Preprocessing(geometry: .direct(height: 3, width: 32), channels: 1), ramp)
        XCTAssertEqual(out[0], 4)
        for j in 1..<31 { XCTAssertEqual(out[j], 8 * j + 3, "column \(j)") }
        let stripes = gray(96, 2) { x, _ in x % 3 == 0 ? 255 : 0 }
        let small = try levels(Preprocessing(geometry: .direct(height: 2, width: 32), channels: 1), stripes)
        for j in 1..<31 { XCTAssertEqual(small[j], 85, "column \(j): aliased") }
    }

    /// Resize + centre crop equals the full resize cut by hand, and both match Pillow (13.0.0, whose pass
    /// order equals the older Pillow used by the reference for these shapes) on a 9×7 RGB pattern.
    func testResizeCropMatchesPillowAndFullResize() throws {
        var px: [UInt8] = []
        for y in 0..<7 { for x in 0..<9 { for c in 0..<3 { px.append(UInt8((x * 37 + y * 91 + c * 53) % 256)) } } }
        let img = DecodedImage(width: 9, height: 7, channels: 3, pixels: px)
        let crop = Preprocessing(geometry: .resizeShortSide(4, crop: 3), channels: 3)
        XCTAssertEqual(crop.layout(sourceWidth: 9, sourceHeight: 7), .init(resizedWidth: 5, resizedHeight: 4, cropLeft: 1, cropTop: 0))
        let got = try levels(crop, img)
        XCTAssertEqual(
            got,
            [
                117, 158, 118, 88, 120, 137, 138, 96, 120, 167, 152, 104, 116, 146, 154, 140, 117, 137,
                131, 148, 112, 128, 132, 160, 126, 116, 133
            ])
        let full = try levels(Preprocessing(geometry: .direct(height: 4, width: 5), channels: 3), img)
        var cut: [Int] = []
        for c in 0..<3 { for y in 0..<3 { for x in 1..<4 { cut.append(full[c * 20 + y * 5 + x]) } } }
        XCTAssertEqual(got, cut)
        // To gray first (PIL's L = (19595 R + 38470 G + 7471 B + 2^15) >> 16), then resize.
        XCTAssertEqual(
            try levels(Preprocessing(geometry: .resizeShortSide(4, crop: 3), channels: 1), img),
            [148, 153, 109, 109, 137, 150, 137, 111, 132])
        let g = gray(6, 5) { x, y in (x * x * 13 + y * 29) % 256 }
        XCTAssertEqual(
            try levels(Preprocessing(geometry: .direct(height: 7, width: 4), channels: 1), g),
            [
                5, 46, 140, 121, 22, 63, 157, 138, 42, 83, 153, 131, 63, 104, 113, 83, 84, 125, 134, 104,
                104, 145, 154, 124, 121, 162, 171, 141
            ])
    }

    /// Same size passes through untouched; gray → RGB replicates; RGB → gray uses PIL's weights; mean/std
    /// are applied as (v/255 − mean) / std in float32.
    func testChannelsScalingAndNormalisation() throws {
        let img = gray(3, 2) { x, y in 40 * x + 100 * y }
        var out = [Float](repeating: 0, count: 18)
        let p = Preprocessing(geometry: .direct(height: 2, width: 3), channels: 3, mean: [0.5, 0.25, 0], std: [0.5, 2, 1])
        try p.validate()
        out.withUnsafeMutableBufferPointer { p.apply(img, into: $0) }
        for (i, v) in img.pixels.enumerated() {
            let x = Float(v) / 255
            XCTAssertEqual(out[i], (x - 0.5) / 0.5)
            XCTAssertEqual(out[6 + i], (x - 0.25) / 2)
            XCTAssertEqual(out[12 + i], x)
        }
        let rgb = DecodedImage(width: 2, height: 1, channels: 3, pixels: [255, 0, 0, 10, 200, 30])
        let l = try levels(Preprocessing.direct(size: 1, channels: 1), DecodedImage(width: 1, height: 1, channels: 3, pixels: [255, 0, 0]))
        XCTAssertEqual(l, [(255 * 19595 + 32768) >> 16])
        XCTAssertEqual(
            try levels(Preprocessing(geometry: .direct(height: 1, width: 2), channels: 1), rgb),
            [76, (10 * 19595 + 200 * 38470 + 30 * 7471 + 32768) >> 16])
    }

    func config(_ f: ModelConfig.Family, _ size: Int, channels: Int = 3) -> ModelConfig {
        ModelConfig(
            family: f, imageSize: size, patchSize: 16, channels: channels, width: 8, depth: 1, heads: 1, headDim: 8, mlpWidth: 8,
            numClasses: 2, head: .linear, attentionScale: 1, layerNormEps: 1e-6, qkvBias: true)
    }

    /// Face ViT: raw [0, 1] at the input size (spec/TRAINING.md §A.1.1); torchvision ViT: its weights' transform for the
    /// size (224: IMAGENET1K_V1, bilinear 256; 384/512/518: SWAG_E2E, bicubic, no crop margin; other sizes:
    /// ImageClassification's proportions, with a note); timm: no default.
    func testFamilyDefaults() throws {
        XCTAssertEqual(PreprocessChoice.familyDefault(config(.faceViT, 112))?.pipeline, .direct(size: 112, channels: 3))
        XCTAssertEqual(PreprocessChoice.familyDefault(config(.torchvisionViT, 224))?.pipeline, .imageNet())
        let swag = try XCTUnwrap(PreprocessChoice.familyDefault(config(.torchvisionViT, 384)))
        XCTAssertEqual(swag.pipeline.geometry, .resizeShortSide(384, crop: 384))
        XCTAssertEqual(swag.pipeline.interpolation, .bicubic)
        let odd = try XCTUnwrap(PreprocessChoice.familyDefault(config(.torchvisionViT, 32, channels: 1)))
        XCTAssertEqual(odd.pipeline, Preprocessing(geometry: .resizeShortSide(36, crop: 32), channels: 1))
        XCTAssertTrue(odd.notes.first?.contains("no torchvision weights exist at this size") == true)
        XCTAssertNil(PreprocessChoice.familyDefault(config(.timmViT, 224)))
    }

    /// Options over the stored record over the family default; timm without a record needs mean, std,
    /// interpolation and a crop ratio (or resize), and the error names what is missing.
    func testResolutionOrderAndRefusals() throws {
        let timm = config(.timmViT, 224)
        XCTAssertThrowsError(try PreprocessChoice.resolve(config: timm, stored: nil, modelPath: "m.pth", request: PreprocessRequest())) {
            let text = "\($0)"
            XCTAssertTrue(
                text.hasPrefix("m.pth: its image pipeline is not known")
                    && text.contains("missing: `mean` and `std`, `interpolation`, `cropPct` (or `resize`)"), text)
        }
        let flags = PreprocessRequest(mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], interpolation: .bicubic, cropPct: 0.9)
        let fromFlags = try PreprocessChoice.resolve(config: timm, stored: nil, modelPath: "m.pth", request: flags)
        XCTAssertEqual(
            fromFlags.pipeline,
            Preprocessing(
                geometry: .resizeShortSide(248, crop: 224), channels: 3, mean: [0.5, 0.5, 0.5],
                std: [0.5, 0.5, 0.5], interpolation: .bicubic))
        XCTAssertEqual(
            fromFlags.record(source: "x"),
            PreprocessRecord(
                resize: 248, crop: 224, interpolation: .bicubic, mean: [0.5, 0.5, 0.5],
                std: [0.5, 0.5, 0.5], source: "x"))
        let stored = PreprocessRecord(resize: 248, crop: 224, interpolation: .bicubic, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], source: "cfg")
        let s = try PreprocessChoice.resolve(config: timm, stored: stored, modelPath: "/a/m.gslr", request: PreprocessRequest())
        XCTAssertEqual(s.pipeline, Preprocessing(record: stored, channels: 3))
        XCTAssertEqual(s.origin, "m.gslr's preprocess record: cfg")
        let o = try PreprocessChoice.resolve(
            config: timm, stored: stored, modelPath: "m.gslr", request: PreprocessRequest(interpolation: .bilinear, resize: 256))
        XCTAssertEqual(o.pipeline.geometry, .resizeShortSide(256, crop: 224))
        XCTAssertEqual(o.pipeline.interpolation, .bilinear)
        XCTAssertEqual(o.pipeline.mean, stored.mean!.map(Float.init))
        XCTAssertTrue(o.origin.hasSuffix("with `interpolation` bilinear `resize` 256 from the command line"), o.origin)
        // torchvision's default, and --preprocess direct on any family.
        XCTAssertEqual(
            try PreprocessChoice.resolve(config: config(.torchvisionViT, 224), stored: nil, modelPath: "v.pth", request: PreprocessRequest()).pipeline,
            .imageNet())
        XCTAssertEqual(
            try PreprocessChoice.resolve(config: timm, stored: nil, modelPath: "m", request: PreprocessRequest(base: .direct)).pipeline,
            .direct(size: 224, channels: 3))
        for bad in [
            PreprocessRequest(base: .imagenet, crop: 200), PreprocessRequest(base: .imagenet, resize: 256, cropPct: 0.9),
            PreprocessRequest(base: .imagenet, cropPct: 1.5), PreprocessRequest(base: .imagenet, mean: [0.5])
        ] {
            XCTAssertThrowsError(try PreprocessChoice.resolve(config: timm, stored: nil, modelPath: "m", request: bad), "\(bad)")
        }
    }

    func testInvalidSettingsAreRefused() {
        let bad: [Preprocessing] = [
            Preprocessing(geometry: .direct(height: 0, width: 4), channels: 3),
            Preprocessing(geometry: .resizeShortSide(200, crop: 224), channels: 3),
            Preprocessing(geometry: .direct(height: 4, width: 4), channels: 2),
            Preprocessing(geometry: .direct(height: 4, width: 4), channels: 3, mean: [0.5], std: [0.5]),
            Preprocessing(geometry: .direct(height: 4, width: 4), channels: 1, mean: [0.5], std: [0]),
            Preprocessing(geometry: .direct(height: 4, width: 4), channels: 1, mean: [0.5], std: nil)
        ]
        for p in bad {
            XCTAssertThrowsError(try p.validate(), "\(p)") { XCTAssertTrue($0 is DataError) }
        }
    }
}
