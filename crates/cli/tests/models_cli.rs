//! `imgclf models` and `--model NAME`, with the cache in a scratch `$IMGCLF_HOME`.

use std::path::Path;
use std::process::{Command, Output};

use imgclf_testkit::fixtures;

fn imgclf(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imgclf")).env("IMGCLF_HOME", home).args(args).output().expect("imgclf runs")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    assert!(!o.status.success(), "should fail: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn models_are_added_checked_listed_shown_and_named_in_extract() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let model = fixtures().join("tiny_convnet.onnx");
    let m = model.to_str().unwrap();
    assert!(stdout(&imgclf(&home, &["models", "list"])).contains("no models in"));

    assert!(stdout(&imgclf(&home, &["models", "add", m])).contains("registered tinyconvnet"));
    let again = stderr(&imgclf(&home, &["models", "add", m]));
    assert!(again.contains("already registered") && again.contains("--replace"), "{again}");
    stdout(&imgclf(&home, &["models", "add", m, "--replace"]));
    stdout(&imgclf(&home, &["models", "add", m, "--name", "tiny-2"]));
    let list = stdout(&imgclf(&home, &["models", "list"]));
    let names: Vec<&str> =
        list.lines().filter(|l| !l.starts_with(' ')).map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(names, ["tiny-2", "tinyconvnet", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]);
    assert!(list.contains("`imgclf models pull efficientnet-lite0`"), "what can be pulled is listed: {list}");
    assert!(list.contains("16x16 Nchw Rgb"), "{list}");

    let show = stdout(&imgclf(&home, &["models", "show", "tinyconvnet"]));
    assert!(show.contains("(checked)") && show.contains("tinyconvnet.onnx"), "{show}");
    let missing = stderr(&imgclf(&home, &["models", "show", "resnet"]));
    assert!(missing.contains("no model `resnet`") && missing.contains("tiny-2, tinyconvnet"), "{missing}");

    // A spec whose output the model lacks is refused by loading it, and nothing is written.
    let spec = t.path().join("wrong.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("tiny_convnet.json")).unwrap()).unwrap();
    json["outputs"]["features"]["name"] = "no_such_output".into();
    std::fs::write(&spec, json.to_string()).unwrap();
    let err = stderr(&imgclf(&home, &["models", "add", m, "--spec", spec.to_str().unwrap(), "--name", "wrong"]));
    assert!(err.contains("no_such_output"), "{err}");
    assert!(!home.join("models/wrong.onnx").exists() && !home.join("models/wrong.json").exists());

    // extract takes a registered name for --model.
    let out = t.path().join("features");
    let data = fixtures().join("tiny_data");
    let args = [
        "extract",
        "--data",
        data.to_str().unwrap(),
        "--model",
        "tinyconvnet",
        "--out",
        out.to_str().unwrap(),
        "--engine",
        "tract",
    ];
    stdout(&imgclf(&home, &args));
    assert!(out.join("gap_TinyConvNet.h5").is_file());

    // A registered file that changed is reported by `show`.
    let registered = home.join("models/tinyconvnet.onnx");
    let mut bytes = std::fs::read(&registered).unwrap();
    bytes.push(1);
    std::fs::write(&registered, bytes).unwrap();
    assert!(stdout(&imgclf(&home, &["models", "show", "tinyconvnet"])).contains("CHANGED since it was added"));
}

#[test]
fn presets_describe_usual_exports_and_refuse_models_they_do_not_fit() {
    let Some(shared) = imgclf_testkit::shared() else { return };
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let lite0 = shared.join("models/efficientnet_lite0.onnx");
    let m = lite0.to_str().unwrap();
    let ok = stdout(&imgclf(&home, &["models", "add", m, "--preset", "efficientnet-lite0", "--name", "lite0"]));
    assert!(ok.contains("registered lite0"), "{ok}");
    let list = stdout(&imgclf(&home, &["models", "list"]));
    assert!(list.contains("1280 features") && list.contains("registered from its preset"), "{list}");

    // the ResNet50 preset says NHWC 224x224x3: Lite0's NCHW input contradicts it
    let err = stderr(&imgclf(&home, &["models", "add", m, "--preset", "keras-resnet50", "--name", "wrong"]));
    assert!(err.contains("input") && err.lines().count() == 1, "{err}");
    assert!(!home.join("models/wrong.onnx").exists());

    let err = stderr(&imgclf(&home, &["models", "add", m, "--preset", "vgg16"]));
    assert!(err.contains("keras-resnet50, keras-inceptionv3, keras-xception"), "{err}");
    let err = stderr(&imgclf(&home, &["models", "add", m, "--preset", "keras-xception", "--spec", "x.json"]));
    assert!(err.contains("cannot be used with"), "{err}");
}
