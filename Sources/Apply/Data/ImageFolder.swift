import Foundation
import GSLoRAFormat

/// An image that was left out of a data set, and why.
public struct SkippedImage: Equatable, Sendable {
    public let path: String
    public let reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// torchvision's `ImageFolder` layout: one sub-folder per class under a root.
///
/// - Class k is the k-th class folder name in code-point order (Python's `sorted`, here: UTF-8 byte order).
///   Pass `classNames` (usually those of train/) so another folder (test/) maps every name to the same index
///   (spec/TRAINING.md §4 item 22); a folder whose name is not in the list is an error naming it. A class folder
///   without images keeps its index.
/// - Files are found recursively (following symlinks, as torchvision's `os.walk(followlinks=True)`), folders in
///   code-point order of their path and files sorted within each folder.
/// - `.jpg`, `.jpeg` and `.png` files (any case) are loaded; files and folders whose name starts with "." are
///   ignored (torchvision would list them). Files with another extension torchvision loads (.bmp, .ppm, .pgm,
///   .tif, .tiff, .webp) are reported as skipped; anything else is ignored.
/// - A file that cannot be read or decoded is reported as skipped, or thrown with `strict: true`.
public enum ImageFolder {
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]
    /// Image types torchvision would load that this build cannot decode.
    static let unsupportedExtensions: Set<String> = ["bmp", "ppm", "pgm", "tif", "tiff", "webp"]
    /// Deepest folder nesting followed inside a class folder.
    static let maxDepth = 64

    /// The files of an image folder, before decoding.
    public struct Listing: Equatable, Sendable {
        public var classNames: [String]
        /// Image files in data set order, with their class index.
        public var files: [String]
        public var labels: [Int]
        /// Files of an image type this build does not decode.
        public var unsupported: [SkippedImage]
    }

    /// The class folder names under `root`, sorted as Python sorts them.
    public static func classNames(in root: String) throws -> [String] {
        let names = try entries(of: root).filter { $0.isFolder }.map(\.name)
        guard !names.isEmpty else { throw DataError.noClasses(path: root) }
        return names.sorted(by: codePointOrder)
    }

    /// Finds the classes and image files under `root` (see the type's documentation for the rules).
    public static func list(root: String, classNames given: [String]? = nil) throws -> Listing {
        let root = trimmed(root)
        let found = try classNames(in: root)
        let names = given ?? found
        // Swift compares strings by canonical equivalence, so two byte-different spellings of one name
        // (NFC and NFD) count as a duplicate here instead of trapping the dictionary.
        var index: [String: Int] = [:]
        for (k, n) in names.enumerated() {
            guard index.updateValue(k, forKey: n) == nil else { throw DataError.duplicateClass(name: n) }
        }
        if let unknown = found.first(where: { index[$0] == nil }) {
            throw DataError.unknownClass(root: root, name: unknown, known: names.count)
        }
        var listing = Listing(classNames: names, files: [], labels: [], unsupported: [])
        for name in found {
            let label = index[name]!
            var folders: [(path: String, files: [String])] = []
            var visited = Set<FileIdentity>()
            try walk(root + "/" + name, depth: 0, visited: &visited, into: &folders)
            folders.sort { codePointOrder($0.path, $1.path) }
            for folder in folders {
                for file in folder.files.sorted(by: codePointOrder) {
                    guard let dot = file.lastIndex(of: ".") else { continue }
                    let ext = file[file.index(after: dot)...].lowercased()
                    let path = folder.path + "/" + file
                    if imageExtensions.contains(ext) {
                        listing.files.append(path)
                        listing.labels.append(label)
                    } else if unsupportedExtensions.contains(ext) {
                        listing.unsupported.append(SkippedImage(path: path, reason: "unsupported image type .\(ext); convert it to PNG or JPEG"))
                    }
                }
            }
        }
        return listing
    }

    /// Loads every image under `root` through `preprocessing`, decoding on all cores.
    /// Returns the set and the files left out (sorted by path). With `strict: true` the first file of an
    /// unsupported type is thrown, else the first undecodable file in data set order.
    public static func load(
        root: String, classNames: [String]? = nil, preprocessing: Preprocessing,
        strict: Bool = false
    ) throws -> (set: ImageSet, skipped: [SkippedImage]) {
        try preprocessing.validate()
        let listing = try list(root: root, classNames: classNames)
        if strict, let first = listing.unsupported.first { throw DataError.badImage(path: first.path, reason: first.reason) }
        let (images, kept, bad) = try ImageFiles.load(listing.files, preprocessing: preprocessing, strict: strict)
        let skipped = (listing.unsupported + bad).sorted { codePointOrder($0.path, $1.path) }
        let set = ImageSet(
            validated: images, labels: kept.map { listing.labels[$0] }, classNames: listing.classNames,
            paths: kept.map { listing.files[$0] })
        return (set, skipped)
    }

    /// Python's string order: by Unicode code point, which UTF-8 byte order equals.
    static func codePointOrder(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    private static func trimmed(_ root: String) -> String {
        var r = root
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        return r
    }

    private struct Entry {
        let name: String
        let isFolder: Bool
        let identity: FileIdentity
    }

    /// The visible entries of a folder, following symlinks; broken links and other odd entries are left out.
    private static func entries(of dir: String) throws -> [Entry] {
        var st = stat()
        guard stat(dir, &st) == 0 else { throw DataError.io(path: dir, operation: "open folder", errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw DataError.notAFolder(path: dir) }
        guard let handle = opendir(dir) else { throw DataError.io(path: dir, operation: "list folder", errno: errno) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            names.append(name)
        }
        var result: [Entry] = []
        for name in names where !name.hasPrefix(".") {
            var s = stat()
            guard stat(dir + "/" + name, &s) == 0 else { continue }
            let kind = s.st_mode & S_IFMT
            guard kind == S_IFDIR || kind == S_IFREG else { continue }
            result.append(
                Entry(
                    name: name, isFolder: kind == S_IFDIR,
                    identity: FileIdentity(device: UInt64(s.st_dev), inode: UInt64(s.st_ino))))
        }
        return result
    }

    private static func walk(
        _ dir: String, depth: Int, visited: inout Set<FileIdentity>,
        into folders: inout [(path: String, files: [String])]
    ) throws {
        guard depth <= maxDepth, let me = FileIdentity.of(dir), visited.insert(me).inserted else { return }
        let list = try entries(of: dir)
        folders.append((dir, list.filter { !$0.isFolder }.map(\.name)))
        for e in list where e.isFolder {
            try walk(dir + "/" + e.name, depth: depth + 1, visited: &visited, into: &folders)
        }
    }
}
