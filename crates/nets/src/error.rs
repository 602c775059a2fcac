use std::path::PathBuf;

/// Everything that can go wrong building, training or loading a network; each message names
/// the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The dataset could not be read.
    #[error(transparent)]
    Dataset(#[from] imgclf_dataset::DatasetError),
    /// An augmentation setting is wrong.
    #[error(transparent)]
    Augment(#[from] imgclf_augment::AugmentError),
    /// A head, its run folder or its features failed.
    #[error(transparent)]
    Head(#[from] imgclf_heads::HeadError),
    /// A backbone failed to load or run.
    #[error(transparent)]
    Runtime(#[from] imgclf_runtime::RuntimeError),
    /// A setting no run can use.
    #[error("{0}")]
    Config(String),
    /// A run folder, checkpoint or model file is missing or wrong.
    #[error("{path}: {reason}")]
    File {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
    /// A file or folder could not be read or written.
    #[error(transparent)]
    Io(#[from] imgclf_dataset::IoError),
    /// Training was stopped (Ctrl-C, SIGTERM) between batches.
    #[error("interrupted during epoch {epoch}; the run folder holds epoch {saved}")]
    Interrupted {
        /// The epoch that was running.
        epoch: usize,
        /// The last whole epoch the run folder holds.
        saved: usize,
    },
}

impl NetError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| NetError::Io(imgclf_dataset::IoError { path, error })
    }

    pub(crate) fn file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        NetError::File { path: path.into(), reason: reason.to_string() }
    }
}
