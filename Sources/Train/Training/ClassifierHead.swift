import Foundation
import GSLoRAFormat

/// The classifier on top of the pooled embedding: CosFace, ArcFace or a plain linear layer (spec/TRAINING.md §A.1.1).
/// Margin heads apply their margin whenever labels are passed, including at evaluation, as the official code does.
public struct ClassifierHead: Sendable {
    public enum Kind: Sendable, Equatable {
        case cosface(s: Double, m: Double)
        case arcface(s: Double, m: Double)
        case linear
    }

    public let kind: Kind
    public let classes: Int
    public let dim: Int

    /// `F.normalize`'s floor on a vector norm.
    public static let normEpsilon = 1e-12

    public init(kind: Kind, classes: Int, dim: Int) throws {
        guard classes > 0, dim > 0 else { throw TrainingError.invalidArgument("head needs classes > 0 and dim > 0 (got \(classes), \(dim))") }
        switch kind {
        case let .cosface(s, m), let .arcface(s, m):
            guard s.isFinite, m.isFinite, s > 0 else {
                throw TrainingError.invalidArgument("margin head needs a finite s > 0 and finite m (got s \(s), m \(m))")
            }
        case .linear: break
        }
        self.kind = kind
        self.classes = classes
        self.dim = dim
    }

    /// From a backbone header's head description; CosFace/ArcFace need both s and m.
    public init(_ head: ModelConfig.Head, classes: Int, dim: Int) throws {
        switch head.kind {
        case .cosface, .arcface:
            guard let s = head.s, let m = head.m else {
                throw TrainingError.invalidArgument("a \(head.kind.rawValue) head needs s and m in the model config")
            }
            try self.init(kind: head.kind == .cosface ? .cosface(s: s, m: m) : .arcface(s: s, m: m), classes: classes, dim: dim)
        case .linear:
            try self.init(kind: .linear, classes: classes, dim: dim)
        }
    }

    /// Logits for a batch. `embeddings` is B×dim, `weight` classes×dim, `bias` (linear only) classes.
    /// `labels` switches the margin on for the labelled column; nil gives plain scaled cosines.
    public func forward<T: TrainScalar>(embeddings: [T], weight: [T], bias: [T]? = nil, labels: [Int]?) throws -> HeadForward<T> {
        guard embeddings.count % dim == 0 else {
            throw TrainingError.invalidShape("embeddings hold \(embeddings.count) values, not a multiple of dim \(dim)")
        }
        let b = embeddings.count / dim
        try checkMatrix(weight.count, rows: classes, cols: dim, "head weight")
        if let labels {
            guard labels.count == b else { throw TrainingError.invalidShape("\(labels.count) labels for a batch of \(b)") }
            try checkLabels(labels, classes: classes, "head labels")
        }
        switch kind {
        case .linear:
            let bias = bias ?? [T](repeating: 0, count: classes)
            guard bias.count == classes else { throw TrainingError.invalidShape("head bias holds \(bias.count) values, \(classes) classes") }
            var logits = [T](repeating: 0, count: b * classes)
            for r in 0..<b {
                for k in 0..<classes {
                    logits[r * classes + k] = T(dot(embeddings, r * dim, weight, k * dim, dim) + Double(bias[k]))
                }
            }
            return HeadForward(
                head: self, batch: b, labels: labels, logits: logits, cosines: [],
                embeddings: embeddings, weight: weight, unitE: [], normE: [], unitW: [], normW: [])
        case let .cosface(s, m), let .arcface(s, m):
            let (unitE, normE) = normalizeRows(embeddings, rows: b, cols: dim)
            let (unitW, normW) = normalizeRows(weight, rows: classes, cols: dim)
            var cosines = [T](repeating: 0, count: b * classes)
            var logits = [T](repeating: 0, count: b * classes)
            let arc = ArcMargin(m)
            for r in 0..<b {
                for k in 0..<classes {
                    let c = dot(unitE, r * dim, unitW, k * dim, dim)
                    cosines[r * classes + k] = T(c)
                    let target = labels.map { $0[r] == k } ?? false
                    let v: Double
                    if case .cosface = kind { v = target ? c - m : c } else { v = target ? arc.phi(c) : c }
                    logits[r * classes + k] = T(s * v)
                }
            }
            return HeadForward(
                head: self, batch: b, labels: labels, logits: logits, cosines: cosines,
                embeddings: embeddings, weight: weight, unitE: unitE, normE: normE, unitW: unitW, normW: normW)
        }
    }
}

/// ArcFace's target-column transform (face.evoLVe form, easy_margin false).
struct ArcMargin {
    let cosM: Double, sinM: Double, threshold: Double, shift: Double
    init(_ m: Double) {
        cosM = Foundation.cos(m); sinM = Foundation.sin(m)
        threshold = Foundation.cos(Double.pi - m)
        shift = Foundation.sin(Double.pi - m) * m
    }
    /// sinθ = √(1−cos²), with 1−cos² floored at 0 (PyTorch gives NaN when rounding pushes |cos| past 1).
    func sine(_ c: Double) -> Double { max(0, 1 - c * c).squareRoot() }
    func phi(_ c: Double) -> Double { c > threshold ? c * cosM - sine(c) * sinM : c - shift }
    /// dφ/dcos; where sinθ is exactly 0 the clamped √ has zero slope, so the derivative is cos m.
    func dPhi(_ c: Double) -> Double {
        guard c > threshold else { return 1 }
        let s = sine(c)
        return s > 0 ? cosM + sinM * c / s : cosM
    }
}

/// The forward state a head keeps for its backward pass.
public struct HeadForward<T: TrainScalar> {
    public let head: ClassifierHead
    public let batch: Int
    public let labels: [Int]?
    /// B×classes logits (margin applied where labels were given).
    public let logits: [T]
    /// B×classes cosines ⟨ê, ŵ⟩ (margin heads only; empty for a linear head).
    public let cosines: [T]
    let embeddings: [T], weight: [T]
    let unitE: [T], normE: [Double], unitW: [T], normW: [Double]

    /// Gradients of a scalar loss given ∂loss/∂logits (B×classes).
    public func backward(gradLogits: [T]) throws -> HeadGradients<T> {
        let c = head.classes, d = head.dim, b = batch
        try checkMatrix(gradLogits.count, rows: b, cols: c, "logit gradient")
        var gE = [T](repeating: 0, count: b * d)
        var gW = [T](repeating: 0, count: c * d)
        switch head.kind {
        case .linear:
            var gBias = [T](repeating: 0, count: c)
            for r in 0..<b {
                for k in 0..<c {
                    let g = gradLogits[r * c + k]
                    if g == 0 { continue }
                    gBias[k] += g
                    for j in 0..<d {
                        gE[r * d + j] += g * weight[k * d + j]
                        gW[k * d + j] += g * embeddings[r * d + j]
                    }
                }
            }
            return HeadGradients(embeddings: gE, weight: gW, bias: gBias)
        case let .cosface(s, m), let .arcface(s, m):
            // ∂loss/∂cos: the scale, times dφ/dcos on ArcFace's labelled column.
            let arc = ArcMargin(m)
            var gCos = [Double](repeating: 0, count: b * c)
            for r in 0..<b {
                for k in 0..<c {
                    var f = s
                    if case .arcface = head.kind, let labels, labels[r] == k { f *= arc.dPhi(Double(cosines[r * c + k])) }
                    gCos[r * c + k] = f * Double(gradLogits[r * c + k])
                }
            }
            var gUnitE = [Double](repeating: 0, count: b * d)
            var gUnitW = [Double](repeating: 0, count: c * d)
            for r in 0..<b {
                for k in 0..<c {
                    let g = gCos[r * c + k]
                    if g == 0 { continue }
                    for j in 0..<d {
                        gUnitE[r * d + j] += g * Double(unitW[k * d + j])
                        gUnitW[k * d + j] += g * Double(unitE[r * d + j])
                    }
                }
            }
            normalizeBackward(unit: unitE, norms: normE, grad: gUnitE, rows: b, cols: d, into: &gE)
            normalizeBackward(unit: unitW, norms: normW, grad: gUnitW, rows: c, cols: d, into: &gW)
            return HeadGradients(embeddings: gE, weight: gW, bias: nil)
        }
    }
}

public struct HeadGradients<T: TrainScalar> {
    /// ∂loss/∂embeddings, B×dim: what the backbone's backward starts from.
    public var embeddings: [T]
    /// ∂loss/∂weight, classes×dim (used only when the head trains, as in pre-training).
    public var weight: [T]
    /// ∂loss/∂bias (linear head only).
    public var bias: [T]?
}

func dot<T: TrainScalar>(_ a: [T], _ ia: Int, _ b: [T], _ ib: Int, _ n: Int) -> Double {
    var s = 0.0
    for j in 0..<n { s += Double(a[ia + j]) * Double(b[ib + j]) }
    return s
}

/// Rows divided by max(‖row‖, 1e-12), as `F.normalize`; also returns the unclamped norms.
func normalizeRows<T: TrainScalar>(_ x: [T], rows: Int, cols: Int) -> ([T], [Double]) {
    var unit = [T](repeating: 0, count: x.count)
    var norms = [Double](repeating: 0, count: rows)
    for r in 0..<rows {
        let n = dot(x, r * cols, x, r * cols, cols).squareRoot()
        norms[r] = n
        let inv = 1 / max(n, ClassifierHead.normEpsilon)
        for j in 0..<cols { unit[r * cols + j] = T(Double(x[r * cols + j]) * inv) }
    }
    return (unit, norms)
}

/// Back through x ↦ x / max(‖x‖, ε): (g − x̂⟨x̂, g⟩)/‖x‖ above the floor, g/ε on it (the clamp has zero slope there).
func normalizeBackward<T: TrainScalar>(unit: [T], norms: [Double], grad: [Double], rows: Int, cols: Int, into out: inout [T]) {
    for r in 0..<rows {
        let n = norms[r]
        if n > ClassifierHead.normEpsilon {
            var proj = 0.0
            for j in 0..<cols { proj += Double(unit[r * cols + j]) * grad[r * cols + j] }
            for j in 0..<cols { out[r * cols + j] = T((grad[r * cols + j] - Double(unit[r * cols + j]) * proj) / n) }
        } else {
            for j in 0..<cols { out[r * cols + j] = T(grad[r * cols + j] / ClassifierHead.normEpsilon) }
        }
    }
}
