//! Running the `imgclf` binary as a user would, and looking at what it left.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The `imgclf` binary the tests run: `CARGO_BIN_EXE_imgclf` when the test runner sets it,
/// else beside the test binary's `deps` folder (cargo builds a package's binaries before its
/// integration tests).
pub fn imgclf_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CARGO_BIN_EXE_imgclf") {
        return PathBuf::from(bin);
    }
    let test = std::env::current_exe().expect("the test binary's path");
    test.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").join("imgclf")
}

/// `imgclf ARGS` run in the current folder.
pub fn run(args: &[&str]) -> Output {
    Command::new(imgclf_bin()).args(args).output().expect("imgclf runs")
}

/// `imgclf ARGS` in the current folder, which must succeed; its stdout.
pub fn run_ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "imgclf {args:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `imgclf ARGS` run in `dir`.
pub fn imgclf(dir: &Path, args: &[&str]) -> Output {
    Command::new(imgclf_bin()).current_dir(dir).args(args).output().expect("imgclf runs")
}

/// `imgclf ARGS` started in `dir` with its output piped: for a test that signals, races or
/// times it.
pub fn spawn_in(dir: &Path, args: &[&str]) -> Child {
    let mut command = Command::new(imgclf_bin());
    command.current_dir(dir).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.spawn().unwrap()
}

/// `imgclf extract` of `data` through `model` into `out` with tract, then `flags`, started
/// with its output piped.
pub fn spawn_extract(data: &Path, model: &Path, out: &Path, flags: &[&str]) -> Child {
    let paths = ["--data", s(data), "--model", s(model), "--out", s(out)];
    spawn_in(Path::new("."), &[&["extract", "--engine", "tract"][..], &paths, flags].concat())
}

/// `imgclf ARGS` in `dir`, which must succeed; its stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let o = imgclf(dir, args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The one line of a refused command: exit 1, no panic, a single `error:` line on stderr.
pub fn refused(o: &Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "exit 1: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

/// The error of a failed command that may have said what it was doing first: exit 1, no
/// panic, one `error:` line and it last.
pub fn failed(o: &Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "exit 1: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert_eq!(stderr.lines().rfind(|l| !l.trim().is_empty()), Some(errors[0]), "{stderr}");
    errors[0].to_string()
}

/// Every path under `dir` (hidden ones included) with its size and bytes' hash, sorted: equal
/// listings mean nothing was created, removed or changed.
pub fn snapshot(dir: &Path) -> Vec<(String, u64, u64)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64, u64)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                let hash = bytes
                    .iter()
                    .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
                out.push((name, meta.len(), hash));
            } else {
                out.push((name, 0, 0));
                if meta.is_dir() {
                    walk(root, &path, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// A path as the `&str` an argument list takes.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `src` copied to `dst`, files and folders.
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap().flatten() {
        let to = dst.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &to)
        } else {
            std::fs::copy(entry.path(), &to).map(|_| ()).unwrap()
        }
    }
}

/// A copy of the tiny fixture model under another name whose bytes differ (an unknown protobuf
/// field appended, which ONNX readers skip): a second backbone of the same graph.
pub fn second_model(fixtures: &Path, dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(fixtures.join("tiny_convnet.onnx")).unwrap();
    bytes.extend([0xC0, 0x3E, 0x01]); // field 1000, varint 1
    std::fs::write(dir.join("other.onnx"), bytes).unwrap();
    let spec = std::fs::read_to_string(fixtures.join("tiny_convnet.json")).unwrap();
    std::fs::write(dir.join("other.json"), spec.replace("TinyConvNet", "Other").replace("tiny_convnet", "other"))
        .unwrap();
    dir.join("other.onnx")
}

/// `imgclf extract` of `data` with the tiny fixture model on tract into `out`, with `flags`,
/// which must succeed; the feature file it wrote.
pub fn extract_tiny(data: &Path, out: &Path, flags: &[&str]) -> PathBuf {
    let model = crate::fixtures().join("tiny_convnet.onnx");
    let args = ["extract", "--data", s(data), "--model", s(&model), "--out", s(out), "--engine", "tract"];
    run_ok(&[&args[..], flags].concat());
    out.join("gap_TinyConvNet.h5")
}

/// `imgclf train-head` on `features` (3 epochs, batches of 4) into `run`, which must succeed;
/// the bytes of its weights file, to compare heads trained on two sources.
pub fn head_weights(features: &Path, run: &Path) -> Vec<u8> {
    run_ok(&["train-head", "--features", s(features), "--out", s(run), "--epochs", "3", "--batch", "4"]);
    std::fs::read(run.join("weights.safetensors")).unwrap()
}
