//! The sharded extraction on a real Slurm (`.ci/run` starts a one-node cluster with
//! deploy/slurm/local-cluster.sh): deploy/slurm/extract.sbatch as an array of 3 with EfficientNet-Lite0
//! over the shared traffic_signs photos, then deploy/slurm/merge.sbatch after it; the merged file
//! equals one unsharded process's. Skips locally when no Slurm answers; fails under CI.

use std::path::Path;
use std::process::Command;

use imgclf_testkit::*;

/// Whether a Slurm controller answers with an idle (or partly busy) node.
fn slurm_up() -> bool {
    let states = Command::new("sinfo").args(["-h", "-o", "%T"]).output();
    match states {
        Ok(o)
            if o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|s| s.starts_with("idle") || s.starts_with("mixed")) =>
        {
            true
        }
        Ok(o) => {
            skip(&format!(
                "Slurm has no idle node: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ));
            false
        }
        Err(e) => {
            skip(&format!("no Slurm here (sinfo: {e}); deploy/slurm/local-cluster.sh start makes one"));
            false
        }
    }
}

fn sbatch(args: &[&str]) -> String {
    let o = Command::new("sbatch").args(args).output().expect("sbatch runs");
    assert!(o.status.success(), "sbatch {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn an_array_of_3_then_the_merge_equal_one_process() {
    let (Some(shared), Some(python)) = (shared(), python_with(&["h5py", "numpy"])) else { return };
    if !available(imgclf_runtime::ort_environment()) || !slurm_up() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = workspace_root();
    let data = shared.join("data/traffic_signs");
    let model = std::fs::canonicalize(shared.join("models/efficientnet_lite0.onnx")).unwrap();
    let out = t.path().join("features");
    let logs = t.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let binary = env!("CARGO_BIN_EXE_imgclf");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let export = format!(
        "ALL,DATA={},MODELS={},OUT={},IMGCLF={binary},EXTRA=--engine ort --batch 32",
        s(&data),
        s(&model),
        s(&out)
    );
    let script = |name: &str| s(&root.join("deploy/slurm").join(name));
    let array = sbatch(&[
        "--parsable",
        "--wait",
        "--array=0-2",
        "--cpus-per-task=1",
        &format!("--output={}/extract-%A_%a.out", s(&logs)),
        &format!("--export={export}"),
        &script("extract.sbatch"),
    ]);
    let merge = sbatch(&[
        "--parsable",
        "--wait",
        &format!("--dependency=afterok:{array}"),
        "--kill-on-invalid-dep=yes",
        &format!("--output={}/merge-%j.out", s(&logs)),
        &format!("--export={export}"),
        &script("merge.sbatch"),
    ]);
    let log = std::fs::read_to_string(logs.join(format!("merge-{merge}.out"))).unwrap();
    assert!(log.contains("EfficientNet-Lite0: 3 shards merged") && log.contains("train 3870, test 1290"), "{log}");

    // one process with the threads each task had
    let whole = t.path().join("whole");
    let o = Command::new(binary)
        .args(["extract", "--data", &s(&data), "--model", &s(&model), "--out", &s(&whole), "--engine", "ort"])
        .args(["--batch", "32", "--threads", "1", "--decode-threads", "1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let same = r#"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert sorted(a.keys()) == sorted(b.keys()) and sorted(a.attrs) == sorted(b.attrs)
assert all(np.array_equal(a[k][:], b[k][:]) for k in a.keys())
assert all(np.array_equal(a.attrs[k], b.attrs[k]) for k in a.attrs)
print("equal")
"#;
    let merged = out.join("gap_EfficientNet-Lite0.h5");
    let answer = run_python(&python, &["-c", same, &s(&merged), &s(&whole.join("gap_EfficientNet-Lite0.h5"))]);
    assert_eq!(answer.trim(), "equal");
}
