import Foundation
import GSLoRAConvert
import GSLoRAFormat
import TestSupport
import XCTest

/// Hostile and broken inputs: each is refused with a typed error that names the file and the problem, nothing is
/// executed, nothing crashes.
final class HostileFileTests: TempFolderCase {
    static let marker = "/tmp/gslora_pwned"

    /// Marker files a sidecar mentions (any "/tmp/..." path in its text), plus the project's usual one.
    static func markers(_ sidecar: URL) -> [String] {
        let text = (try? String(contentsOf: sidecar, encoding: .utf8)) ?? ""
        let regex = try! NSRegularExpression(pattern: "/tmp/[A-Za-z0-9_.-]+")
        let found = regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { Range($0.range, in: text).map { String(text[$0]) } }
        return Array(Set(found + [marker])).sorted()
    }

    func testMaliciousAndBadFixturesAreRefused() throws {
        let files = Fixtures.files { ($0.hasPrefix("malicious_") || $0.hasPrefix("bad_")) && $0.hasSuffix(".pth") }
        XCTAssertFalse(files.isEmpty, "no malicious_/bad_ fixtures in \(Fixtures.searched)")
        for url in files {
            let sidecarURL = url.deletingPathExtension().appendingPathExtension("expected.json")
            let markers = Self.markers(sidecarURL)
            for m in markers { XCTAssertFalse(FileManager.default.fileExists(atPath: m), "\(m) exists before the test; remove it") }
            let text = errorText(url.lastPathComponent) { _ = try TorchCheckpoint.load(url.path) }
            XCTAssertTrue(text.contains(url.path), "error does not name the file: \(text)")
            if url.lastPathComponent.hasPrefix("malicious_") {
                // torch's own message names the refused global ("unsupported GLOBAL os.system whose ..."); ours must too.
                let sidecar = try? Fixtures.json(sidecarURL)
                let torchMessage = (sidecar?["torch_weights_only_result"] as? [String: Any])?["message"] as? String ?? ""
                if let r = torchMessage.range(of: "GLOBAL ") {
                    let name = torchMessage[r.upperBound...].prefix { !$0.isWhitespace }
                    XCTAssertTrue(text.contains("GLOBAL \(name)"), "\(url.lastPathComponent): error does not name \(name): \(text)")
                }
                XCTAssertTrue(text.contains("nothing was executed"), text)
            }
            for m in markers { XCTAssertFalse(FileManager.default.fileExists(atPath: m), "\(m) appeared after loading \(url.lastPathComponent)") }
        }
    }

    /// Globals outside the allow-list are refused by name and position, through GLOBAL and STACK_GLOBAL alike.
    func testForbiddenGlobals() throws {
        let names = [
            ("os", "system"), ("builtins", "eval"), ("builtins", "exec"), ("builtins", "getattr"), ("subprocess", "Popen"),
            ("posix", "system"), ("nt", "system"), ("torch", "load"), ("torch.nn.modules.module", "Module"),
            ("collections", "defaultdict"), ("__builtin__", "eval")
        ]
        for (module, name) in names {
            for stacked in [false, true] {
                var p = PickleBytes()
                p.op(0x7d)
                if stacked {
                    p.str(module); p.str(name); p.op(0x93)
                } else {
                    p.global(module, name)
                }
                p.str("echo pwned > \(Self.marker)"); p.op(0x85, 0x52)
                p.stop()
                let path = try file("\(module).\(name).\(stacked).pth", checkpointZip(p.b))
                let text = errorText("\(module).\(name)") { _ = try TorchCheckpoint.load(path) }
                // GLOBAL sits right after PROTO and EMPTY_DICT; STACK_GLOBAL after the two BINUNICODE strings.
                let at = stacked ? 3 + 5 + module.utf8.count + 5 + name.utf8.count : 3
                XCTAssertTrue(text.contains("GLOBAL \(module).\(name) in 'archive/data.pkl' at byte \(at)"), text)
                XCTAssertTrue(text.contains(path), text)
                XCTAssertFalse(FileManager.default.fileExists(atPath: Self.marker))
            }
        }
    }

    /// Broken pickles, each with the words its error must contain.
    func testHostilePickles() throws {
        var cases: [(String, [UInt8], String)] = []
        func add(_ name: String, _ expected: String, _ build: (inout PickleBytes) -> Void) {
            var p = PickleBytes()
            build(&p)
            cases.append((name, p.b, expected))
        }
        add("deep-lists", "deeper than 256") { p in
            p.b += [UInt8](repeating: 0x28, count: 100_000) + [UInt8](repeating: 0x6c, count: 100_000)
            p.stop()
        }
        add("deep-tuples", "deeper than 256") { p in
            p.op(0x29)
            p.b += [UInt8](repeating: 0x85, count: 100_000)
            p.stop()
        }
        add("deep-dicts", "deeper than 256") { p in
            // d1, 1, d2, 1, ..., dn then SETITEM n-1 times: d(k)[1] = d(k+1).
            for _ in 0..<(100_000 - 1) { p.op(0x7d, 0x4b, 1) }
            p.op(0x7d)
            p.b += [UInt8](repeating: 0x73, count: 100_000 - 1)
            p.stop()
        }
        add("string-2^60", "exceeds") { p in
            p.op(0x8d)
            TestZip.le(UInt64(1) << 60, &p.b)
            p.stop()
        }
        add("bytes-2^60", "exceeds") { p in
            p.op(0x8e)
            TestZip.le(UInt64(1) << 60, &p.b)
            p.stop()
        }
        add("binunicode-4g", "exceeds") { p in
            p.op(0x58, 0xff, 0xff, 0xff, 0xff)
            p.stop()
        }
        add("long4-huge", "exceeds") { p in
            p.op(0x8b, 0xff, 0xff, 0xff, 0x7f)
            p.stop()
        }
        add("unknown-opcode", "unsupported opcode 0xff") { p in p.op(0xff) }
        add("inst", "unsupported opcode INST") { p in p.b += Array("(ios\nsystem\n".utf8) }
        add("ext1", "unsupported opcode EXT1") { p in p.op(0x82, 1) }
        add("short-string", "exceeds the 1 bytes left") { p in p.op(0x58, 10, 0, 0, 0, 0x41) }
        add("no-stop", "truncated") { p in p.op(0x4e) }
        add("underflow", "stack underflow") { p in p.op(0x2e) }
        add("memo-miss", "never stored") { p in p.op(0x68, 9) }
        add("self-reference", "contains itself") { p in p.op(0x5d, 0x71, 0, 0x68, 0, 0x61, 0x2e) }
        add("build-on-list", "BUILD on a") { p in p.op(0x5d, 0x7d, 0x62, 0x2e) }
        add("reduce-non-callable", "not callable") { p in p.op(0x4e, 0x29, 0x52, 0x2e) }
        add("unhashable-key", "unhashable") { p in p.op(0x7d, 0x5d, 0x4e, 0x73, 0x2e) }
        add("newobj-ex-kwargs", "keyword arguments") { p in
            p.global("collections", "OrderedDict"); p.op(0x29, 0x7d, 0x4b, 1, 0x4b, 1, 0x73, 0x92, 0x2e)
        }
        add("bad-protocol", "protocol 9") { p in p.b = [0x80, 9, 0x4e, 0x2e] }
        add("persid-not-storage", "persistent id") { p in
            p.str("x"); p.op(0x51, 0x2e)
        }
        add("text-persid", "PERSID") { p in p.b += Array("P0\n.".utf8) }
        add("storage-call", "directly") { p in
            p.global("torch", "FloatStorage"); p.op(0x29, 0x52, 0x2e)
        }
        add("bare-storage", "bare storage") { p in
            p.op(0x28); p.str("storage"); p.global("torch", "FloatStorage"); p.str("0"); p.str("cpu"); p.long(1)
            p.op(0x74, 0x51, 0x2e)
        }
        for (name, bytes, expected) in cases {
            let path = try file(name + ".pth", checkpointZip(bytes))
            let text = errorText(name) { _ = try TorchCheckpoint.load(path) }
            XCTAssertTrue(text.contains(path), "\(name): error does not name the file: \(text)")
            XCTAssertTrue(text.contains(expected), "\(name): expected '\(expected)' in: \(text)")
        }
    }

    /// Tensor records that disagree with their storages.
    func testHostileTensors() throws {
        let four = [UInt8](repeating: 0, count: 16) // four float32 elements
        let cases: [(String, (inout PickleBytes) -> Void, [(String, [UInt8])], String)] = [
            ("past-end", { $0.tensor(key: "0", numel: 4, offset: 2, size: [3], stride: [1]) }, [("0", four)], "reaches element 4"),
            ("transposed-past-end", { $0.tensor(key: "0", numel: 4, size: [2, 2], stride: [1, 3]) }, [("0", four)], "reaches element 4"),
            ("negative-size", { $0.tensor(key: "0", numel: 4, size: [-1, 2], stride: [2, 1]) }, [("0", four)], "negative size"),
            ("negative-stride", { $0.tensor(key: "0", numel: 4, size: [2], stride: [-1]) }, [("0", four)], "negative stride"),
            ("negative-offset", { $0.tensor(key: "0", numel: 4, offset: -1, size: [1], stride: [1]) }, [("0", four)], "negative storage offset"),
            ("size-overflow", { $0.tensor(key: "0", numel: 4, size: [1 << 62, 1 << 62], stride: [0, 0]) }, [("0", four)], "overflows"),
            ("stride-overflow", { $0.tensor(key: "0", numel: 4, size: [4], stride: [Int64.max / 2]) }, [("0", four)], "overflow"),
            ("rank-mismatch", { $0.tensor(key: "0", numel: 4, size: [2, 2], stride: [1]) }, [("0", four)], "2 dimensions but stride has 1"),
            ("expand-bomb", { $0.tensor(key: "0", numel: 4, size: [1 << 40], stride: [0]) }, [("0", four)], "budget"),
            ("missing-storage", { $0.tensor(key: "7", numel: 4, size: [4], stride: [1]) }, [("0", four)], "archive/data/7' is missing"),
            ("short-storage", { $0.tensor(key: "0", numel: 8, size: [4], stride: [1]) }, [("0", four)], "holds 16 bytes"),
            ("empty-offset-past", { $0.tensor(key: "0", numel: 4, offset: 9, size: [0], stride: [1]) }, [("0", four)], "beyond")
        ]
        for (name, build, storages, expected) in cases {
            var p = PickleBytes()
            p.op(0x7d)
            p.str("w")
            build(&p)
            p.op(0x73)
            p.stop()
            let path = try file(name + ".pth", checkpointZip(p.b, storages: storages))
            let text = errorText(name) { _ = try TorchCheckpoint.load(path) }
            XCTAssertTrue(text.contains(path), "\(name): error does not name the file: \(text)")
            XCTAssertTrue(text.contains(expected), "\(name): expected '\(expected)' in: \(text)")
            XCTAssertTrue(text.contains("tensor 'w'"), "\(name): error does not name the tensor: \(text)")
        }
    }

    /// The legacy fixture, cut or altered.
    func testHostileLegacyFiles() throws {
        var checked = 0
        for url in Fixtures.files({ $0.hasSuffix(".pth") }) where (try? detectFormat(path: url.path)) == .torchLegacy {
            checked += 1
            let bytes = Array(try Data(contentsOf: url))
            var cases: [(String, [UInt8], String)] = [
                ("truncated-storage", Array(bytes.dropLast(3)), "file ends"),
                ("truncated-header", Array(bytes.prefix(bytes.count - bytes.count / 20)), "storage"),
                ("cut-in-pickle", Array(bytes.prefix(200)), "truncated")
            ]
            // sys_info's little_endian: NEWTRUE right after the key (and its BINPUT) becomes NEWFALSE.
            let key = Array("little_endian".utf8)
            if let at = (0..<(bytes.count - key.count)).first(where: { Array(bytes[$0..<($0 + key.count)]) == key }),
                let t = (at + key.count..<(at + key.count + 4)).first(where: { bytes[$0] == 0x88 })
            {
                var big = bytes
                big[t] = 0x89
                cases.append(("big-endian", big, "big-endian"))
            } else {
                XCTFail("\(url.lastPathComponent): no little_endian flag found")
            }
            var badMagic = bytes
            badMagic[5] ^= 0xff
            cases.append(("bad-magic", badMagic, "not a checkpoint"))
            for (name, data, expected) in cases {
                let path = try file(name + ".pth", data)
                let text = errorText(name) { _ = try TorchCheckpoint.load(path) }
                XCTAssertTrue(text.contains(path), "\(name): error does not name the file: \(text)")
                XCTAssertTrue(text.contains(expected), "\(name): expected '\(expected)' in: \(text)")
            }
        }
        XCTAssertGreaterThan(checked, 0, "no legacy-format .pth in \(Fixtures.searched)")
    }

    /// Detection names what a non-checkpoint looks like.
    func testDetection() throws {
        var tar = [UInt8](repeating: 0, count: 1024)
        tar.replaceSubrange(257..<262, with: Array("ustar".utf8))
        var safetensors: [UInt8] = []
        TestZip.le(UInt64(2), &safetensors)
        safetensors += Array("{}".utf8)
        let refused: [(String, [UInt8], String)] = [
            ("empty", [], "empty"),
            ("lfs", Array("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n".utf8), "git lfs pull"),
            ("html", Array("  <!DOCTYPE html><html><body>Sign in</body></html>".utf8), "HTML page"),
            ("html2", Array("<html><head>".utf8), "HTML page"),
            ("gguf", Array("GGUF".utf8) + [3, 0, 0, 0], "GGUF"),
            ("pickle", [0x80, 2, 0x4e, 0x2e], "magic number"),
            ("random", Array("hello world".utf8), "unrecognized"),
            ("zip-without-pickle", TestZip(records: [.init(name: "top/readme.txt", data: [1])]).bytes(), "data.pkl")
        ]
        for (name, bytes, expected) in refused {
            let path = try file(name, bytes)
            let text = errorText(name) { _ = try detectFormat(path: path) }
            XCTAssertTrue(text.contains(path) && text.contains("not a checkpoint") && text.contains(expected), "\(name): \(text)")
            let loadText = errorText(name) { _ = try TorchCheckpoint.load(path) }
            XCTAssertEqual(loadText, text)
        }
        let recognized: [(String, [UInt8], CheckpointFormat, String)] = [
            ("tar", tar, .torchTar, "tar format"),
            ("gslr", GSLR.magic + [1, 0], .gslr, ".gslr"),
            ("st", safetensors, .safetensors, "safetensors")
        ]
        for (name, bytes, format, expected) in recognized {
            let path = try file(name, bytes)
            XCTAssertEqual(try detectFormat(path: path), format, name)
            let text = errorText(name) { _ = try TorchCheckpoint.load(path) }
            XCTAssertTrue(text.contains(path) && text.contains(expected), "\(name): \(text)")
        }
        let script = TestZip(records: [.init(name: "m/data.pkl", data: [0x80, 2, 0x4e, 0x2e]), .init(name: "m/constants.pkl", data: [0x80, 2, 0x29, 0x2e])])
        let scriptPath = try file("script.pt", script.bytes())
        XCTAssertTrue(errorText("torchscript") { _ = try TorchCheckpoint.load(scriptPath) }.contains("TorchScript"))
        let missing = folder.appendingPathComponent("missing.pth").path
        XCTAssertTrue(errorText("missing") { _ = try TorchCheckpoint.load(missing) }.contains("cannot read"))
    }
}
