//! `imgclf extract` as a user runs it: the real binary on the fixture dataset.

use std::path::{Path, PathBuf};
use std::process::Output;

use imgclf_testkit::run as imgclf;
use imgclf_testkit::*;

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// The tiny model beside a copy of its spec, in a scratch folder.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    for f in ["tiny_convnet.onnx", "tiny_convnet.json"] {
        std::fs::copy(fixtures().join(f), t.path().join(f)).unwrap();
    }
    let model = t.path().join("tiny_convnet.onnx");
    (t, model)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn extract_writes_the_file_reports_skips_and_reuses_it_next_time() {
    let (t, model) = scratch();
    let data = fixtures().join("tiny_data");
    let out = t.path().join("features");
    let args =
        ["extract", "--data", s(&data), "--model", s(&model), "--out", s(&out), "--engine", "tract", "--batch", "4"];
    let first = imgclf(&args);
    let (stdout, stderr) = text(&first);
    assert!(first.status.success(), "{stderr}");
    assert!(stdout.contains("TinyConvNet: train 12, validation 2, test 3 rows x 8 features with tract"), "{stdout}");
    assert!(
        stderr.contains("warning: skipped ") && stderr.contains("train/cats/broken.jpg: cannot decode"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 unreadable image(s) skipped, with no row in the feature files:\n  train/cats/broken.jpg"),
        "{stderr}"
    );
    assert!(out.join("gap_TinyConvNet.h5").is_file());

    let second = imgclf(&args);
    let (stdout, _) = text(&second);
    assert!(second.status.success());
    assert!(stdout.contains("reused") && stdout.contains("--force recomputes"), "{stdout}");

    let forced = imgclf(&[&args[..], &["--force"]].concat());
    assert!(!text(&forced).0.contains("reused"));

    if let Some(python) = python_with(&["h5py"]) {
        let script = "import h5py, sys; h = h5py.File(sys.argv[1]); print(h['train'].shape, h['label'][:5].tolist(), h['test_paths'][2].decode())";
        let got = run_python(&python, &["-c", script, s(&out.join("gap_TinyConvNet.h5"))]);
        assert_eq!(got.trim(), "(12, 8) [0, 0, 0, 0, 0] test/10.jpg");
    }
}

#[test]
fn several_models_write_one_file_each_and_splits_can_be_chosen() {
    let (t, model) = scratch();
    // a second backbone: the same graph under another name
    let other = t.path().join("other.onnx");
    std::fs::copy(&model, &other).unwrap();
    let spec = std::fs::read_to_string(t.path().join("tiny_convnet.json")).unwrap().replace("TinyConvNet", "Other");
    std::fs::write(t.path().join("other.json"), spec).unwrap();
    let out = t.path().join("f");
    let data = fixtures().join("tiny_data");
    let o = imgclf(&[
        "extract",
        "--data",
        s(&data),
        "--model",
        s(&model),
        "--model",
        s(&other),
        "--out",
        s(&out),
        "--engine",
        "tract",
        "--splits",
        "train,test",
    ]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(out.join("gap_TinyConvNet.h5").is_file() && out.join("gap_Other.h5").is_file());
    assert!(stdout.contains("train 12, test 3 rows"), "{stdout}");
    assert!(!stdout.contains("validation"), "{stdout}");
}

#[test]
fn bad_arguments_get_one_line_errors_naming_the_culprit() {
    let (t, model) = scratch();
    let data = fixtures().join("tiny_data");
    let no_spec = t.path().join("nospec.onnx");
    std::fs::copy(&model, &no_spec).unwrap();
    let a_file = t.path().join("file.txt");
    std::fs::write(&a_file, "x").unwrap();
    let missing = t.path().join("missing");
    let no_model = t.path().join("none.onnx");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--data", s(&missing), "--model", s(&model)], "--data"),
        (vec!["--data", s(&data), "--model", s(&no_spec)], "nospec.json"),
        (vec!["--data", s(&data), "--model", s(&model), "--splits", "holdout"], "unknown split `holdout`"),
        (vec!["--data", s(&data), "--model", s(&model), "--out", s(&a_file)], "not a folder"),
        (vec!["--data", s(&data), "--model", s(&model), "--engine", "gpu"], "expected auto, ort or tract"),
        (vec!["--data", s(&data), "--model", s(&no_model)], "none.onnx: No such file"),
        (vec!["--data", s(&data), "--model", s(&model), "--device", "gpu"], "expected cpu, cuda or cuda:N"),
        (
            vec!["--data", s(&data), "--model", s(&model), "--device", "cuda", "--engine", "tract"],
            "tract engine runs on the CPU only",
        ),
        (vec!["--data", s(&data), "--model", s(&model), "--precision", "tf32"], "tf32 is a GPU setting"),
    ];
    for (args, expect) in cases {
        let o = imgclf(&[&["extract"][..], &args].concat());
        let (_, stderr) = text(&o);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expect), "{args:?}: expected `{expect}` in:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn help_explains_every_flag() {
    let (stdout, _) = text(&imgclf(&["extract", "--help"]));
    for flag in [
        "--data",
        "--model",
        "--out",
        "--engine",
        "--device",
        "--precision",
        "--batch",
        "--threads",
        "--splits",
        "--force",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag}:\n{stdout}");
    }
}

/// `--device cuda` where ONNX Runtime is a CPU build: one line naming the cause and the fix,
/// a failing exit, and no file; `--device cpu` is the default run, row for row.
#[test]
fn cuda_without_a_gpu_build_stops_before_writing_and_cpu_is_the_default() {
    if !available(imgclf_runtime::ort_environment()) {
        return;
    }
    let (t, model) = scratch();
    let data = fixtures().join("tiny_data");
    let run = |out: &Path, extra: &[&str]| {
        let args = ["extract", "--data", s(&data), "--model", s(&model), "--out", s(out), "--engine", "ort"];
        imgclf(&[&args[..], extra].concat())
    };
    let gpu_out = t.path().join("gpu");
    let o = run(&gpu_out, &["--device", "cuda"]);
    let (_, stderr) = text(&o);
    assert!(!o.status.success());
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(error[0].contains("has no CUDA provider") && error[0].contains("./just setup-gpu"), "{stderr}");
    assert!(!gpu_out.exists(), "nothing written");

    let (default, cpu) = (t.path().join("default"), t.path().join("cpu"));
    assert!(run(&default, &[]).status.success());
    let o = run(&cpu, &["--device", "cpu"]);
    assert!(text(&o).0.contains("with ort in"), "{}", text(&o).0);
    let read = |dir: &Path| imgclf_features::FeatureSet::read(&dir.join("gap_TinyConvNet.h5")).unwrap();
    assert_eq!(read(&default).splits, read(&cpu).splits, "bit for bit");
}

/// A model of input side `size` whose features are its input's channel means: written with
/// the ONNX writer, with its spec, as `name.onnx` in `dir`.
fn pooling_model(dir: &Path, name: &str, size: usize) -> PathBuf {
    use imgclf_runtime::onnx::{Dim, Graph};
    let mut graph = Graph::new(name);
    graph.input("x", &[Dim::Named("N"), Dim::Fixed(3), Dim::Fixed(size), Dim::Fixed(size)]);
    graph.node("GlobalAveragePool", &["x"], "map", vec![]);
    graph.output("map", &[Dim::Named("N"), Dim::Fixed(3), Dim::Fixed(1), Dim::Fixed(1)]);
    let model = dir.join(format!("{name}.onnx"));
    std::fs::write(&model, imgclf_runtime::onnx::encode(&graph.into_model("test", ""))).unwrap();
    let spec = format!(
        r#"{{"name": "{name}", "input": {{"name": "x", "layout": "NCHW", "size": [{size}, {size}], "color": "RGB",
            "scale": "unit"}}, "outputs": {{"features": {{"name": "map"}}}}}}"#
    );
    std::fs::write(model.with_extension("json"), spec).unwrap();
    model
}

/// Three backbones of three input sizes in one call: each photo is decoded once (the
/// library's count), resized once per size, and every file gets its rows.
#[test]
fn three_backbones_decode_each_image_once() {
    let t = tempfile::tempdir().unwrap();
    let models: Vec<PathBuf> =
        [("Small", 12), ("Medium", 20), ("Large", 28)].iter().map(|(n, s)| pooling_model(t.path(), n, *s)).collect();
    let data = fixtures().join("tiny_data");
    let out = t.path().join("f");
    let mut args = vec!["extract", "--data", s(&data), "--out", s(&out), "--engine", "tract"];
    for m in &models {
        args.extend(["--model", s(m)]);
    }
    let o = imgclf(&args);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    // 13 train + 2 validation + 3 test files, the broken one included: 18 decodes, not 54
    assert!(stdout.contains("18 images decoded once for the 3 backbones computed"), "{stdout}");
    for name in ["Small", "Medium", "Large"] {
        assert!(stdout.contains(&format!("{name}: train 12, validation 2, test 3 rows x 3 features")), "{stdout}");
    }
}
