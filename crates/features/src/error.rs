use std::path::PathBuf;

use imgclf_dataset::DatasetError;
use imgclf_runtime::RuntimeError;

/// Everything that can go wrong turning images into feature files; each message names the
/// file at fault and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// A feature file is unreadable, of another format, damaged or mismatched.
    #[error("{path}: {reason}")]
    FeatureFile {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
    /// Another process is writing the same output (it holds its lock): nothing was touched.
    #[error("{}: {held}", path.display())]
    Busy {
        /// The output both would write.
        path: PathBuf,
        /// Who holds it.
        held: imgclf_dataset::Held,
    },
    /// A setting outside what an extraction allows (`imgclf_dataset::limits`).
    #[error("{0}")]
    Config(String),
    /// A shard count the data cannot be split into.
    #[error("shard {shard}: {reason}")]
    Shard {
        /// The shard, `K/N`.
        shard: String,
        /// Why not, with the largest count that works.
        reason: String,
    },
    /// A file or folder could not be read or written.
    #[error(transparent)]
    Io(#[from] imgclf_dataset::IoError),
    /// No image of a split could be read.
    #[error("split `{split}`: none of its {total} images could be read (first: {first})")]
    NoImages {
        /// The split (`train`, `validation`, `test`).
        split: String,
        /// How many images there were in all.
        total: usize,
        /// The first unreadable image and why.
        first: String,
    },
    /// The run was stopped (Ctrl-C, SIGTERM) between batches.
    #[error(
        "interrupted after {done} of {total} images of {backbone}; {}, and a cached file from an earlier run is untouched",
        if *kept {
            "the rows done are kept beside the output (NAME.partial): the same command continues from there"
        } else {
            "without checkpoints nothing is kept: the same command starts over"
        }
    )]
    Interrupted {
        /// The backbone(s) being extracted.
        backbone: String,
        /// How many images were handled before the stop.
        done: usize,
        /// How many images there were in all.
        total: usize,
        /// Whether the rows done were committed (checkpoints on) for the next run to continue.
        kept: bool,
    },
    /// The dataset could not be read.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A backbone could not be loaded or run.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl FeatureError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| FeatureError::Io(imgclf_dataset::IoError { path, error })
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
