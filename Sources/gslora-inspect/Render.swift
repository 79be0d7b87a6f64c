import Foundation
import GSLoRAFormat

/// The human-readable form of a `FileSummary`.
enum Render {
    static func text(_ s: FileSummary) -> String {
        var out = "\(s.path)  (\(s.format), \(bytes(s.fileBytes)))\n"
        func row(_ k: String, _ v: String) { out += "  " + k.padding(toLength: 13, withPad: " ", startingAt: 0) + v + "\n" }
        row(
            "kind",
            s.kind == .backbone && s.adapter != nil
                ? "backbone with an embedded adapter (run as W + s·B·A, as PyTorch does; gslora-convert splits it off)" : s.kind.rawValue)
        if let m = s.model {
            row(
                "model",
                "\(m.family.rawValue): image \(m.imageSize), patch \(m.patchSize), channels \(m.channels), width \(m.width), depth \(m.depth), heads \(m.heads)×\(m.headDim), mlp \(m.mlpWidth), classes \(m.numClasses)"
            )
            var head = m.head.kind.rawValue
            if let sc = m.head.s { head += " s=\(num(sc))" }
            if let mm = m.head.m { head += " m=\(num(mm))" }
            if let p = m.provenance, !p.isEmpty {
                row("config from", p.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: "; "))
            }
            row(
                "head",
                "\(head); attention scale \(num(m.attentionScale)); layer-norm eps \(num(m.layerNormEps)); qkv bias \(m.qkvBias ? "yes" : "no"); pooling \(m.pooling)"
            )
        }
        if let p = s.preprocess {
            let norm = p.mean.map { m in ", mean \(m.map(num).joined(separator: ",")) std \((p.std ?? []).map(num).joined(separator: ","))" } ?? ", no mean/std"
            row(
                "preprocess",
                "resize short side \(p.resize) (\(p.interpolation.rawValue)), centre crop \(p.crop)\(norm)" + (p.source.map { "; from \($0)" } ?? ""))
        }
        if let c = s.classes {
            let shown = c.prefix(5).joined(separator: ", ") + (c.count > 5 ? ", …" : "")
            row("classes", "\(c.count) (\(shown))")
        }
        row("tensors", "\(s.tensorCount), \(grouped(s.parameters)) parameters, \(bytes(s.tensorBytes))")
        for d in s.byDType {
            row("  " + d.dtype.rawValue, "\(d.tensors) \(d.tensors == 1 ? "tensor" : "tensors"), \(grouped(d.parameters)) parameters, \(bytes(d.bytes))")
        }
        row("fingerprint", s.fingerprint)
        for m in s.merged ?? [] { row("merged", "task \(m.task), adapter \(m.adapterFingerprint), scale \(num(m.scale))") }
        if let a = s.adapter {
            row("lora", "rank \(a.rank), alpha \(num(a.alpha)), scaling \(num(a.scaling)) (\(a.scalingRule)), targets \(a.targets.joined(separator: ", "))")
            let pruned = a.groups.filter { $0.state == .pruned }.count
            row("groups", "\(a.groups.count) by \(a.grouping): \(a.groups.count - pruned) kept, \(pruned) pruned")
            let width = min(max(a.groups.map { $0.name.count }.max() ?? 0, 4), 40)
            for g in a.groups {
                out +=
                    "    " + g.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                    + g.state.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0)
                    + "  norm " + String(format: "%.6g", g.norm) + "  (\(g.members.count) \(g.members.count == 1 ? "tensor" : "tensors"))\n"
            }
            let t = a.task
            row("task", "\(t.index): forget \(classList(t.forget)), retain \(classList(t.retain)), earlier forgotten \(classList(t.old))")
            if !t.metrics.isEmpty { row("metrics", t.metrics.sorted { $0.key < $1.key }.map { "\($0.key) \(num($0.value))" }.joined(separator: ", ")) }
            if !t.settings.isEmpty { row("settings", t.settings.sorted { $0.key < $1.key }.map { "\($0.key)=\(jsonText($0.value))" }.joined(separator: ", ")) }
            row("base", a.baseFingerprint)
        }
        if case .object(let b)? = s.metadata["gslora_baseline"] {
            // A baseline's lineage record (spec/FORMAT.md §4.8).
            row("baseline", "\(b["method"].map(jsonText) ?? "?"), started from \(b["started_from"].map(jsonText) ?? "?")")
            if case .object(let t)? = b["task"] {
                row(
                    "task",
                    ["index", "forget", "retain", "old", "base_fingerprint", "parameters_changed"].compactMap { k in t[k].map { "\(k) \(jsonText($0))" } }
                        .joined(separator: ", "))
                for phase in ["before", "after"] { if let m = t[phase] { row(phase, jsonText(m)) } }
            }
            if let st = b["settings"] { row("settings", jsonText(st)) }
        }
        if !s.metadata.isEmpty {
            let keys = s.metadata.keys.sorted()
            row("metadata", keys.prefix(12).joined(separator: ", ") + (keys.count > 12 ? ", … (\(keys.count) keys)" : ""))
        }
        if let table = s.tensors {
            let nameWidth = min(max(table.map { $0.name.count }.max() ?? 0, 4), 60)
            out += "  " + "name".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  dtype  shape                 offset        bytes  crc32\n"
            for t in table {
                let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
                out +=
                    "  " + t.name.padding(toLength: max(nameWidth, t.name.count), withPad: " ", startingAt: 0) + "  "
                    + t.dtype.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0) + "  "
                    + shape.padding(toLength: max(20, shape.count), withPad: " ", startingAt: 0)
                    + leftPad(String(t.offset), 8) + "  " + leftPad(String(t.length), 11) + "  " + CRC32.hex(t.crc32) + "\n"
            }
        }
        if let v = s.verification {
            let rate = v.seconds > 0 ? String(format: ", %.2f GB/s", Double(v.checkedBytes) / v.seconds / 1e9) : ""
            if v.mismatches.isEmpty {
                row("verify", "OK: all \(s.tensorCount) CRCs match (\(bytes(v.checkedBytes)) in \(String(format: "%.3f", v.seconds)) s\(rate))")
            } else {
                row("verify", "FAILED: \(v.mismatches.count) of \(s.tensorCount) tensors do not match their CRC32")
                for m in v.mismatches { out += "    '\(m.name)': stored \(CRC32.hex(m.expected)), computed \(CRC32.hex(m.actual))\n" }
            }
        }
        return out
    }

    static func leftPad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }

    static func num(_ x: Double) -> String { String(format: "%g", x) }

    static func grouped(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, ch) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return String(out.reversed())
    }

    static func bytes(_ n: Int) -> String {
        if n < 1000 { return "\(n) B" }
        let units = ["kB", "MB", "GB", "TB"]
        var v = Double(n) / 1000, i = 0
        while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
        return String(format: "%.1f %@", v, units[i])
    }

    static func classList(_ c: [Int]) -> String {
        if c.isEmpty { return "none" }
        if c.count <= 8 { return "[" + c.map(String.init).joined(separator: ", ") + "]" }
        return "\(c.count) classes [\(c.prefix(4).map(String.init).joined(separator: ", ")), …]"
    }

    static func jsonText(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case let .bool(b): return String(b)
        case let .int(i): return String(i)
        case let .number(d): return num(d)
        case let .string(s): return s
        case let .array(a): return "[" + a.map(jsonText).joined(separator: ", ") + "]"
        case let .object(o): return "{" + o.keys.sorted().map { "\($0): \(jsonText(o[$0]!))" }.joined(separator: ", ") + "}"
        }
    }
}
