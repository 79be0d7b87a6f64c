/// The element types the losses run in: Float for training, Double for finite-difference checks.
/// Reductions (sums, log-sum-exp, dot products) always accumulate in Double, so a Float run loses no accuracy on long sums.
public protocol TrainScalar: BinaryFloatingPoint, Sendable {}

extension Float: TrainScalar {}
extension Double: TrainScalar {}
