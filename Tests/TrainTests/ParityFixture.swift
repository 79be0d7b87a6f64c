import Foundation
import TestSupport

/// One `face_vit_*.parity.json`: the forward outputs, losses, hyper-parameters and LoRA tensors the Train tests use.
struct ParityFixture {
    struct Batch {
        let labels: [Int]
        let embeddings: [Float]
        let logitsMargin: [Float]
        let logitsPlain: [Float]
    }

    struct LoRAParam {
        let name: String
        let shape: [Int]
        let before, grad, after, expAvg, expAvgSq, grad2, after2: FixtureArray
    }

    let name: String
    /// Where the file is; its `.pth` is the sibling of the same stem.
    let url: URL
    let classes: Int
    let dim: Int
    let s: Double, m: Double
    let bound, beta, alpha, protoForget, protoMargin, protoRetain: Double
    let lr, beta1, beta2, eps, weightDecay: Double
    let forget: Batch, retain: Batch
    let prototypeTable: FixtureArray
    let protoEmbeddings: FixtureArray
    let protoLabels: [Int]
    /// B×C×H×W inputs of the two batches, and the model's dropout (0 in the fixtures, so train mode is deterministic).
    let forgetImages: FixtureArray, retainImages: FixtureArray
    let dropout: Double
    /// L_total after one AdamW step, on the same batch.
    let step2Total: Double
    let losses: [String: Any]
    let structureGroups: [[String]]
    let lora: [LoRAParam]

    /// Every face parity file in the fixtures folder.
    static func all() throws -> [ParityFixture] {
        try Fixtures.files { $0.hasPrefix("face_vit_") && $0.hasSuffix(".parity.json") }.map(ParityFixture.init)
    }

    init(_ url: URL) throws {
        let j = try Fixtures.json(url)
        let file = url.lastPathComponent
        self.url = url
        name = file
        func obj(_ o: Any?, _ k: String) throws -> [String: Any] {
            guard let d = (o as? [String: Any])?[k] as? [String: Any] else { throw FixtureError.malformed(file, "missing object \(k)") }
            return d
        }
        func num(_ o: [String: Any], _ k: String) throws -> Double {
            guard let n = o[k] as? NSNumber else { throw FixtureError.malformed(file, "missing number \(k)") }
            return n.doubleValue
        }
        func ints(_ o: [String: Any], _ k: String) throws -> [Int] {
            guard let a = o[k] as? [Int] else { throw FixtureError.malformed(file, "missing int list \(k)") }
            return a
        }
        let cfg = try obj(j, "model_config")
        classes = Int(try num(cfg, "num_class"))
        let cos = try obj(j, "cosface")
        s = try num(cos, "s")
        m = try num(cos, "m")
        let hyper = try obj(j, "hyper")
        bound = try num(hyper, "BND")
        beta = try num(hyper, "beta")
        alpha = try num(hyper, "alpha")
        protoForget = try num(hyper, "prototype_weight_forget")
        protoMargin = try num(hyper, "prototype_margin")
        protoRetain = try num(hyper, "prototype_weight_retain")
        let opt = try obj(hyper, "optimizer")
        lr = try num(opt, "lr")
        guard let betas = opt["betas"] as? [Double], betas.count == 2 else { throw FixtureError.malformed(file, "optimizer betas") }
        beta1 = betas[0]
        beta2 = betas[1]
        eps = try num(opt, "eps")
        weightDecay = try num(opt, "weight_decay")
        let fwd = try obj(j, "forward")
        func batch(_ k: String) throws -> Batch {
            let b = try obj(fwd, k)
            return Batch(
                labels: try ints(b, "labels"),
                embeddings: try FixtureArray(b["embedding"], "\(k).embedding").floats,
                logitsMargin: try FixtureArray(b["logits_margin"], "\(k).logits_margin").floats,
                logitsPlain: try FixtureArray(b["logits_plain"], "\(k).logits_plain").floats)
        }
        forget = try batch("forget")
        retain = try batch("retain")
        let emb = try FixtureArray(try obj(fwd, "forget")["embedding"])
        dim = emb.shape.last ?? 0
        let protos = try obj(j, "prototypes")
        prototypeTable = try FixtureArray(protos["table"], "prototypes.table")
        protoEmbeddings = try FixtureArray(protos["proto_embeddings"], "prototypes.proto_embeddings")
        let inputs = try obj(j, "inputs")
        protoLabels = try ints(inputs, "proto_labels")
        forgetImages = try FixtureArray(inputs["forget_images"], "inputs.forget_images")
        retainImages = try FixtureArray(inputs["retain_images"], "inputs.retain_images")
        dropout = try num(cfg, "dropout")
        step2Total = try num(try obj(j, "step2"), "total")
        losses = try obj(j, "losses")
        guard let groups = losses["structure_groups"] as? [[String]] else { throw FixtureError.malformed(file, "structure_groups") }
        structureGroups = groups
        guard let params = j["lora_params"] as? [[String: Any]] else { throw FixtureError.malformed(file, "lora_params") }
        lora = try params.map { p in
            guard let n = p["name"] as? String, let shape = p["shape"] as? [Int] else { throw FixtureError.malformed("lora_params", "name/shape") }
            func a(_ k: String) throws -> FixtureArray { try FixtureArray(p[k], "\(n).\(k)") }
            return LoRAParam(
                name: n, shape: shape, before: try a("before"), grad: try a("grad"), after: try a("after"),
                expAvg: try a("exp_avg"), expAvgSq: try a("exp_avg_sq"), grad2: try a("grad2"), after2: try a("after2"))
        }
    }

    func loss(_ k: String) throws -> Double {
        guard let n = losses[k] as? NSNumber else { throw FixtureError.malformed(name, "missing losses.\(k)") }
        return n.doubleValue
    }

    func lossArray(_ k: String) throws -> FixtureArray { try FixtureArray(losses[k], "losses.\(k)") }
}
