//! ONNX models in and out, the floor every stage that runs a model stands on: the model spec
//! ([`ModelSpec`]), two engines behind one [`Engine`] (ONNX Runtime through `ort`, loaded at
//! run time, on the CPU or an NVIDIA GPU; pure-Rust tract, always built), the [`Device`] and
//! [`Precision`] users ask for, the pixel feed that converts `u8` pixels inside the graph,
//! the model registry ([`ModelCache`]), a [`Backbone`] with its preprocessing and pooling,
//! and an ONNX writer ([`onnx`]) that the pixel feed, the zoo's converters and the nets'
//! exports share. Nothing here knows about feature files, heads or training.
//!
//! Embedding two photos with the fixture backbone:
//!
//! ```
//! use imgclf_runtime::prelude::*;
//!
//! let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
//! let backbone = Backbone::open(&fixtures.join("tiny_convnet.onnx"))?;
//! let mut engine = backbone.engine(&EngineConfig::cpu(EngineKind::Tract, 1))?;
//! let (h, w) = (backbone.spec.resize.height, backbone.spec.resize.width);
//! let photos = vec![image::RgbImage::new(w, h); 2];
//! let embedding = backbone.embed(&mut engine, &photos, false)?;
//! assert_eq!(embedding.pooled.dim(), (2, 8));
//! # Ok::<(), RuntimeError>(())
//! ```

#![warn(missing_docs)]

mod adapter;
mod backbone;
mod cuda;
mod device;
mod engine;
mod error;
mod models;
pub mod onnx;
mod pool;
mod spec;

pub use adapter::{PIXELS, POOLED, pixel_model};
pub use backbone::{Backbone, Embedding, fill_batch, preprocess_batch, sha256_file};
pub use device::{Device, EngineConfig, Feed, Precision, cores};
pub use engine::{Engine, EngineKind, GPU_VENV, PixelBatch, find_ort_library, ort_environment};
pub use error::RuntimeError;
pub use models::{CachedModel, ModelCache, resolve_model};
pub use pool::global_average_pool;
pub use spec::{ColorOrder, Layout, ModelSpec, Normalize};

/// `use imgclf_runtime::prelude::*` brings what loading and running a backbone needs.
pub mod prelude {
    pub use crate::{
        Backbone, Device, Embedding, Engine, EngineConfig, EngineKind, ModelSpec, Precision, RuntimeError,
    };
}
