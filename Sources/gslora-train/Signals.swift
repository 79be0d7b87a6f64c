#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Set from the SIGINT/SIGTERM handler; the training loop polls it after every step, saves its state and stops.
nonisolated(unsafe) var stopRequested: sig_atomic_t = 0

enum Signals {
    /// The first signal asks for a clean stop; a second one kills the process as usual.
    static func install() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { s in
                if stopRequested != 0 {
                    signal(s, nil)
                    raise(s)
                }
                stopRequested = 1
            }
        }
    }
}
