use std::path::PathBuf;

use imgclf_features::FeatureError;

/// Everything that can go wrong training or using a head; each message names the file or
/// setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error("{a} and {b} cannot be combined: {reason}")]
    Mismatch { a: PathBuf, b: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error("{0}")]
    Config(String),
    #[error("{path}: {reason}")]
    Run { path: PathBuf, reason: String },
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
}

impl HeadError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| HeadError::Io { path, error }
    }

    pub(crate) fn run(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        HeadError::Run { path: path.into(), reason: reason.to_string() }
    }
}
