//! The run folder `train-head` writes and `evaluate` / `predict` read:
//! `weights.safetensors`, `run.json`, `history.csv`, `curves.png`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::HeadError;
use crate::config::{TrainConfig, Validation};
use crate::data::{HeadInputs, Source};
use crate::head::{Head, Standardizer};
use crate::layers::Dense;
use crate::loss::Loss;
use crate::plot::curves_png;
use crate::train::{EpochStats, Trained};

/// Format tag of `run.json`; a reader refuses other ones.
pub const RUN_FORMAT: &str = "imgclf-run/1";

/// `run.json`: what was trained on what, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// `imgclf-run/1`.
    pub format: String,
    /// The imgclf version that wrote it.
    pub created_by: String,
    /// The command line that trained it (empty in runs from before it was recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The training settings.
    pub config: TrainConfig,
    /// Class names in id order.
    pub classes: Vec<String>,
    /// The feature files, in column order, with the model each came from.
    pub sources: Vec<Source>,
    /// The loss trained with.
    pub loss: Loss,
    /// What the validation numbers were measured on.
    pub validation: Validation,
    /// The epoch whose weights were kept (1-based) and its numbers.
    pub best_epoch: usize,
    /// Epochs trained (fewer than asked after an early stop).
    pub epochs_run: usize,
    /// The kept epoch's numbers.
    pub metrics: EpochStats,
}

/// A saved head with its description.
#[derive(Debug, Clone)]
pub struct Run {
    /// The run folder.
    pub dir: PathBuf,
    /// Its `run.json`.
    pub info: RunInfo,
    /// The trained head.
    pub head: Head,
}

impl Run {
    /// Describes a finished training.
    pub fn new(dir: &Path, inputs: &HeadInputs, config: &TrainConfig, trained: Trained) -> Run {
        let metrics = trained.history[trained.best_epoch - 1].clone();
        let info = RunInfo {
            format: RUN_FORMAT.into(),
            created_by: format!("imgclf-heads {}", env!("CARGO_PKG_VERSION")),
            command: std::env::args().collect(),
            config: config.clone(),
            classes: inputs.classes.clone(),
            sources: inputs.sources.clone(),
            loss: trained.head.loss,
            validation: trained.validation,
            best_epoch: trained.best_epoch,
            epochs_run: trained.history.len(),
            metrics,
        };
        Run { dir: dir.to_path_buf(), info, head: trained.head }
    }

    /// Whether a run may be written to `dir`: a new name, or (with `overwrite`) an empty folder
    /// or an earlier run's. A file, or a folder holding something else, is never replaced.
    /// The folder's nearest existing parent must take a new folder: found out now, not after
    /// training.
    pub fn check_out(dir: &Path, overwrite: bool) -> Result<(), HeadError> {
        if dir.symlink_metadata().is_err() {
            return writable_parent(dir);
        }
        if !dir.is_dir() {
            return Err(HeadError::run(dir, "is a file, not a run folder; choose another folder"));
        }
        if !overwrite {
            return Err(HeadError::run(dir, "already exists; choose another folder, or replace it with `overwrite`"));
        }
        let empty = std::fs::read_dir(dir).map_err(HeadError::io(dir))?.next().is_none();
        if !empty && !dir.join("run.json").is_file() {
            return Err(HeadError::run(
                dir,
                "holds something other than a run (no run.json): not replaced, even with `overwrite`",
            ));
        }
        Ok(())
    }

    /// Writes the folder through a [`RunDir`], so an interrupted run never leaves a
    /// half-written folder. An existing folder is replaced only with `overwrite`.
    pub fn save(&self, history: &[EpochStats], overwrite: bool) -> Result<(), HeadError> {
        let mut out = RunDir::begin(&self.dir, overwrite)?;
        self.write_files(out.path(), history)?;
        out.publish()
    }

    fn write_files(&self, dir: &Path, history: &[EpochStats]) -> Result<(), HeadError> {
        let json = serde_json::to_string_pretty(&self.info).expect("run info serialises");
        write(&dir.join("run.json"), json.as_bytes())?;
        write(&dir.join("weights.safetensors"), &weights_bytes(&self.head))?;
        write(&dir.join("history.csv"), history_csv(history).as_bytes())?;
        curves_png(history, &dir.join("curves.png"))
    }

    /// Reads a run folder written by [`Run::save`].
    pub fn load(dir: &Path) -> Result<Run, HeadError> {
        let text = imgclf_dataset::read_text(&dir.join("run.json"), imgclf_dataset::TEXT_FILE_LIMIT).map_err(|e| {
            HeadError::run(dir, format!("no readable run.json ({e}); is this a run folder a head's training wrote?"))
        })?;
        Run::from_run_json(dir, &text)
    }

    /// [`Run::load`] with `run.json`'s text already read (by a caller that looked at its format).
    pub fn from_run_json(dir: &Path, text: &str) -> Result<Run, HeadError> {
        let json_path = dir.join("run.json");
        let info: RunInfo = serde_json::from_str(text).map_err(|e| HeadError::run(&json_path, e))?;
        if info.format != RUN_FORMAT {
            return Err(HeadError::run(
                &json_path,
                format!("format `{}`, this imgclf reads `{RUN_FORMAT}`", info.format),
            ));
        }
        let weights_path = dir.join("weights.safetensors");
        let bytes = std::fs::read(&weights_path).map_err(HeadError::io(&weights_path))?;
        let head = head_from_bytes(&bytes, &info).map_err(|reason| HeadError::run(&weights_path, reason))?;
        Ok(Run { dir: dir.to_path_buf(), info, head })
    }

    /// Refuses features other than the ones the head was trained on (other classes, models
    /// or widths), naming the file.
    pub fn check_inputs(&self, inputs: &HeadInputs) -> Result<(), HeadError> {
        let file = |i: usize| inputs.sources.get(i).map_or_else(PathBuf::new, |s| s.file.clone());
        if inputs.classes != self.info.classes {
            return Err(HeadError::Input {
                path: file(0),
                reason: format!(
                    "classes {:?}, but run {} was trained on {:?}",
                    inputs.classes,
                    self.dir.display(),
                    self.info.classes
                ),
            });
        }
        let describe =
            |s: &[Source]| s.iter().map(|s| format!("{} ({} wide)", s.backbone, s.dim)).collect::<Vec<_>>().join(" + ");
        let same = inputs.sources.len() == self.info.sources.len()
            && inputs
                .sources
                .iter()
                .zip(&self.info.sources)
                .all(|(a, b)| a.model_sha256 == b.model_sha256 && a.dim == b.dim);
        if !same {
            return Err(HeadError::Input {
                path: file(0),
                reason: format!(
                    "features of {}, but run {} was trained on {} (same files, same order)",
                    describe(&inputs.sources),
                    self.dir.display(),
                    describe(&self.info.sources)
                ),
            });
        }
        Ok(())
    }
}

/// A run folder being written. Files go into a hidden sibling (`.NAME.partial-PID`) until
/// [`RunDir::publish`] renames it into place, replacing an earlier run only then. Dropped
/// unpublished (an error, an interruption) it removes the sibling, so the folder keeps its
/// earlier state or stays absent; a sibling that a killed process left is removed by the
/// next run for the same folder.
#[derive(Debug)]
pub struct RunDir {
    target: PathBuf,
    staging: PathBuf,
    overwrite: bool,
    published: bool,
}

impl RunDir {
    /// Starts writing the run folder `target` (see [`Run::check_out`] for what it may replace).
    pub fn begin(target: &Path, overwrite: bool) -> Result<RunDir, HeadError> {
        Run::check_out(target, overwrite)?;
        let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(HeadError::io(parent))?;
        let staging = imgclf_dataset::staging_path(target, "partial");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir(&staging).map_err(HeadError::io(&staging))?;
        Ok(RunDir { target: target.to_path_buf(), staging, overwrite, published: false })
    }

    /// An existing run folder written in place (a resumed run): already published.
    pub fn existing(target: &Path) -> RunDir {
        RunDir { target: target.to_path_buf(), staging: target.to_path_buf(), overwrite: true, published: true }
    }

    /// Where files go now: the hidden sibling until published, the run folder after.
    pub fn path(&self) -> &Path {
        if self.published { &self.target } else { &self.staging }
    }

    /// The run folder.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Whether the folder is in place (files written since are in the run folder itself).
    pub fn published(&self) -> bool {
        self.published
    }

    /// Renames the sibling into place, removing an earlier run first; later calls do nothing.
    pub fn publish(&mut self) -> Result<(), HeadError> {
        if self.published {
            return Ok(());
        }
        Run::check_out(&self.target, self.overwrite)?;
        if self.target.exists() {
            std::fs::remove_dir_all(&self.target).map_err(HeadError::io(&self.target))?;
        }
        std::fs::rename(&self.staging, &self.target).map_err(HeadError::io(&self.target))?;
        self.published = true;
        Ok(())
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// Whether a folder can be made at `dir`: its nearest existing ancestor is a folder that takes
/// a new one (tried with a hidden folder, removed at once).
fn writable_parent(dir: &Path) -> Result<(), HeadError> {
    let absolute = std::path::absolute(dir).map_err(HeadError::io(dir))?;
    let Some(parent) = absolute.ancestors().skip(1).find(|a| a.symlink_metadata().is_ok()) else {
        return Ok(());
    };
    if !parent.is_dir() {
        return Err(HeadError::run(dir, format!("cannot be made: {} is a file", parent.display())));
    }
    let probe = imgclf_dataset::staging_path(&parent.join("run"), "probe");
    match std::fs::create_dir(&probe) {
        Ok(()) => {
            let _ = std::fs::remove_dir(&probe);
            Ok(())
        }
        Err(e) => Err(HeadError::run(dir, format!("cannot be written ({e} in {})", parent.display()))),
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), HeadError> {
    std::fs::write(path, bytes).map_err(HeadError::io(path))
}

/// `epoch,loss,acc,val_loss,val_acc,seconds`; validation cells are empty without validation.
pub fn history_csv(history: &[EpochStats]) -> String {
    let mut out = String::from("epoch,loss,acc,val_loss,val_acc,seconds\n");
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    for h in history {
        out += &format!(
            "{},{:.6},{:.6},{},{},{:.3}\n",
            h.epoch,
            h.loss,
            h.acc,
            opt(h.val_loss),
            opt(h.val_acc),
            h.seconds
        );
    }
    out
}

/// The head's tensors (names such as `output.kernel`, kernels `(inputs, outputs)` as in
/// Keras), with the format tag in the safetensors metadata.
fn weights_bytes(head: &Head) -> Vec<u8> {
    let mut tensors: Vec<NamedTensor> = Vec::new();
    for (name, dense) in [("hidden", head.hidden.as_ref()), ("output", Some(&head.output))] {
        if let Some(d) = dense {
            tensors.push((format!("{name}.kernel"), d.kernel.shape().to_vec(), d.kernel.iter().copied().collect()));
            tensors.push((format!("{name}.bias"), vec![d.bias.len()], d.bias.to_vec()));
        }
    }
    if let Some(s) = &head.standardizer {
        tensors.push(("standardizer.mean".into(), vec![s.mean.len()], s.mean.to_vec()));
        tensors.push(("standardizer.scale".into(), vec![s.scale.len()], s.scale.to_vec()));
    }
    f32_safetensors(&tensors, RUN_FORMAT)
}

/// An f32 tensor as a checkpoint stores it: `(name, shape, values)`.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Named f32 tensors `(name, shape, values)` as safetensors bytes. The metadata holds one
/// entry, `format`: safetensors writes a map's entries in hash order, and the same tensors
/// must give the same bytes.
pub fn f32_safetensors(tensors: &[NamedTensor], format: &str) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views = tensors.iter().zip(&bytes).map(|((name, shape, _), data)| {
        (name.clone(), TensorView::new(Dtype::F32, shape.clone(), data).expect("shape matches data"))
    });
    let meta = HashMap::from([("format".to_string(), format.to_string())]);
    safetensors::serialize(views, Some(meta)).expect("tensors serialise")
}

/// The shape and values of f32 tensor `name`, or why it cannot be read.
pub fn f32_tensor(st: &SafeTensors, name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
    let t = st.tensor(name).map_err(|_| format!("tensor `{name}` is missing"))?;
    if t.dtype() != Dtype::F32 {
        return Err(format!("tensor `{name}` is {:?}, expected F32", t.dtype()));
    }
    let values = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok((t.shape().to_vec(), values))
}

fn head_from_bytes(bytes: &[u8], info: &RunInfo) -> Result<Head, String> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
    let get = |name: &str| f32_tensor(&st, name);
    let dense = |name: &str| -> Result<Dense, String> {
        let (shape, k) = get(&format!("{name}.kernel"))?;
        let (_, b) = get(&format!("{name}.bias"))?;
        let [rows, cols] = shape[..] else { return Err(format!("`{name}.kernel` is not 2-D")) };
        if b.len() != cols {
            return Err(format!("`{name}.bias` has {} values for {cols} outputs", b.len()));
        }
        Ok(Dense { kernel: Array2::from_shape_vec((rows, cols), k).expect("shape checked"), bias: Array1::from(b) })
    };
    let hidden = match info.config.head.architecture {
        crate::Architecture::Mlp { .. } => Some(dense("hidden")?),
        crate::Architecture::Logistic => None,
    };
    let output = dense("output")?;
    let standardizer = if info.config.standardize {
        let (_, mean) = get("standardizer.mean")?;
        let (_, scale) = get("standardizer.scale")?;
        Some(Standardizer { mean: Array1::from(mean), scale: Array1::from(scale) })
    } else {
        None
    };
    let head = Head { config: info.config.head, loss: info.loss, standardizer, hidden, output };
    let width: usize = info.sources.iter().map(|s| s.dim).sum();
    if head.inputs() != width || head.output.bias.len() != info.loss.outputs(info.classes.len()) {
        return Err(format!("tensor shapes do not fit run.json ({width} inputs, {} classes)", info.classes.len()));
    }
    if head.standardizer.as_ref().is_some_and(|s| s.mean.len() != width || s.scale.len() != width) {
        return Err(format!("standardizer tensors are not {width} wide"));
    }
    Ok(head)
}
