import Foundation

/// The image data sets known by name (`nabla train --data mnist`): MNIST's four IDX files
/// (plain or gzip'd) in one folder — the official training images for training and validation,
/// the t10k images as the test set. Pixels are scaled to [0, 1], one row of H·W features per
/// image (a `cnn` model reshapes it to [N, 1, H, W]).
public enum ImageSet: String, CaseIterable, Sendable {
    case mnist
    case fashionMNIST = "fashion-mnist"

    /// The environment variable naming a folder with one subfolder per data set
    /// (`$NABLA_DATA_DIR/mnist`, `$NABLA_DATA_DIR/fashion-mnist`), the default of `--data-dir`.
    public static let environmentVariable = "NABLA_DATA_DIR"

    /// The four files, without `.gz`: training images and labels, test images and labels.
    public static let fileNames = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

    public var classNames: [String] {
        switch self {
        case .mnist: return (0..<10).map(String.init)
        case .fashionMNIST: return ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
        }
    }

    /// Where the files come from (for the message when they are missing).
    public var source: String {
        switch self {
        case .mnist: return "MNIST (Y. LeCun, C. Cortes, C. J. C. Burges), e.g. from a mirror of yann.lecun.com/exdb/mnist"
        case .fashionMNIST: return "Fashion-MNIST (Zalando, MIT licence), github.com/zalando-research/fashion-mnist"
        }
    }

    /// The folder to read: `given`, else `$NABLA_DATA_DIR/<name>`, else `data/<name>` under the
    /// current directory.
    public func folder(_ given: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let given { return given }
        if let root = environment[ImageSet.environmentVariable], !root.isEmpty { return (root as NSString).appendingPathComponent(rawValue) }
        return ("data" as NSString).appendingPathComponent(rawValue)
    }

    /// The path of `name` in `folder`, plain or `.gz`; nil when neither exists.
    static func locate(_ name: String, in folder: String) -> String? {
        for candidate in [name, name + ".gz"] {
            let path = (folder as NSString).appendingPathComponent(candidate)
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        return nil
    }

    /// The four files' paths in `folder`; a missing file is an error that names it and says
    /// where the files go.
    func paths(in folder: String) throws -> [String] {
        let found = ImageSet.fileNames.map { ImageSet.locate($0, in: folder) }
        let missing = zip(ImageSet.fileNames, found).filter { $0.1 == nil }.map(\.0)
        guard missing.isEmpty else {
            throw DataFileError(path: folder, message: "\(rawValue): missing \(missing.joined(separator: ", ")) (plain or .gz). Put the four files of "
                + "\(source) — \(ImageSet.fileNames.joined(separator: ", ")) — in one folder and name it with "
                + "--data-dir DIR, or set \(ImageSet.environmentVariable) to a folder holding \(rawValue)/")
        }
        return found.map { $0! }
    }

    /// The training and test sets from `folder`. A missing file is an error that names it and
    /// says where the files go; a file that is not IDX, is truncated, or whose images and labels
    /// disagree is an error that names the file.
    public func load(from folder: String, trainLimit: Int? = nil) throws -> (train: Dataset, test: Dataset) {
        let paths = try paths(in: folder)
        var train = try Dataset.readIDX(images: paths[0], labels: paths[1], limit: trainLimit)
        var test = try Dataset.readIDX(images: paths[2], labels: paths[3])
        try check(train: (train.featureCount, train.classCount), test: (test.featureCount, test.classCount), folder: folder, testPath: paths[2])
        train.classNames = classNames
        test.classNames = classNames
        return (train, test)
    }

    /// ``load(from:trainLimit:)`` as single-precision rows, without a double-precision copy of
    /// the pixels (a third of the memory at the peak): what the image models train on.
    public func loadRows(from folder: String, trainLimit: Int? = nil) throws -> (train: ImageRows, test: ImageRows) {
        let paths = try paths(in: folder)
        let train = try IDX.readLabelled(images: paths[0], labels: paths[1], limit: trainLimit)
        let trainRows = ImageRows(pixels: Tensor(shape: [train.count, train.pixels], scalars: train.floats()), labels: train.labels.map { Int($0) })
        let test = try IDX.readLabelled(images: paths[2], labels: paths[3], limit: nil)
        try check(train: (train.pixels, train.classCount), test: (test.pixels, test.classCount), folder: folder, testPath: paths[2])
        return (trainRows, ImageRows(pixels: Tensor(shape: [test.count, test.pixels], scalars: test.floats()), labels: test.labels.map { Int($0) }))
    }

    func check(train: (pixels: Int, classes: Int), test: (pixels: Int, classes: Int), folder: String, testPath: String) throws {
        for part in [train, test] where part.classes > classNames.count {
            throw DataFileError(path: folder, message: "\(rawValue): a label of \(part.classes - 1) is outside the \(classNames.count) classes")
        }
        guard train.pixels == test.pixels else {
            throw DataFileError(path: testPath, message: "test images of \(test.pixels) pixels, training images of \(train.pixels)")
        }
    }
}

/// Images as rows of pixels in [0, 1] (single precision) with their class labels.
public struct ImageRows: Sendable {
    public var pixels: Tensor<Float>
    public var labels: [Int]
    public var count: Int { pixels.shape[0] }

    public init(pixels: Tensor<Float>, labels: [Int]) {
        require(pixels.rank == 2 && labels.count == pixels.shape[0], "ImageRows: pixels \(pixels.shape) and \(labels.count) labels do not agree")
        (self.pixels, self.labels) = (pixels, labels)
    }
}
