import GSLoRAData
import XCTest

final class DataDecodeTests: XCTestCase {
    private func decode(_ bytes: [UInt8], _ name: String = "t.png") throws -> DecodedImage {
        try bytes.withUnsafeBytes { try DecodedImage.decode($0, path: name) }
    }

    /// Every PNG colour type decodes to exactly the stored samples (alpha dropped, palette expanded, gray kept gray).
    func testPNGColorTypesDecodeExactly() throws {
        let w = 3, h = 2
        let g = [0, 1, 127, 128, 254, 255]
        var img = try decode(TestImages.png(width: w, height: h, colorType: TestImages.gray, samples: g))
        XCTAssertEqual([img.width, img.height, img.channels], [3, 2, 1])
        XCTAssertEqual(img.pixels, g.map(UInt8.init))

        let ga = g.flatMap { [$0, 255 - $0] }
        img = try decode(TestImages.png(width: w, height: h, colorType: TestImages.grayAlpha, samples: ga))
        XCTAssertEqual(img.channels, 1)
        XCTAssertEqual(img.pixels, g.map(UInt8.init), "alpha is dropped, not composited")

        let rgb = (0..<(w * h * 3)).map { ($0 * 37) % 256 }
        img = try decode(TestImages.png(width: w, height: h, colorType: TestImages.rgb, samples: rgb))
        XCTAssertEqual(img.channels, 3)
        XCTAssertEqual(img.pixels, rgb.map(UInt8.init))

        var rgba: [Int] = []
        for i in 0..<(w * h) { rgba += rgb[(3 * i)..<(3 * i + 3)] + [i * 40] }
        img = try decode(TestImages.png(width: w, height: h, colorType: TestImages.rgba, samples: rgba))
        XCTAssertEqual(img.channels, 3)
        XCTAssertEqual(img.pixels, rgb.map(UInt8.init), "alpha is dropped, not composited")

        let plte: [UInt8] = [10, 20, 30, 200, 100, 50, 0, 255, 7]
        let idx = [0, 1, 2, 2, 1, 0]
        img = try decode(
            TestImages.png(
                width: w, height: h, colorType: TestImages.palette, samples: idx, palette: plte,
                transparency: [0, 128]))
        XCTAssertEqual(img.channels, 3)
        XCTAssertEqual(img.pixels, idx.flatMap { Array(plte[(3 * $0)..<(3 * $0 + 3)]) })
    }

    /// 16-bit samples v·257 come back as v: no linear-light gamma conversion on the way to 8 bits.
    func testPNG16BitScalesToEightBits() throws {
        let v = [0, 1, 64, 128, 200, 255]
        var img = try decode(TestImages.png(width: 3, height: 2, colorType: TestImages.gray, bitDepth: 16, samples: v.map { $0 * 257 }))
        XCTAssertEqual(img.pixels, v.map(UInt8.init))
        let rgb = (0..<18).map { ($0 * 15) % 256 }
        img = try decode(TestImages.png(width: 3, height: 2, colorType: TestImages.rgb, bitDepth: 16, samples: rgb.map { $0 * 257 }))
        XCTAssertEqual(img.pixels, rgb.map(UInt8.init))
        var rgba: [Int] = []
        for i in 0..<6 { rgba += rgb[(3 * i)..<(3 * i + 3)].map { $0 * 257 } + [i * 10000] }
        img = try decode(TestImages.png(width: 3, height: 2, colorType: TestImages.rgba, bitDepth: 16, samples: rgba))
        XCTAssertEqual(img.pixels, rgb.map(UInt8.init), "16-bit alpha is dropped without premultiplying")
    }

    /// JPEG at quality 100, 4:4:4, on a smooth pattern: within a few levels of the source.
    func testJPEGDecodesCloseToSource() throws {
        let w = 32, h = 24
        var rgb: [UInt8] = []
        for y in 0..<h { for x in 0..<w { rgb += [UInt8(x * 8), UInt8(y * 10), UInt8(128 + (x - y))] } }
        let img = try decode(TestImages.jpeg(width: w, height: h, channels: 3, pixels: rgb), "t.jpg")
        XCTAssertEqual([img.width, img.height, img.channels], [w, h, 3])
        let maxDiff = zip(img.pixels, rgb).map { abs(Int($0) - Int($1)) }.max()!
        XCTAssertLessThanOrEqual(maxDiff, 3)

        let gray = (0..<(w * h)).map { UInt8(($0 % w) * 8) }
        let g = try decode(TestImages.jpeg(width: w, height: h, channels: 1, pixels: gray), "g.jpg")
        XCTAssertEqual(g.channels, 1, "a gray JPEG stays one channel")
        XCTAssertLessThanOrEqual(zip(g.pixels, gray).map { abs(Int($0) - Int($1)) }.max()!, 2)
    }

    /// Broken files fail with an error that names the file and says what is wrong.
    func testBrokenFilesAreRefusedByName() throws {
        let png = TestImages.png(width: 4, height: 4, colorType: TestImages.rgb, samples: (0..<48).map { $0 * 5 })
        var badCRC = png
        badCRC[30] ^= 0xFF // inside the IHDR data: its CRC no longer matches
        let jpg = TestImages.jpeg(width: 16, height: 16, channels: 3, pixels: (0..<768).map { UInt8($0 % 251) })
        let cases: [(String, [UInt8], String)] = [
            ("empty.png", [], "empty file"),
            ("text.jpg", Array("hello, world".utf8), "wrong magic"),
            ("cut.png", Array(png[0..<(png.count - 20)]), "PNG"),
            ("crc.png", badCRC, "PNG"),
            ("cut.jpg", Array(jpg[0..<(jpg.count / 2)]), "JPEG"),
            ("head.jpg", Array(jpg[0..<4]), "JPEG")
        ]
        for (name, bytes, words) in cases {
            XCTAssertThrowsError(try decode(bytes, name), name) { error in
                guard case let DataError.badImage(path, reason) = error else { return XCTFail("\(name): \(error)") }
                XCTAssertEqual(path, name)
                XCTAssertTrue(reason.contains(words), "\(name): \(reason)")
                XCTAssertTrue("\(error)".contains(name))
            }
        }
    }
}
