//! The runtime on a real ONNX model (the tiny conv net under `fixtures/`), through its public
//! API only: both engines give the same feature rows for the same photos, and a spec that does
//! not fit its model is refused when the engine loads, naming the model, before any image runs.

use std::path::{Path, PathBuf};

use image::RgbImage;
use imgclf_runtime::{Backbone, EngineConfig, EngineKind, RuntimeError};
use imgclf_testkit::{available, fixtures};

/// The fixture's training photos, decoded and resized to the spec's input.
fn photos(backbone: &Backbone) -> Vec<RgbImage> {
    let train = fixtures().join("tiny_data/train");
    let mut files: Vec<PathBuf> = ["cats", "dogs"]
        .iter()
        .flat_map(|c| std::fs::read_dir(train.join(c)).unwrap().map(|e| e.unwrap().path()))
        .collect();
    files.sort();
    // the fixture's train folders hold a broken file on purpose: the photos that decode
    let decoded: Vec<RgbImage> = files
        .iter()
        .filter_map(|f| imgclf_dataset::load_rgb(f).ok().map(|p| backbone.spec.resize.apply(&p, f).unwrap()))
        .collect();
    assert!(decoded.len() >= 4, "the fixture's photos decode");
    decoded
}

/// Pooled rows of `photos` through `kind`.
fn rows(backbone: &Backbone, kind: EngineKind, photos: &[RgbImage]) -> ndarray::Array2<f32> {
    let mut engine = backbone.engine(&EngineConfig::cpu(kind, 2)).unwrap();
    assert_eq!(engine.name(), if kind == EngineKind::Ort { "ort" } else { "tract" });
    backbone.embed(&mut engine, photos, false).unwrap().pooled
}

#[test]
fn ort_and_tract_give_the_same_rows_for_the_same_photos() {
    let backbone = Backbone::open(&fixtures().join("tiny_convnet.onnx")).unwrap();
    let photos = photos(&backbone);
    let tract = rows(&backbone, EngineKind::Tract, &photos);
    assert_eq!(tract.nrows(), photos.len());
    assert!(tract.iter().all(|v| v.is_finite()) && tract.iter().any(|v| *v != 0.0));
    if !available(imgclf_runtime::ort_environment()) {
        return;
    }
    let ort = rows(&backbone, EngineKind::Ort, &photos);
    let diff = (&ort - &tract).iter().fold(0.0f32, |m, d| m.max(d.abs()));
    assert!(diff < 1e-5, "ort and tract differ by {diff}");
}

/// A copy of the model beside a spec edited by `edit`.
fn with_spec(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    std::fs::copy(fixtures().join("tiny_convnet.onnx"), dir.join("tiny_convnet.onnx")).unwrap();
    let spec = std::fs::read_to_string(fixtures().join("tiny_convnet.json")).unwrap();
    std::fs::write(dir.join("tiny_convnet.json"), edit(spec)).unwrap();
    dir.join("tiny_convnet.onnx")
}

#[test]
fn a_spec_that_does_not_fit_its_model_is_refused_naming_the_model() {
    let t = tempfile::tempdir().unwrap();
    for (what, from, to) in [
        ("input name", "\"name\": \"input\"", "\"name\": \"pixels\""),
        ("output name", "\"name\": \"features\"", "\"name\": \"no_such_map\""),
        ("input size", "16,\n      16", "16,\n      24"),
    ] {
        let model = with_spec(t.path(), |spec| spec.replace(from, to));
        let backbone = Backbone::open(&model).unwrap();
        let err = backbone.engine(&EngineConfig::cpu(EngineKind::Tract, 1)).err().expect(what);
        assert!(matches!(err, RuntimeError::SpecMismatch { .. }), "{what}: {err}");
        let message = err.to_string();
        assert!(message.contains("tiny_convnet.onnx") && message.lines().count() == 1, "{what}: {message}");
    }
}
