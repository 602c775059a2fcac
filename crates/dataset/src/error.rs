use std::path::PathBuf;

/// Everything that can go wrong reading a dataset; each message names the path at fault.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A file or folder could not be read.
    #[error("{path}: cannot read: {error}")]
    Io {
        /// The file or folder at fault.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The data root has no split folder with images.
    #[error("{0}: no `train`, `validation` or `test` folder with images; expected <data>/train/<class>/*.jpg")]
    NoSplits(PathBuf),
    /// A split folder has no images.
    #[error("{0}: split has no images (expected <split>/<class>/*.jpg, or flat *.jpg for test)")]
    EmptySplit(PathBuf),
    /// A class folder has no images.
    #[error("{0}: class folder has no images")]
    EmptyClass(PathBuf),
    /// A split has a class the other splits lack.
    #[error("{path}: class `{class}` is not one of the classes of the other splits ({known})")]
    UnknownClass {
        /// The file or folder at fault.
        path: PathBuf,
        /// The class folder that no other split has.
        class: String,
        /// The names that are known.
        known: String,
    },
    /// Splits asked for by name (`extract --splits`) that are no split, or that the data lacks.
    #[error("{}: {reason}", path.display())]
    Split {
        /// What was opened (a data root or a manifest).
        path: PathBuf,
        /// Which name, and what is wrong with it.
        reason: String,
    },
    /// A split mixes class folders and loose images.
    #[error("{0}: mixes class folders and loose images; put every image in a class folder")]
    MixedLayout(PathBuf),
    /// A manifest (`--data photos.csv`) that cannot be read as one.
    #[error("{}: {reason}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong, with the line.
        reason: String,
    },
    /// An image could not be decoded (skipped where images are read in bulk).
    #[error("{path}: cannot decode image: {reason}")]
    Decode {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
    /// An image could not be resized.
    #[error("{path}: cannot resize a {width}x{height} image: {reason}")]
    Resize {
        /// The file or folder at fault.
        path: PathBuf,
        /// Width of the image, in pixels.
        width: u32,
        /// Height of the image, in pixels.
        height: u32,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
}

impl DatasetError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| DatasetError::Io { path, error }
    }
}

/// A file or folder that could not be read or written, with the operating system's reason:
/// the `Io` case of every imgclf error type.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {error}")]
pub struct IoError {
    /// The file or folder at fault.
    pub path: PathBuf,
    /// The operating system's error.
    pub error: std::io::Error,
}
