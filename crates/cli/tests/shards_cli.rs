//! `imgclf extract --shard` and `imgclf features merge|status` as a user runs them, on the
//! shared traffic_signs photos (5,160 PNGs, 43 classes): the merged file equals an unsharded
//! extract as h5py reads it, a killed shard is redone while finished ones are reused, and
//! heads train and predict on the merged file exactly as on the unsharded one.

use std::path::{Path, PathBuf};
use std::process::Command;

use imgclf_testkit::*;
use imgclf_testkit::{run as imgclf, run_ok as ok};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn signs() -> Option<PathBuf> {
    shared().map(|dir| dir.join("data/traffic_signs")).filter(|d| d.is_dir())
}

/// The extract arguments every run here shares: same engine, threads and batch, so shards
/// compute exactly the unsharded batches.
fn extract_args<'a>(data: &'a Path, model: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "extract",
        "--data",
        s(data),
        "--model",
        s(model),
        "--out",
        s(out),
        "--engine",
        "tract",
        "--threads",
        "2",
        "--batch",
        "64",
    ]
}

/// h5py's view of two feature files: every dataset and every attribute equal.
const SAME_FILE: &str = r#"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert sorted(a.keys()) == sorted(b.keys()), (sorted(a.keys()), sorted(b.keys()))
for k in a.keys():
    assert a[k].dtype == b[k].dtype and np.array_equal(a[k][:], b[k][:]), k
assert sorted(a.attrs) == sorted(b.attrs), (sorted(a.attrs), sorted(b.attrs))
for k in a.attrs:
    assert np.array_equal(a.attrs[k], b.attrs[k]), k
print(len(a.keys()), "datasets,", len(a.attrs), "attributes equal")
"#;

fn assert_same_file(python: &Path, a: &Path, b: &Path) {
    let out = run_python(python, &["-c", SAME_FILE, s(a), s(b)]);
    assert!(out.contains("datasets,"), "{out}");
}

#[test]
fn shards_of_1_2_3_and_7_merge_into_the_unsharded_file() {
    let (Some(data), Some(python)) = (signs(), python_with(&["h5py", "numpy"])) else { return };
    let t = tempfile::tempdir().unwrap();
    let model = fixtures().join("tiny_convnet.onnx");
    let whole = t.path().join("whole");
    ok(&extract_args(&data, &model, &whole));
    for n in [1, 2, 3, 7] {
        let out = t.path().join(format!("n{n}"));
        for k in 0..n {
            let part = format!("{k}/{n}");
            let stdout = ok(&[&extract_args(&data, &model, &out)[..], &["--shard", &part]].concat());
            assert!(stdout.contains(&format!("gap_TinyConvNet.shard-{k}-of-{n}.h5")), "{stdout}");
        }
        let merged = ok(&["features", "merge", s(&out)]);
        assert!(merged.contains(&format!("{n} shards merged")) && merged.contains("train 3870, test 1290"), "{merged}");
        assert_same_file(&python, &out.join("gap_TinyConvNet.h5"), &whole.join("gap_TinyConvNet.h5"));
        let again = ok(&extract_args(&data, &model, &out));
        assert!(again.contains("reused"), "an unsharded extract reuses the merged file: {again}");
    }
    // under a budget of 100 B (3 rows of 8 floats at a time), the same file
    let merged = ok(&["features", "merge", s(&t.path().join("n3")), "--force", "--copy-buffer", "100B"]);
    assert!(merged.contains("3 shards merged"), "{merged}");
    assert_same_file(&python, &t.path().join("n3/gap_TinyConvNet.h5"), &whole.join("gap_TinyConvNet.h5"));
}

/// A shard killed while it writes leaves only a temporary file: status shows it, a rerun of
/// the whole array recomputes it alone, and the merge equals the unsharded file.
#[test]
fn a_killed_shard_is_redone_and_the_finished_ones_are_reused() {
    let (Some(data), Some(python)) = (signs(), python_with(&["h5py", "numpy"])) else { return };
    let t = tempfile::tempdir().unwrap();
    let model = fixtures().join("tiny_convnet.onnx");
    let out = t.path().join("f");
    let shard = |k: usize| {
        let part = format!("{k}/3");
        let args: Vec<String> = [&extract_args(&data, &model, &out)[..], &["--shard", &part]]
            .concat()
            .iter()
            .map(|a| a.to_string())
            .collect();
        args
    };
    ok(&shard(0).iter().map(String::as_str).collect::<Vec<_>>());
    // shard 1, killed once its temporary file exists (one image at a time: it takes a while)
    let mut slow = shard(1);
    for flag in ["--batch", "--threads"] {
        let at = slow.iter().position(|a| a == flag).unwrap();
        slow[at + 1] = "1".into();
    }
    slow.extend(["--decode-threads", "1"].map(String::from));
    let mut child = Command::new(env!("CARGO_BIN_EXE_imgclf")).args(&slow).spawn().unwrap();
    let temporary = |dir: &Path| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains(".tmp-"))
    };
    while !temporary(&out) && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.join("gap_TinyConvNet.shard-1-of-3.h5").exists(), "killed before it finished");

    let status = imgclf(&["features", "status", s(&out)]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(!status.status.success(), "not done yet");
    assert!(text.contains("TinyConvNet (3 shards): done 0 | writing 1 | missing 2 | damaged -"), "{text}");

    let reruns: Vec<String> = (0..3).map(|k| ok(&shard(k).iter().map(String::as_str).collect::<Vec<_>>())).collect();
    assert!(
        reruns[0].contains("reused") && !reruns[1].contains("reused") && !reruns[2].contains("reused"),
        "{reruns:?}"
    );
    let again: Vec<String> = (0..3).map(|k| ok(&shard(k).iter().map(String::as_str).collect::<Vec<_>>())).collect();
    assert!(again.iter().all(|o| o.contains("reused")), "a second rerun recomputes nothing: {again:?}");
    ok(&["features", "merge", s(&out)]);
    assert!(ok(&["features", "status", s(&out)]).contains("done 0,1,2 | writing - | missing - | damaged - | merged"));
    let whole = t.path().join("whole");
    ok(&extract_args(&data, &model, &whole));
    assert_same_file(&python, &out.join("gap_TinyConvNet.h5"), &whole.join("gap_TinyConvNet.h5"));

    // heads train and predict on the merged file exactly as on the unsharded one
    let mut weights = Vec::new();
    let mut csvs = Vec::new();
    for (name, dir) in [("merged", &out), ("whole", &whole)] {
        let run = t.path().join(format!("run-{name}"));
        let features = dir.join("gap_TinyConvNet.h5");
        ok(&["train-head", "--features", s(&features), "--out", s(&run), "--epochs", "2", "--seed", "3"]);
        weights.push(std::fs::read(run.join("weights.safetensors")).unwrap());
        let csv = t.path().join(format!("{name}.csv"));
        ok(&["predict", "--run", s(&run), "--split", "test", "--csv", s(&csv)]);
        csvs.push(std::fs::read_to_string(csv).unwrap());
    }
    assert_eq!(weights[0], weights[1], "the same head");
    assert_eq!(csvs[0], csvs[1], "the same predictions");
}

#[test]
fn shard_flags_and_shard_files_are_checked() {
    let t = tempfile::tempdir().unwrap();
    let model = fixtures().join("tiny_convnet.onnx");
    let data = fixtures().join("tiny_data");
    let out = t.path().join("f");
    let mut base = extract_args(&data, &model, &out);
    *base.last_mut().unwrap() = "4"; // 13 train images: 4 batches, so up to 4 shards
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--shard", "3/3"], "K must be below N"),
        (vec!["--shard", "half"], "expected K/N"),
        (vec!["--shard", "1/3", "--shards", "4"], "--shards 4 disagrees with --shard 1/3"),
        (vec!["--shards", "4"], "--shards N goes with --shard auto"),
        (vec!["--shard", "auto"], "neither SLURM_ARRAY_TASK_ID"),
    ];
    for (extra, expect) in cases {
        let o = Command::new(env!("CARGO_BIN_EXE_imgclf"))
            .args([&base[..], &extra].concat())
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("JOB_COMPLETION_INDEX")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && stderr.contains(expect), "{extra:?}: expected `{expect}` in {stderr}");
    }
    // a Slurm array task, as sbatch starts it
    let o = Command::new(env!("CARGO_BIN_EXE_imgclf"))
        .args([&base[..], &["--shard", "auto"]].concat())
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("gap_TinyConvNet.shard-1-of-2.h5").is_file());
    // a shard is a part: heads refuse it and say how to join the parts
    let o = imgclf(&[
        "train-head",
        "--features",
        s(&out.join("gap_TinyConvNet.shard-1-of-2.h5")),
        "--out",
        s(&t.path().join("r")),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("shard 1/2 of TinyConvNet") && stderr.contains("imgclf features merge"),
        "{stderr}"
    );
    let o = imgclf(&["features", "merge", s(&out)]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("1 of 2 shards missing: gap_TinyConvNet.shard-0-of-2.h5"),
        "{stderr}"
    );
}
