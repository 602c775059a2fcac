//! Killing `imgclf extract` at any point loses nothing: the final name holds either the
//! previous complete file or a new complete one (never a partial file), SIGINT and SIGTERM
//! stop between batches saying how far they got, the rows committed so far wait in
//! `NAME.partial/`, and the next run continues from them. Real child processes and real
//! signals, over the shared cats_dogs photos (decoding is the slow part, so the tiny fixture
//! model keeps each run to a few seconds).

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use imgclf_features::{FeatureSet, partial_dir, partial_status};
use imgclf_testkit::*;

fn spawn(data: &Path, out: &Path, extra: &[&str]) -> Child {
    let flags = ["--batch", "16", "--threads", "2"];
    imgclf_testkit::spawn_extract(data, &fixtures().join("tiny_convnet.onnx"), out, &[&flags[..], extra].concat())
}

/// What `imgclf features status` prints about `dir` (it fails while work is unfinished).
fn imgclf_status(dir: &Path) -> Vec<u8> {
    let o = Command::new(env!("CARGO_BIN_EXE_imgclf")).args(["features", "status"]).arg(dir).output().unwrap();
    assert!(!o.status.success(), "an unfinished extraction is not done");
    o.stdout
}

/// Files in `out` other than the final one and its parts folder: temporary files left behind.
fn leftovers(out: &Path) -> Vec<String> {
    std::fs::read_dir(out)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n != "gap_TinyConvNet.h5" && n != "gap_TinyConvNet.h5.partial")
        .collect()
}

#[test]
fn killed_extractions_leave_the_old_file_or_a_complete_new_one() {
    let Some(shared) = shared() else { return };
    let data = shared.join("data/cats_dogs");
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("features");
    let file = out.join("gap_TinyConvNet.h5");

    // no previous file: a run interrupted early leaves nothing under the final name
    let child = spawn(&data, &out, &[]);
    std::thread::sleep(Duration::from_millis(400));
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "SIGINT mid-run exits non-zero");
    assert!(stderr.contains("interrupted after") && stderr.contains("of 2780 images"), "{stderr}");
    assert!(!file.exists() && leftovers(&out).is_empty(), "{:?}", leftovers(&out));

    let o = spawn(&data, &out, &[]).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let complete = FeatureSet::read(&file).unwrap();
    assert!(!partial_dir(&file).exists(), "the parts are gone once the file is assembled");

    let mut outcomes = Vec::new();
    for signal in ["INT", "TERM", "KILL"] {
        for delay_ms in [100, 500, 1200, 2500] {
            let child = spawn(&data, &out, &["--force"]);
            std::thread::sleep(Duration::from_millis(delay_ms));
            Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
            let o = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
            // whatever the moment, the final name holds a complete file with the same rows
            assert_eq!(FeatureSet::read(&file).unwrap().splits, complete.splits, "{signal} at {delay_ms} ms");
            let left = leftovers(&out);
            match (signal, o.status.success()) {
                (_, true) => outcomes.push(format!("{signal}@{delay_ms}ms: finished first")),
                ("KILL", false) => outcomes.push(format!("{signal}@{delay_ms}ms: killed, {} temp file(s)", left.len())),
                (_, false) => {
                    assert!(stderr.contains("interrupted after"), "{signal} at {delay_ms} ms: {stderr}");
                    assert!(left.is_empty(), "{signal} at {delay_ms} ms left {left:?}");
                    outcomes.push(format!("{signal}@{delay_ms}ms: stopped cleanly"));
                }
            }
            // the next run completes (reusing the file) and sweeps what a SIGKILL left
            let o = spawn(&data, &out, &[]).wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert!(!partial_dir(&file).exists(), "a reused file sweeps the parts of a stopped --force run");
        }
    }
    // a temporary file of a process that no longer exists (a SIGKILL during the write) is swept
    let stale = out.join(".gap_TinyConvNet.h5.tmp-4000000");
    std::fs::write(&stale, b"half an HDF5 file").unwrap();
    let o = spawn(&data, &out, &["--force"]).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    eprintln!("{}", outcomes.join("\n"));
    assert!(outcomes.iter().any(|o| o.contains("stopped cleanly")), "some signal must land mid-run: {outcomes:?}");

    // SIGKILL after two commits (every 4 batches of 16): the rerun continues after them
    std::fs::remove_file(&file).unwrap();
    let child = spawn(&data, &out, &["--checkpoint-batches", "4"]);
    let second = partial_dir(&file).join("part-00001.json");
    let waited = std::time::Instant::now();
    while !second.exists() && waited.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
    assert!(!child.wait_with_output().unwrap().status.success(), "killed before the end");
    let status = partial_status(&file).expect("the parts folder survives a SIGKILL");
    let kept = status.images;
    assert!(kept >= 128 && kept.is_multiple_of(64) && status.total == 2780 && !file.exists(), "{status:?}");
    let shown = String::from_utf8_lossy(&imgclf_status(&out)).into_owned();
    assert!(shown.contains(&format!("partial, {kept} of 2780 images")), "{shown}");
    let head = Command::new(env!("CARGO_BIN_EXE_imgclf"))
        .args(["train-head", "--out"])
        .arg(out.join("run"))
        .arg("--features")
        .arg(&file)
        .output()
        .unwrap();
    let refused = String::from_utf8_lossy(&head.stderr);
    assert!(!head.status.success() && refused.contains("partial") && refused.contains("extract"), "{refused}");
    let o = spawn(&data, &out, &["--checkpoint-batches", "4"]).wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains(&format!("{kept} images done by an earlier run")), "{stdout}");
    assert_eq!(FeatureSet::read(&file).unwrap(), complete, "the same file as an uninterrupted run");
    assert!(!partial_dir(&file).exists() && leftovers(&out).is_empty(), "{:?}", leftovers(&out));
}
