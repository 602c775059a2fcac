//! Bad arguments and bad files: each gets a one-line error naming the file or flag, a
//! non-zero exit, no panic, and nothing half-written.

use std::path::Path;
use std::process::{Command, Output};

use imgclf_testkit::fixtures;
use imgclf_testkit::imgclf;

/// The same, with the file size limited to `kb` KiB (the write fails as on a full disk).
fn imgclf_limited(dir: &Path, kb: u32, args: &[&str]) -> Output {
    let script = format!("trap '' XFSZ; ulimit -f {kb}; exec \"$0\" \"$@\"");
    Command::new("bash")
        .current_dir(dir)
        .args(["-c", &script, env!("CARGO_BIN_EXE_imgclf")])
        .args(args)
        .output()
        .unwrap()
}

/// The one-line error of a failed run.
fn error(o: &Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("error: "), "{stderr}");
    last
}

fn extract_args(out: &str) -> Vec<String> {
    let f = fixtures();
    ["extract", "--engine", "tract", "--data", f.join("tiny_data").to_str().unwrap()]
        .into_iter()
        .map(String::from)
        .chain(["--model".into(), f.join("tiny_convnet.onnx").to_str().unwrap().into(), "--out".into(), out.into()])
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn files_where_folders_belong_and_folders_that_are_not_runs_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("afile"), b"keep me").unwrap();
    let e = error(&imgclf(d, &strs(&extract_args("afile"))));
    assert!(e.contains("--out afile") && e.contains("not a folder"), "{e}");

    assert!(imgclf(d, &strs(&extract_args("f"))).status.success());
    let head = ["train-head", "--features", "f/gap_TinyConvNet.h5", "--epochs", "1", "--out"];
    let e = error(&imgclf(d, &[&head[..], &["afile", "--force"]].concat()));
    assert!(e.contains("afile") && e.contains("is a file"), "{e}");
    assert_eq!(std::fs::read(d.join("afile")).unwrap(), b"keep me");

    std::fs::create_dir(d.join("photos")).unwrap();
    std::fs::write(d.join("photos/holiday.jpg"), b"precious").unwrap();
    let e = error(&imgclf(d, &[&head[..], &["photos", "--force"]].concat()));
    assert!(e.contains("no run.json") && e.contains("not replaced"), "{e}");
    assert!(d.join("photos/holiday.jpg").exists());
}

#[test]
fn damaged_or_outdated_files_are_refused_by_name() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    assert!(imgclf(d, &strs(&extract_args("f"))).status.success());
    let h5 = d.join("f/gap_TinyConvNet.h5");
    let pristine = std::fs::read(&h5).unwrap();
    let ok = imgclf(d, &["train-head", "--features", "f/gap_TinyConvNet.h5", "--epochs", "1", "--out", "run"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    // a run folder written by another format version
    let json = d.join("run/run.json");
    let text = std::fs::read_to_string(&json).unwrap().replace("imgclf-run/1", "imgclf-run/0");
    std::fs::write(&json, text).unwrap();
    let e = error(&imgclf(d, &["evaluate", "--run", "run"]));
    assert!(e.contains("run.json") && e.contains("imgclf-run/0"), "{e}");

    // a truncated feature file, and one with a flipped bit in its header
    std::fs::write(&h5, &pristine[..pristine.len() / 3]).unwrap();
    let e = error(&imgclf(d, &["train-head", "--features", "f/gap_TinyConvNet.h5", "--out", "run2"]));
    assert!(e.contains("gap_TinyConvNet.h5") && e.contains("truncated") && e.contains("extract again"), "{e}");
    let mut flipped = pristine.clone();
    flipped[0] ^= 0x01;
    std::fs::write(&h5, &flipped).unwrap();
    let e = error(&imgclf(d, &["train-head", "--features", "f/gap_TinyConvNet.h5", "--out", "run2"]));
    assert!(e.contains("gap_TinyConvNet.h5"), "{e}");
    assert!(!d.join("run2").exists());
}

#[test]
fn a_full_disk_names_the_file_removes_the_temporary_one_and_keeps_the_old_file() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    assert!(imgclf(d, &strs(&extract_args("f"))).status.success());
    let h5 = d.join("f/gap_TinyConvNet.h5");
    let before = std::fs::read(&h5).unwrap();

    let mut args = extract_args("f");
    args.push("--force".into());
    let e = error(&imgclf_limited(d, 8, &strs(&args)));
    assert!(e.contains("f/gap_TinyConvNet.h5") && e.contains("File too large"), "{e}");
    assert_eq!(std::fs::read(&h5).unwrap(), before, "the previous complete file is untouched");
    let names: Vec<_> = std::fs::read_dir(d.join("f")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");

    let e = error(&imgclf_limited(d, 1, &["train-head", "--features", "f/gap_TinyConvNet.h5", "--out", "run"]));
    assert!(e.contains("File too large"), "{e}");
    let names: Vec<_> = std::fs::read_dir(d).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, ["f"], "no run folder and no staging folder: {names:?}");

    // the disk fills after the checkpoints (each part is small, the whole file is not): the
    // committed rows are kept, said so, and the same command finishes from them
    let mut args = extract_args("g");
    args.extend(["--batch", "2", "--checkpoint-batches", "1"].map(String::from));
    let e = error(&imgclf_limited(d, 24, &strs(&args)));
    assert!(e.contains("File too large") && e.contains("18 of 18 images kept in g/gap_TinyConvNet.h5.partial"), "{e}");
    assert!(e.contains("run the same command to continue") && !d.join("g/gap_TinyConvNet.h5").exists(), "{e}");
    let o = imgclf(d, &strs(&args));
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("18 images done by an earlier run"));
    assert!(!d.join("g/gap_TinyConvNet.h5.partial").exists());
}
