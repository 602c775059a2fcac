//! The L-BFGS probe (`train-head --solver lbfgs`) against scikit-learn's
//! `LogisticRegression(solver="lbfgs")` on the same standardised rows of real feature files:
//! the same objective, weights and probabilities, binary and multinomial; chunked reading
//! gives the in-memory fit.

use std::path::Path;

use imgclf_testkit::*;

/// scikit-learn fits `LogisticRegression(C)` to the train rows of `features` standardised by
/// the run's own standardizer (as imgclf does, in f32), then prints as JSON: both objectives
/// (mean log loss + ‖W‖²/(2Cn), in f64), the largest weight and bias differences relative to
/// scikit-learn's largest weight, and the largest difference of probabilities on `split`
/// against the run's `--proba` CSV. A sixth argument `refit` fits train and validation rows.
const COMPARE: &str = r#"
import csv, json, sys, h5py, numpy as np
from safetensors.numpy import load_file
from sklearn.linear_model import LogisticRegression
features, run, C, split, proba = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
f = h5py.File(features)
w = load_file(run + "/weights.safetensors")
std = lambda x: ((x - w["standardizer.mean"]) / w["standardizer.scale"]).astype(np.float64)
x, y = std(f["train"][()]), f["label"][()]
if sys.argv[6:] == ["refit"]:
    x, y = np.concatenate([x, std(f["validation"][()])]), np.concatenate([y, f["validation_label"][()]])
n = len(y)
def objective(W, b):
    z = x @ W + b
    if W.shape[1] == 1:
        loss = np.logaddexp(0, z[:, 0]) - y * z[:, 0]
    else:
        loss = np.logaddexp.reduce(z, axis=1) - z[np.arange(n), y]
    return loss.mean() + (W ** 2).sum() / (2 * C * n)
sk = LogisticRegression(C=C, tol=1e-10, max_iter=100000).fit(x, y)
W, b = w["output.kernel"].astype(np.float64), w["output.bias"].astype(np.float64)
theirs = objective(sk.coef_.T, sk.intercept_)
scale = np.abs(sk.coef_).max()
with open(proba) as fh:
    rows = list(csv.reader(fh))[1:]
ours_p = np.array([[float(v) for v in r[1:]] for r in rows])
their_p = sk.predict_proba(std(f[split][()]))
print(json.dumps({
    "ours": objective(W, b), "theirs": theirs,
    "kernel": float(np.abs(W - sk.coef_.T).max() / scale), "bias": float(np.abs(b - sk.intercept_).max() / scale),
    "proba": float(np.abs(ours_p - their_p).max()), "rows": len(rows), "classes": int(W.shape[1]),
}))
"#;

/// Fits the probe to `features` at C = 1 into `out` (with `flags`), writes its `--proba` CSV
/// of `split`, and returns scikit-learn's comparison (see [`COMPARE`]) and what train-head
/// said on stderr.
fn compare(python: &Path, features: &Path, out: &Path, split: &str, flags: &[&str]) -> (serde_json::Value, String) {
    let fit = ["train-head", "--features", s(features), "--out", s(out), "--c", "1", "--tol", "1e-9"];
    let o = run(&[&fit[..], flags].concat());
    let (said, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr).into_owned());
    assert!(o.status.success(), "{stderr}");
    assert!(said.contains("L-BFGS: converged") || said.contains("L-BFGS: stopped where"), "{said}");
    let csv = out.join("proba.csv");
    run_ok(&["predict", "--run", s(out), "--split", split, "--csv", s(&csv), "--proba"]);
    let refit = if flags.contains(&"--refit") { "refit" } else { "" };
    let said = run_python(python, &["-c", COMPARE, s(features), s(out), "1.0", split, s(&csv), refit]);
    (serde_json::from_str(said.trim()).unwrap(), stderr)
}

/// The agreement asserted: objectives to 1e-6 relative, weights to 1e-3 of the largest,
/// probabilities to 1e-4.
fn assert_agrees(c: &serde_json::Value, what: &str) {
    let (ours, theirs) = (c["ours"].as_f64().unwrap(), c["theirs"].as_f64().unwrap());
    assert!((ours - theirs).abs() / theirs <= 1e-6, "{what}: objective {ours} against scikit-learn's {theirs}");
    assert!(c["kernel"].as_f64().unwrap() <= 1e-3 && c["bias"].as_f64().unwrap() <= 1e-3, "{what}: weights {c}");
    assert!(c["proba"].as_f64().unwrap() <= 1e-4, "{what}: probabilities {c}");
}

#[test]
fn the_binary_probe_reaches_scikit_learns_objective_weights_and_probabilities() {
    let Some(python) = python_with(&["sklearn", "h5py", "safetensors"]) else { return };
    let t = tempfile::tempdir().unwrap();
    let features = extract_tiny(&fixtures().join("tiny_data"), &t.path().join("features"), &[]);
    let (c, _) = compare(&python, &features, &t.path().join("run"), "validation", &[]);
    assert_eq!(c["classes"], 1, "two classes: one sigmoid output, as scikit-learn's binary model");
    assert_agrees(&c, "tiny_data");

    // evaluate's calibration figures against numpy on the same probabilities
    let said = run_ok(&["evaluate", "--run", s(&t.path().join("run"))]);
    let figure = |name: &str| -> f64 {
        let after = said.split_once(&format!("{name} ")).unwrap_or_else(|| panic!("no {name}: {said}")).1;
        after.split_whitespace().next().unwrap().parse().unwrap()
    };
    let numpy = run_python(&python, &["-c", CALIBRATION, s(&features), s(&t.path().join("run/proba.csv"))]);
    let (ece, brier) = numpy.trim().split_once(' ').unwrap();
    assert!((figure("ECE") - ece.parse::<f64>().unwrap()).abs() < 1e-4, "{said} against numpy's {numpy}");
    assert!((figure("Brier") - brier.parse::<f64>().unwrap()).abs() < 1e-4, "{said} against numpy's {numpy}");

    // --refit: the fit of train and validation rows together, and run.json says so
    let (c, said) = compare(&python, &features, &t.path().join("refit"), "validation", &["--refit"]);
    assert_agrees(&c, "tiny_data, refit on train + validation");
    assert!(said.contains("then fitted to as well (refit): not held out"), "{said}");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("refit/run.json")).unwrap()).unwrap();
    assert_eq!(info["validation"], serde_json::json!({"refit": {"split": "validation"}}));
}

/// numpy's expected calibration error (15 equal-width bins of the top probability, Guo et al.
/// 2017) and Brier score (Σ over classes, mean over rows) of a `--proba` CSV of validation.
const CALIBRATION: &str = r#"
import csv, sys, h5py, numpy as np
labels = h5py.File(sys.argv[1])["validation_label"][()]
with open(sys.argv[2]) as fh:
    p = np.array([[float(v) for v in r[1:]] for r in list(csv.reader(fh))[1:]])
conf, pred = p.max(1), p.argmax(1)
edges = np.linspace(0, 1, 16)
ece = sum(abs((pred[m] == labels[m]).mean() - conf[m].mean()) * m.mean()
          for lo, hi in zip(edges[:-1], edges[1:]) for m in [(conf > lo) & (conf <= hi)] if m.any())
brier = ((p - np.eye(p.shape[1])[labels]) ** 2).sum(1).mean()
print(ece, brier)
"#;

#[test]
fn the_multinomial_probe_agrees_with_scikit_learn_and_chunked_reading_changes_nothing() {
    let (Some(shared), Some(python)) = (shared(), python_with(&["sklearn", "h5py", "safetensors"])) else { return };
    let t = tempfile::tempdir().unwrap();
    let features = extract_tiny(&shared.join("data/traffic_signs"), &t.path().join("features"), &[]);
    let (c, _) = compare(&python, &features, &t.path().join("run"), "test", &[]);
    assert_eq!(c["classes"], 43);
    assert_agrees(&c, "traffic_signs");

    // rows read from the file a few hundred at a time: the same fit
    let budget = ["--memory-budget", "64KiB"];
    let (chunked, said) = compare(&python, &features, &t.path().join("chunked"), "test", &budget);
    assert!(said.contains("chunks of about") && said.contains("each pass in file order"), "{said}");
    let (a, b) = (c["ours"].as_f64().unwrap(), chunked["ours"].as_f64().unwrap());
    assert!((a - b).abs() / a <= 1e-9, "held {a}, chunked {b}");
    assert_agrees(&chunked, "traffic_signs, chunked");
}

#[test]
fn probe_settings_that_cannot_fit_are_refused_before_anything_is_written() {
    let t = tempfile::tempdir().unwrap();
    let features = extract_tiny(&fixtures().join("tiny_data"), &t.path().join("features"), &[]);
    let out = t.path().join("run");
    for (flags, says) in [
        (&["--head", "mlp"][..], "fits a logistic head"),
        (&["--l2", "0.01"][..], "--c (scikit-learn's C)"),
        (&["--patience", "3"][..], "drop --patience"),
    ] {
        let args = [&["train-head", "--features", s(&features), "--out", s(&out), "--solver", "lbfgs"][..], flags];
        let said = failed(&run(&args.concat()));
        assert!(said.contains(says), "{flags:?}: {said}");
        assert!(!out.exists(), "{flags:?} wrote {}", out.display());
    }
}

/// `--c auto` on traffic_signs (43 classes, a fifth of train held out): the C it keeps is the
/// one of lowest held-out log loss among all 97 of the grid, each fitted from zero (to the
/// sweep's tolerance, --tol / 100) through the library and scored here; the curve is in run.json and on the report page, and the kept
/// head is the fit at that C.
#[test]
fn the_sweep_keeps_the_c_a_brute_force_pass_over_its_grid_would() {
    use imgclf_heads::prelude::*;
    use imgclf_heads::{Sweep, sweep_grid};
    let Some(shared) = shared() else { return };
    let t = tempfile::tempdir().unwrap();
    let features = extract_tiny(&shared.join("data/traffic_signs"), &t.path().join("features"), &[]);
    let out = t.path().join("run");
    let flags = ["--solver", "lbfgs", "--val-split", "0.2", "--seed", "3", "--tol", "1e-5"];
    let said =
        run_ok(&[&["train-head", "--features", s(&features), "--out", s(&out), "--c", "auto"][..], &flags].concat());
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let sweep: Sweep = serde_json::from_value(info["sweep"].clone()).unwrap();
    assert_eq!(info["config"]["solver"]["c"], "auto");
    assert!(sweep.points.len() <= 15 && said.contains(&format!("chose C = {}", sweep.chosen)), "{said}");

    let inputs = HeadInputs::open(std::slice::from_ref(&features), &["train"], 1 << 30).unwrap();
    let labels = inputs.split("train").unwrap().labels.clone().unwrap();
    let fit = |c: f64| {
        let lbfgs = Lbfgs { c: InverseL2::Value(c), tol: 1e-7, ..Lbfgs::default() };
        let config = TrainConfig {
            head: HeadConfig { dropout: 0.0, ..TrainConfig::tutorial().head },
            standardize: true,
            val_split: Some(0.2),
            seed: 3,
            solver: Solver::Lbfgs(lbfgs),
            ..TrainConfig::tutorial()
        };
        let plan = ChunkPlan::new(&inputs, &config).unwrap();
        let head = plan.train(&inputs, &mut |_| {}).unwrap().head;
        let probs = predict_split(&head, &inputs, "train").unwrap();
        let loss = plan.held_out.iter().map(|&r| -f64::from(probs[[r, labels[r]]].max(1e-7)).ln()).sum::<f64>();
        (loss / plan.held_out.len() as f64, head)
    };
    let curve: Vec<(f64, f64)> = sweep_grid().into_iter().map(|c| (c, fit(c).0)).collect();
    let best = curve.iter().fold(curve[0], |b, &p| if p.1 < b.1 { p } else { b });
    assert_eq!(sweep.chosen, best.0, "brute force over the grid: {curve:?}");
    for p in &sweep.points {
        let (_, brute) = curve.iter().find(|q| q.0 == p.c).unwrap();
        assert!((p.val_loss - brute).abs() < 1e-4, "C {}: swept {} against {brute}", p.c, p.val_loss);
    }
    assert!(curve[0].1 > best.1 + 0.1 && curve[96].1 > best.1, "a valley inside the grid: {curve:?}");

    // the kept head is the fit at the chosen C (the same numbers as --c CHOSEN)
    let st = |dir: &Path| std::fs::read(dir.join("weights.safetensors")).unwrap();
    let again = t.path().join("again");
    let chosen = sweep.chosen.to_string();
    let flags = ["--solver", "lbfgs", "--val-split", "0.2", "--seed", "3", "--tol", "1e-7"];
    run_ok(&[&["train-head", "--features", s(&features), "--out", s(&again), "--c", &chosen][..], &flags].concat());
    assert_eq!(st(&out), st(&again), "--c auto keeps the fit --c {chosen} --tol 1e-7 makes");

    let page = t.path().join("report.html");
    run_ok(&["report", s(&out), "--out", s(&page)]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("id=\"sweep\"") && html.contains(&format!("chosen C = {:.3e}", sweep.chosen)));
}

#[test]
fn a_sweep_or_refit_without_validation_is_refused_before_anything_is_written() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    // tiny_data without its validation split
    copy_tree(&fixtures().join("tiny_data"), &data);
    std::fs::remove_dir_all(data.join("validation")).unwrap();
    let features = extract_tiny(&data, &t.path().join("features"), &[]);
    let out = t.path().join("run");
    for (flags, says) in [
        (&["--c", "auto"][..], "--c auto chooses C on validation, but there is none: give --val-split"),
        (&["--refit"][..], "a refit adds the validation rows, but there is none"),
        (&["--c", "-1"][..], "c must be"),
        (&["--c", "often"][..], "`auto`, or a number: not a number; c must be a number in (0, "),
    ] {
        let args = [&["train-head", "--features", s(&features), "--out", s(&out), "--solver", "lbfgs"][..], flags];
        let said = failed(&run(&args.concat()));
        assert!(said.contains(says), "{flags:?}: {said}");
        assert!(!out.exists(), "{flags:?} wrote {}", out.display());
    }
    let said =
        failed(&run(&["train-head", "--features", s(&features), "--out", s(&out), "--head", "logistic", "--refit"]));
    assert!(
        said.contains("--refit refits the probe; --head logistic trains by mini-batches") && !out.exists(),
        "{said}"
    );
}
