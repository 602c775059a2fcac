//! `imgclf report` and `imgclf runs` as a user runs them, on real cats_dogs photos through the
//! real EfficientNet-Lite0: a train-head run (logistic: with maps), an mlp head (no maps), a
//! CNN from pixels and a fine-tuned backbone. Each page is loaded in headless Chromium
//! (tools/browser_check.py, over the DevTools protocol): no console errors, no request leaving
//! the file, every photo decoded, the confusion table equal to `evaluate`'s, a screenshot that
//! is not blank. Under CI a missing browser fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imgclf_testkit::*;
use imgclf_testkit::{run as imgclf, run_ok as ok};
use serde_json::Value;

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A copy of the first `train` and `validation` photos per class of cats_dogs, plus one
/// validation cat under a hostile name.
fn photos(root: &Path, shared: &Path, train: usize, validation: usize) -> PathBuf {
    let data = root.join("data");
    for (split, take) in [("train", train), ("validation", validation)] {
        for class in ["cats", "dogs"] {
            let from = shared.join("data/cats_dogs").join(split).join(class);
            let to = data.join(split).join(class);
            std::fs::create_dir_all(&to).unwrap();
            let mut files: Vec<_> = std::fs::read_dir(&from).unwrap().flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files.iter().take(take) {
                std::fs::copy(f, to.join(f.file_name().unwrap())).unwrap();
            }
        }
    }
    let dog = std::fs::read_dir(data.join("validation/dogs")).unwrap().flatten().next().unwrap().path();
    std::fs::copy(dog, data.join("validation/cats/<script>alert(1)<b>.jpg")).unwrap();
    data
}

/// What Chromium saw of a page (tools/browser_check.py's JSON), with its screenshot at `shot`.
fn in_browser(python: &Path, page: &Path, shot: &Path) -> Value {
    let script = workspace_root().join("tools/browser_check.py");
    let out = run_python(python, &[s(&script), s(page), "--screenshot", s(shot)]);
    let seen: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(seen["errors"], serde_json::json!([]), "console errors in {}", page.display());
    assert_eq!(seen["requests"], serde_json::json!([]), "{} asked the network for something", page.display());
    assert!(seen["colours"].as_u64().unwrap() > 50, "a blank screenshot of {}: {seen}", page.display());
    seen
}

/// `evaluate`'s confusion matrix, read from its printout.
fn evaluate_confusion(run: &Path) -> Vec<Vec<u64>> {
    let out = ok(&["evaluate", "--run", s(run), "--top", "0"]);
    let table = out.split("confusion matrix (rows: true class").nth(1).unwrap();
    table
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().skip(1).map(|n| n.parse().unwrap()).collect())
        .collect()
}

#[test]
fn reports_of_every_run_kind_render_in_a_browser_and_runs_lists_them() {
    let Some(shared) = shared() else { return };
    let Some(python) = python_with(&["websocket", "PIL"]) else { return };
    if !["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .any(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
    {
        skip("no Chromium to load the reports in (Debian: apt install chromium; .ci/run installs it)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let data = photos(t.path(), &shared, 12, 8);
    let model = shared.join("models/efficientnet_lite0.onnx");
    let features = t.path().join("features");
    ok(&["extract", "--engine", "tract", "--data", s(&data), "--model", s(&model), "--out", s(&features)]);
    let h5 = features.join("gap_EfficientNet-Lite0.h5");
    let runs = t.path().join("runs");
    let (head, mlp, cnn, tuned) = (runs.join("head"), runs.join("mlp"), runs.join("cnn"), runs.join("tuned"));
    ok(&["train-head", "--features", s(&h5), "--out", s(&head), "--epochs", "4", "--seed", "1"]);
    ok(&["train-head", "--features", s(&h5), "--out", s(&mlp), "--epochs", "3", "--head", "mlp", "--hidden", "16"]);
    ok(&[
        "train-cnn",
        "--arch",
        "lenet",
        "--size",
        "24",
        "--epochs",
        "2",
        "--batch",
        "8",
        "--data",
        s(&data),
        "--out",
        s(&cnn),
    ]);
    let tune = ["fine-tune", "--engine", "tract", "--batch", "8", "--epochs", "1", "--run", s(&head)];
    ok(&[&tune[..], &["--data", s(&data), "--out", s(&tuned)]].concat());

    // the logistic head's page: every section, maps beside the top losses, the hostile name as text
    let out = ok(&["report", s(&head), "--data", s(&data), "--engine", "tract"]);
    assert!(out.contains("accuracy") && out.contains("report.html"), "{out}");
    let html = std::fs::read_to_string(head.join("report.html")).unwrap();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;b&gt;.jpg") && !html.contains("<script"), "escaped");
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    let seen = in_browser(&python, &head.join("report.html"), &screenshot);
    println!("screenshot of the report: {}", screenshot.display());
    let sections: Vec<&str> = seen["sections"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(sections, ["trained", "curves", "metrics", "top-losses", "correct"]);
    assert!(seen["images"].as_u64().unwrap() >= 6, "{seen}");
    assert_eq!(seen["broken"], serde_json::json!([]), "every photo decodes");
    assert_eq!(seen["scripts"], 0, "a hostile file name ran as a script");
    let confusion: Vec<Vec<u64>> = serde_json::from_value(seen["confusion"].clone()).unwrap();
    assert_eq!(confusion, evaluate_confusion(&head), "the page's confusion matrix is evaluate's");
    let wrong = confusion[0][1] + confusion[1][0];
    let maps = html.matches("alt=\"class activation map of").count() as u64;
    assert_eq!(maps, wrong.min(16), "one map per top loss shown");

    // the other kinds, and what cannot be shown: no maps for mlp, CNN and fine-tuned runs
    for (run, why) in
        [(&mlp, "CAM needs a logistic head"), (&cnn, "not train-cnn runs"), (&tuned, "not fine-tune runs")]
    {
        let o = imgclf(&["report", s(run), "--data", s(&data), "--engine", "tract"]);
        assert!(o.status.success() && text(&o).contains(why), "{}", text(&o));
        let seen = in_browser(&python, &run.join("report.html"), &t.path().join("shot.png"));
        assert_eq!(seen["broken"], serde_json::json!([]), "{}", run.display());
        assert_eq!(
            serde_json::from_value::<Vec<Vec<u64>>>(seen["confusion"].clone()).unwrap(),
            evaluate_confusion(run),
            "{}",
            run.display()
        );
    }

    // photos moved since training: the page renders and says so; no history: no curves. A
    // root with none of the photos is refused (it is not the one the features came from).
    let bare = t.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    for f in ["run.json", "weights.safetensors"] {
        std::fs::copy(head.join(f), bare.join(f)).unwrap();
    }
    let empty = t.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = imgclf(&["report", s(&bare), "--data", s(&empty), "--engine", "tract"]);
    assert!(!o.status.success() && text(&o).contains("not the photos these features were made from"), "{}", text(&o));
    assert!(!bare.join("report.html").exists());
    // all but the first validation photo moved away
    let moved = t.path().join("moved");
    std::fs::create_dir_all(moved.join("validation/cats")).unwrap();
    let mut cats: Vec<_> =
        std::fs::read_dir(data.join("validation/cats")).unwrap().flatten().map(|e| e.file_name()).collect();
    cats.sort_by(|a, b| imgclf_dataset::natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
    std::fs::copy(data.join("validation/cats").join(&cats[0]), moved.join("validation/cats").join(&cats[0])).unwrap();
    let o = imgclf(&["report", s(&bare), "--data", s(&moved), "--engine", "tract"]);
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(bare.join("report.html")).unwrap();
    assert!(html.contains("photo missing") && html.contains("no history.csv") && html.contains("No epochs recorded"));
    in_browser(&python, &bare.join("report.html"), &t.path().join("shot.png"));

    // a damaged run.json: one line naming it, no page written
    std::fs::write(bare.join("run.json"), "{\"format\": \"imgclf-run/1\", ").unwrap();
    std::fs::remove_file(bare.join("report.html")).unwrap();
    let o = imgclf(&["report", s(&bare)]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bare/run.json") && err.contains("damaged") && err.trim().lines().count() == 1, "{err}");
    assert!(!bare.join("report.html").exists());
    std::fs::remove_dir_all(&bare).unwrap();

    // runs: the four folders, best first; its CSV parses with Python's csv module to run.json's values
    let table = ok(&["runs", s(&runs)]);
    assert_eq!(table.lines().count(), 5, "{table}");
    let csv = t.path().join("runs.csv");
    std::fs::write(&csv, ok(&["runs", s(&runs), "--csv", "--sort", "log-loss"])).unwrap();
    let parsed = run_python(&python, &["-c", CSV_ROWS, s(&csv)]);
    let rows: Vec<Value> = serde_json::from_str(&parsed).unwrap();
    assert_eq!(rows.len(), 4);
    let losses: Vec<f64> = rows.iter().map(|r| r["val_loss"].as_str().unwrap().parse().unwrap()).collect();
    assert!(losses.windows(2).all(|w| w[0] <= w[1]), "sorted by log loss: {losses:?}");
    for row in &rows {
        let dir = PathBuf::from(row["run"].as_str().unwrap());
        let info: Value = serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
        let kept = if info["metrics"].is_object() {
            &info["metrics"]
        } else {
            info["history"].as_array().unwrap().last().unwrap()
        };
        let kind = row["kind"].as_str().unwrap();
        assert_eq!(
            row["val_acc"].as_str().unwrap().parse::<f64>().unwrap(),
            kept["val_acc"].as_f64().unwrap(),
            "{kind}"
        );
        assert_eq!(
            row["val_loss"].as_str().unwrap().parse::<f64>().unwrap(),
            kept["val_loss"].as_f64().unwrap(),
            "{kind}"
        );
        assert_eq!(row["seed"].as_str().unwrap(), info["config"]["seed"].to_string(), "{kind}");
        let expected = match dir.file_name().unwrap().to_str().unwrap() {
            "head" | "mlp" => "train-head",
            "cnn" => "train-cnn",
            _ => "fine-tune",
        };
        assert_eq!(kind, expected);
    }
    // head and mlp trained on the same cached features: the same fingerprint
    let fingerprint =
        |name: &str| rows.iter().find(|r| r["run"].as_str().unwrap().ends_with(name)).unwrap()["features"].clone();
    assert_eq!(fingerprint("/head"), fingerprint("/mlp"));
    assert_eq!(fingerprint("/cnn"), "");

    let page = t.path().join("runs.html");
    ok(&["runs", s(&runs), "--html", s(&page)]);
    let seen = in_browser(&python, &page, &t.path().join("shot.png"));
    assert_eq!(seen["rows"].as_array().unwrap().len(), 4, "{seen}");
    let links: Vec<&str> = seen["links"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert_eq!(links.len(), 4, "each run links its report: {links:?}");
    assert!(links.iter().all(|l| l.starts_with("runs/") && l.ends_with("/report.html")), "{links:?}");
}

const CSV_ROWS: &str = r#"
import csv, json, sys
print(json.dumps(list(csv.DictReader(open(sys.argv[1], newline="")))))
"#;
