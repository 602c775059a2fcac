//! The tiny generated conv net and dataset under `fixtures/`: engines, pooling, extraction,
//! skipping of unreadable images, and the cache's hit / miss / invalidation rules.

use std::fs;
use std::path::{Path, PathBuf};

use image::RgbImage;
use imgclf_dataset::Dataset;
use imgclf_features::prelude::*;
use imgclf_runtime::{Layout, global_average_pool, preprocess_batch};
use imgclf_testkit::*;

fn tiny_model() -> PathBuf {
    fixtures().join("tiny_convnet.onnx")
}

/// Copies the tiny dataset and model into a scratch folder the test may change.
fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("tiny_data"), &t.path().join("data"));
    for f in ["tiny_convnet.onnx", "tiny_convnet.json"] {
        fs::copy(fixtures().join(f), t.path().join(f)).unwrap();
    }
    let (data, model) = (t.path().join("data"), t.path().join("tiny_convnet.onnx"));
    (t, data, model)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn options(engine: EngineKind) -> ExtractOptions {
    ExtractOptions { batch: 4, decode_threads: 1, ..ExtractOptions::new(EngineConfig::cpu(engine, 2)) }
}

fn run(data: &Path, model: &Path, out: &Path, opts: &ExtractOptions) -> ExtractReport {
    let ds = Dataset::open(data).unwrap();
    extract(&ds, &Backbone::open(model).unwrap(), out, opts, &mut |_| {}).unwrap()
}

fn some_images(n: usize) -> Vec<RgbImage> {
    (0..n)
        .map(|k| RgbImage::from_fn(16, 16, |x, y| image::Rgb([(x * 16) as u8, (y * 16) as u8, (k * 60) as u8])))
        .collect()
}

/// Our GAP of the `features` map equals the graph's own GlobalAveragePool output.
#[test]
fn our_pooling_matches_the_graphs_global_average_pool() {
    let backbone = Backbone::open(&tiny_model()).unwrap();
    let mut engine = Engine::load(
        &backbone.model,
        &backbone.spec,
        &["features", "pooled"],
        &EngineConfig::cpu(EngineKind::Tract, 2),
    )
    .unwrap();
    let outs = engine.run(preprocess_batch(&backbone.spec, &some_images(3)).view()).unwrap();
    let ours = global_average_pool(outs[0].view(), Layout::Nchw).unwrap();
    assert_eq!(ours.dim(), (3, 8));
    for (a, b) in ours.rows().into_iter().zip(outs[1].rows()) {
        assert!(rel_diff(a.as_slice().unwrap(), &b.to_vec()) < 1e-5);
    }
    // images differ, so rows differ: the batch is not one image repeated
    assert_ne!(ours.row(0), ours.row(2));
}

#[test]
fn ort_and_tract_give_the_same_vectors() {
    if !available(imgclf_runtime::ort_environment()) {
        return;
    }
    let backbone = Backbone::open(&tiny_model()).unwrap();
    let input = preprocess_batch(&backbone.spec, &some_images(5));
    let mut tract = backbone.engine(&EngineConfig::cpu(EngineKind::Tract, 2)).unwrap();
    let mut ort = backbone.engine(&EngineConfig::cpu(EngineKind::Ort, 2)).unwrap();
    assert_eq!((tract.name(), ort.name()), ("tract", "ort"));
    let a = global_average_pool(tract.run(input.view()).unwrap()[0].view(), Layout::Nchw).unwrap();
    let b = global_average_pool(ort.run(input.view()).unwrap()[0].view(), Layout::Nchw).unwrap();
    for (x, y) in a.rows().into_iter().zip(b.rows()) {
        assert!(rel_diff(&x.to_vec(), &y.to_vec()) <= 1e-4);
    }
}

#[test]
fn a_spec_that_contradicts_the_model_is_refused_by_both_engines() {
    let (t, _, model) = scratch();
    let spec_path = t.path().join("tiny_convnet.json");
    let good = fs::read_to_string(&spec_path).unwrap();
    let mut engines = vec![EngineKind::Tract];
    if available(imgclf_runtime::ort_environment()) {
        engines.push(EngineKind::Ort);
    }
    for (from, to, expect) in [
        ("\"size\": [\n      16,\n      16\n    ]", "\"size\": [32, 32]", "axis 2"),
        ("\"name\": \"features\"", "\"name\": \"conv5_out\"", "no output `conv5_out`"),
        ("\"name\": \"input\"", "\"name\": \"pixels\"", "no input `pixels`"),
    ] {
        assert!(good.contains(from), "fixture spec changed: {from}");
        fs::write(&spec_path, good.replace(from, to)).unwrap();
        let backbone = Backbone::open(&model).unwrap();
        for &kind in &engines {
            let err = backbone.engine(&EngineConfig::cpu(kind, 1)).err().expect("mismatch must be refused").to_string();
            assert!(err.contains(expect) && err.contains("tiny_convnet.onnx"), "{kind:?}: {err}");
        }
    }
}

#[test]
fn a_model_without_spec_names_the_missing_json() {
    let t = tempfile::tempdir().unwrap();
    let model = t.path().join("lonely.onnx");
    fs::copy(tiny_model(), &model).unwrap();
    let err = Backbone::open(&model).unwrap_err().to_string();
    assert!(err.contains("lonely.json") && err.contains("spec"), "{err}");
}

#[test]
fn extraction_writes_every_split_skips_unreadable_images_and_keeps_row_order() {
    let (t, data, model) = scratch();
    let out = t.path().join("features");
    let report = run(&data, &model, &out, &options(EngineKind::Tract));
    assert!(!report.reused);
    assert_eq!(report.engine, "tract");
    assert_eq!(report.output, out.join("gap_TinyConvNet.h5"));
    // 13 train files, one of them text named .jpg
    assert_eq!(report.rows, [("train".into(), 12), ("validation".into(), 2), ("test".into(), 3)]);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].path, "train/cats/broken.jpg");
    assert!(report.skipped[0].reason.contains("cannot decode"), "{}", report.skipped[0].reason);

    let set = FeatureSet::read(&report.output).unwrap();
    assert_eq!(set.classes, ["cats", "dogs"]);
    assert_eq!(set.dim(), 8);
    let train = set.split("train").unwrap();
    assert_eq!(train.labels.as_ref().unwrap().iter().filter(|&&l| l == 0).count(), 6);
    assert!(!train.paths.contains(&"train/cats/broken.jpg".to_string()));
    let test = set.split("test").unwrap();
    assert_eq!(test.paths, ["test/1.jpg", "test/2.jpg", "test/10.jpg"]);
    assert!(test.labels.is_none());

    // each row is that image's own vector: recompute one directly
    let backbone = Backbone::open(&model).unwrap();
    let img = backbone.spec.resize.load(&data.join("test/10.jpg")).unwrap();
    let mut engine = backbone.engine(&EngineConfig::cpu(EngineKind::Tract, 1)).unwrap();
    let direct = global_average_pool(
        engine.run(preprocess_batch(&backbone.spec, &[img]).view()).unwrap()[0].view(),
        Layout::Nchw,
    )
    .unwrap();
    assert_eq!(test.features.row(2), direct.row(0));
}

#[test]
fn batch_size_and_threads_do_not_change_the_features() {
    let (t, data, model) = scratch();
    let a = run(
        &data,
        &model,
        &t.path().join("a"),
        &ExtractOptions { batch: 1, engine: EngineConfig::cpu(EngineKind::Tract, 1), ..options(EngineKind::Tract) },
    );
    let b = run(&data, &model, &t.path().join("b"), &ExtractOptions { batch: 7, ..options(EngineKind::Tract) });
    let (a, b) = (FeatureSet::read(&a.output).unwrap(), FeatureSet::read(&b.output).unwrap());
    assert_eq!(a.splits, b.splits);
}

/// The steady rate counts the images after the first three batches: there is one when a pass
/// has more batches than that, none for three (one per split here) or for a reused file.
#[test]
fn the_steady_rate_is_measured_after_the_first_batches() {
    let (t, data, model) = scratch();
    let one_each = run(&data, &model, &t.path().join("a"), &ExtractOptions { batch: 64, ..options(EngineKind::Tract) });
    assert_eq!(one_each.steady, None, "3 batches: nothing after the warm-up");
    let many = run(&data, &model, &t.path().join("b"), &ExtractOptions { batch: 1, ..options(EngineKind::Tract) });
    let steady = many.steady.expect("18 batches of one image");
    assert!(steady.is_finite() && steady > 0.0, "{steady}");
    let reused = run(&data, &model, &t.path().join("b"), &ExtractOptions { batch: 1, ..options(EngineKind::Tract) });
    assert!(reused.reused && reused.steady.is_none());
}

/// A copy of the tiny model under another name with its spec changed by `edit`.
fn variant(dir: &Path, name: &str, edit: impl Fn(&mut serde_json::Value)) -> Backbone {
    let model = dir.join(format!("{name}.onnx"));
    fs::copy(tiny_model(), &model).unwrap();
    let mut spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fixtures().join("tiny_convnet.json")).unwrap()).unwrap();
    spec["name"] = name.into();
    edit(&mut spec);
    fs::write(model.with_extension("json"), spec.to_string()).unwrap();
    Backbone::open(&model).unwrap()
}

/// One pass for several backbones (two sharing a resize, one with its own) writes exactly
/// the files that one pass per backbone writes, whatever the decode threads.
#[test]
fn one_pass_for_several_backbones_gives_each_ones_own_features() {
    let (t, data, _) = scratch();
    let backbones = [
        variant(t.path(), "A", |_| {}),
        variant(t.path(), "B", |s| s["input"]["scale"] = "unit".into()),
        variant(t.path(), "C", |s| {
            s["input"]["resize"]["interpolation"] = "nearest".into();
            s["input"]["color"] = "BGR".into();
        }),
    ];
    let ds = Dataset::open(&data).unwrap();
    let opts = ExtractOptions { decode_threads: 2, ..options(EngineKind::Tract) };
    let together =
        imgclf_features::extract_all(&ds, &backbones, &t.path().join("together"), &opts, &mut |_| {}).unwrap();
    assert_eq!(together.len(), 3);
    assert_eq!(together[0].skipped.len(), 1, "the broken image is reported once");
    for (b, report) in backbones.iter().zip(&together) {
        let alone = extract(&ds, b, &t.path().join("alone"), &options(EngineKind::Tract), &mut |_| {}).unwrap();
        let (x, y) = (FeatureSet::read(&report.output).unwrap(), FeatureSet::read(&alone.output).unwrap());
        assert_eq!(x, y, "{}", b.spec.name);
    }
    let a = FeatureSet::read(&together[0].output).unwrap();
    let b = FeatureSet::read(&together[1].output).unwrap();
    assert_ne!(a.splits[0].features, b.splits[0].features, "each backbone got its own preprocessing");
}

#[test]
fn cache_hits_when_nothing_changed_and_recomputes_when_anything_did() {
    let (t, data, model) = scratch();
    let out = t.path().join("features");
    let opts = options(EngineKind::Tract);
    assert!(!run(&data, &model, &out, &opts).reused);
    assert!(run(&data, &model, &out, &opts).reused, "identical second run reuses the file");
    assert!(!run(&data, &model, &out, &ExtractOptions { force: true, ..opts.clone() }).reused, "--force recomputes");

    // a changed image (new bytes, so new size and time) invalidates the cache
    fs::copy(data.join("test/1.jpg"), data.join("test/2.jpg")).unwrap();
    assert!(!run(&data, &model, &out, &opts).reused, "changed image");
    assert!(run(&data, &model, &out, &opts).reused);

    // an added image invalidates it
    fs::copy(data.join("test/1.jpg"), data.join("test/3.jpg")).unwrap();
    let report = run(&data, &model, &out, &opts);
    assert!(!report.reused, "added image");
    assert_eq!(report.rows[2], ("test".into(), 4));

    // a changed model file invalidates it: same graph, plus a doc_string (ModelProto field 6)
    let mut bytes = fs::read(&model).unwrap();
    bytes.extend_from_slice(&[0x32, 0x01, b'x']);
    fs::write(&model, bytes).unwrap();
    assert!(!run(&data, &model, &out, &opts).reused, "changed model");

    // a changed spec invalidates it
    let spec = t.path().join("tiny_convnet.json");
    let text = fs::read_to_string(&spec).unwrap().replace("\"bilinear\"", "\"bicubic\"");
    fs::write(&spec, text).unwrap();
    assert!(!run(&data, &model, &out, &opts).reused, "changed spec");
}

#[test]
fn a_damaged_cache_file_is_recomputed_not_used() {
    let (t, data, model) = scratch();
    let out = t.path().join("features");
    let report = run(&data, &model, &out, &options(EngineKind::Tract));
    let len = fs::metadata(&report.output).unwrap().len();
    let bytes = fs::read(&report.output).unwrap();
    fs::write(&report.output, &bytes[..len as usize / 2]).unwrap();
    let again = run(&data, &model, &out, &options(EngineKind::Tract));
    assert!(!again.reused);
    assert!(again.replaced.as_deref().is_some_and(|r| r.contains("truncated")), "{:?}", again.replaced);
    assert_eq!(FeatureSet::read(&again.output).unwrap().split("train").unwrap().features.nrows(), 12);
}

/// One flipped bit in a feature value: HDF5 still opens the file, and only the checksum
/// notices. Reading refuses it; extract recomputes it instead of reusing it.
#[test]
fn a_bit_flip_in_the_rows_is_caught_by_the_checksum() {
    let (t, data, model) = scratch();
    let out = t.path().join("features");
    let report = run(&data, &model, &out, &options(EngineKind::Tract));
    let set = FeatureSet::read(&report.output).unwrap();
    let first_row: Vec<u8> = set.split("train").unwrap().features.row(0).iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut bytes = fs::read(&report.output).unwrap();
    let at = bytes.windows(first_row.len()).position(|w| w == first_row.as_slice()).expect("the rows are stored raw");
    bytes[at + 2] ^= 0x04;
    fs::write(&report.output, &bytes).unwrap();

    let err = FeatureSet::read(&report.output).unwrap_err().to_string();
    assert!(err.contains("damaged") && err.contains("gap_TinyConvNet.h5"), "{err}");
    let again = run(&data, &model, &out, &options(EngineKind::Tract));
    assert!(!again.reused && again.replaced.as_deref().is_some_and(|r| r.contains("checksum")));
    assert_eq!(FeatureSet::read(&again.output).unwrap(), set);
}

#[test]
fn a_split_without_any_readable_image_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("train/a")).unwrap();
    fs::write(t.path().join("train/a/x.jpg"), b"junk").unwrap();
    let ds = Dataset::open(t.path()).unwrap();
    let err = extract(
        &ds,
        &Backbone::open(&tiny_model()).unwrap(),
        &t.path().join("f"),
        &options(EngineKind::Tract),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("train") && err.contains("x.jpg"), "{err}");
    assert!(!t.path().join("f/gap_TinyConvNet.h5").exists());
}

#[test]
fn embed_gives_the_extracted_rows_and_maps_and_a_pooled_only_spec_says_what_cam_needs() {
    let backbone = Backbone::open(&tiny_model()).unwrap();
    let mut engine = backbone.engine_with_map(&EngineConfig::cpu(EngineKind::Tract, 2)).unwrap();
    let images = some_images(3);
    let e = backbone.embed(&mut engine, &images, true).unwrap();
    let maps = e.maps.unwrap();
    assert_eq!((e.pooled.dim(), maps.dim()), ((3, 8), (3, 8, 16, 16)));
    // The pooled rows are the maps' means, as extract computes them.
    let means = maps.mean_axis(ndarray::Axis(3)).unwrap().mean_axis(ndarray::Axis(2)).unwrap();
    assert!(rel_diff(e.pooled.as_slice().unwrap(), means.as_slice().unwrap()) < 1e-6);

    let (t, _, model) = scratch();
    let spec = t.path().join("tiny_convnet.json");
    let mut json: serde_json::Value = serde_json::from_str(&fs::read_to_string(&spec).unwrap()).unwrap();
    json["outputs"] = serde_json::json!({"features": null, "pooled": {"name": "pooled"}});
    fs::write(&spec, json.to_string()).unwrap();
    let pooled_only = Backbone::open(&model).unwrap();
    let Err(err) = pooled_only.engine_with_map(&EngineConfig::cpu(EngineKind::Tract, 1)) else {
        panic!("a pooled-only spec has no map")
    };
    let err = err.to_string();
    assert!(err.contains("tiny_convnet.json") && err.contains("feature map"), "{err}");
}

#[test]
fn a_stopped_extraction_continues_from_its_last_checkpoint_and_ends_as_an_uninterrupted_one() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (t, data, model) = scratch();
    let backbone = Backbone::open(&model).unwrap();
    // 18 images in batches of 2, a commit after every batch
    let opts = ExtractOptions {
        batch: 2,
        checkpoints: Checkpoints { seconds: 1e9, batches: 1 },
        ..options(EngineKind::Tract)
    };
    let whole = run(&data, &model, &t.path().join("whole"), &opts);
    let reference = FeatureSet::read(&whole.output).unwrap();
    let checksum = |p: &Path| imgclf_features::FeatureReader::open(p).unwrap().checksum().to_string();
    // stopped after k commits; the last with its record lost (killed between a part and its record)
    for (k, lose_last) in [(1, false), (2, false), (3, true)] {
        let out = t.path().join(format!("stopped-{k}-{lose_last}"));
        let output = out.join("gap_TinyConvNet.h5");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = ExtractOptions { stop: Some(Arc::clone(&stop)), ..opts.clone() };
        let mut batches = 0;
        let dataset = Dataset::open(&data).unwrap();
        let err = extract(&dataset, &backbone, &out, &stopping, &mut |p| {
            if let Progress::Advance(_) = p {
                batches += 1;
                stop.store(batches == k, Ordering::Relaxed);
            }
        })
        .unwrap_err();
        assert!(matches!(err, FeatureError::Interrupted { done, .. } if done == 2 * k), "{err}");
        assert!(!output.exists(), "no file under the final name before the end");
        assert_eq!(imgclf_features::partial_status(&output).unwrap().images, 2 * k, "images kept");
        if lose_last {
            fs::remove_file(imgclf_features::partial_dir(&output).join(format!("part-{:05}.json", k - 1))).unwrap();
        }
        let kept = if lose_last { 2 * (k - 1) } else { 2 * k };
        let report = run(&data, &model, &out, &opts);
        assert_eq!((report.resumed, report.decoded), (kept, 18 - kept), "only the batches left are decoded");
        assert_eq!(FeatureSet::read(&output).unwrap(), reference, "the rows of an uninterrupted run");
        assert_eq!(checksum(&output), checksum(&whole.output));
        assert_eq!(report.skipped, whole.skipped, "images skipped before the stop are still reported");
        assert!(!imgclf_features::partial_dir(&output).exists(), "the parts are removed once assembled");
    }
    // parts of images that have changed since are not resumed from: the cache rule holds
    let out = t.path().join("changed");
    let stop = Arc::new(AtomicBool::new(true));
    let first_batch_only = ExtractOptions { stop: Some(Arc::clone(&stop)), ..opts.clone() };
    stop.store(false, std::sync::atomic::Ordering::Relaxed);
    let dataset = Dataset::open(&data).unwrap();
    let _ = extract(&dataset, &backbone, &out, &first_batch_only, &mut |p| {
        if let Progress::Advance(_) = p {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    assert!(imgclf_features::partial_dir(&out.join("gap_TinyConvNet.h5")).is_dir());
    fs::copy(data.join("test/1.jpg"), data.join("test/2.jpg")).unwrap();
    let report = run(&data, &model, &out, &opts);
    assert_eq!((report.resumed, report.decoded), (0, 18), "a changed image starts the pass again");
}

#[test]
fn f16_storage_rounds_rows_to_half_precision_and_is_a_cache_entry_of_its_own() {
    let (t, data, model) = scratch();
    let full = run(&data, &model, &t.path().join("f32"), &options(EngineKind::Tract));
    let f16 = ExtractOptions { storage: Storage::F16, ..options(EngineKind::Tract) };
    let out = t.path().join("f16");
    let half = run(&data, &model, &out, &f16);
    let (a, b) = (FeatureSet::read(&full.output).unwrap(), FeatureSet::read(&half.output).unwrap());
    for (x, y) in a.splits.iter().zip(&b.splits) {
        assert_eq!(y.features, x.features.mapv(|v| half::f16::from_f32(v).to_f32()), "{}: f32 rows rounded", y.name);
        assert_eq!((&y.paths, &y.labels), (&x.paths, &x.labels));
    }
    assert_eq!(imgclf_features::FeatureReader::open(&half.output).unwrap().storage, Storage::F16);
    assert!(fs::metadata(&half.output).unwrap().len() < fs::metadata(&full.output).unwrap().len());
    if let Some(python) = python_with(&["h5py"]) {
        let script = "import sys, h5py; h = h5py.File(sys.argv[1]); print(h['train'].dtype, h.attrs['dtype'])";
        let printed = run_python(&python, &["-c", script, half.output.to_str().unwrap()]);
        assert_eq!(printed.trim(), "float16 float16");
    }
    assert!(run(&data, &model, &out, &f16).reused, "f16 again: a cache hit");
    assert!(!run(&data, &model, &out, &options(EngineKind::Tract)).reused, "f32 asked: recomputed");
}
