//! Getting ONNX Runtime's CUDA execution provider ready: the loaded library must have it, and
//! the CUDA and cuDNN libraries it opens must be found wherever they were installed (pip's
//! `nvidia/*` wheels, `CUDA_HOME`, `/usr/local/cuda*`, the system folders). Each failure is
//! one line that names the cause and the fix.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::ep::ExecutionProvider;

use crate::RuntimeError;

/// `required NAME` / `optional NAME` lines, in load order (see the file's header).
const LIBRARIES: &str = include_str!("cuda_libraries.txt");

/// Each library of [`LIBRARIES`] with whether the provider needs it.
fn libraries() -> impl Iterator<Item = (&'static str, bool)> {
    LIBRARIES.lines().filter_map(|line| match line.split_whitespace().collect::<Vec<_>>()[..] {
        ["required", name] => Some((name, true)),
        ["optional", name] => Some((name, false)),
        _ => None,
    })
}

/// The fix every message ends with.
const FIX: &str = "install the onnxruntime-gpu wheel and point ORT_DYLIB_PATH at its libonnxruntime.so";

static READY: OnceLock<Result<(), String>> = OnceLock::new();

/// Checks, once per process, that the loaded ONNX Runtime has a CUDA provider and that the
/// CUDA and cuDNN libraries load; `ort_library` is the `libonnxruntime` in use.
pub(crate) fn ready(ort_library: &Path) -> Result<(), RuntimeError> {
    READY
        .get_or_init(|| {
            let has_cuda = ort::ep::CUDA::is_available().map_err(|e| e.to_string())?;
            if !has_cuda {
                return Err(format!(
                    "this ONNX Runtime ({}, at {}) has no CUDA provider (a CPU build): {FIX}",
                    version_of(ort_library),
                    ort_library.display()
                ));
            }
            if ort::util::preload_dylib("libcuda.so.1").is_err() {
                return Err("no NVIDIA driver on this machine (libcuda.so.1 does not load): CUDA needs an NVIDIA GPU \
                            with its driver; compute on the CPU instead"
                    .into());
            }
            let failed = preload(&search_folders(ort_library))?;
            if !failed.is_empty() {
                eprintln!(
                    "warning: optional CUDA libraries did not load: {}; cuDNN opens its sub-libraries at their first \
                     use, and may fail there",
                    failed.join(", ")
                );
            }
            Ok(())
        })
        .clone()
        .map_err(RuntimeError::Device)
}

/// Loads each CUDA/cuDNN library from the first folder that has it (else by name, through
/// the system's loader cache), so the provider finds them wherever they were installed.
/// A required library that does not load is the error; the optional ones that did not load
/// come back, each with why.
fn preload(folders: &[PathBuf]) -> Result<Vec<String>, String> {
    let (missing, failed) = preload_each(folders, libraries());
    if missing.is_empty() {
        return Ok(failed);
    }
    let looked: Vec<String> = folders.iter().filter(|f| f.is_dir()).map(|f| f.display().to_string()).collect();
    Err(format!(
        "CUDA 13 / cuDNN 9 libraries not found or not loadable: {} (looked in {} and the system's loader paths): \
         install them (NVIDIA's pip wheels), or set CUDA_HOME to a CUDA 13 installation",
        missing.join(", "),
        if looked.is_empty() { "no existing folder".to_string() } else { looked.join(", ") }
    ))
}

/// The (required, optional) libraries of `libraries` that did not load, each with why.
fn preload_each(
    folders: &[PathBuf],
    libraries: impl Iterator<Item = (&'static str, bool)>,
) -> (Vec<String>, Vec<String>) {
    let (mut missing, mut failed) = (Vec::new(), Vec::new());
    for (name, required) in libraries {
        let loaded = match folders.iter().map(|f| f.join(name)).find(|p| p.is_file()) {
            Some(path) => ort::util::preload_dylib(&path).map_err(|e| format!("{}: {e}", path.display())),
            // a required library's absence is named in the error's list; an optional one's here
            None => ort::util::preload_dylib(name)
                .map_err(|_| if required { name.to_string() } else { format!("{name} (not found)") }),
        };
        match loaded {
            Err(e) if required => missing.push(e),
            Err(e) => failed.push(e),
            Ok(()) => {}
        }
    }
    (missing, failed)
}

/// Where CUDA and cuDNN may be, most specific first: `CUDA_HOME`/`CUDA_PATH`, the `nvidia`
/// wheels beside the ONNX Runtime package, `/usr/local/cuda*`, `LD_LIBRARY_PATH`, the system.
fn search_folders(ort_library: &Path) -> Vec<PathBuf> {
    let mut folders = Vec::new();
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(root) = std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from) {
            folders.extend(cuda_root_folders(&root));
        }
    }
    // .../site-packages/onnxruntime/capi/libonnxruntime.so.X -> .../site-packages
    if let Some(site) = ort_library.parent().and_then(Path::parent).and_then(Path::parent) {
        for sub in ["nvidia/cu13/lib", "nvidia/cudnn/lib", "nvidia/cublas/lib", "nvidia/cuda_runtime/lib"] {
            folders.push(site.join(sub));
        }
    }
    let mut installs: Vec<PathBuf> = std::fs::read_dir("/usr/local")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("cuda")))
        .collect();
    // the newest version first (cuda-13.0 before cuda-12.8; the `cuda` link sorts first)
    installs.sort();
    installs.reverse();
    for root in installs {
        folders.extend(cuda_root_folders(&root));
    }
    if let Some(paths) = std::env::var_os("LD_LIBRARY_PATH") {
        folders.extend(std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()));
    }
    folders.extend(["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu"].map(PathBuf::from));
    folders
}

fn cuda_root_folders(root: &Path) -> Vec<PathBuf> {
    let mut folders = vec![root.join("lib64"), root.join("lib")];
    let targets = std::fs::read_dir(root.join("targets")).into_iter().flatten().flatten();
    folders.extend(targets.map(|t| t.path().join("lib")));
    folders
}

/// `1.32.0` from `libonnxruntime.so.1.32.0`; the file name when it carries no version.
fn version_of(library: &Path) -> String {
    let name = library.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.strip_prefix("libonnxruntime.so.").map_or(name.clone(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wheel_folders_beside_onnxruntime_are_searched() {
        let lib = Path::new("/venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1");
        let folders = search_folders(lib);
        let site = Path::new("/venv/lib/python3.11/site-packages");
        assert!(folders.contains(&site.join("nvidia/cu13/lib")), "{folders:?}");
        assert!(folders.contains(&site.join("nvidia/cudnn/lib")), "{folders:?}");
        assert!(folders.contains(&PathBuf::from("/usr/lib/x86_64-linux-gnu")));
        assert_eq!(version_of(lib), "1.31.1");
    }

    #[test]
    fn missing_libraries_are_named_with_the_fix() {
        if ort::util::preload_dylib("libcudart.so.13").is_ok() {
            eprintln!("skipped: this machine has CUDA 13 in its loader paths, so nothing is missing");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let err = preload(&[t.path().to_path_buf()]).unwrap_err();
        assert!(err.contains("libcudart.so.13") && err.contains("libcudnn.so.9"), "{err}");
        assert!(err.contains("CUDA_HOME") && err.contains(&t.path().display().to_string()), "{err}");
        // optional libraries are not reported
        assert!(!err.contains("libnvrtc"), "{err}");
    }

    #[test]
    fn an_optional_library_that_does_not_load_is_named_with_why() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("libcudnn_ext.so.9"), b"not a shared library").unwrap();
        let names = [("libcudnn_ext.so.9", false), ("libimgclf_absent_test.so.1", false)];
        let (missing, failed) = preload_each(&[t.path().to_path_buf()], names.into_iter());
        assert!(missing.is_empty());
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert!(failed[0].starts_with(&t.path().join("libcudnn_ext.so.9").display().to_string()), "{failed:?}");
        assert_eq!(failed[1], "libimgclf_absent_test.so.1 (not found)");
    }

    #[test]
    fn the_list_has_the_provider_needs_and_cudnn_sub_libraries() {
        let all: Vec<_> = libraries().collect();
        assert_eq!(all.iter().filter(|(_, r)| *r).count(), 5);
        for name in ["libcudnn_engines_tensor_ir.so.9", "libcudnn_ext.so.9", "libcudnn_cnn.so.9"] {
            assert!(all.contains(&(name, false)), "{name}");
        }
    }
}
