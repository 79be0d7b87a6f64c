import ArgumentParser
import Foundation

/// A gslora command: exit codes follow the project's convention instead of ArgumentParser's own (64 for usage):
/// 0 ok (and --help), 1 the work failed (bad input, failed check), 2 usage; a command may throw `ExitCode` for others.
public protocol GsloraCommand: ParsableCommand {}

/// An error that is the caller's usage (a value no run can accept) rather than a failure of the work: exit 2.
public protocol UsageProblem: Error {
    var isUsageProblem: Bool { get }
}

extension GsloraCommand {
    public static func main() {
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            if exitCode(for: error) == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            FileHandle.standardError.write(Data("\(fullMessage(for: error))\n".utf8))
            Foundation.exit(2)
        }
        do {
            try command.run()
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            if exitCode(for: error) == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            Foundation.exit((error as? UsageProblem)?.isUsageProblem == true ? 2 : 1)
        }
    }
}
