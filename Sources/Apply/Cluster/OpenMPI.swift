#if canImport(Glibc)
    import Glibc
#endif

/// Open MPI (libmpi.so.40, the ABI of Debian's `libopenmpi-dev` 4.x and 5.x) loaded with dlopen, so gslora builds and
/// runs without MPI installed. In Open MPI's ABI a handle (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM) is the address of an
/// exported object (ompi_mpi_comm_world, …) and MPI_IN_PLACE is (void *)1. The world communicator keeps MPI's default
/// error handler (errors are fatal and the launcher ends every rank); a return code other than MPI_SUCCESS is
/// still turned into a thrown error.
public final class OpenMPI: Communicator {
    typealias Handle = UnsafeMutableRawPointer
    private typealias InitFn = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32
    private typealias IntOutFn = @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
    private typealias CommIntFn = @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
    private typealias AllreduceFn = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle) -> Int32
    private typealias BcastFn = @convention(c) (UnsafeMutableRawPointer?, Int32, Handle, Int32, Handle) -> Int32
    private typealias CommFn = @convention(c) (Handle) -> Int32
    private typealias AbortFn = @convention(c) (Handle, Int32) -> Int32
    private typealias VoidFn = @convention(c) () -> Int32

    public let rank: Int
    public let size: Int
    public private(set) var statistics = CommunicationStatistics()
    private let world: Handle, float: Handle, double: Handle, byte: Handle, sum: Handle
    private let allreduce: AllreduceFn, bcast: BcastFn, barrierFn: CommFn, abortFn: AbortFn, finalizeFn: VoidFn
    private var finalized = false
    /// One process initialises MPI once.
    nonisolated(unsafe) private static var shared: OpenMPI?

    /// Loads libmpi (`library`, else libmpi.so.40, else libmpi.so), calls MPI_Init and reads the world's rank and size.
    static func initialize(library: String?) throws -> OpenMPI {
        if let shared { return shared }
        let names = library.map { [$0] } ?? ["libmpi.so.40", "libmpi.so"]
        var lib: UnsafeMutableRawPointer?
        var why = ""
        for n in names {
            // RTLD_GLOBAL: Open MPI's plugins resolve their symbols against libmpi.
            lib = dlopen(n, RTLD_NOW | RTLD_GLOBAL)
            if lib != nil { break }
            why = dlerror().map { String(cString: $0) } ?? "not found"
        }
        guard let lib else {
            throw ClusterError.noMPI(
                "this process was started by an MPI launcher but \(names.joined(separator: " / ")) cannot be loaded (\(why)); install Open MPI (apt-get install openmpi-bin libopenmpi-dev) or set GSLORA_LIBMPI to its libmpi"
            )
        }
        func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let p = dlsym(lib, name) else {
                throw ClusterError.noMPI("\(names.joined(separator: " / ")) has no symbol \(name); gslora needs Open MPI's ABI (libmpi.so.40)")
            }
            return p
        }
        func fn<F>(_ name: String, _: F.Type) throws -> F { unsafeBitCast(try symbol(name), to: F.self) }
        let initialized = try fn("MPI_Initialized", IntOutFn.self)
        var flag: Int32 = 0
        try check(initialized(&flag), "MPI_Initialized")
        if flag == 0 { try check(try fn("MPI_Init", InitFn.self)(nil, nil), "MPI_Init") }
        let world = try symbol("ompi_mpi_comm_world")
        var r: Int32 = 0, s: Int32 = 0
        try check(try fn("MPI_Comm_rank", CommIntFn.self)(world, &r), "MPI_Comm_rank")
        try check(try fn("MPI_Comm_size", CommIntFn.self)(world, &s), "MPI_Comm_size")
        let mpi = OpenMPI(
            rank: Int(r), size: Int(s), world: world, float: try symbol("ompi_mpi_float"), double: try symbol("ompi_mpi_double"),
            byte: try symbol("ompi_mpi_byte"), sum: try symbol("ompi_mpi_op_sum"),
            allreduce: try fn("MPI_Allreduce", AllreduceFn.self), bcast: try fn("MPI_Bcast", BcastFn.self),
            barrier: try fn("MPI_Barrier", CommFn.self), abort: try fn("MPI_Abort", AbortFn.self),
            finalize: try fn("MPI_Finalize", VoidFn.self))
        shared = mpi
        return mpi
    }

    private init(
        rank: Int, size: Int, world: Handle, float: Handle, double: Handle, byte: Handle, sum: Handle, allreduce: AllreduceFn,
        bcast: BcastFn, barrier: CommFn, abort: AbortFn, finalize: VoidFn
    ) {
        self.rank = rank
        self.size = size
        self.world = world
        self.float = float
        self.double = double
        self.byte = byte
        self.sum = sum
        self.allreduce = allreduce
        self.bcast = bcast
        barrierFn = barrier
        abortFn = abort
        finalizeFn = finalize
    }

    private static func check(_ code: Int32, _ call: String) throws {
        guard code == 0 else { throw ClusterError.failed("\(call) returned MPI error \(code)") }
    }

    /// MPI counts are C ints: larger buffers go in pieces.
    private static let piece = 1 << 28

    private func allreduce(_ base: UnsafeMutableRawPointer?, count: Int, stride: Int, type: Handle) throws {
        guard let base, count > 0 else { return }
        try statistics.record(bytes: count * stride) {
            var start = 0
            while start < count {
                let n = min(Self.piece, count - start)
                // MPI_IN_PLACE: the receive buffer is also the send buffer.
                try Self.check(allreduce(UnsafeRawPointer(bitPattern: 1), base + start * stride, Int32(n), type, sum, world), "MPI_Allreduce")
                start += n
            }
        }
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try allreduce(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 4, type: float)
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        try allreduce(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 8, type: double)
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        try statistics.record(bytes: buffer.count) {
            var start = 0
            while start < buffer.count {
                let n = min(Self.piece, buffer.count - start)
                try Self.check(bcast(base + start, Int32(n), byte, Int32(root), world), "MPI_Bcast")
                start += n
            }
        }
    }

    public func barrier() throws { try Self.check(barrierFn(world), "MPI_Barrier") }

    public func abort(code: Int32) -> Never {
        _ = abortFn(world, code)
        exit(code)
    }

    /// MPI_Finalize, once; every rank calls it before exiting normally.
    public func finalize() throws {
        guard !finalized else { return }
        finalized = true
        try Self.check(finalizeFn(), "MPI_Finalize")
    }
}
