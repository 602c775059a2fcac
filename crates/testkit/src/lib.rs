//! What the workspace's integration tests share, in one dev-only crate instead of modules
//! included by path: where the project, its fixtures and `../shared` are; a Python with the
//! modules a test needs; [`skip`] (a message locally, a failure under CI, so nothing is skipped
//! silently); the `imgclf` binary run as a user would ([`imgclf`], [`ok`], [`spawn_in`]); and
//! the assertions the command-line tests make ([`refused`], [`failed`], [`snapshot`]).

mod cli;

pub use cli::*;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The project root (the workspace folder): `IMGCLF_ROOT` for a test binary carried to another
/// machine (tools/gpu_check.sh), else where the tests were built.
pub fn workspace_root() -> PathBuf {
    if let Some(root) = std::env::var_os("IMGCLF_ROOT").filter(|r| !r.is_empty()) {
        return PathBuf::from(root);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("crates/testkit layout").to_path_buf()
}

/// The checked-in fixtures (`fixtures/`: the tiny model, photos, feature files).
pub fn fixtures() -> PathBuf {
    workspace_root().join("fixtures")
}

/// Prints why a test cannot run here; under CI that is a failure instead.
pub fn skip(reason: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        panic!("CI must provide this, but: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// `../shared` beside the project, when present.
pub fn shared() -> Option<PathBuf> {
    let dir = workspace_root().join("../shared");
    if dir.join("models/efficientnet_lite0.onnx").is_file() && dir.join("data/cats_dogs").is_dir() {
        Some(dir)
    } else {
        skip(&format!("{} is absent (the shared data and models live there)", dir.display()));
        None
    }
}

/// A Python that imports every module in `modules`: `$IMGCLF_PYTHON`, the project's
/// `.venv`, or `python3`.
pub fn python_with(modules: &[&str]) -> Option<PathBuf> {
    let candidates = std::env::var_os("IMGCLF_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace_root().join(".venv/bin/python"), PathBuf::from("python3")]);
    let import = format!("import {}", modules.join(", "));
    for python in candidates {
        let ok = Command::new(&python).args(["-c", &import]).output().is_ok_and(|o| o.status.success());
        if ok {
            return Some(python);
        }
    }
    skip(&format!("no Python with {} (run `just setup`, or set IMGCLF_PYTHON)", modules.join(", ")));
    None
}

/// Whether something a test needs could be set up here (ONNX Runtime's library:
/// `available(imgclf_runtime::ort_environment())`); when not, [`skip`] with its reason.
pub fn available<T, E: std::fmt::Display>(setup: Result<T, E>) -> bool {
    match setup {
        Ok(_) => true,
        Err(e) => {
            skip(&e.to_string());
            false
        }
    }
}

/// Runs a Python snippet and returns its stdout, failing the test with its stderr.
pub fn run_python(python: &Path, args: &[&str]) -> String {
    let out = Command::new(python).args(args).output().expect("python runs");
    assert!(out.status.success(), "python {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// max |a - b| / max |b|: the relative difference of two vectors.
pub fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let num = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    let den = b.iter().map(|y| y.abs()).fold(0.0, f32::max);
    num / den.max(1e-12)
}
