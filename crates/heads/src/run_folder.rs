//! The run folder every training command writes, and what its files share: the folder
//! appearing whole ([`RunDir`]), the header of each `run.json` kind ([`RunHeader`], flattened
//! into `RunInfo`, `CnnRunInfo` and `FineTuneInfo`), reading `run.json` by its format tag,
//! `history.csv` both ways, f32 safetensors, and [`RunSummary`]: one run's facts, typed, for
//! pages and tables whatever its kind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::HeadError;
use crate::train::EpochStats;

/// What every `run.json` starts with, whatever the kind of run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunHeader {
    /// The format tag: `imgclf-run/1`, `imgclf-cnn-run/1` or `imgclf-finetune-run/1`.
    pub format: String,
    /// The imgclf library and version that wrote it.
    pub created_by: String,
    /// The command line that trained it (empty in runs from before it was recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

impl RunHeader {
    /// The header of a run of `format` being written now by `library` (`imgclf-heads 0.1.0`).
    pub fn new(format: &str, library: String) -> RunHeader {
        RunHeader { format: format.into(), created_by: library, command: std::env::args().collect() }
    }
}

/// One run's facts, typed, whatever its kind: what a report page and the runs table show.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The command that writes this kind: `train-head`, `train-cnn` or `fine-tune`.
    pub kind: &'static str,
    /// Format, writer and command line.
    pub header: RunHeader,
    /// The backbones it stands on (none for a CNN from pixels).
    pub backbones: Vec<BackboneSummary>,
    /// The head or network: `logistic`, `mlp-256`, `lenet`, `mlp (fine-tuned)`.
    pub head: String,
    /// The training settings as `a.b = value` pairs, in their order.
    pub settings: Vec<(String, String)>,
    /// The seed trained with.
    pub seed: Option<u64>,
    /// The data root trained on, when the run records it.
    pub data: Option<PathBuf>,
    /// Where the backbones ran (`ort`, `tract`, `ort cuda:0`), when recorded.
    pub engine: Option<String>,
    /// What validation was measured on, when anything.
    pub validation: Option<String>,
    /// Epochs trained.
    pub epochs_run: usize,
    /// The epoch whose weights were kept, when the kind picks one.
    pub best_epoch: Option<usize>,
    /// The kept weights' numbers.
    pub kept: Option<EpochStats>,
    /// The run a fine-tuning started from.
    pub base_run: Option<PathBuf>,
}

/// A backbone a run stands on.
#[derive(Debug, Clone, PartialEq)]
pub struct BackboneSummary {
    /// Its name.
    pub name: String,
    /// sha256 of its model file.
    pub model_sha256: String,
    /// Its feature width, when the run records it.
    pub width: Option<usize>,
    /// The feature file it was read from (head runs).
    pub features: Option<PathBuf>,
    /// Its ONNX file.
    pub model: PathBuf,
}

/// A run's settings (any serialisable config) as `a.b = value` pairs, in their order.
pub fn settings(config: &impl Serialize) -> Vec<(String, String)> {
    fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    flatten(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out);
                }
            }
            serde_json::Value::Null if prefix.is_empty() => {}
            serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
            v => out.push((prefix.to_string(), v.to_string())),
        }
    }
    let mut out = Vec::new();
    flatten("", &serde_json::to_value(config).expect("settings serialise"), &mut out);
    out
}

/// `dir/run.json`'s text, or why there is none (`command` is what writes such folders).
pub fn run_json_text(dir: &Path, command: &str) -> Result<String, HeadError> {
    imgclf_dataset::read_text(&dir.join("run.json"), imgclf_dataset::TEXT_FILE_LIMIT).map_err(|e| {
        HeadError::run(dir, format!("no readable run.json ({e}); is this a folder written by `imgclf {command}`?"))
    })
}

/// The `format` tag of a `run.json` text, when it has one: which kind of run a folder holds.
pub fn format_of(run_json: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Tag {
        format: String,
    }
    serde_json::from_str::<Tag>(run_json).ok().map(|t| t.format)
}

/// A `run.json` text as `T`, a run of `format` that `imgclf {command}` writes. The format is
/// checked before the rest is parsed, so another kind of run gets a one-line answer.
pub fn parse_run_json<T: serde::de::DeserializeOwned>(
    dir: &Path,
    text: &str,
    format: &str,
    command: &str,
) -> Result<T, HeadError> {
    let path = dir.join("run.json");
    let damaged = |e: serde_json::Error| {
        HeadError::run(&path, format!("is damaged ({e}); train again, or restore it from a copy"))
    };
    match format_of(text) {
        Some(found) if found == format => serde_json::from_str(text).map_err(damaged),
        Some(found) => {
            Err(HeadError::run(&path, format!("format `{found}`, expected `{format}` (a run of `imgclf {command}`)")))
        }
        None => Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Err(e) => damaged(e),
            Ok(_) => HeadError::run(&path, "has no `format`: not a run.json imgclf wrote"),
        }),
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
    /// Whether a run may be written to `dir`: a new name, or (with `overwrite`) an empty folder
    /// or an earlier run's. A file, or a folder holding something else, is never replaced.
    /// The folder's nearest existing parent must take a new folder: found out now, not after
    /// training.
    pub fn check(dir: &Path, overwrite: bool) -> Result<(), HeadError> {
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

    /// Starts writing the run folder `target` (see [`RunDir::check`] for what it may replace).
    pub fn begin(target: &Path, overwrite: bool) -> Result<RunDir, HeadError> {
        RunDir::check(target, overwrite)?;
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
        RunDir::check(&self.target, self.overwrite)?;
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

/// The epochs of a run's `history.csv` (what [`history_csv`] writes), or why there are none.
pub fn read_history(dir: &Path) -> Result<Vec<EpochStats>, String> {
    let path = dir.join("history.csv");
    let text = match imgclf_dataset::read_text(&path, imgclf_dataset::TEXT_FILE_LIMIT) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("no history.csv: no training curves".into()),
        Err(e) => return Err(format!("{}: {e}: no training curves", path.display())),
    };
    let mut lines = text.lines();
    if lines.next() != Some("epoch,loss,acc,val_loss,val_acc,seconds") {
        return Err(format!("{}: not a history imgclf wrote (unexpected header)", path.display()));
    }
    lines
        .enumerate()
        .map(|(i, line)| {
            let bad = || format!("{} line {}: cannot be read as an epoch", path.display(), i + 2);
            let f: Vec<&str> = line.split(',').collect();
            let opt = |s: &str| if s.is_empty() { Ok(None) } else { s.parse().map(Some) };
            let [epoch, loss, acc, val_loss, val_acc, seconds] = f[..] else { return Err(bad()) };
            Ok(EpochStats {
                epoch: epoch.parse().map_err(|_| bad())?,
                loss: loss.parse().map_err(|_| bad())?,
                acc: acc.parse().map_err(|_| bad())?,
                val_loss: opt(val_loss).map_err(|_| bad())?,
                val_acc: opt(val_acc).map_err(|_| bad())?,
                seconds: seconds.parse().map_err(|_| bad())?,
            })
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_reads_back_what_history_csv_writes_and_names_a_bad_line() {
        let t = tempfile::tempdir().unwrap();
        let epochs = vec![
            EpochStats { epoch: 1, loss: 0.5, acc: 0.75, val_loss: Some(0.25), val_acc: Some(0.875), seconds: 1.5 },
            EpochStats { epoch: 2, loss: 0.25, acc: 0.875, val_loss: None, val_acc: None, seconds: 2.0 },
        ];
        std::fs::write(t.path().join("history.csv"), history_csv(&epochs)).unwrap();
        assert_eq!(read_history(t.path()).unwrap(), epochs);
        std::fs::write(t.path().join("history.csv"), "epoch,loss,acc,val_loss,val_acc,seconds\n1,x,2,,,1\n").unwrap();
        assert!(read_history(t.path()).unwrap_err().ends_with("line 2: cannot be read as an epoch"));
        assert!(read_history(&t.path().join("none")).unwrap_err().contains("no history.csv"));
    }
}
