use std::path::PathBuf;

use imgclf_dataset::DatasetError;

/// Everything that can go wrong turning images into feature files; each message names the
/// file at fault and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("{path}: {reason}")]
    Spec { path: PathBuf, reason: String },
    #[error("{model}: does not match its spec: {reason}")]
    SpecMismatch { model: PathBuf, reason: String },
    #[error("ONNX Runtime is not available: {0}")]
    OrtUnavailable(String),
    /// The device cannot run as asked (no CUDA provider, libraries or GPU; tract on a GPU).
    #[error("{0}")]
    Device(String),
    #[error("{model}: {engine} failed: {reason}")]
    Engine { model: PathBuf, engine: &'static str, reason: String },
    #[error("{path}: {reason}")]
    FeatureFile { path: PathBuf, reason: String },
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("split `{split}`: none of its {total} images could be read (first: {first})")]
    NoImages { split: String, total: usize, first: String },
    #[error(
        "interrupted after {done} of {total} images of {backbone}; nothing was written, and a cached file from an earlier run is untouched"
    )]
    Interrupted { backbone: String, done: usize, total: usize },
    #[error(transparent)]
    Dataset(#[from] DatasetError),
}

impl FeatureError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| FeatureError::Io { path, error }
    }

    pub(crate) fn file(path: impl Into<PathBuf>) -> impl FnOnce(hdf5::Error) -> Self {
        let path = path.into();
        // HDF5's messages span lines: keep them to one
        move |e| FeatureError::FeatureFile { path, reason: format!("HDF5: {}", one_line(&e.to_string())) }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
