//! The real backbone on real photos: `../shared/models/efficientnet_lite0.onnx` over
//! `../shared/data/cats_dogs`. Skipped with a message when `../shared` is absent; CI runs it.

use std::path::{Path, PathBuf};

use imgclf_dataset::Dataset;
use imgclf_features::prelude::*;
use imgclf_runtime::{Layout, global_average_pool, preprocess_batch};
use imgclf_testkit::*;
use serde_json::Value;

const PER_CLASS: usize = 6;

/// A small copy of cats_dogs (links to the real photos): the first photos of each class.
fn subset(shared: &Path) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("cats_dogs");
    let src = Dataset::open(shared.join("data/cats_dogs")).unwrap();
    for (split, n) in [("train", PER_CLASS), ("validation", PER_CLASS / 2)] {
        for class in ["cats", "dogs"] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            let photos = src.split(split).unwrap().samples.iter().filter(|s| s.rel.contains(class)).take(n);
            for s in photos {
                std::os::unix::fs::symlink(&s.path, dir.join(s.path.file_name().unwrap())).unwrap();
            }
        }
    }
    (t, root)
}

fn model(shared: &Path) -> PathBuf {
    shared.join("models/efficientnet_lite0.onnx")
}

fn extract_with(engine: EngineKind, data: &Path, out: &Path, model: &Path) -> ExtractReport {
    extract_on(EngineConfig::cpu(engine, 2), data, out, model)
}

fn extract_on(engine: EngineConfig, data: &Path, out: &Path, model: &Path) -> ExtractReport {
    let ds = Dataset::open(data).unwrap();
    let opts = ExtractOptions { batch: 5, decode_threads: 1, ..ExtractOptions::new(engine) };
    extract(&ds, &Backbone::open(model).unwrap(), out, &opts, &mut |_| {}).unwrap()
}

#[test]
fn written_file_reads_in_h5py_like_the_tutorial() {
    let Some(shared) = shared() else { return };
    let Some(python) = python_with(&["h5py", "numpy"]) else { return };
    let (t, data) = subset(&shared);
    let report = extract_with(EngineKind::Auto, &data, &t.path().join("f"), &model(&shared));
    let script = r#"
import h5py, hashlib, json, os, sys
h = h5py.File(sys.argv[1], "r")
def digest(rel):  # the first 8 bytes of the photo's sha256, little-endian
    with open(os.path.join(sys.argv[2], rel), "rb") as f:
        return int.from_bytes(hashlib.sha256(f.read()).digest()[:8], "little")
print(json.dumps({
    "keys": sorted(h.keys()),
    "train": list(h["train"].shape), "dtype": str(h["train"].dtype),
    "label": [int(v) for v in h["label"][:]],
    "validation": list(h["validation"].shape),
    "validation_label": [int(v) for v in h["validation_label"][:]],
    "train_paths": [p.decode() for p in h["train_paths"][:]],
    "classes": [c if isinstance(c, str) else c.decode() for c in h.attrs["classes"]],
    "backbone": h.attrs["backbone"], "model_sha256": h.attrs["model_sha256"],
    "input_size": [int(v) for v in h.attrs["input_size"]],
    "photos_dtype": str(h["train_photos"].dtype),
    "photos_match": all(int(d) == digest(p.decode()) for s in ("train", "validation")
                        for d, p in zip(h[s + "_photos"][:], h[s + "_paths"][:])),
}))
"#;
    let out: Value = serde_json::from_str(&run_python(
        &python,
        &["-c", script, report.output.to_str().unwrap(), data.to_str().unwrap()],
    ))
    .unwrap();
    let n = PER_CLASS as u64;
    assert_eq!(
        out["keys"],
        serde_json::json!([
            "label",
            "train",
            "train_paths",
            "train_photos",
            "validation",
            "validation_label",
            "validation_paths",
            "validation_photos"
        ])
    );
    assert_eq!(
        (&out["photos_dtype"], &out["photos_match"]),
        (&"uint64".into(), &true.into()),
        "h5py and hashlib agree"
    );
    assert_eq!(out["train"], serde_json::json!([2 * n, 1280]));
    assert_eq!(out["dtype"], "float32");
    let labels: Vec<u64> = serde_json::from_value(out["label"].clone()).unwrap();
    assert_eq!(labels, [vec![0; PER_CLASS], vec![1; PER_CLASS]].concat());
    assert_eq!(out["validation"], serde_json::json!([n, 1280]));
    assert_eq!(out["classes"], serde_json::json!(["cats", "dogs"]));
    assert_eq!(out["backbone"], "EfficientNet-Lite0");
    assert_eq!(out["input_size"], serde_json::json!([224, 224]));
    let sha = Backbone::open(&model(&shared)).unwrap().sha256;
    assert_eq!(out["model_sha256"], sha.as_str());
    assert_eq!(out["train_paths"][0], "train/cats/cat.0.jpg");
}

/// The GPU's feed (u8 pixels, conversion and pooling inside the graph, IO binding) on the
/// CPU provider gives the float path's Lite0 vectors for real photos.
#[test]
fn the_pixel_feed_extracts_the_float_paths_vectors() {
    let Some(shared) = shared() else { return };
    if !available(imgclf_runtime::ort_environment()) {
        return;
    }
    let (t, data) = subset(&shared);
    let floats = EngineConfig::cpu(EngineKind::Ort, 2);
    let pixels = EngineConfig { feed: imgclf_runtime::Feed::Pixels, ..floats };
    let a = extract_on(floats, &data, &t.path().join("floats"), &model(&shared));
    let b = extract_on(pixels, &data, &t.path().join("pixels"), &model(&shared));
    assert_same_vectors(&a, &b, 1e-5);
}

/// Two extractions' files hold the same rows, each vector within `tolerance` (relative).
fn assert_same_vectors(a: &ExtractReport, b: &ExtractReport, tolerance: f32) {
    let (a, b) = (FeatureSet::read(&a.output).unwrap(), FeatureSet::read(&b.output).unwrap());
    for (sa, sb) in a.splits.iter().zip(&b.splits) {
        assert_eq!(sa.paths, sb.paths);
        for (x, y) in sa.features.rows().into_iter().zip(sb.features.rows()) {
            let d = rel_diff(&y.to_vec(), &x.to_vec());
            assert!(d <= tolerance, "{}: relative difference {d}", sa.name);
        }
    }
}

#[test]
fn tract_and_ort_extract_the_same_vectors() {
    let Some(shared) = shared() else { return };
    if !available(imgclf_runtime::ort_environment()) {
        return;
    }
    let (t, data) = subset(&shared);
    let a = extract_with(EngineKind::Ort, &data, &t.path().join("ort"), &model(&shared));
    let b = extract_with(EngineKind::Tract, &data, &t.path().join("tract"), &model(&shared));
    assert_eq!((a.engine.as_str(), b.engine.as_str()), ("ort", "tract"));
    assert_same_vectors(&a, &b, 1e-4);
}

fn load_jsonl(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn top1(logits: ndarray::ArrayView1<'_, f32>) -> usize {
    logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0
}

const PHOTOS: [&str; 6] = [
    "train/cats/cat.0.jpg",
    "train/cats/cat.7.jpg",
    "train/cats/cat.12.jpg",
    "train/dogs/dog.0.jpg",
    "train/dogs/dog.5.jpg",
    "validation/dogs/dog.1003.jpg",
];

/// Our preprocessing is the spec's, proven against an independent Pillow + numpy +
/// onnxruntime pipeline (tools/reference_features.py), one stage at a time:
/// 1. crop and filter: from identical decoded pixels, our resized image equals Pillow's up to
///    fixed-point rounding (fast_image_resize and Pillow 13 round differently: mean 0.06-0.20
///    grey levels here, max 2), far below what a crop box one pixel off gives (mean 1.5-6.8);
/// 2. colour order, scaling, layout and pooling: the reference fed *our* resized pixels gives
///    our features to 1e-4 and the same top-1 ImageNet class;
/// 3. end to end from the JPEGs: the same top-1 class wherever the reference is clear about it.
#[test]
fn preprocessing_matches_an_independent_python_reference() {
    let Some(shared) = shared() else { return };
    let Some(python) = python_with(&["numpy", "PIL", "onnxruntime"]) else { return };
    let backbone = Backbone::open(&model(&shared)).unwrap();
    let spec = &backbone.spec;
    let photos: Vec<PathBuf> = PHOTOS.iter().map(|p| shared.join("data/cats_dogs").join(p)).collect();
    let t = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let d = t.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (decoded_dir, ours_dir, pillow_dir) = (dir("decoded"), dir("ours"), dir("pillow"));
    let script = workspace_root().join("tools/reference_features.py");
    let reference = |flags: &[&str], images: &[PathBuf]| {
        let mut args = vec![script.to_str().unwrap()];
        args.extend(flags);
        args.push(backbone.model.to_str().unwrap());
        args.extend(images.iter().map(|p| p.to_str().unwrap()));
        load_jsonl(&run_python(&python, &args))
    };

    // our decode, saved losslessly, is the common starting point of stages 1 and 2
    let mut decoded = Vec::new();
    let mut resized = Vec::new();
    for (i, photo) in photos.iter().enumerate() {
        let rgb = imgclf_dataset::load_rgb(photo).unwrap();
        let ours = spec.resize.apply(&rgb, photo).unwrap();
        decoded.push(decoded_dir.join(format!("{i}.png")));
        rgb.save(&decoded[i]).unwrap();
        ours.save(ours_dir.join(format!("{i}.png"))).unwrap();
        resized.push(ours);
    }

    // 1. crop + filter
    reference(&["--save-resized", pillow_dir.to_str().unwrap()], &decoded);
    for (i, ours) in resized.iter().enumerate() {
        let pillow = image::open(pillow_dir.join(format!("{i}.png"))).unwrap().to_rgb8();
        assert_eq!(pillow.dimensions(), ours.dimensions());
        let diffs: Vec<i32> =
            ours.as_raw().iter().zip(pillow.as_raw()).map(|(a, b)| (*a as i32 - *b as i32).abs()).collect();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        let max = *diffs.iter().max().unwrap();
        eprintln!("{}: resized pixels vs Pillow: mean |diff| {mean:.3}, max {max}", PHOTOS[i]);
        assert!(mean < 0.3 && max <= 2, "{}: resize differs from Pillow (mean {mean}, max {max})", PHOTOS[i]);
    }

    // 2. colour order, scaling, layout, pooling: exact up to engine arithmetic
    let kind = if available(imgclf_runtime::ort_environment()) { EngineKind::Ort } else { EngineKind::Tract };
    let mut engine = Engine::load(&backbone.model, spec, &["features", "logits"], &EngineConfig::cpu(kind, 2)).unwrap();
    let outs = engine.run(preprocess_batch(spec, &resized).view()).unwrap();
    let gap = global_average_pool(outs[0].view(), Layout::Nchw).unwrap();
    let ours_pngs: Vec<PathBuf> = (0..photos.len()).map(|i| ours_dir.join(format!("{i}.png"))).collect();
    for (i, r) in reference(&["--resized-only"], &ours_pngs).iter().enumerate() {
        let want: Vec<f32> = serde_json::from_value(r["gap"].clone()).unwrap();
        let d = rel_diff(&gap.row(i).to_vec(), &want);
        assert!(d <= 1e-4, "{}: features differ by {d} (relative) on identical pixels", PHOTOS[i]);
        assert_eq!(
            Some(top1(outs[1].index_axis(ndarray::Axis(0), i).into_dimensionality().unwrap()) as u64),
            r["top1"].as_u64(),
            "{}",
            PHOTOS[i]
        );
    }

    // 3. end to end from the JPEG files: decoders and resamplers differ by a grey level here
    // and there, so compare the classes where the reference's top-1 leads by 5 points or more
    let images: Vec<_> = photos.iter().map(|p| spec.resize.load(p).unwrap()).collect();
    let outs = engine.run(preprocess_batch(spec, &images).view()).unwrap();
    let gap = global_average_pool(outs[0].view(), Layout::Nchw).unwrap();
    let mut compared = 0;
    for (i, r) in reference(&[], &photos).iter().enumerate() {
        let want: Vec<f32> = serde_json::from_value(r["gap"].clone()).unwrap();
        let (ours, theirs) = (
            top1(outs[1].index_axis(ndarray::Axis(0), i).into_dimensionality().unwrap()) as u64,
            r["top1"].as_u64().unwrap(),
        );
        let margin = r["margin"].as_f64().unwrap();
        eprintln!(
            "{}: top-1 ours {ours}, reference {theirs} (margin {margin:.3}); features differ by {:.3} (relative)",
            PHOTOS[i],
            rel_diff(&gap.row(i).to_vec(), &want)
        );
        if margin >= 0.05 {
            assert_eq!(ours, theirs, "{}: top-1 class differs from the reference", PHOTOS[i]);
            compared += 1;
        }
    }
    assert!(compared >= 3, "too few photos with a clear top-1 ({compared})");
}
