use std::path::PathBuf;

/// Everything that can go wrong building, training or loading a network; each message names
/// the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Dataset(#[from] imgclf_dataset::DatasetError),
    #[error(transparent)]
    Augment(#[from] imgclf_augment::AugmentError),
    #[error(transparent)]
    Head(#[from] imgclf_heads::HeadError),
    #[error(transparent)]
    Features(#[from] imgclf_features::FeatureError),
    #[error("{0}")]
    Config(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("interrupted during epoch {epoch}; the run folder holds epoch {saved}")]
    Interrupted { epoch: usize, saved: usize },
}

impl NetError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| NetError::Io { path, error }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        NetError::File { path: path.into(), reason: reason.to_string() }
    }
}
