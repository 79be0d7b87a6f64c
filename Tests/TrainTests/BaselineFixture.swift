import Foundation
import TestSupport

/// One `baselines_*.parity.json` (fixtures/README.md): the inputs, hyper-parameters and per-method records of two
/// optimiser steps of each baseline computed with the official GS-LoRA training functions.
struct BaselineFixture {
    struct Step {
        let lr: Double
        let gradNorm: [String: Double]
        let updateNorm: [String: Double]
        let paramSum: [String: Double]
        let slices: [String: FixtureArray]
        let preStep: [String: Double]
    }

    struct Method {
        let key: String
        let lossTerms: [String: [Double]]
        let initialSlices: [String: FixtureArray]
        let steps: [Step]
        let trainable: [String]
        let hyper: [String: Any]
        let raw: [String: Any]
    }

    let name: String
    /// Where the file is; `modelFile` is read from the same folder.
    let url: URL
    let modelFile: String
    let heads: Int
    let imageCount: (Int, Int)
    let forgetImages, retainImages, replayImages: [Float]
    let forgetLabels, forgetRewritten, retainLabels, replayLabels, forgetClasses: [Int]
    /// Slice specs ("[0:3,0:6]") by official name, for every method but LIRF, and for LIRF.
    let sliceSpecs: [String: String], lirfSliceSpecs: [String: String]
    let lrTables: [String: [Double]]
    let methods: [Method]

    static func all() throws -> [BaselineFixture] {
        try Fixtures.files { $0.hasPrefix("baselines_") && $0.hasSuffix(".parity.json") }.map(BaselineFixture.init)
    }

    init(_ url: URL) throws {
        let file = url.lastPathComponent
        name = file
        self.url = url
        let j = try Fixtures.json(url)
        func obj(_ o: Any?, _ k: String) throws -> [String: Any] {
            guard let d = (o as? [String: Any])?[k] as? [String: Any] else { throw FixtureError.malformed(file, "missing object \(k)") }
            return d
        }
        func ints(_ o: [String: Any], _ k: String) throws -> [Int] {
            guard let a = o[k] as? [Int] else { throw FixtureError.malformed(file, "missing int list \(k)") }
            return a
        }
        func numbers(_ o: Any?, _ what: String) throws -> [String: Double] {
            guard let d = o as? [String: Any] else { throw FixtureError.malformed(file, "\(what) is not an object") }
            return try d.mapValues { v in
                guard let n = v as? NSNumber else { throw FixtureError.malformed(file, "\(what) holds a non-number") }
                return n.doubleValue
            }
        }
        func arrays(_ o: Any?, _ what: String) throws -> [String: FixtureArray] {
            guard let d = o as? [String: Any] else { throw FixtureError.malformed(file, "\(what) is not an object") }
            return try d.mapValues { try FixtureArray($0, "\(what)") }
        }
        guard let mf = j["model_file"] as? String else { throw FixtureError.malformed(file, "model_file") }
        modelFile = mf
        guard let h = try obj(j, "model_config")["heads"] as? Int else { throw FixtureError.malformed(file, "model_config.heads") }
        heads = h
        let inputs = try obj(j, "inputs")
        forgetImages = try FixtureArray(inputs["forget_images"], "forget_images").floats
        retainImages = try FixtureArray(inputs["retain_images"], "retain_images").floats
        replayImages = try FixtureArray(inputs["replay_images"], "replay_images").floats
        forgetLabels = try ints(inputs, "forget_labels")
        forgetRewritten = try ints(inputs, "forget_labels_rewritten")
        retainLabels = try ints(inputs, "retain_labels")
        replayLabels = try ints(inputs, "replay_labels")
        forgetClasses = try ints(inputs, "forget_classes")
        imageCount = (forgetLabels.count, retainLabels.count)
        let rf = try obj(j, "record_format")
        guard let specs = rf["steps[k].slices / initial_slices"] as? [String: String], let lirf = rf["lirf_slices"] as? [String: String] else {
            throw FixtureError.malformed(file, "record_format slice specs")
        }
        sliceSpecs = specs
        lirfSliceSpecs = lirf
        var tables: [String: [Double]] = [:]
        for (k, v) in try obj(j, "lr_schedules") where k != "note" {
            guard let a = v as? [Double] else { throw FixtureError.malformed(file, "lr_schedules.\(k)") }
            tables[k] = a
        }
        lrTables = tables
        let hyper = try obj(j, "hyper")
        let ms = try obj(j, "methods")
        methods = try ms.keys.sorted().map { key in
            let m = try obj(ms, key)
            guard let terms = m["loss_terms_per_step"] as? [String: [Double]] else { throw FixtureError.malformed(file, "\(key).loss_terms_per_step") }
            guard let steps = m["steps"] as? [[String: Any]], !steps.isEmpty else { throw FixtureError.malformed(file, "\(key).steps") }
            guard let trainable = m["trainable"] as? [String] else { throw FixtureError.malformed(file, "\(key).trainable") }
            return Method(
                key: key, lossTerms: terms, initialSlices: try arrays(m["initial_slices"], "\(key).initial_slices"),
                steps: try steps.enumerated().map { i, s in
                    guard let lr = (s["lr"] as? NSNumber)?.doubleValue else { throw FixtureError.malformed(file, "\(key).steps[\(i)].lr") }
                    return Step(
                        lr: lr, gradNorm: try numbers(s["grad_norm"], "\(key) grad_norm"),
                        updateNorm: try numbers(s["update_norm"], "\(key) update_norm"),
                        paramSum: try numbers(s["param_sum"], "\(key) param_sum"),
                        slices: try arrays(s["slices"], "\(key) slices"),
                        preStep: try numbers(s["pre_step"] ?? [String: Any](), "\(key) pre_step"))
                },
                trainable: trainable, hyper: try obj(hyper, key), raw: m)
        }
    }

    /// The elements of `values` (row-major, `shape`) that a spec like "[0,0:2,0:6]" selects, in row-major order.
    static func slice(_ values: [Float], shape: [Int], spec: String) throws -> [Float] {
        let parts = spec.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).split(separator: ",")
        guard parts.count == shape.count else { throw FixtureError.malformed(spec, "slice rank \(parts.count) for shape \(shape)") }
        var ranges: [Range<Int>] = []
        for (p, n) in zip(parts, shape) {
            let ab = p.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
            if ab.count == 1, let a = ab[0] {
                ranges.append(a..<(a + 1))
            } else if ab.count == 2, let a = ab[0], let b = ab[1], a <= b, b <= n {
                ranges.append(a..<b)
            } else {
                throw FixtureError.malformed(spec, "bad slice part \(p)")
            }
        }
        var strides = [Int](repeating: 1, count: shape.count)
        for i in stride(from: shape.count - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * shape[i + 1] }
        var out: [Float] = []
        func walk(_ d: Int, _ offset: Int) {
            if d == shape.count { out.append(values[offset]); return }
            for i in ranges[d] { walk(d + 1, offset + i * strides[d]) }
        }
        walk(0, 0)
        return out
    }
}
