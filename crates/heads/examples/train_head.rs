//! Train and evaluate a head from a feature file: the fixture photos through the tiny ONNX
//! backbone, then the tutorial's logistic head on those rows, scored on `validation`.
//!
//!     cargo run -p imgclf-heads --example train_head

use imgclf_dataset::Dataset;
use imgclf_features::{ExtractOptions, extract};
use imgclf_heads::prelude::*;
use imgclf_runtime::{Backbone, EngineConfig, EngineKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let out = tempfile::tempdir()?;
    let options =
        ExtractOptions { batch: 8, decode_threads: 2, ..ExtractOptions::new(EngineConfig::cpu(EngineKind::Tract, 2)) };
    let backbone = Backbone::open(&fixtures.join("tiny_convnet.onnx"))?;
    let file =
        extract(&Dataset::open(fixtures.join("tiny_data"))?, &backbone, out.path(), &options, &mut |_| {})?.output;

    let inputs = HeadInputs::load(&[file])?;
    let config = TrainConfig { epochs: 20, ..TrainConfig::tutorial() };
    let trained = train(&inputs, &config, &mut |_| {})?;
    let validation = inputs.split("validation").expect("the fixtures have one");
    let probs = predict_split(&trained.head, &inputs, "validation")?;
    let labels = validation.labels.as_ref().expect("a labelled split");
    let report = evaluate(&inputs.classes, probs.view(), labels, &validation.paths, 3);
    println!(
        "{} epochs (weights of epoch {}): validation accuracy {:.3}, log loss {:.4} over {} photos",
        trained.history.len(),
        trained.best_epoch,
        report.accuracy,
        report.log_loss,
        report.rows
    );
    Ok(())
}
