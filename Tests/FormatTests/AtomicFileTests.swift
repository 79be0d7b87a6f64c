import Foundation
import GSLoRAFormat
import XCTest

final class AtomicFileTests: XCTestCase {
    struct Boom: Error {}

    func testErrorLeavesTargetUntouchedAndNoTemporaryFile() throws {
        let dir = TempDir()
        let path = dir.file("out.bin")
        writeFile(path, [1, 2, 3])
        XCTAssertThrowsError(
            try AtomicFile.write(path) { sink in
                try sink.write([UInt8](repeating: 9, count: 3 << 20))
                throw Boom()
            })
        XCTAssertEqual(readFile(path), [1, 2, 3])
        XCTAssertEqual(dir.contents, ["out.bin"])
    }

    func testStaleTemporaryOfDeadWriterIsRemovedByTheNextWrite() throws {
        let dir = TempDir()
        // A pid that existed and is gone: a child that has exited and been reaped.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let dead = child.processIdentifier
        let live = ProcessInfo.processInfo.processIdentifier == 1 ? 1 : getppid() // our parent is alive
        let stale = ".out.gslr.tmp-\(dead)-abc", kept = ".out.gslr.tmp-\(live)-def", other = ".other.gslr.tmp-\(dead)-ghi"
        for f in [stale, kept, other] { writeFile(dir.file(f), [0]) }
        try AtomicFile.write(dir.file("out.gslr")) { try $0.write([1, 2]) }
        XCTAssertEqual(Set(dir.contents), Set(["out.gslr", kept, other]), "only the dead writer's temporary of this target goes")
    }

    func testWriterRefusalLeavesNothing() throws {
        let dir = TempDir()
        let bad = Tensor(name: "x", dtype: .f32, shape: [4], data: Bytes(copying: [UInt8](repeating: 0, count: 15)))
        XCTAssertThrowsError(try GSLRWriter.write(dir.file("x.gslr"), header: GSLRHeader(kind: .tensors), tensors: [bad]))
        XCTAssertThrowsError(
            try GSLRWriter.write(
                dir.file("x.gslr"), header: GSLRHeader(kind: .tensors),
                tensors: [sampleTensor("d", .u8, [1]), sampleTensor("d", .u8, [1])])
        ) {
            XCTAssertTrue("\($0)".hasSuffix("x.gslr: cannot write: tensor name 'd' appears twice."), "\($0)")
        }
        XCTAssertThrowsError(try GSLRWriter.write(dir.file("x.gslr"), header: GSLRHeader(kind: .backbone), tensors: [])) {
            XCTAssertTrue("\($0)".contains("cannot write: a backbone file needs a 'model' config"), "\($0)")
        }
        XCTAssertEqual(dir.contents, [])
    }

    func testBufferedLargeAndPositionedWrites() throws {
        let dir = TempDir()
        let path = dir.file("mix.bin")
        var expect: [UInt8] = []
        try AtomicFile.write(path) { sink in
            for i in 0..<50 {
                let piece = [UInt8](repeating: UInt8(i), count: i * 997 % 300_000)
                try sink.write(piece)
                expect += piece
            }
            try sink.writeZeros(5)
            expect += [0, 0, 0, 0, 0]
            XCTAssertEqual(sink.offset, expect.count)
            try sink.pwrite([7, 7], at: 1)
            expect[1] = 7; expect[2] = 7
            XCTAssertThrowsError(try sink.pwrite([1], at: expect.count))
        }
        XCTAssertEqual(readFile(path), expect)
        XCTAssertEqual(dir.contents, ["mix.bin"])
    }

    func testOutputThatIsAnInputIsRefused() throws {
        let dir = TempDir()
        let path = dir.file("in.gslr")
        try GSLRWriter.write(path, header: GSLRHeader(kind: .tensors), tensors: [sampleTensor("a", .u8, [3])])
        let before = readFile(path)
        let link = dir.file("link.gslr")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        let f = try GSLRFile.open(path)
        XCTAssertTrue(AtomicFile.sameFile(link, path))
        XCTAssertThrowsError(try GSLRWriter.write(link, header: f.header, tensors: f.allTensors(), inputs: [path])) {
            guard case .outputIsInput? = $0 as? FormatError else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(readFile(path), before)
    }

    func testMappedFile() throws {
        let dir = TempDir()
        let p = dir.file("m")
        writeFile(p, [])
        XCTAssertEqual(try MappedFile(p).count, 0)
        writeFile(p, [5, 6, 7])
        let m = try MappedFile(p)
        withExtendedLifetime(m) { XCTAssertEqual(Array(m.bytes.buffer), [5, 6, 7]) }
        XCTAssertThrowsError(try MappedFile(dir.file("missing"))) { XCTAssertTrue("\($0)".contains("missing")) }
        XCTAssertThrowsError(try MappedFile(dir.path))
    }
}

final class AtomicFilePermissionTests: XCTestCase {
    func testOutputGetsUmaskPermissions() throws {
        let dir = TempDir()
        let path = dir.file("p.bin")
        try AtomicFile.write(path) { try $0.write([1]) }
        let mask = umask(0o022)
        umask(mask)
        let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
        XCTAssertEqual(mode, 0o666 & ~Int(mask))
    }
}
