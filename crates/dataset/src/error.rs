use std::path::PathBuf;

/// Everything that can go wrong reading a dataset; each message names the path at fault.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: cannot read: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{0}: no `train`, `validation` or `test` folder with images; expected <data>/train/<class>/*.jpg")]
    NoSplits(PathBuf),
    #[error("{0}: split has no images (expected <split>/<class>/*.jpg, or flat *.jpg for test)")]
    EmptySplit(PathBuf),
    #[error("{0}: class folder has no images")]
    EmptyClass(PathBuf),
    #[error("{path}: class `{class}` is not one of the classes of the other splits ({known})")]
    UnknownClass { path: PathBuf, class: String, known: String },
    #[error("{0}: mixes class folders and loose images; put every image in a class folder")]
    MixedLayout(PathBuf),
    #[error("{path}: cannot decode image: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error("{path}: cannot resize a {width}x{height} image: {reason}")]
    Resize { path: PathBuf, width: u32, height: u32, reason: String },
}

impl DatasetError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| DatasetError::Io { path, error }
    }
}
