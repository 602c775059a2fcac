use std::path::PathBuf;

use imgclf_features::FeatureError;

/// Everything that can go wrong training or using a head; each message names the file or
/// setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// A feature file could not be read.
    #[error(transparent)]
    Features(#[from] FeatureError),
    /// Photos named for prediction could not be listed (a manifest, tar or Parquet file at fault).
    #[error(transparent)]
    Dataset(#[from] imgclf_dataset::DatasetError),
    /// A backbone could not be loaded or run.
    #[error(transparent)]
    Runtime(#[from] imgclf_runtime::RuntimeError),
    /// Two feature files (or a file and a run) do not belong together.
    #[error("{a} and {b} cannot be combined: {reason}")]
    Mismatch {
        /// The first file.
        a: PathBuf,
        /// The file that does not go with it.
        b: PathBuf,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
    /// A feature file cannot be used as an input.
    #[error("{path}: {reason}")]
    Input {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
    /// Training reached a loss that is not a number or infinite: nothing it would go on to
    /// learn could be trusted.
    #[error(
        "training diverged: the loss became {value} in epoch {epoch}, batch {batch}; lower `learning_rate` or `l2` \
         (or standardize the features); no run was written"
    )]
    Diverged {
        /// The epoch, from 1.
        epoch: usize,
        /// The batch within the epoch, from 1.
        batch: u64,
        /// `inf` or `NaN`.
        value: String,
    },
    /// A setting no head can train with.
    #[error("{0}")]
    Config(String),
    /// A run folder is missing, of another format or damaged.
    #[error("{path}: {reason}")]
    Run {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
    /// A file or folder could not be read or written.
    #[error(transparent)]
    Io(#[from] imgclf_dataset::IoError),
}

impl HeadError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| HeadError::Io(imgclf_dataset::IoError { path, error })
    }

    pub(crate) fn run(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        HeadError::Run { path: path.into(), reason: reason.to_string() }
    }
}
