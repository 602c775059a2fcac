//! Pretrained ONNX backbones as feature extractors: the model spec, two engines (ONNX
//! Runtime through `ort`, pure-Rust tract), global average pooling, and the HDF5 feature
//! file `gap_<Backbone>.h5` that later stages (dense heads, CAM) read.

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
pub use store::{FORMAT, FeatureHeader, FeatureSet, FeatureWriter, Origin, SplitFeatures};

/// `use imgclf_features::prelude::*` brings the types a caller of `extract` needs.
pub mod prelude {
    pub use crate::{
        Backbone, Device, Engine, EngineConfig, EngineKind, ExtractOptions, ExtractReport, FeatureError, FeatureSet,
        ModelSpec, Precision, Progress, SplitFeatures, extract, extract_all,
    };
}
