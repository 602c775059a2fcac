use std::path::PathBuf;

/// Everything that can go wrong loading and running a model; each message names the file at
/// fault and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A model spec is missing or wrong.
    #[error("{path}: {reason}")]
    Spec {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
    /// A model does not match its spec (input name or shape, outputs).
    #[error("{model}: does not match its spec: {reason}")]
    SpecMismatch {
        /// The ONNX model file.
        model: PathBuf,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
    /// No ONNX Runtime library could be loaded.
    #[error("ONNX Runtime is not available: {0}")]
    OrtUnavailable(String),
    /// The device cannot run as asked (no CUDA provider, libraries or GPU; tract on a GPU).
    #[error("{0}")]
    Device(String),
    /// An engine failed to load or run a model.
    #[error("{model}: {engine} failed: {reason}")]
    Engine {
        /// The ONNX model file.
        model: PathBuf,
        /// The engine that failed (`ort` or `tract`).
        engine: &'static str,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
    /// A file or folder could not be read or written.
    #[error(transparent)]
    Io(#[from] imgclf_dataset::IoError),
}

impl RuntimeError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| RuntimeError::Io(imgclf_dataset::IoError { path, error })
    }
}
