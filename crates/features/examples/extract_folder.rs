//! Extract a folder: every split of the fixture dataset through the tiny ONNX backbone, into
//! `gap_TinyConvNet.h5` in a temporary folder, then read the file back.
//!
//!     cargo run -p imgclf-features --example extract_folder

use imgclf_dataset::Dataset;
use imgclf_features::prelude::*;

fn main() -> Result<(), FeatureError> {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let dataset = Dataset::open(fixtures.join("tiny_data"))?;
    let backbone = Backbone::open(&fixtures.join("tiny_convnet.onnx"))?; // its spec is tiny_convnet.json
    let out = tempfile::tempdir()
        .map_err(|e| FeatureError::Io(imgclf_dataset::IoError { path: "tempdir".into(), error: e }))?;
    // tract: pure Rust, no ONNX Runtime needed; every other setting as `imgclf extract` has it
    let options = ExtractOptions { batch: 4, ..ExtractOptions::new(EngineConfig::cpu(EngineKind::Tract, 2)) };
    let report = extract(&dataset, &backbone, out.path(), &options, &mut |_| {})?;
    for skipped in &report.skipped {
        println!("skipped {}: {}", skipped.path, skipped.reason);
    }
    let set = FeatureSet::read(&report.output)?;
    for split in &set.splits {
        println!("{}: {} rows x {} features, first {}", split.name, split.features.nrows(), set.dim(), split.paths[0]);
    }
    Ok(())
}
