import Foundation
import GSLoRAFormat

/// What stops `gslora-demo`. Each case names the file or folder and says what to do.
public enum DemoError: Error, CustomStringConvertible, Equatable, LocalizedError {
    /// The Fashion-MNIST folder or one of its files is not there.
    case missingData(path: String, problem: String)
    /// The data files are there but unusable (corrupt, or labels naming a class that does not exist).
    case badData(path: String, problem: String)
    /// A backbone (given, or the cached pretrained.gslr) that the demo cannot forget on.
    case wrongModel(path: String, problem: String)
    /// A stage produced something inconsistent (a bug, or files changed under the run).
    case failed(stage: String, problem: String)

    public var errorDescription: String? { description }

    public var description: String {
        switch self {
        case let .missingData(p, why):
            return "\(p): \(why). The demo runs on Fashion-MNIST: install Debian's package with `sudo apt-get install dataset-fashion-mnist` "
                + "(it puts the four *-idx*-ubyte.gz files in /usr/share/datasets/fashion-mnist), or pass \(Setting("data")) DIR with those files."
        case let .badData(p, why):
            return
                "\(p): \(why). Reinstall the data (`sudo apt-get install --reinstall dataset-fashion-mnist`) or pass \(Setting("data")) DIR with intact files."
        case let .wrongModel(p, why):
            return "\(p): \(why)."
        case let .failed(stage, why):
            return "\(stage): \(why)."
        }
    }
}
