/// What `gslora-train forget` drives, whichever method trains: GS-LoRA(++) (`Trainer`) or a baseline
/// (`BaselineTrainer`) — the same events, the same stop request, the same report.
public protocol ForgettingRun: AnyObject {
    var onEvent: ((TrainEvent) -> Void)? { get set }
    var shouldStop: () -> Bool { get set }
    func run(resume: Bool) throws -> TrainReport
}

extension Trainer: ForgettingRun {}
extension BaselineTrainer: ForgettingRun {}
