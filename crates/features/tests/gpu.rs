//! The GPU path on a real GPU, opt in: `IMGCLF_GPU=1 cargo test -p imgclf-features --test gpu`
//! on a machine with an NVIDIA GPU and onnxruntime-gpu (`ORT_DYLIB_PATH`, or `.venv-gpu` from
//! `./just setup-gpu`); `tools/gpu_check.sh` runs it first. Without `IMGCLF_GPU=1` each test
//! skips with a message; with it, a GPU that does not answer fails them.
//!
//! Each checks the pinned pixel feed on a full and a short batch (the buffer bound whole, the
//! batch's rows kept) against the CPU's float path: fp32 within 1e-5, tf32 within 1e-2, for
//! the tiny fixture model and EfficientNet-Lite0.

use std::path::Path;

use image::RgbImage;
use imgclf_runtime::{Backbone, Device, Engine, EngineConfig, EngineKind, Precision};
use imgclf_testkit::*;

/// Whether the GPU checks were asked for.
fn asked() -> bool {
    let on = std::env::var("IMGCLF_GPU").is_ok_and(|v| v == "1");
    if !on {
        eprintln!("SKIPPED: the GPU checks run with IMGCLF_GPU=1 on a machine with an NVIDIA GPU");
    }
    on
}

/// Up to `n` readable photos of the dataset at `root`, resized as `backbone`'s spec says.
fn photos(backbone: &Backbone, root: &Path, n: usize) -> Vec<RgbImage> {
    let dataset = imgclf_dataset::Dataset::open(root).unwrap();
    let samples = dataset.splits.iter().flat_map(|s| &s.samples);
    samples.filter_map(|s| backbone.spec.resize.load(&s.path).ok()).take(n).collect()
}

/// The GPU's rows for a full batch of `photos` and a short one (its first half), each within
/// `tolerance` of the CPU's.
fn gpu_matches_cpu(backbone: &Backbone, photos: &[RgbImage], precision: Precision, tolerance: f32) {
    let output = backbone.spec.feature_output();
    let mut cpu = Engine::load(&backbone.model, &backbone.spec, &[output], &EngineConfig::cpu(EngineKind::Ort, 2))
        .expect("the CPU engine loads");
    let config = EngineConfig::new(EngineKind::Ort, Device::Cuda(0), precision, 2);
    let mut gpu = Engine::load(&backbone.model, &backbone.spec, &[output], &config)
        .unwrap_or_else(|e| panic!("IMGCLF_GPU=1, but the GPU does not answer: {e}"));
    assert!(gpu.describe().starts_with("ort cuda:0"), "{}", gpu.describe());
    let capacity = photos.len();
    let mut batch = gpu.pixel_batch(capacity, &backbone.spec).unwrap();
    let slot = photos[0].as_raw().len();
    for (n, what) in [(capacity, "full"), (capacity / 2, "short")] {
        for (slot, image) in batch.as_mut_slice().chunks_mut(slot).zip(&photos[..n]) {
            slot.copy_from_slice(image.as_raw());
        }
        let ours = backbone.pool_output(&gpu.run_pixels(&batch, n).unwrap()[0], n).unwrap();
        let input = imgclf_runtime::preprocess_batch(&backbone.spec, &photos[..n]);
        let theirs = backbone.pool_output(&cpu.run(input.view()).unwrap()[0], n).unwrap();
        let (a, b): (Vec<f32>, Vec<f32>) = (ours.iter().copied().collect(), theirs.iter().copied().collect());
        let diff = rel_diff(&a, &b);
        println!(
            "{} {precision} {what} batch ({n} of {capacity}): max relative difference {diff:.2e}",
            backbone.spec.name
        );
        assert!(diff <= tolerance, "{} {precision} {what}: {diff} > {tolerance}", backbone.spec.name);
    }
}

#[test]
fn the_tiny_model_on_the_gpu_gives_the_cpus_rows() {
    if !asked() {
        return;
    }
    let backbone = Backbone::open(&fixtures().join("tiny_convnet.onnx")).unwrap();
    let photos = photos(&backbone, &fixtures().join("tiny_data"), 8);
    assert_eq!(photos.len(), 8, "the fixture has 8 readable photos");
    gpu_matches_cpu(&backbone, &photos, Precision::Fp32, 1e-5);
    gpu_matches_cpu(&backbone, &photos, Precision::Tf32, 1e-2);
}

#[test]
fn lite0_on_the_gpu_gives_the_cpus_rows() {
    if !asked() {
        return;
    }
    let model = std::env::var_os("LITE0")
        .map(std::path::PathBuf::from)
        .or_else(|| shared().map(|s| s.join("models/efficientnet_lite0.onnx")));
    let model = model.expect("IMGCLF_GPU=1 needs Lite0: ../shared, or LITE0=path/to/efficientnet_lite0.onnx");
    let backbone = Backbone::open(&model).unwrap();
    let photos = photos(&backbone, &fixtures().join("tiny_data"), 8);
    gpu_matches_cpu(&backbone, &photos, Precision::Fp32, 1e-5);
    gpu_matches_cpu(&backbone, &photos, Precision::Tf32, 1e-2);
}
