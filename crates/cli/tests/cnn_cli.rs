//! `imgclf train-cnn` as a user runs it, on real traffic-sign PNGs: a run folder shaped like
//! train-head's, Ctrl-C between batches then `--resume` giving the same weights as an
//! uninterrupted run, and `evaluate` / `predict` working on the CNN run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use imgclf_testkit::run as imgclf;
use imgclf_testkit::*;

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A copy of `take` images per class of each split of shared dataset `name`, under `root`.
fn subset(root: &Path, name: &str, splits: &[(&str, usize)], classes: &[&str]) -> Option<PathBuf> {
    let shared = shared()?;
    let data = root.join(name);
    for (split, take) in splits {
        for class in classes {
            let from = shared.join("data").join(name).join(split).join(class);
            let to = data.join(split).join(class);
            std::fs::create_dir_all(&to).unwrap();
            let mut files: Vec<_> = std::fs::read_dir(&from).unwrap().flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files.iter().take(*take) {
                std::fs::copy(f, to.join(f.file_name().unwrap())).unwrap();
            }
        }
    }
    Some(data)
}

/// 4 sign classes, 12 train and 4 test images each.
fn signs(root: &Path) -> Option<PathBuf> {
    subset(root, "traffic_signs", &[("train", 12), ("test", 4)], &["00001", "00002", "00013", "00014"])
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    // an explicit --decay: lenet's default (lr / epochs) would differ between --epochs 1 and 3
    let mut args = vec!["train-cnn", "--arch", "lenet", "--batch", "8", "--seed", "3", "--decay", "0.0002"];
    args.extend_from_slice(extra);
    let (data, out) = (data.to_str().unwrap(), out.to_str().unwrap());
    args.extend_from_slice(&["--data", data, "--out", out]);
    imgclf(&args)
}

#[test]
fn train_cnn_writes_a_run_that_resumes_evaluates_and_predicts() {
    let t = tempfile::tempdir().unwrap();
    let Some(data) = signs(t.path()) else { return };
    let whole = t.path().join("whole");
    let o = train(&data, &whole, &["--epochs", "3", "--size", "24"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("Lenet, ") && out.contains("train 48 images, validation `test` 16 images"), "{out}");
    assert!(out.contains("Epoch 3/3"), "{out}");
    for file in ["weights.safetensors", "checkpoint.safetensors", "run.json", "history.csv", "curves.png"] {
        assert!(whole.join(file).is_file(), "{file} missing");
    }
    assert_eq!(std::fs::read_to_string(whole.join("history.csv")).unwrap().lines().count(), 4);

    // the same run in two parts: 1 epoch, then --resume to 3
    let parts = t.path().join("parts");
    assert!(train(&data, &parts, &["--epochs", "1", "--size", "24"]).status.success());
    let o = imgclf(&["train-cnn", "--out", parts.to_str().unwrap(), "--resume", "--epochs", "3"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("resuming") && text(&o).contains("after epoch 1 of 3"), "{}", text(&o));
    let weights = |dir: &Path| std::fs::read(dir.join("weights.safetensors")).unwrap();
    assert!(weights(&whole) == weights(&parts), "resumed weights differ from the uninterrupted run's");
    let o = imgclf(&["train-cnn", "--out", parts.to_str().unwrap(), "--resume"]);
    assert!(!o.status.success() && text(&o).contains("is complete (3 epochs)"), "{}", text(&o));
    // an existing run is not replaced without --force
    let o = train(&data, &whole, &["--epochs", "1", "--size", "24"]);
    assert!(!o.status.success() && text(&o).contains("already exists"), "{}", text(&o));

    // evaluate scores the test split with the accuracy training reported for it
    let run = whole.to_str().unwrap();
    let o = imgclf(&["evaluate", "--run", run]);
    assert!(o.status.success(), "{}", text(&o));
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(whole.join("run.json")).unwrap()).unwrap();
    let val_acc = info["metrics"]["val_acc"].as_f64().unwrap();
    assert!(text(&o).contains(&format!("accuracy {val_acc:.4}")), "{} vs {val_acc}", text(&o));
    assert!(whole.join("confusion.png").is_file());
    let o = imgclf(&["evaluate", "--run", run, "--features", "x.h5"]);
    assert!(!o.status.success() && text(&o).contains("is a CNN or fine-tuning run"), "{}", text(&o));

    // predict: image files, and a split into a CSV
    let photo = data.join("test/00014");
    let o = imgclf(&["predict", "--run", run, photo.to_str().unwrap(), "--top", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 4, "{}", text(&o));
    let csv = t.path().join("test.csv");
    let o = imgclf(&["predict", "--run", run, "--split", "test", "--csv", csv.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(rows.lines().count(), 17, "{rows}");
    assert!(rows.starts_with("id,label\n"));
}

#[test]
fn ctrl_c_stops_between_batches_and_resume_finishes_the_same_run() {
    let t = tempfile::tempdir().unwrap();
    let Some(data) = signs(t.path()) else { return };
    let whole = t.path().join("whole");
    assert!(train(&data, &whole, &["--epochs", "12", "--size", "48"]).status.success());

    let cut = t.path().join("cut");
    let mut child = Command::new(env!("CARGO_BIN_EXE_imgclf"))
        .args([
            "train-cnn",
            "--arch",
            "lenet",
            "--batch",
            "8",
            "--seed",
            "3",
            "--decay",
            "0.0002",
            "--epochs",
            "12",
            "--size",
            "48",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&cut)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait for the first checkpoint, then interrupt
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(cut.join("history.csv")).is_ok_and(|h| h.lines().count() >= 2) {
        assert!(started.elapsed().as_secs() < 120, "no epoch finished");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(cut.join("run.json")).unwrap()).unwrap();
    assert!(!status.success(), "the run finished before SIGINT arrived: {stderr}");
    assert!(stderr.contains("interrupted during epoch") && stderr.contains("--resume"), "{stderr}");
    assert_eq!(info["complete"], false);
    let o = imgclf(&["train-cnn", "--out", cut.to_str().unwrap(), "--resume"]);
    assert!(o.status.success(), "{}", text(&o));
    let weights = |dir: &Path| std::fs::read(dir.join("weights.safetensors")).unwrap();
    assert!(weights(&whole) == weights(&cut), "interrupted + resumed differs from uninterrupted");
}

/// `fine-tune` on a train-head run over the real EfficientNet-Lite0: a small cats_dogs copy,
/// features, a head, then its last block and head trained; the run records the numbers
/// before and after, and evaluate / predict take it.
#[test]
fn fine_tune_trains_the_last_block_of_a_heads_backbone() {
    let t = tempfile::tempdir().unwrap();
    let Some(shared) = shared() else { return };
    let data = subset(t.path(), "cats_dogs", &[("train", 12), ("validation", 6)], &["cats", "dogs"]).unwrap();
    let model = shared.join("models/efficientnet_lite0.onnx");
    let (features, head, tuned) = (t.path().join("f"), t.path().join("head"), t.path().join("tuned"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let o =
        imgclf(&["extract", "--engine", "tract", "--data", &s(&data), "--model", &s(&model), "--out", &s(&features)]);
    assert!(o.status.success(), "{}", text(&o));
    let h5 = features.join("gap_EfficientNet-Lite0.h5");
    let o = imgclf(&["train-head", "--features", &s(&h5), "--out", &s(&head), "--epochs", "3", "--seed", "1"]);
    assert!(o.status.success(), "{}", text(&o));

    let tune = |extra: &[&str]| {
        let mut args = vec!["fine-tune", "--engine", "tract", "--batch", "8", "--epochs", "2"];
        args.extend_from_slice(extra);
        imgclf(&args)
    };
    let o = tune(&["--run", &s(&head), "--data", &s(&data), "--out", &s(&tuned)]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("training from `/_blocks.13/Add_output_0` to `features` (14 tensors)"), "{out}");
    assert!(out.contains("before fine-tuning: val_loss") && out.contains("Epoch 2/2"), "{out}");
    for file in ["frozen.onnx", "weights.safetensors", "run.json", "history.csv", "curves.png"] {
        assert!(tuned.join(file).is_file(), "{file} missing");
    }
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(tuned.join("run.json")).unwrap()).unwrap();
    assert!(info["before"]["acc"].as_f64().is_some(), "{info}");
    let val_acc = info["history"][1]["val_acc"].as_f64().unwrap();
    // evaluate rebuilds the tail from the model file, loads the trained weights, and scores
    // the validation split as training last did
    let o = imgclf(&["evaluate", "--run", &s(&tuned)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(&format!("accuracy {val_acc:.4}")), "{} vs {val_acc}", text(&o));
    let photo = data.join("validation/dogs");
    let o = imgclf(&["predict", "--engine", "tract", "--run", &s(&tuned), &s(&photo)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 6);

    // a head over the wrong classes' data, and a tensor that is not in the graph
    let o =
        tune(&["--run", &s(&head), "--data", &s(&shared.join("data/traffic_signs")), "--out", &s(&t.path().join("x"))]);
    assert!(!o.status.success() && text(&o).contains("but the head was trained on"), "{}", text(&o));
    let o = tune(&["--run", &s(&head), "--data", &s(&data), "--out", &s(&t.path().join("y")), "--from", "nope"]);
    assert!(!o.status.success() && text(&o).contains("`features` is not computed from `nope`"), "{}", text(&o));
    assert!(!t.path().join("y").exists(), "nothing written for a refused run");
}
