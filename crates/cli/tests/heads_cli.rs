//! `imgclf train-head`, `evaluate` and `predict` as a user runs them: the real binary on
//! feature files that `imgclf extract` wrote, on the fixtures and on the shared photos.

use std::path::{Path, PathBuf};

use imgclf_testkit::*;
use imgclf_testkit::{run as imgclf, run_ok as ok};

/// Runs imgclf expecting failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = imgclf(args);
    assert!(!out.status.success(), "imgclf {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Features of the fixture dataset through the tiny model (train 12, validation 2, test 3 rows).
fn fixture_features(dir: &Path) -> PathBuf {
    for f in ["tiny_convnet.onnx", "tiny_convnet.json"] {
        std::fs::copy(fixtures().join(f), dir.join(f)).unwrap();
    }
    let data = fixtures().join("tiny_data");
    let out = dir.join("features");
    let model = dir.join("tiny_convnet.onnx");
    ok(&["extract", "--data", s(&data), "--model", s(&model), "--out", s(&out), "--engine", "tract"]);
    out.join("gap_TinyConvNet.h5")
}

#[test]
fn train_evaluate_predict_write_what_they_promise_and_repeat_exactly() {
    let t = tempfile::tempdir().unwrap();
    let features = fixture_features(t.path());
    let run = t.path().join("runs/exp1");
    let train = |out: &Path| {
        ok(&["train-head", "--features", s(&features), "--out", s(out), "--optimizer", "adam", "--lr", "0.05"]
            .into_iter()
            .chain(["--epochs", "3", "--batch", "4", "--seed", "7", "--standardize"])
            .collect::<Vec<_>>())
    };
    let stdout = train(&run);
    let epoch_lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("Epoch ")).collect();
    assert_eq!(epoch_lines.len(), 3, "{stdout}");
    for (i, line) in epoch_lines.iter().enumerate() {
        let prefix = format!("Epoch {}/3 - ", i + 1);
        assert!(line.starts_with(&prefix) && line.contains("s - loss: ") && line.contains(" - acc: "), "{line}");
        assert!(line.contains(" - val_loss: ") && line.contains(" - val_acc: "), "{line}");
    }
    for f in ["weights.safetensors", "run.json", "history.csv", "curves.png"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["classes"], serde_json::json!(["cats", "dogs"]));
    assert_eq!(info["config"]["seed"], 7);
    assert_eq!(info["sources"][0]["backbone"], "TinyConvNet");
    assert_eq!(info["sources"][0]["dim"], 8);
    assert_eq!(info["sources"][0]["model_sha256"].as_str().unwrap().len(), 64);

    // Same seed, same weights and numbers (the seconds column aside).
    let again = t.path().join("runs/exp2");
    train(&again);
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    assert_eq!(read(run.join("weights.safetensors")), read(again.join("weights.safetensors")));
    let history = |dir: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(dir.join("history.csv")).unwrap();
        text.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
    };
    assert_eq!(history(&run), history(&again));

    let report = ok(&["evaluate", "--run", s(&run), "--split", "train", "--top", "3"]);
    assert!(report.contains("accuracy ") && report.contains("log loss "), "{report}");
    assert!(report.contains("precision  recall      f1  support") && report.contains("confusion matrix"), "{report}");
    assert!(run.join("confusion.png").is_file());

    let csv = t.path().join("submission.csv");
    ok(&["predict", "--run", s(&run), "--split", "test", "--csv", s(&csv)]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "id,label");
    let ids: Vec<&str> = rows[1..].iter().map(|r| r.split(',').next().unwrap()).collect();
    assert_eq!(ids, ["1", "2", "10"], "natural order of the test files 1.jpg, 2.jpg, 10.jpg");
    for r in &rows[1..] {
        let p: f32 = r.split(',').nth(1).unwrap().parse().unwrap();
        assert!((0.005..=0.995).contains(&p), "{r}");
    }
    ok(&["predict", "--run", s(&run), "--split", "test", "--csv", s(&csv), "--proba"]);
    assert!(std::fs::read_to_string(&csv).unwrap().starts_with("id,cats,dogs\n1,"));
}

#[test]
fn a_memory_budget_under_the_features_trains_in_chunks_reproducibly_and_scores_the_same() {
    let t = tempfile::tempdir().unwrap();
    let features = fixture_features(t.path());
    let f = s(&features);
    // 8 features × 4 bytes a row: 300 bytes hold 8 of the 12 train rows
    let train = |out: &str, budget: &[&str]| {
        let dir = t.path().join(out);
        let args = ["train-head", "--features", f, "--out", s(&dir), "--epochs", "3", "--batch", "4", "--seed", "2"];
        let o = imgclf(&args.iter().chain(budget).copied().collect::<Vec<_>>());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (dir, String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (chunked, log) = train("chunked", &["--memory-budget", "300B"]);
    assert!(log.contains("in 2 chunks of about 6 rows"), "{log}");
    let (again, _) = train("again", &["--memory-budget", "300B"]);
    let (held, log) = train("held", &[]);
    assert!(!log.contains("chunks"), "the default budget holds the fixture's rows: {log}");
    let weights = |dir: &Path| std::fs::read(dir.join("weights.safetensors")).unwrap();
    assert_eq!(weights(&chunked), weights(&again), "same seed and budget, same weights");
    assert_ne!(weights(&chunked), weights(&held), "chunks visit rows in another order");
    // scoring block by block from the file prints what scoring the held split prints
    let scores = |budget: &[&str]| {
        let args = ["evaluate", "--run", s(&chunked), "--split", "train"];
        ok(&args.iter().chain(budget).copied().collect::<Vec<_>>())
    };
    assert_eq!(scores(&["--memory-budget", "100B"]), scores(&[]));
}

#[test]
fn heads_train_and_score_on_f16_feature_files() {
    let t = tempfile::tempdir().unwrap();
    for f in ["tiny_convnet.onnx", "tiny_convnet.json"] {
        std::fs::copy(fixtures().join(f), t.path().join(f)).unwrap();
    }
    let (data, model, out) = (fixtures().join("tiny_data"), t.path().join("tiny_convnet.onnx"), t.path().join("f"));
    ok(&["extract", "--data", s(&data), "--model", s(&model), "--out", s(&out), "--engine", "tract", "--store", "f16"]);
    let run = t.path().join("run");
    let features = out.join("gap_TinyConvNet.h5");
    ok(&["train-head", "--features", s(&features), "--out", s(&run), "--epochs", "2", "--batch", "4"]);
    let report = ok(&["evaluate", "--run", s(&run), "--split", "train", "--memory-budget", "200B"]);
    assert!(report.contains("accuracy ") && report.contains("(12 images)"), "{report}");
}

#[test]
fn another_tool_reads_the_weights_and_gets_the_same_probabilities() {
    let Some(python) = python_with(&["h5py", "numpy", "safetensors"]) else { return };
    let t = tempfile::tempdir().unwrap();
    let features = fixture_features(t.path());
    let run = t.path().join("run");
    ok(&["train-head", "--features", s(&features), "--out", s(&run), "--epochs", "2", "--batch", "4", "--standardize"]);
    let csv = t.path().join("p.csv");
    ok(&["predict", "--run", s(&run), "--split", "validation", "--csv", s(&csv), "--clip", "0"]);
    // numpy on the safetensors file and the HDF5 rows: sigmoid(((x - mean) / scale) · K + b).
    let script = r#"
import sys, h5py, numpy as np
from safetensors.numpy import load_file
w = load_file(sys.argv[1])
with h5py.File(sys.argv[2], "r") as h:
    x, paths = h["validation"][()], [p.decode() for p in h["validation_paths"][()]]
z = ((x - w["standardizer.mean"]) / w["standardizer.scale"]) @ w["output.kernel"] + w["output.bias"]
for path, p in zip(paths, 1 / (1 + np.exp(-z[:, 0]))):
    print(path.rsplit("/", 1)[1].rsplit(".", 1)[0], p)
"#;
    let weights = run.join("weights.safetensors");
    let out = run_python(&python, &["-c", script, s(&weights), s(&features)]);
    let ours: Vec<(String, f32)> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let (id, p) = l.split_once(',').unwrap();
            (id.to_string(), p.parse().unwrap())
        })
        .collect();
    let mut theirs: Vec<(String, f32)> = out
        .lines()
        .map(|l| {
            let (id, p) = l.split_once(' ').unwrap();
            (id.to_string(), p.parse().unwrap())
        })
        .collect();
    theirs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(ours.len(), 2);
    for ((id, p), (their_id, q)) in ours.iter().zip(&theirs) {
        assert_eq!(id, their_id);
        assert!((p - q).abs() < 1e-5, "{id}: {p} vs numpy {q}");
    }
}

#[test]
fn misuse_gets_one_line_errors_naming_the_culprit_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let features = fixture_features(t.path());
    let f = s(&features);
    let run = t.path().join("run");
    ok(&["train-head", "--features", f, "--out", s(&run), "--epochs", "1"]);

    let missing = t.path().join("nope/gap_X.h5");
    let other = t.path().join("other");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["train-head", "--features", f, "--out", s(&run)], "already exists"),
        (vec!["train-head", "--features", s(&missing), "--out", s(&other)], "nope/gap_X.h5: no such feature file"),
        (vec!["train-head", "--features", f, f, "--out", s(&other)], "same model"),
        (vec!["train-head", "--features", f, "--out", s(&other), "--class-weight", "1,2,3"], "2 positive weights"),
        (vec!["train-head", "--features", f, "--out", s(&other), "--dropout", "1.5"], "--dropout"),
        (vec!["train-head", "--features", f, "--out", s(&other), "--val-split", "0.2"], "validation"),
        (
            vec!["train-head", "--features", f, "--out", s(&other), "--optimizer", "lbfgs"],
            "sgd, rmsprop, adam, adadelta",
        ),
        (vec!["train-head", "--features", f, "--out", s(&other), "--momentum", "0.9"], "--optimizer sgd"),
        (vec!["train-head", "--features", f, "--out", s(&other), "--memory-budget", "100B"], "lower --batch"),
        (vec!["train-head", "--features", f, "--out", s(&other), "--memory-budget", "lots"], "--memory-budget"),
        (vec!["evaluate", "--run", s(&run), "--split", "test"], "unlabelled"),
        (vec!["evaluate", "--run", s(&run), "--split", "holdout"], "not in the feature files"),
        (vec!["evaluate", "--run", s(&other)], "run.json"),
        (vec!["predict", "--run", s(&run), "--csv", "x.csv", "--clip", "0.7"], "--clip"),
        (vec!["predict", "--run", s(&run)], "give image files to predict, or --csv"),
        (vec!["predict", "--run", s(&run), f, "--csv", "x.csv"], "drop one of them"),
        (vec!["predict", "--run", s(&run), s(&missing)], "nope/gap_X.h5"),
    ];
    for (args, expected) in cases {
        let err = fails(&args);
        let line = err.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
        assert!(line.contains(expected), "{args:?}: expected `{expected}` in:\n{err}");
        assert_eq!(err.matches("error: ").count(), 1, "{args:?}: one error line:\n{err}");
    }
    assert!(!other.exists(), "a refused run writes nothing");
}

#[test]
fn help_explains_every_flag() {
    let cases = [
        (
            "train-head",
            &[
                "--features",
                "--out",
                "--head",
                "--hidden",
                "--dropout",
                "--l2",
                "--optimizer",
                "--lr",
                "--decay",
                "--momentum",
                "--nesterov",
                "--epochs",
                "--batch",
                "--seed",
                "--standardize",
                "--val-split",
                "--patience",
                "--class-weight",
                "--solver",
                "--c",
                "--tol",
                "--max-iter",
                "--force",
                "--memory-budget",
            ][..],
        ),
        ("evaluate", &["--run", "--split", "--features", "--top", "--memory-budget"][..]),
        (
            "predict",
            &[
                "--run",
                "IMAGE",
                "--top",
                "--json",
                "--annotate",
                "--engine",
                "--batch",
                "--split",
                "--csv",
                "--clip",
                "--proba",
                "--features",
                "--memory-budget",
            ][..],
        ),
        (
            "cam",
            &["--run", "--images", "--sample", "--seed", "--grid", "--out", "--backbone", "--width", "--engine"][..],
        ),
    ];
    for (command, flags) in cases {
        let help = ok(&[command, "--help"]);
        for flag in flags {
            assert!(help.contains(flag), "{command} --help lacks {flag}:\n{help}");
        }
    }
}

/// The tutorial's recipe on the real photos: EfficientNet-Lite0 features of cats_dogs (cached
/// under target/ between runs), a logistic head with Adadelta, 8 epochs, batch 128.
#[test]
fn shared_cats_dogs_reaches_the_reference_accuracy() {
    let Some(shared) = shared() else { return };
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cats_dogs_lite0");
    let model = shared.join("models/efficientnet_lite0.onnx");
    ok(&["extract", "--data", s(&shared.join("data/cats_dogs")), "--model", s(&model), "--out", s(&cache)]);
    let features = cache.join("gap_EfficientNet-Lite0.h5");
    let t = tempfile::tempdir().unwrap();
    let run = t.path().join("run");
    ok(&["train-head", "--features", s(&features), "--out", s(&run), "--optimizer", "adadelta", "--epochs", "8"]
        .into_iter()
        .chain(["--batch", "128", "--seed", "7"])
        .collect::<Vec<_>>());
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let val_acc = info["metrics"]["val_acc"].as_f64().unwrap();
    // scikit-learn's standardised LogisticRegression reaches 0.9938 on these features
    // (tools/reference_heads.py); the issue asks for at least 0.985.
    assert!(val_acc >= 0.985, "validation accuracy {val_acc}");
    let report = ok(&["evaluate", "--run", s(&run)]);
    assert!(report.contains("(800 images)"), "{report}");
    let csv = t.path().join("validation.csv");
    ok(&["predict", "--run", s(&run), "--split", "validation", "--csv", s(&csv), "--clip", "0"]);
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 801);

    // Image files through the model again give the cached features' probabilities.
    let photos: Vec<PathBuf> = ["cats/cat.1000.jpg", "cats/cat.1361.jpg", "dogs/dog.1001.jpg", "dogs/dog.1274.jpg"]
        .iter()
        .map(|p| shared.join("data/cats_dogs/validation").join(p))
        .collect();
    let args: Vec<&str> =
        ["predict", "--run", s(&run), "--json"].into_iter().chain(photos.iter().map(|p| s(p))).collect();
    for line in ok(&args).lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let stem = Path::new(row["image"].as_str().unwrap()).file_stem().unwrap().to_str().unwrap().to_string();
        let top = &row["top"][0];
        let p = top["probability"].as_f64().unwrap();
        let p_dogs = if top["class"] == "dogs" { p } else { 1.0 - p };
        let cached: f64 = text.lines().find_map(|l| l.strip_prefix(&format!("{stem},"))).unwrap().parse().unwrap();
        assert!((p_dogs - cached).abs() < 1e-5, "{stem}: {p_dogs} from the photo, {cached} from the features");
    }

    // The class activation map against numpy + onnxruntime on the same resized input.
    let Some(python) = python_with(&["onnxruntime", "numpy", "safetensors", "PIL"]) else { return };
    let run = imgclf_heads::Run::load(&run).unwrap();
    let mut predictor = imgclf_heads::Predictor::load(
        run,
        &imgclf_runtime::EngineConfig::cpu(imgclf_runtime::EngineKind::Auto, 2),
        true,
    )
    .unwrap();
    let resize = predictor.resize(0);
    for photo in &photos {
        let resized = t.path().join("resized.png");
        resize.load(photo).unwrap().save(&resized).unwrap();
        let sample = imgclf_dataset::Sample::file(photo.clone(), photo.display().to_string(), None);
        let ours = predictor.predict(&[sample], 1).unwrap(); // resized as `resized`
        let class = imgclf_heads::argmax(ours.probs.row(0));
        let head = &predictor.run.head;
        let linear = imgclf_cam::LinearHead {
            kernel: head.output.kernel.view(),
            scale: head.standardizer.as_ref().map(|s| s.scale.view()),
        };
        let weights = imgclf_cam::class_weights(&linear, &[1280], 0, class).unwrap();
        let map = ours.maps[0].index_axis(ndarray::Axis(0), 0);
        let cam = imgclf_cam::normalize(&imgclf_cam::class_activation_map(map, weights.view()));
        let script = imgclf_testkit::workspace_root().join("tools/reference_cam.py");
        let weights_file = predictor.run.dir.join("weights.safetensors");
        let out = run_python(
            &python,
            &[s(&script), s(&model), s(&weights_file), s(&resized), "--mean", "127", "--std", "128"],
        );
        let reference: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(reference["class"].as_u64().unwrap() as usize, class, "{}", photo.display());
        let theirs: Vec<f32> = reference["cam"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
            .collect();
        let ours: Vec<f32> = cam.iter().copied().collect();
        assert_eq!(ours.len(), 49, "a 7x7 map");
        let diff = rel_diff(&ours, &theirs);
        println!("{}: CAM relative difference to numpy {diff:.2e}", photo.display());
        assert!(diff < 1e-4, "{}: CAM differs from numpy by {diff}", photo.display());
    }
}

/// A logistic run on the fixture features, in `dir/run`.
fn fixture_run(dir: &Path) -> (PathBuf, PathBuf) {
    let features = fixture_features(dir);
    let run = dir.join("run");
    ok(&["train-head", "--features", s(&features), "--out", s(&run), "--epochs", "3", "--batch", "4", "--standardize"]);
    (features, run)
}

#[test]
fn predict_on_image_files_agrees_with_the_cached_features_and_annotates() {
    let t = tempfile::tempdir().unwrap();
    let (_, run) = fixture_run(t.path());
    let validation = fixtures().join("tiny_data/validation");
    let csv = t.path().join("cached.csv");
    ok(&["predict", "--run", s(&run), "--split", "validation", "--csv", s(&csv), "--clip", "0"]);
    let cached: Vec<(String, f32)> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split_once(',').map(|(id, p)| (id.to_string(), p.parse().unwrap())).unwrap())
        .collect();

    let (cats, dogs) = (validation.join("cats"), validation.join("dogs"));
    let annotated = t.path().join("annotated");
    let json = ok(&[
        "predict",
        "--run",
        s(&run),
        s(&cats),
        s(&dogs),
        "--engine",
        "tract",
        "--json",
        "--annotate",
        s(&annotated),
    ]);
    let rows: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let image = row["image"].as_str().unwrap();
        let stem = Path::new(image).file_stem().unwrap().to_str().unwrap();
        let p_dogs = match row["top"][0]["class"].as_str().unwrap() {
            "dogs" => row["top"][0]["probability"].as_f64().unwrap(),
            _ => 1.0 - row["top"][0]["probability"].as_f64().unwrap(),
        } as f32;
        let (_, expected) = cached.iter().find(|(id, _)| id == stem).unwrap();
        assert!((p_dogs - expected).abs() < 1e-5, "{image}: {p_dogs} from the image, {expected} from cached features");

        // The labelled copy: 400 px wide, same name, and the label band differs from the photo.
        let name = Path::new(image).file_name().unwrap();
        let out = image::open(annotated.join(name)).unwrap().to_rgb8();
        let source = image::open(image).unwrap().to_rgb8();
        assert_eq!(out.width(), 400);
        assert_eq!(out.height(), (source.height() as f64 * 400.0 / source.width() as f64).round() as u32);
        let plain = image::imageops::resize(&source, out.width(), out.height(), image::imageops::FilterType::Triangle);
        let differs = (0..out.width()).filter(|&x| out.get_pixel(x, 12) != plain.get_pixel(x, 12)).count();
        assert!(differs > 300, "the label band was drawn ({differs} pixels differ on its row)");
    }
    let text = ok(&["predict", "--run", s(&run), s(&cats), "--engine", "tract", "--top", "2"]);
    let line = text.lines().next().unwrap();
    assert!(line.contains("cat.0.jpg  ") && line.contains("%  |  ") && line.ends_with('%'), "{line}");

    // The model the head was trained on must be the one found: changed or gone, it is named.
    let model = t.path().join("tiny_convnet.onnx");
    let mut bytes = std::fs::read(&model).unwrap();
    bytes.push(0);
    std::fs::write(&model, &bytes).unwrap();
    let err = fails(&["predict", "--run", s(&run), s(&cats)]);
    assert!(err.contains("tiny_convnet.onnx has changed since the head was trained"), "{err}");
    std::fs::remove_file(&model).unwrap();
    let err = fails(&["predict", "--run", s(&run), s(&cats)]);
    assert!(err.contains("the model of TinyConvNet is missing"), "{err}");
}

#[test]
fn cam_draws_a_grid_or_one_picture_per_image_and_refuses_an_mlp_head() {
    let t = tempfile::tempdir().unwrap();
    let (features, run) = fixture_run(t.path());
    let images = fixtures().join("tiny_data/validation");
    let (cats, dogs) = (images.join("cats"), images.join("dogs"));
    let grid = t.path().join("cam.png");
    ok(&["cam", "--run", s(&run), "--images", s(&cats), s(&dogs), "--grid", "2x1", "--out", s(&grid), "--width", "64"]
        .into_iter()
        .chain(["--engine", "tract"])
        .collect::<Vec<_>>());
    let picture = image::open(&grid).unwrap();
    assert_eq!(picture.width(), 8 + 2 * (64 + 8));
    let each = t.path().join("maps");
    ok(&["cam", "--run", s(&run), "--images", s(&cats), "--out", s(&each), "--engine", "tract"]);
    assert!(each.join("cat.0.png").is_file());

    let mlp = t.path().join("mlp");
    ok(&[
        "train-head",
        "--features",
        s(&features),
        "--out",
        s(&mlp),
        "--head",
        "mlp",
        "--hidden",
        "4",
        "--epochs",
        "1",
    ]);
    let err = fails(&["cam", "--run", s(&mlp), "--images", s(&cats), "--out", s(&each)]);
    assert!(err.contains("linear head"), "{err}");
    let err = fails(&["cam", "--run", s(&run), "--images", s(&cats), "--out", s(&grid), "--grid", "4"]);
    assert!(err.contains("COLUMNSxROWS"), "{err}");
}
