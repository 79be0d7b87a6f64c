import Foundation

/// A loss value with its gradient with respect to the tensor it was computed from (row-major, same shape).
public struct LossGradient {
    public let value: Double
    public let gradient: [Float]
}

/// The teacher terms of the baselines (spec/TRAINING.md §B.3), each with the official reduction. Inputs are row-major
/// batch × width (embeddings) or batch × classes (margin logits); the gradient is with respect to the student's.
public enum Distillation {
    /// DER: ‖e_s − e_t‖²_F summed over the batch and the dimensions (no mean).
    public static func der(student: [Float], teacher: [Float]) throws -> LossGradient {
        guard student.count == teacher.count else { throw TrainingError.invalidShape("DER: student \(student.count) vs teacher \(teacher.count) values") }
        var v = 0.0
        var g = [Float](repeating: 0, count: student.count)
        for i in student.indices {
            let d = Double(student[i]) - Double(teacher[i])
            v += d * d
            g[i] = Float(2 * d)
        }
        return LossGradient(value: v, gradient: g)
    }

    /// FDR: mean over the batch of the per-sample L2 distance of the logits (not squared); a zero distance has a
    /// zero gradient (PyTorch's subgradient of the norm at 0).
    public static func fdr(student: [Float], teacher: [Float], classes: Int) throws -> LossGradient {
        try checkPair(student, teacher, classes, "FDR")
        let b = student.count / classes
        var v = 0.0
        var g = [Float](repeating: 0, count: student.count)
        for r in 0..<b {
            var ss = 0.0
            for k in 0..<classes { let d = Double(student[r * classes + k]) - Double(teacher[r * classes + k]); ss += d * d }
            let n = ss.squareRoot()
            v += n
            guard n > 0 else { continue }
            for k in 0..<classes {
                g[r * classes + k] = Float((Double(student[r * classes + k]) - Double(teacher[r * classes + k])) / (n * Double(b)))
            }
        }
        return LossGradient(value: v / Double(b), gradient: g)
    }

    /// SCRUB's KD (`sgda_utils.DistillKL`): T²·Σ_{i,k} p^t (log p^t − log p^s) / B with p = softmax(z/T).
    public static func scrubKD(student: [Float], teacher: [Float], classes: Int, temperature t: Double) throws -> LossGradient {
        try checkPair(student, teacher, classes, "KD")
        guard t.isFinite, t > 0 else { throw TrainingError.invalidArgument("KD temperature must be > 0 (got \(t))") }
        let b = student.count / classes
        var v = 0.0
        var g = [Float](repeating: 0, count: student.count)
        for r in 0..<b {
            let ls = logSoftmax(student, row: r, classes: classes, scale: 1 / t)
            let lt = logSoftmax(teacher, row: r, classes: classes, scale: 1 / t)
            for k in 0..<classes {
                let pt = Foundation.exp(lt[k]), ps = Foundation.exp(ls[k])
                v += pt * (lt[k] - ls[k])
                g[r * classes + k] = Float(t * (ps - pt) / Double(b))
            }
        }
        return LossGradient(value: t * t * v / Double(b), gradient: g)
    }

    /// `T²·KL(softmax(z_t/T) ‖ softmax(z_s/T))` with `batchmean` reduction over the columns `columns` only (LIRF's
    /// knowledge-preservation term keeps the columns from S on).
    public static func klBatchMean(student: [Float], teacher: [Float], classes: Int, columns: Range<Int>, temperature t: Double) throws -> LossGradient {
        try checkPair(student, teacher, classes, "KL")
        guard columns.lowerBound >= 0, columns.upperBound <= classes, !columns.isEmpty else {
            throw TrainingError.invalidArgument("KL columns \(columns) outside 0..<\(classes)")
        }
        let b = student.count / classes, n = columns.count
        func slice(_ z: [Float]) -> [Float] { (0..<b).flatMap { r in z[(r * classes + columns.lowerBound)..<(r * classes + columns.upperBound)] } }
        // The same divergence as SCRUB's KD on the kept columns; its gradient goes back to those columns.
        let kd = try scrubKD(student: slice(student), teacher: slice(teacher), classes: n, temperature: t)
        var g = [Float](repeating: 0, count: student.count)
        for r in 0..<b { for k in 0..<n { g[r * classes + columns.lowerBound + k] = kd.gradient[r * n + k] } }
        return LossGradient(value: kd.value, gradient: g)
    }

    /// The knowledge-distillation term LwF's official code computes (`L_old_kd_loss`): it takes the log of a
    /// log-softmax (negative, so NaN) and zeroes the NaNs, which leaves 0 with a zero gradient for every input
    /// (spec/TRAINING.md §7 decision 2). Kept as its own function so the reproduced behaviour is explicit.
    public static func lwfOfficial(student: [Float], classes: Int) -> LossGradient {
        LossGradient(value: 0, gradient: [Float](repeating: 0, count: student.count))
    }

    /// The KD LwF intends: −mean_i Σ_k q^t_ik log q^s_ik with q = normalise(softmax(z)^{1/T}) = softmax(z/T).
    public static func lwfIntended(student: [Float], teacher: [Float], classes: Int, temperature t: Double) throws -> LossGradient {
        try checkPair(student, teacher, classes, "LwF KD")
        guard t.isFinite, t > 0 else { throw TrainingError.invalidArgument("LwF temperature must be > 0 (got \(t))") }
        let b = student.count / classes
        var v = 0.0
        var g = [Float](repeating: 0, count: student.count)
        for r in 0..<b {
            let ls = logSoftmax(student, row: r, classes: classes, scale: 1 / t)
            let lt = logSoftmax(teacher, row: r, classes: classes, scale: 1 / t)
            for k in 0..<classes {
                let pt = Foundation.exp(lt[k])
                v -= pt * ls[k]
                g[r * classes + k] = Float((Foundation.exp(ls[k]) - pt) / (t * Double(b)))
            }
        }
        return LossGradient(value: v / Double(b), gradient: g)
    }

    /// LIRF's attention transfer (`lirf:42-55`): a(m) = L2-normalise over D of the token mean of m² ([B, D], eps 1e-12),
    /// entries below 0.005 set to 0 (no gradient there); AT = mean over B·D of (a(m_s) − a(m_t))². `m` is
    /// [B, tokens, D]; the gradient is with respect to the student's m.
    public static func attentionTransfer(student: [Float], teacher: [Float], batch: Int, tokens: Int, width: Int) throws -> LossGradient {
        guard student.count == batch * tokens * width, teacher.count == student.count else {
            throw TrainingError.invalidShape("attention transfer: \(student.count)/\(teacher.count) values for \(batch)×\(tokens)×\(width)")
        }
        func attention(_ m: [Float], _ b: Int) -> (a: [Double], raw: [Double], norm: Double) {
            var raw = [Double](repeating: 0, count: width)
            for t in 0..<tokens { for d in 0..<width { let x = Double(m[(b * tokens + t) * width + d]); raw[d] += x * x } }
            for d in 0..<width { raw[d] /= Double(tokens) }
            let norm = max(raw.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            return (raw.map { $0 / norm < 0.005 ? 0 : $0 / norm }, raw, norm)
        }
        var v = 0.0
        var g = [Float](repeating: 0, count: student.count)
        let count = Double(batch * width)
        for b in 0..<batch {
            let s = attention(student, b), t = attention(teacher, b)
            // ∂AT/∂a_s, zero where the threshold cut a_s.
            var da = [Double](repeating: 0, count: width)
            for d in 0..<width {
                let diff = s.a[d] - t.a[d]
                v += diff * diff
                da[d] = s.a[d] == 0 ? 0 : 2 * diff / count
            }
            // Through u = raw/‖raw‖ (‖raw‖ > eps here): ∂u/∂raw = (I − u uᵀ)/‖raw‖.
            var dot = 0.0
            for d in 0..<width { dot += da[d] * s.raw[d] / s.norm }
            var draw = [Double](repeating: 0, count: width)
            for d in 0..<width { draw[d] = (da[d] - dot * s.raw[d] / s.norm) / s.norm }
            for tk in 0..<tokens {
                for d in 0..<width {
                    let i = (b * tokens + tk) * width + d
                    g[i] = Float(draw[d] * 2 * Double(student[i]) / Double(tokens))
                }
            }
        }
        return LossGradient(value: v / count, gradient: g)
    }

    static func checkPair(_ a: [Float], _ b: [Float], _ classes: Int, _ what: String) throws {
        guard classes > 0, a.count == b.count, a.count % classes == 0, !a.isEmpty else {
            throw TrainingError.invalidShape("\(what): student \(a.count) and teacher \(b.count) values for \(classes) classes")
        }
    }

    /// log softmax(scale·z) of row `row`, in Double.
    static func logSoftmax(_ z: [Float], row: Int, classes: Int, scale: Double) -> [Double] {
        let x = (0..<classes).map { Double(z[row * classes + $0]) * scale }
        let m = x.max() ?? 0
        let lse = m + Foundation.log(x.reduce(0) { $0 + Foundation.exp($1 - m) })
        return x.map { $0 - lse }
    }
}
