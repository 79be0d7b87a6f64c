import ArgumentParser
import Foundation
import GSLoRAFormat

/// A gslora command: exit codes follow the project's convention instead of ArgumentParser's own (64 for usage):
/// 0 ok (and --help), 1 the work failed (bad input, failed check), 2 usage; a command may throw `ExitCode` for others.
public protocol GsloraCommand: ParsableCommand {}

extension GsloraCommand {
    public static func main() {
        // Library messages name settings; a command's user reads them as the flags they type.
        Setting.installSpelling { FlagSpelling.flag($0) }
        let args = Array(CommandLine.arguments.dropFirst())
        // A command group (gslora-train) given nothing: a short usage, not the whole help, and a usage error.
        if args.isEmpty && !configuration.subcommands.isEmpty {
            usageError(nil, command: self)
        }
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            if exitCode(for: error) == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            // ArgumentParser reports a missing argument before an unknown option; the unknown option is the news.
            let sub = subcommand(in: args)
            if let unknown = unknownOption(in: args, command: sub) {
                usageError("unknown option '\(unknown)'", command: sub)
            }
            // Given nothing, ArgumentParser prints the whole help after the error: the error and the usage line do.
            if args.isEmpty {
                let problem = fullMessage(for: error).split(separator: "\n").first.map { String($0) }
                usageError(problem.map(withoutParserPrefix), command: self)
            }
            FileHandle.standardError.write(Data("error: \(withoutParserPrefix(fullMessage(for: error)))\n".utf8))
            Foundation.exit(2)
        }
        do {
            if command is ComputeCommand { try ComputeEnvironment.prepare() }
            try command.run()
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            if exitCode(for: error) == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            // ArgumentParser's exit(withError:) would give a ValidationError thrown by run() its EX_USAGE (64) and the
            // root's usage; here every usage error, whichever step found it, gets exit 2 and its own command's usage.
            if let problem = usageMessage(of: error) { usageError(problem, command: type(of: command)) }
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            Foundation.exit(1)
        }
    }

    /// ArgumentParser's messages start "Error: "; ours add "error: ", as every other error of the commands starts.
    static func withoutParserPrefix(_ message: String) -> String {
        message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
    }

    /// Prints `problem` (if any) and the usage line of `command` on stderr; exits 2.
    static func usageError(_ problem: String?, command: ParsableCommand.Type) -> Never {
        var text = problem.map { "error: \($0)\n" } ?? ""
        text += "Usage: \(usageString(for: command))\n  See '\(fullName(of: command)) --help' for more information.\n"
        FileHandle.standardError.write(Data(text.utf8))
        Foundation.exit(2)
    }

    /// "gslora-train forget" for a subcommand.
    static func fullName(of command: ParsableCommand.Type) -> String {
        let root = configuration.commandName ?? "\(self)"
        guard command != self else { return root }
        return root + " " + (command.configuration.commandName ?? "\(command)")
    }

    /// The subcommand named by the first argument, or the root.
    static func subcommand(in args: [String]) -> ParsableCommand.Type {
        guard let first = args.first else { return self }
        return configuration.subcommands.first { $0.configuration.commandName == first } ?? self
    }

    /// The first argument that looks like an option none of `command`'s names (nor the built-in ones) match;
    /// values such as negative numbers are not options.
    static func unknownOption(in args: [String], command: ParsableCommand.Type) -> String? {
        let help = helpMessage(for: command, includeHidden: true, columns: 1000)
        let pattern = try! NSRegularExpression(pattern: "(?<![A-Za-z0-9-])(--[A-Za-z0-9][A-Za-z0-9-]*|-[A-Za-z])(?![A-Za-z0-9-])")
        let known = Set(
            pattern.matches(in: help, range: NSRange(help.startIndex..., in: help)).compactMap {
                Range($0.range(at: 1), in: help).map { String(help[$0]) }
            }
        ).union(["-h", "--help", "--version", "--experimental-dump-help", "--generate-completion-script"])
        for arg in args {
            if arg == "--" { break }
            guard arg.hasPrefix("-"), arg.count > 1, Double(arg) == nil else { continue }
            let name = arg.hasPrefix("--") ? String(arg.prefix { $0 != "=" }) : String(arg.prefix(2))
            if !known.contains(name) { return name }
        }
        return nil
    }
}
