//! `imgclf calibrate` as a user runs it: a temperature fitted on validation, kept in the run
//! folder and applied by evaluate, predict (CSV and image files), report and runs, for a head
//! run and a CNN run; refusals of splits it must not be fitted on; runs from before it existed.

use std::path::Path;

use imgclf_testkit::*;

/// Per row of a `--proba` CSV of two classes: `ln(p1 / p0)`, the logit behind them.
fn logits(csv: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(csv).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<f64> = line.split(',').skip(1).map(|v| v.parse().unwrap()).collect();
            (cells[1] / cells[0]).ln()
        })
        .collect()
}

fn temperature(run: &Path) -> f64 {
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("temperature.json")).unwrap()).unwrap();
    t["temperature"].as_f64().unwrap()
}

#[test]
fn a_calibrated_head_run_divides_its_logits_by_the_temperature_everywhere() {
    let t = tempfile::tempdir().unwrap();
    let features = extract_tiny(&fixtures().join("tiny_data"), &t.path().join("features"), &[]);
    let run = t.path().join("run");
    // an over-trained head: sure of itself, so the temperature is far from 1
    let (r, f) = (s(&run), s(&features));
    run_ok(&["train-head", "--features", f, "--out", r, "--epochs", "60", "--batch", "4", "--optimizer", "adam"]);
    let said = run_ok(&["evaluate", "--run", r]);
    assert!(said.contains("not calibrated (`imgclf calibrate --run"), "a run from before calibration: {said}");
    let before = t.path().join("before.csv");
    run_ok(&["predict", "--run", r, "--split", "validation", "--csv", s(&before), "--proba"]);

    for (split, says) in [
        ("test", "test is the split reported as untouched"),
        ("train", "the run was fitted to those rows"),
        ("nowhere", "split `nowhere`: not in the feature files"),
    ] {
        let said = failed(&imgclf_testkit::run(&["calibrate", "--run", r, "--split", split]));
        assert!(said.contains(says), "--split {split}: {said}");
        assert!(!run.join("temperature.json").exists());
    }
    let said = run_ok(&["calibrate", "--run", r]);
    let temp = temperature(&run);
    assert!(said.contains("fitted on `validation`") && said.contains("log loss"), "{said}");
    assert!((temp - 1.0).abs() > 0.05, "temperature {temp}");

    // the CSV of the calibrated run: every logit divided by T
    let after = t.path().join("after.csv");
    run_ok(&["predict", "--run", r, "--split", "validation", "--csv", s(&after), "--proba"]);
    for (b, a) in logits(&before).iter().zip(logits(&after)) {
        assert!((b / temp - a).abs() <= 1e-4 * (1.0 + b.abs()), "logit {b} / {temp} against {a}");
    }
    let again = t.path().join("again.csv");
    run_ok(&["predict", "--run", r, "--split", "validation", "--csv", s(&again), "--proba", "--uncalibrated"]);
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&before).unwrap(), "--uncalibrated: the run as trained");

    // image files through the Predictor: the same division
    let photos = fixtures().join("tiny_data/validation/cats");
    let line = |flags: &[&str]| -> f64 {
        let said = run_ok(&[&["predict", "--run", r, s(&photos), "--json", "--top", "2"][..], flags].concat());
        let first: serde_json::Value = serde_json::from_str(said.lines().next().unwrap()).unwrap();
        let p: Vec<f64> = first["top"].as_array().unwrap().iter().map(|c| c["probability"].as_f64().unwrap()).collect();
        (p[0] / p[1]).ln()
    };
    let (calibrated, raw) = (line(&[]), line(&["--uncalibrated"]));
    assert!((raw / temp - calibrated).abs() <= 1e-4 * (1.0 + raw.abs()), "{raw} / {temp} against {calibrated}");

    let said = run_ok(&["evaluate", "--run", r]);
    assert!(said.contains("calibrated: temperature") && said.contains("not held out"), "{said}");
    let page = t.path().join("page.html");
    run_ok(&["report", r, "--out", s(&page)]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("calibrated: temperature"), "the page says the run is calibrated");
    let table = run_ok(&["runs", s(t.path()), "--csv"]);
    let row = table.lines().nth(1).unwrap();
    assert!(row.contains(",validation,") && row.contains(&temp.to_string()), "{table}");

    run_ok(&["calibrate", "--run", r, "--remove"]);
    assert!(run_ok(&["evaluate", "--run", r]).contains("not calibrated"));
}

#[test]
fn a_split_without_labels_cannot_calibrate() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    copy_tree(&fixtures().join("tiny_data"), &data);
    // validation as loose photos: a split without labels
    for class in ["cats", "dogs"] {
        for photo in std::fs::read_dir(data.join("validation").join(class)).unwrap().flatten() {
            let name = format!("{class}-{}", photo.file_name().to_string_lossy());
            std::fs::rename(photo.path(), data.join("validation").join(name)).unwrap();
        }
        std::fs::remove_dir(data.join("validation").join(class)).unwrap();
    }
    let features = extract_tiny(&data, &t.path().join("features"), &[]);
    let run = t.path().join("run");
    head_weights(&features, &run);
    let said = failed(&imgclf_testkit::run(&["calibrate", "--run", s(&run)]));
    assert!(said.contains("--split validation: unlabelled"), "{said}");
    assert!(!run.join("temperature.json").exists());
}

#[test]
fn a_cnn_run_calibrates_and_resuming_it_drops_the_temperature() {
    let Some(shared) = shared() else { return };
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("signs");
    // 4 classes: train from the first 12 of each, validation from the next 6, test 4
    for class in ["00001", "00002", "00013", "00014"] {
        let list = |split: &str| {
            let mut files: Vec<_> = std::fs::read_dir(shared.join("data/traffic_signs").join(split).join(class))
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            files.sort();
            files
        };
        let (train, test) = (list("train"), list("test"));
        for (split, files) in [("train", &train[..12]), ("validation", &train[12..18]), ("test", &test[..4])] {
            let to = data.join(split).join(class);
            std::fs::create_dir_all(&to).unwrap();
            for f in files {
                std::fs::copy(f, to.join(f.file_name().unwrap())).unwrap();
            }
        }
    }
    let run = t.path().join("cnn");
    let args = ["train-cnn", "--arch", "lenet", "--batch", "8", "--seed", "3", "--size", "24", "--data", s(&data)];
    run_ok(&[&args[..], &["--out", s(&run), "--epochs", "2"]].concat());
    let said = run_ok(&["calibrate", "--run", s(&run)]);
    assert!(said.contains("fitted on `validation`"), "{said}");
    let said = run_ok(&["evaluate", "--run", s(&run), "--split", "test"]);
    assert!(said.contains("calibrated: temperature") && !said.contains("not held out"), "{said}");
    run_ok(&["train-cnn", "--out", s(&run), "--resume", "--epochs", "3"]);
    assert!(!run.join("temperature.json").exists(), "new weights, no temperature");
}
