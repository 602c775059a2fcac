//! The run folder `train-head` writes and `evaluate` / `predict` read:
//! `weights.safetensors`, `run.json`, `history.csv`, `curves.png`.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ArrayView2};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::HeadError;
use crate::config::{TrainConfig, Validation};
use crate::data::{HeadInputs, Source};
use crate::head::{Architecture, Head, Standardizer};
use crate::layers::Dense;
use crate::loss::Loss;
use crate::plot::curves_png;
use crate::run_folder::{
    BackboneSummary, NamedTensor, RunDir, RunHeader, RunSummary, f32_safetensors, f32_tensor, history_csv,
    parse_run_json, run_json_text, settings,
};
use crate::sweep::Sweep;
use crate::temperature::Temperature;
use crate::train::{EpochStats, Trained};

/// Format tag of `run.json`; a reader refuses other ones.
pub const RUN_FORMAT: &str = "imgclf-run/1";

/// `run.json`: what was trained on what, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Format, writer and command line.
    #[serde(flatten)]
    pub header: RunHeader,
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
    /// The probe's search for `C` on validation, when `c` was `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
}

impl RunInfo {
    /// `run.json`'s text of a head run in `dir`, parsed (another kind is refused).
    pub fn parse(dir: &Path, text: &str) -> Result<RunInfo, HeadError> {
        parse_run_json(dir, text, RUN_FORMAT, "train-head")
    }

    /// The run's facts for pages and tables.
    pub fn summary(&self) -> RunSummary {
        let head = match self.config.head.architecture {
            Architecture::Logistic => "logistic".to_string(),
            Architecture::Mlp { hidden } => format!("mlp-{hidden}"),
        };
        let backbones = self
            .sources
            .iter()
            .map(|s| BackboneSummary {
                name: s.backbone.clone(),
                model_sha256: s.model_sha256.clone(),
                width: Some(s.dim),
                features: Some(s.file.clone()),
                model: s.model.clone(),
            })
            .collect();
        RunSummary {
            kind: "train-head",
            header: self.header.clone(),
            backbones,
            head,
            settings: settings(&self.config),
            seed: Some(self.config.seed),
            data: None,
            engine: self.sources.first().map(|s| s.engine.clone()).filter(|e| !e.is_empty()),
            validation: Some(self.validation.to_string()),
            epochs_run: self.epochs_run,
            best_epoch: Some(self.best_epoch),
            kept: Some(self.metrics.clone()),
            base_run: None,
        }
    }
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
    /// Its temperature (`temperature.json`), when `calibrate` fitted one: the [`Predictor`]
    /// applies it; [`Head::predict`] does not.
    ///
    /// [`Predictor`]: crate::Predictor
    pub temperature: Option<Temperature>,
}

impl Run {
    /// Describes a finished training.
    pub fn new(dir: &Path, inputs: &HeadInputs, config: &TrainConfig, trained: Trained) -> Run {
        let metrics = trained.history[trained.best_epoch - 1].clone();
        let info = RunInfo {
            header: RunHeader::new(RUN_FORMAT, format!("imgclf-heads {}", env!("CARGO_PKG_VERSION"))),
            config: config.clone(),
            classes: inputs.classes.clone(),
            sources: inputs.sources.clone(),
            loss: trained.head.loss,
            validation: trained.validation,
            best_epoch: trained.best_epoch,
            epochs_run: trained.history.len(),
            metrics,
            sweep: trained.sweep,
        };
        Run { dir: dir.to_path_buf(), info, head: trained.head, temperature: None }
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

    /// Class probabilities of the head for feature rows `x` (the run's feature files' columns
    /// joined), divided by its temperature when it has one: what the [`crate::Predictor`] and
    /// the Python wheel hand out.
    pub fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut probs = self.head.predict(x);
        if let Some(t) = &self.temperature {
            t.apply(&mut probs);
        }
        probs
    }

    /// Reads a run folder written by [`Run::save`].
    pub fn load(dir: &Path) -> Result<Run, HeadError> {
        Run::from_run_json(dir, &run_json_text(dir, "train-head")?)
    }

    /// [`Run::load`] with `run.json`'s text already read (by a caller that looked at its format).
    pub fn from_run_json(dir: &Path, text: &str) -> Result<Run, HeadError> {
        let info = RunInfo::parse(dir, text)?;
        let weights_path = dir.join("weights.safetensors");
        let bytes = std::fs::read(&weights_path).map_err(HeadError::io(&weights_path))?;
        let head = head_from_bytes(&bytes, &info).map_err(|reason| HeadError::run(&weights_path, reason))?;
        Ok(Run { dir: dir.to_path_buf(), info, head, temperature: Temperature::read(dir)? })
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

fn write(path: &Path, bytes: &[u8]) -> Result<(), HeadError> {
    std::fs::write(path, bytes).map_err(HeadError::io(path))
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
