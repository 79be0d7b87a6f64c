import ArgumentParser
import CommandSupport
import Foundation
import GSLoRAModel
import GSLoRATraining

@main
struct TrainCommand: GsloraCommand {
    static let configuration = CommandConfiguration(
        commandName: "gslora-train",
        abstract: "GS-LoRA(++) forgetting on a ViT backbone, and pre-training a small face-style ViT of your own.",
        discussion: """
            Examples:
              gslora-train pretrain --data fashion-mnist --image-size 28 --patch-size 7 --channels 1 --width 64 \\
                  --depth 4 --heads 4 --mlp-width 128 --epochs 10 -o fmnist.gslr
              gslora-train forget fmnist.gslr --data fashion-mnist --forget Sandal,Bag --epochs 20 -o run1
              gslora-train forget face.gslr --data casia100 --tasks 4 --classes-per-task 20 --plus -o cl4x20 --log run.jsonl
              gslora-train forget face.gslr --data casia100 --tasks 4 --classes-per-task 20 -o cl4x20 --resume

            Exit status: 0 done, 1 bad input or failure, 2 usage error (also option values no run can use, and outputs that
            exist without --force or are inputs),
            130 interrupted (state saved; use --resume).
            """,
        subcommands: [ForgetCommand.self, PretrainCommand.self])
}

/// A value no run can use is a usage error; everything else failed on its input.
extension TrainingError: UsageProblem {
    public var isUsageProblem: Bool {
        if case .badOption = self { return true }
        return false
    }
}
