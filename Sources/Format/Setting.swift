import Foundation

/// A setting named in a message ("heads", "resume"). Libraries name settings by their API name (camelCase, as
/// the option structs spell them); a front end installs its own spelling once at start, so that messages name
/// what its user types (the commands: their kebab-case flags).
public struct Setting: CustomStringConvertible, Sendable, Hashable {
    /// The API name, e.g. "classesPerTask".
    public let name: String

    public init(_ name: String) { self.name = name }

    /// The name as the installed spelling writes it; without one, the name in backticks.
    public var description: String { Self.spelling.current(name) }

    /// Makes every later `description` (and so every message) spell settings with `spelling`. Thread-safe; a
    /// front end calls it once, before any work.
    public static func installSpelling(_ spelling: @escaping @Sendable (String) -> String) {
        Self.spelling.set(spelling)
    }

    private static let spelling = Spelling()

    /// The installed spelling behind a lock.
    private final class Spelling: @unchecked Sendable {
        private let lock = NSLock()
        private var spell: @Sendable (String) -> String = { "`\($0)`" }

        func set(_ s: @escaping @Sendable (String) -> String) {
            lock.lock()
            defer { lock.unlock() }
            spell = s
        }

        func current(_ name: String) -> String {
            lock.lock()
            let s = spell
            lock.unlock()
            return s(name)
        }
    }
}
