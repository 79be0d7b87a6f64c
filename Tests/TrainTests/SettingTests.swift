import CommandSupport
import Foundation
import GSLoRAFormat
import GSLoRATraining
import TestSupport
import XCTest

/// Library messages name settings (`Setting`), never command-line flags; the commands install their flag spelling.
/// Library-level tests elsewhere assert the library's own spelling (the name in backticks); tests that run a command
/// assert its flags.
final class SettingTests: XCTestCase {
    /// The library's spelling, restored after a test installs another one (the spelling is process-wide).
    static let librarySpelling: @Sendable (String) -> String = { "`\($0)`" }

    override func tearDown() {
        Setting.installSpelling(Self.librarySpelling)
        super.tearDown()
    }

    func testDefaultAndInstalledSpelling() {
        XCTAssertEqual("\(Setting("classesPerTask"))", "`classesPerTask`")
        // Messages are made when printed, so an error thrown before the spelling changes reads in the new one.
        let error = TrainingError.interrupted(statePath: "run/state.gslr")
        XCTAssertTrue("\(error)".contains("`resume`"), "\(error)")
        Setting.installSpelling { "<\($0)>" }
        XCTAssertEqual("\(Setting("classesPerTask"))", "<classesPerTask>")
        Setting.installSpelling { FlagSpelling.flag($0) }
        XCTAssertEqual("\(Setting("classesPerTask"))", "--classes-per-task")
        XCTAssertTrue("\(error)".contains("--resume") && !"\(error)".contains("`"), "\(error)")
        XCTAssertEqual(
            "\(TrainingError.badOption(option: Setting("scrubGamma"), problem: "must be finite"))", "--gamma: must be finite.")
    }

    /// ArgumentParser's kebab-case rule, and the table for the properties whose flag has another name.
    func testFlagSpelling() {
        for (name, kebab) in [
            ("resume", "resume"), ("classesPerTask", "classes-per-task"), ("minLR", "min-lr"), ("lwfIntendedKD", "lwf-intended-kd"),
            ("scrubSWABeta", "scrub-swa-beta"), ("s", "s"), ("cropPct", "crop-pct"), ("allowBaseMismatch", "allow-base-mismatch")
        ] {
            XCTAssertEqual(FlagSpelling.kebabCase(name), kebab, name)
            if FlagSpelling.exceptions[name] == nil { XCTAssertEqual(FlagSpelling.flag(name), "--" + kebab, name) }
        }
        XCTAssertEqual(FlagSpelling.flag("scrubSWABeta"), "--swa-beta")
        XCTAssertEqual(FlagSpelling.flag("bound"), "--bnd")
        XCTAssertEqual(FlagSpelling.flag("prototypeForget"), "--prototype-weight")
        XCTAssertEqual(FlagSpelling.flag("scales"), "--scale")
        for (name, flag) in FlagSpelling.exceptions {
            XCTAssertNotEqual(flag, "--" + FlagSpelling.kebabCase(name), "\(name): the kebab rule already gives \(flag); drop the entry")
        }
    }

    /// No line of the library sources spells a flag (strings, doc comments, any comment). The allowed text names
    /// other programs' options in instructions for running them, not gslora flags.
    func testLibrarySourcesSpellNoFlag() throws {
        let allowed = [
            "srun --mpi=pmix", // Slurm's option, in how a launcher is recognised (Apply/Cluster/Communicator.swift)
            "apt-get install --reinstall" // apt's option, in how to repair the demo's data (Train/Demo/DemoError.swift)
        ]
        let flag = try NSRegularExpression(pattern: "--[a-z][a-z0-9-]+")
        var checked = 0
        var found: [String] = []
        for file in try Self.librarySources() {
            let text = try String(contentsOf: file, encoding: .utf8)
            for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let rest = allowed.reduce(String(line)) { $0.replacingOccurrences(of: $1, with: "") }
                if flag.firstMatch(in: rest, range: NSRange(rest.startIndex..., in: rest)) != nil {
                    found.append("\(file.path):\(i + 1): \(line.trimmingCharacters(in: .whitespaces))")
                }
            }
            checked += 1
        }
        print("SettingTests: scanned \(checked) library source files for flags")
        XCTAssertGreaterThan(checked, 100, "the library sources were not found under \(Self.sourcesRoot.path)")
        XCTAssertEqual(found, [], "library code spells command-line flags; name a Setting instead:\n" + found.joined(separator: "\n"))
    }

    /// Every `Setting("name")` in the library sources is spelled as a flag that some command's --help lists.
    func testEverySettingIsACommandFlag() throws {
        let literal = try NSRegularExpression(pattern: #"Setting\("([A-Za-z][A-Za-z0-9]*)"\)"#)
        var names = Set<String>()
        for file in try Self.librarySources() where file.pathExtension == "swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            for m in literal.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                names.insert(String(text[Range(m.range(at: 1), in: text)!]))
            }
        }
        XCTAssertGreaterThan(names.count, 50, "found too few Setting literals under \(Self.sourcesRoot.path)")
        var help = ""
        for command in [
            ["gslora-inspect"], ["gslora-convert"], ["gslora-merge"], ["gslora-prune"], ["gslora-infer"], ["gslora-eval"],
            ["gslora-train", "forget"], ["gslora-train", "pretrain"], ["gslora-demo"]
        ] {
            let r = try CommandRunner.run(command[0], Array(command.dropFirst()) + ["--help"])
            XCTAssertEqual(r.code, 0, "\(command) --help: \(r.err)")
            help += r.out + "\n"
        }
        var missing: [String] = []
        for name in names.sorted() {
            let flag = FlagSpelling.flag(name)
            let pattern = "(?<![A-Za-z0-9-])" + NSRegularExpression.escapedPattern(for: flag) + "(?![A-Za-z0-9-])"
            if try NSRegularExpression(pattern: pattern).firstMatch(in: help, range: NSRange(help.startIndex..., in: help)) == nil {
                missing.append("\(name) → \(flag)")
            }
        }
        print("SettingTests: \(names.count) settings named in library sources, each checked against the commands' --help")
        XCTAssertEqual(missing, [], "settings whose flag no command has (add an entry to FlagSpelling.exceptions or fix the name)")
    }

    /// <root>/Sources, found from this file (<root>/Tests/TrainTests/SettingTests.swift).
    static var sourcesRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources")
    }

    /// Every file of the library areas: Format, Convert, Apply, Train.
    static func librarySources() throws -> [URL] {
        var files: [URL] = []
        for area in ["Format", "Convert", "Apply", "Train"] {
            let dir = sourcesRoot.appendingPathComponent(area)
            guard let walk = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.isRegularFileKey]) else {
                throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: dir.path])
            }
            // DocC catalogs are excluded: their articles show shell commands (swift build's own options).
            for case let url as URL in walk
            where (try url.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true && !url.path.contains(".docc/") {
                files.append(url)
            }
        }
        return files.sorted { $0.path < $1.path }
    }
}
