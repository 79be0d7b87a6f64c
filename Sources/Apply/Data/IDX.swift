import Foundation
import GSLoRAFormat

/// The images of an IDX file: `count` images of `rows × cols` bytes, row-major.
public struct IDXImages: Equatable, Sendable {
    public let count: Int
    public let rows: Int
    public let cols: Int
    public let pixels: [UInt8]
}

/// MNIST-style IDX files (http://yann.lecun.com/exdb/mnist/): a 4-byte magic `00 00 type ndim`, `ndim` big-endian
/// 32-bit sizes, then the data. Only unsigned bytes (type 0x08) are read: images are 0x00000803 (N×H×W), labels
/// 0x00000801 (N). Files may be gzip-compressed (.gz) or raw. The header must describe the data exactly: a size
/// that does not match the real length (truncated file or lying header) is refused before anything is allocated
/// from it.
public enum IDX {
    public static func readImages(path: String) throws -> IDXImages {
        let (dims, data) = try read(path: path, ndim: 3, what: "images")
        return IDXImages(count: dims[0], rows: dims[1], cols: dims[2], pixels: data)
    }

    /// The number of images an IDX images file holds, from its header alone (the data is not read).
    public static func imageCount(path: String) throws -> Int {
        try read(path: path, ndim: 3, what: "images", headerOnly: true).dims[0]
    }

    public static func readLabels(path: String) throws -> [UInt8] {
        try read(path: path, ndim: 1, what: "labels").data
    }

    /// Loads an image file and its label file as a set with the given class names, through `preprocessing`.
    public static func load(images: String, labels: String, classNames: [String], preprocessing: Preprocessing) throws -> ImageSet {
        try preprocessing.validate()
        let img = try readImages(path: images)
        let lab = try readLabels(path: labels)
        guard img.count == lab.count else {
            throw DataError.mismatch(what: "\(images) and \(labels)", problem: "\(img.count) images but \(lab.count) labels; the files do not belong together")
        }
        if let bad = lab.firstIndex(where: { Int($0) >= classNames.count }) {
            throw DataError.badIDX(path: labels, problem: "label \(lab[bad]) of item \(bad) is outside 0..<\(classNames.count)")
        }
        let (tensor, out) = allocateImages(img.count, preprocessing.channels, preprocessing.outputHeight, preprocessing.outputWidth, name: "images")
        let size = preprocessing.valuesPerImage, pixelsPerImage = img.rows * img.cols
        let table = OutputTable(preprocessing)
        let next = WorkCounter((img.count + 255) / 256)
        let target = OutputPointer(p: out)
        img.pixels.withUnsafeBufferPointer { src in
            let source = InputPointer(p: src.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: max(1, ProcessInfo.processInfo.activeProcessorCount)) { _ in
                let scratch = ResampleScratch()
                while let chunk = next.take() {
                    for i in (chunk * 256)..<min(img.count, chunk * 256 + 256) {
                        preprocessing.run(
                            source.p + i * pixelsPerImage, width: img.cols, height: img.rows, channels: 1,
                            into: target.p + i * size, scratch: scratch, table: table)
                    }
                }
            }
        }
        return ImageSet(validated: tensor, labels: lab.map { Int($0) }, classNames: classNames, paths: nil)
    }

    /// Reads a u8 IDX file of `ndim` dimensions; returns its sizes and data (none with `headerOnly`).
    static func read(path: String, ndim: Int, what: String, headerOnly: Bool = false) throws -> (dims: [Int], data: [UInt8]) {
        let file: MappedFile
        do {
            file = try MappedFile(path)
        } catch let FormatError.io(_, op, e) {
            throw DataError.io(path: path, operation: op, errno: e)
        }
        defer { withExtendedLifetime(file) {} } // the stream reads the mapping
        file.adviseSequential()
        let stream = try ByteStream(file.bytes.buffer, path: path)
        var magic = [UInt8](repeating: 0, count: 4)
        guard try magic.withUnsafeMutableBytes({ try stream.read(into: $0) }) == 4 else {
            throw DataError.badIDX(path: path, problem: "file is shorter than the 4-byte magic")
        }
        guard magic[0] == 0, magic[1] == 0 else {
            throw DataError.badIDX(path: path, problem: "wrong magic bytes \(magic.map { String(format: "%02x", $0) }.joined(separator: " "))")
        }
        guard magic[2] == 0x08 else {
            throw DataError.badIDX(path: path, problem: "element type 0x\(String(format: "%02x", magic[2])) is not unsigned bytes (0x08)")
        }
        guard Int(magic[3]) == ndim else {
            throw DataError.badIDX(path: path, problem: "has \(magic[3]) dimensions, \(what) need \(ndim) (magic 0x0000080\(ndim))")
        }
        var header = [UInt8](repeating: 0, count: 4 * ndim)
        guard try header.withUnsafeMutableBytes({ try stream.read(into: $0) }) == header.count else {
            throw DataError.badIDX(path: path, problem: "file ends inside the \(4 * ndim)-byte size header")
        }
        let dims = (0..<ndim).map { d in header[(4 * d)..<(4 * d + 4)].reduce(0) { $0 << 8 | Int($1) } }
        var total = 1
        for d in dims {
            let (t, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow else { throw DataError.badIDX(path: path, problem: "sizes \(dims) overflow") }
            total = t
        }
        if ndim > 1, dims.dropFirst().contains(0) {
            throw DataError.badIDX(path: path, problem: "sizes \(dims) describe empty images")
        }
        let headerBytes = 4 + 4 * ndim
        // Refuse before allocating: raw data must be exactly this long, and gzip cannot expand beyond its ratio.
        if !stream.isGzip, total != file.count - headerBytes {
            throw DataError.badIDX(
                path: path,
                problem:
                    "header says \(dims) = \(total) bytes of data, but the file holds \(file.count - headerBytes) after the header (truncated file or wrong header)"
            )
        }
        guard total <= stream.maxOutput else {
            throw DataError.badIDX(
                path: path,
                problem: "header says \(dims) = \(total) bytes of data, more than \(file.count) compressed bytes can hold (truncated file or wrong header)")
        }
        if headerOnly { return (dims, []) }
        var data = [UInt8](repeating: 0, count: total)
        let got = try data.withUnsafeMutableBytes { try stream.read(into: $0) }
        guard got == total else {
            throw DataError.badIDX(path: path, problem: "header says \(dims) = \(total) bytes of data, but only \(got) follow (truncated file or wrong header)")
        }
        guard try stream.atEnd() else {
            throw DataError.badIDX(path: path, problem: "data continues past the \(total) bytes the header \(dims) describes (wrong header)")
        }
        return (dims, data)
    }
}

private struct OutputPointer: @unchecked Sendable { let p: UnsafeMutablePointer<Float> }
private struct InputPointer: @unchecked Sendable { let p: UnsafePointer<UInt8> }

/// Fashion-MNIST (Zalando) as Debian's `dataset-fashion-mnist` installs it: 60000 training and 10000 test images,
/// 28×28 gray, 10 classes.
public enum FashionMNIST {
    public static let directory = "/usr/share/datasets/fashion-mnist"
    /// The name `fashion-mnist` stands for Debian's dataset-fashion-mnist folder in every command that takes data.
    public static func resolve(_ path: String) -> String { path == "fashion-mnist" ? directory : path }
    public static let classNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
    ]

    public enum Split: String, Sendable {
        case train
        case test

        var prefix: String { self == .train ? "train" : "t10k" }
    }

    /// Loads one split; `.gz` files are preferred, uncompressed ones (same names without .gz) are accepted.
    /// The default preprocessing keeps the images as 1×28×28 in [0, 1].
    public static func load(
        _ split: Split, directory: String = FashionMNIST.directory,
        preprocessing: Preprocessing = .direct(size: 28, channels: 1)
    ) throws -> ImageSet {
        func find(_ name: String) throws -> String {
            for candidate in [name + ".gz", name] where FileManager.default.fileExists(atPath: directory + "/" + candidate) {
                return directory + "/" + candidate
            }
            throw DataError.fashionMNISTMissing(directory: directory, file: name + ".gz")
        }
        let images = try find("\(split.prefix)-images-idx3-ubyte")
        let labels = try find("\(split.prefix)-labels-idx1-ubyte")
        return try IDX.load(images: images, labels: labels, classNames: classNames, preprocessing: preprocessing)
    }
}
