//! Pretrained ONNX backbones as feature extractors: the model spec, two engines (ONNX
//! Runtime through `ort`, pure-Rust tract), global average pooling, and the HDF5 feature
//! file `gap_<Backbone>.h5` that later stages (dense heads, CAM) read.
//!
//! Extracting a folder (the core of `examples/extract_folder.rs`):
//!
//! ```
//! use imgclf_dataset::Dataset;
//! use imgclf_features::prelude::*;
//!
//! let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
//! let dataset = Dataset::open(fixtures.join("tiny_data"))?;
//! let backbone = Backbone::open(&fixtures.join("tiny_convnet.onnx"))?;
//! let options = ExtractOptions {
//!     engine: EngineConfig::cpu(EngineKind::Tract, 1),
//!     batch: 4, decode_threads: 1, force: false, stop: None, shard: None,
//! };
//! let out = std::env::temp_dir().join(format!("imgclf-doc-{}", std::process::id()));
//! let report = extract(&dataset, &backbone, &out, &options, &mut |_| {})?;
//! let features = FeatureSet::read(&report.output)?;
//! assert_eq!(features.split("train").unwrap().features.dim(), (12, 8)); // one unreadable photo skipped
//! # std::fs::remove_dir_all(&out).ok();
//! # Ok::<(), FeatureError>(())
//! ```

#![warn(missing_docs)]

mod adapter;
mod backbone;
mod cuda;
mod device;
mod engine;
mod error;
mod extract;
pub mod internal;
mod models;
mod pipeline;
mod pool;
mod shard;
mod spec;
mod store;

pub use adapter::{PIXELS, POOLED, pixel_model};
pub use backbone::{Backbone, Embedding};
pub use device::{Device, EngineConfig, Feed, Precision};
pub use engine::{Engine, EngineKind, GPU_VENV, PixelBatch, find_ort_library, ort_environment};
pub use error::FeatureError;
pub use extract::{
    ExtractOptions, ExtractReport, Progress, Skipped, extract, extract_all, fingerprint, preprocess_batch, sha256_file,
};
pub use models::{CachedModel, ModelCache};
pub use pool::global_average_pool;
pub use shard::{MergeReport, Shard, ShardInfo, ShardStatus, SplitSlice, merge, shard_status, sharded_backbones};
pub use spec::{ColorOrder, Layout, ModelSpec, Normalize};
pub use store::{FORMAT, FeatureHeader, FeatureSet, FeatureWriter, Origin, Rows, SplitFeatures, photo_digest};

/// `use imgclf_features::prelude::*` brings the types a caller of `extract` needs.
pub mod prelude {
    pub use crate::{
        Backbone, Device, Engine, EngineConfig, EngineKind, ExtractOptions, ExtractReport, FeatureError, FeatureSet,
        ModelSpec, Precision, Progress, SplitFeatures, extract, extract_all,
    };
}
