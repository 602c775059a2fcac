//! Devices without a GPU: the pixel feed (u8 pixels, conversion inside the graph, IO
//! binding) gives the float path's inputs and rows on the CPU, and a CUDA request on a
//! CPU-only ONNX Runtime is refused before anything is written.

use std::path::Path;

use image::RgbImage;
use imgclf_dataset::Dataset;
use imgclf_features::prelude::*;
use imgclf_features::{FeatureSet, fingerprint};
use imgclf_runtime::onnx::{Dim, Graph};
use imgclf_runtime::{Feed, preprocess_batch};
use imgclf_testkit::*;

/// A model whose output is its input: what the engine sees is what comes out (named as the
/// spec's pooled output, so the pixel feed adds no pooling of its own).
fn echo_model(dir: &Path, spec_input: &str) -> Backbone {
    let spec = format!(
        r#"{{"name": "Echo", "input": {{"name": "x", "size": [5, 7], {spec_input}}},
            "outputs": {{"pooled": {{"name": "y"}}}}}}"#
    );
    let nchw = spec_input.contains("NCHW");
    let dims = if nchw {
        [Dim::Named("N"), Dim::Fixed(3), Dim::Fixed(5), Dim::Fixed(7)]
    } else {
        [Dim::Named("N"), Dim::Fixed(5), Dim::Fixed(7), Dim::Fixed(3)]
    };
    let mut graph = Graph::new("echo");
    graph.input("x", &dims);
    graph.node("Identity", &["x"], "y", vec![]);
    graph.output("y", &dims);
    let model = dir.join("echo.onnx");
    std::fs::write(&model, imgclf_runtime::onnx::encode(&graph.into_model("test", ""))).unwrap();
    std::fs::write(dir.join("echo.json"), spec).unwrap();
    Backbone::open(&model).unwrap()
}

fn photos(n: u32) -> Vec<RgbImage> {
    let pixel =
        |k: u32, x: u32, y: u32| image::Rgb([(x * 37 + k * 11) as u8, (y * 51) as u8, (x * y * 13 + 200) as u8]);
    (0..n).map(|k| RgbImage::from_fn(7, 5, |x, y| pixel(k, x, y))).collect()
}

fn pixel_config(threads: usize) -> EngineConfig {
    EngineConfig { feed: Feed::Pixels, ..EngineConfig::cpu(EngineKind::Ort, threads) }
}

/// Every scaling, colour order and layout a spec can declare: the graph's own conversion of
/// the u8 pixels gives the tensor `fill_input` makes on the CPU, to 1e-6.
#[test]
fn the_pixel_feed_converts_like_the_cpu_for_every_scaling_and_layout() {
    if !available(imgclf_runtime::ort_environment()) {
        return;
    }
    let images = photos(3);
    let scalings = [
        r#""scale": "caffe""#,
        r#""scale": "tf""#,
        r#""scale": "torch""#,
        r#""scale": "unit""#,
        r#""scale": "none""#,
        r#""scale": "mean_std", "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3], "pixel_range": [0, 1]"#,
    ];
    for layout in ["NCHW", "NHWC"] {
        for color in ["RGB", "BGR"] {
            for scale in scalings {
                let t = tempfile::tempdir().unwrap();
                let case = format!(r#""layout": "{layout}", "color": "{color}", {scale}"#);
                let backbone = echo_model(t.path(), &case);
                let floats = preprocess_batch(&backbone.spec, &images);
                let config = pixel_config(1);
                let mut engine = Engine::load(&backbone.model, &backbone.spec, &["y"], &config).unwrap();
                assert_eq!(engine.feed(), Feed::Pixels);
                let mut batch = engine.pixel_batch(4, &backbone.spec).unwrap();
                for (slot, image) in batch.as_mut_slice().chunks_mut(5 * 7 * 3).zip(&images) {
                    slot.copy_from_slice(image.as_raw());
                }
                // 3 of 4 slots: the shorter last batch of a split
                let out = engine.run_pixels(&batch, 3).unwrap();
                assert_eq!(out[0].shape(), floats.shape(), "{case}");
                let got: Vec<f32> = out[0].iter().copied().collect();
                let want: Vec<f32> = floats.iter().copied().collect();
                assert!(rel_diff(&got, &want) <= 1e-6, "{case}: {}", rel_diff(&got, &want));
            }
        }
    }
}

/// A short batch (a split's last, or one with skipped images) is run as the whole buffer, so
/// the input shape never changes within a run (one cuDNN search per model on a GPU): its rows
/// are the float path's, whatever the unused slots hold.
#[test]
fn a_short_pixel_batch_gives_its_own_rows_whatever_the_unused_slots_hold() {
    if !available(imgclf_runtime::ort_environment()) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let backbone = echo_model(t.path(), r#""layout": "NCHW", "color": "RGB", "scale": "torch""#);
    let images = photos(4);
    let mut engine = Engine::load(&backbone.model, &backbone.spec, &["y"], &pixel_config(1)).unwrap();
    let mut batch = engine.pixel_batch(4, &backbone.spec).unwrap();
    let mut rows_after = |filled: &[RgbImage], n: usize| {
        for (slot, image) in batch.as_mut_slice().chunks_mut(5 * 7 * 3).zip(filled) {
            slot.copy_from_slice(image.as_raw());
        }
        let out = engine.run_pixels(&batch, n).unwrap().remove(0);
        out.iter().copied().collect::<Vec<f32>>()
    };
    let full = rows_after(&images, 4);
    assert_eq!(full.len(), 4 * 3 * 5 * 7);
    // two fresh images over the first slots; slots 3 and 4 still hold the earlier batch
    let fresh = [images[3].clone(), images[2].clone()];
    let short = rows_after(&fresh, 2);
    let want: Vec<f32> = preprocess_batch(&backbone.spec, &fresh).iter().copied().collect();
    assert_eq!(short.len(), want.len(), "only the batch's own rows come back");
    assert!(rel_diff(&short, &want) <= 1e-6, "{}", rel_diff(&short, &want));
}

/// A whole extraction through the pixel feed (pixel buffers recycled through the pipeline,
/// IO binding, full and shorter batches, the feature map pooled inside the graph) gives the
/// float path's rows, paths and labels.
#[test]
fn extraction_through_the_pixel_feed_gives_the_same_rows() {
    if !available(imgclf_runtime::ort_environment()) {
        return;
    }
    let data = fixtures().join("tiny_data");
    let dataset = Dataset::open(&data).unwrap();
    let backbone = Backbone::open(&fixtures().join("tiny_convnet.onnx")).unwrap();
    let t = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, engine) in [("floats", EngineConfig::cpu(EngineKind::Ort, 2)), ("pixels", pixel_config(2))] {
        let options = ExtractOptions { batch: 2, decode_threads: 2, ..ExtractOptions::new(engine) };
        let out = t.path().join(name);
        let report = extract(&dataset, &backbone, &out, &options, &mut |_| {}).unwrap();
        assert_eq!(report.engine, "ort");
        files.push(FeatureSet::read(&report.output).unwrap());
    }
    let (floats, pixels) = (&files[0], &files[1]);
    assert_eq!(floats.splits.len(), pixels.splits.len());
    assert!(floats.split("train").unwrap().features.nrows() > 4, "train spans several batches");
    assert!(floats.splits.iter().any(|s| s.features.nrows() % 2 == 1), "a shorter last batch");
    for (a, b) in floats.splits.iter().zip(&pixels.splits) {
        assert_eq!((&a.name, &a.paths, &a.labels), (&b.name, &b.paths, &b.labels));
        let (x, y): (Vec<f32>, Vec<f32>) = (a.features.iter().copied().collect(), b.features.iter().copied().collect());
        assert!(rel_diff(&y, &x) <= 1e-6, "split {}: {}", a.name, rel_diff(&y, &x));
    }
    assert_eq!(floats.fingerprint, pixels.fingerprint, "the feed does not change the cache key");
}

/// TF32 is cached apart from fp32 (its features differ by about 1e-3); fp32 keeps the
/// fingerprint files had before devices existed.
#[test]
fn only_tf32_changes_the_fingerprint() {
    let dataset = Dataset::open(fixtures().join("tiny_data")).unwrap();
    let backbone = Backbone::open(&fixtures().join("tiny_convnet.onnx")).unwrap();
    let fp32 = fingerprint(&dataset, &backbone, Precision::Fp32);
    assert_ne!(fp32, fingerprint(&dataset, &backbone, Precision::Tf32));
}

/// A GPU request on this machine's CPU build of ONNX Runtime names the cause and the fix.
#[test]
fn cuda_on_a_cpu_build_is_refused_with_the_fix() {
    if !available(imgclf_runtime::ort_environment()) {
        return;
    }
    let backbone = Backbone::open(&fixtures().join("tiny_convnet.onnx")).unwrap();
    let config = EngineConfig::new(EngineKind::Ort, Device::Cuda(0), Precision::Fp32, 1);
    let err = backbone.engine(&config).err().expect("no CUDA provider here").to_string();
    assert!(err.contains("has no CUDA provider") && err.contains("ORT_DYLIB_PATH"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
}

/// Engine and decode threads: every core for both up to 4 cores, a split without overlap
/// beyond, every core decoding on a GPU.
#[test]
fn threads_are_split_by_cores_and_device() {
    let split = ExtractOptions::thread_split;
    assert_eq!(split(2, Device::Cpu), (2, 2));
    assert_eq!(split(4, Device::Cpu), (4, 4));
    assert_eq!(split(16, Device::Cpu), (14, 2));
    assert_eq!(split(64, Device::Cpu), (56, 8));
    assert_eq!(split(16, Device::Cuda(0)), (2, 16));
    assert_eq!(split(0, Device::Cpu), (1, 1));
}
