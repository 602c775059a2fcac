//! The feature file `gap_<Backbone>.h5` and how it is made: a backbone (from
//! `imgclf-runtime`) run over every split of a dataset, its pooled rows written to HDF5 with
//! the fingerprint that decides reuse ([`extract`]), computed in shards and merged
//! ([`merge`]), and read back by later stages ([`FeatureSet`]).
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
//! let options = ExtractOptions { batch: 4, ..ExtractOptions::new(EngineConfig::cpu(EngineKind::Tract, 1)) };
//! let out = std::env::temp_dir().join(format!("imgclf-doc-{}", std::process::id()));
//! let report = extract(&dataset, &backbone, &out, &options, &mut |_| {})?;
//! let features = FeatureSet::read(&report.output)?;
//! assert_eq!(features.split("train").unwrap().features.dim(), (12, 8)); // one unreadable photo skipped
//! # std::fs::remove_dir_all(&out).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod checkpoint;
mod error;
mod export;
mod extract;
mod options;
mod pipeline;
mod shard;
mod store;

pub use checkpoint::{PartialStatus, partial_status, partials_in};
pub use error::FeatureError;
pub use export::{Exported, export_parquet, export_parquet_file};
pub use extract::{ExtractReport, ImageStamps, Keys, extract, extract_all, fingerprint, keys};
pub use options::{Checkpoints, ExtractOptions, Progress, Skipped};
pub use shard::{MergeReport, Shard, ShardStatus, merge, merge_in_blocks, shard_status, sharded_backbones};
pub use store::{
    FORMAT, FeatureHeader, FeatureReader, FeatureSet, FeatureWriter, Origin, Rows, ShardInfo, SplitFeatures,
    SplitSlice, Storage, Verifier, partial_dir, photo_digest,
};

/// `use imgclf_features::prelude::*` brings the types a caller of `extract` needs, the
/// runtime's among them.
pub mod prelude {
    pub use crate::{
        Checkpoints, ExtractOptions, ExtractReport, FeatureError, FeatureSet, Progress, SplitFeatures, Storage,
        extract, extract_all,
    };
    pub use imgclf_runtime::prelude::*;
}
