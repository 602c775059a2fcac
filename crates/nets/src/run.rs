//! The run folder `train-cnn` writes, the same shape as `train-head`'s: `weights.safetensors`,
//! `run.json`, `history.csv`, `curves.png`, plus `checkpoint.safetensors` (weights, optimizer
//! state and history after the last whole epoch) from which `--resume` continues.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::{Device, Tensor};
use imgclf_dataset::{Dataset, DatasetError, Rng, Sample};
use imgclf_heads::{EpochStats, Optimizer, Predictions, RunDir, Temperature, curves_png};
use imgclf_heads::{
    NamedTensor, RunHeader, RunSummary, f32_safetensors, f32_tensor, history_csv, parse_run_json, run_json_text,
    settings,
};
use ndarray::Array2;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::data::{ImageSet, validation_split};
use crate::train::{CnnConfig, FitEvent, INIT, TrainState, predict};
use crate::{Net, NetError};

/// Format tag of a CNN run's `run.json`.
pub const CNN_RUN_FORMAT: &str = "imgclf-cnn-run/1";
const CHECKPOINT_FORMAT: &str = "imgclf-cnn-checkpoint/1";

/// `run.json` of a CNN run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnnRunInfo {
    /// Format, writer and command line.
    #[serde(flatten)]
    pub header: RunHeader,
    /// The training settings.
    pub config: CnnConfig,
    /// Class names in id order.
    pub classes: Vec<String>,
    /// The data root trained on (absolute): `evaluate` scores its splits by default.
    pub data: PathBuf,
    /// The labelled split scored after each epoch, if any.
    pub validation: Option<String>,
    /// Trainable parameters of the network.
    pub parameters: usize,
    /// Epochs trained so far.
    pub epochs_run: usize,
    /// Whether all `config.epochs` ran; an interrupted run can be resumed.
    pub complete: bool,
    /// The last epoch's numbers (the weights are the last epoch's, as Keras keeps them).
    pub metrics: Option<EpochStats>,
}

impl CnnRunInfo {
    /// `dir/run.json` of a CNN run (another kind of run is refused in one line).
    pub fn read(dir: &Path) -> Result<CnnRunInfo, NetError> {
        CnnRunInfo::parse(dir, &run_json_text(dir, "train-cnn")?)
    }

    /// [`CnnRunInfo::read`] on `run.json`'s text, already read.
    pub fn parse(dir: &Path, text: &str) -> Result<CnnRunInfo, NetError> {
        Ok(parse_run_json(dir, text, CNN_RUN_FORMAT, "train-cnn")?)
    }

    /// The run's facts for pages and tables.
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            kind: "train-cnn",
            header: self.header.clone(),
            backbones: Vec::new(),
            head: self.config.arch.to_string(),
            settings: settings(&self.config),
            seed: Some(self.config.seed),
            data: Some(self.data.clone()),
            engine: Some("candle on the CPU".into()),
            validation: self.validation.as_ref().map(|name| format!("split `{name}`")),
            epochs_run: self.epochs_run,
            best_epoch: None,
            kept: self.metrics.clone(),
            base_run: None,
        }
    }
}

/// A CNN run folder and its network.
pub struct CnnRun {
    /// The run folder.
    pub dir: PathBuf,
    /// Its `run.json`.
    pub info: CnnRunInfo,
    /// The network with its latest weights.
    pub net: Net,
    /// Its temperature, when `calibrate` fitted one (applied by [`crate::AnyRun`]).
    pub temperature: Option<Temperature>,
}

/// The network `config` describes, with its initial weights.
pub fn init_net(config: &CnnConfig, classes: usize, device: &Device) -> Result<Net, NetError> {
    Net::with_variant(config.arch, config.variant, config.size, classes, &mut Rng::stream(config.seed, INIT, 0), device)
}

impl CnnRun {
    /// Loads a run folder's network with its latest weights, on the CPU (where `evaluate`,
    /// `predict` and `report` score).
    pub fn load(dir: &Path) -> Result<CnnRun, NetError> {
        CnnRun::from_run_json(dir, &run_json_text(dir, "train-cnn")?)
    }

    /// [`CnnRun::load`] with `run.json`'s text already read.
    pub fn from_run_json(dir: &Path, text: &str) -> Result<CnnRun, NetError> {
        let info = CnnRunInfo::parse(dir, text)?;
        let net = init_net(&info.config, info.classes.len(), &Device::Cpu)?;
        let path = dir.join("weights.safetensors");
        let bytes = std::fs::read(&path).map_err(NetError::io(&path))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| NetError::file(&path, format!("not a safetensors file: {e}")))?;
        set_params(&net, &st, "", &path)?;
        Ok(CnnRun { dir: dir.to_path_buf(), info, net, temperature: Temperature::read(dir)? })
    }

    /// A new run's description and initial network, its config checked. Nothing is written.
    fn start(
        config: CnnConfig,
        classes: Vec<String>,
        data: &Path,
        validation: Option<String>,
        device: &Device,
    ) -> Result<(CnnRunInfo, Net), NetError> {
        config.check()?;
        let net = init_net(&config, classes.len(), device)?;
        let data = std::path::absolute(data).map_err(NetError::io(data))?;
        let info = CnnRunInfo {
            header: RunHeader::new(CNN_RUN_FORMAT, format!("imgclf-nets {}", env!("CARGO_PKG_VERSION"))),
            config,
            classes,
            data,
            validation,
            parameters: net.parameter_count(),
            epochs_run: 0,
            complete: false,
            metrics: None,
        };
        Ok((info, net))
    }

    /// The run's description and its network and state at the last checkpoint, to train on
    /// to `epochs` in all when given (else to its configured count); refused when it has
    /// already trained as far.
    fn resume(dir: &Path, epochs: Option<usize>, device: &Device) -> Result<(CnnRunInfo, Net, TrainState), NetError> {
        let (mut info, net, state) = Self::last_checkpoint(dir, device)?;
        if let Some(epochs) = epochs {
            if epochs < state.epochs_done() {
                return Err(NetError::Config(format!(
                    "{}: `epochs` {epochs} is fewer than the {} the run already has",
                    dir.display(),
                    state.epochs_done()
                )));
            }
            info.config.epochs = epochs;
        }
        if state.epochs_done() >= info.config.epochs {
            return Err(NetError::Config(format!(
                "{} is complete ({} epochs); ask for more `epochs` to train on",
                dir.display(),
                info.config.epochs
            )));
        }
        Ok((info, net, state))
    }

    /// Writes the state after an epoch: checkpoint, weights, history, curves, then `run.json`
    /// (updated from `state`), each to a temporary name renamed into place, so a kill at
    /// any moment leaves a folder that loads and resumes.
    pub fn save_epoch(dir: &Path, info: &mut CnnRunInfo, net: &Net, state: &TrainState) -> Result<(), NetError> {
        info.epochs_run = state.epochs_done();
        info.complete = info.epochs_run >= info.config.epochs;
        info.metrics = state.history.last().cloned();
        let params = named_values(net)?;
        let mut tensors: Vec<NamedTensor> =
            params.iter().map(|(n, s, v)| (format!("param.{n}"), s.clone(), v.clone())).collect();
        // the optimizer's accumulators, one pair per trainable tensor
        for ((name, var), [a, b]) in net.params().iter().zip(state.optimizer.slots()) {
            tensors.push((format!("slot0.{name}"), var.dims().to_vec(), a.clone()));
            tensors.push((format!("slot1.{name}"), var.dims().to_vec(), b.clone()));
        }
        let checkpoint = CheckpointState { iterations: state.optimizer.iterations, history: state.history.clone() };
        let meta = serde_json::to_string(&checkpoint).expect("checkpoint state serialises");
        // the state rides in the format entry, so one rename publishes weights and state together
        write_atomic(
            &dir.join("checkpoint.safetensors"),
            &f32_safetensors(&tensors, &format!("{CHECKPOINT_FORMAT} {meta}")),
        )?;
        write_atomic(&dir.join("weights.safetensors"), &f32_safetensors(&params, CNN_RUN_FORMAT))?;
        write_atomic(&dir.join("history.csv"), history_csv(&state.history).as_bytes())?;
        curves_png(&state.history, &dir.join("curves.png"))?;
        write_info(dir, info)
    }

    /// The run's description and its network and state at the last checkpoint.
    fn last_checkpoint(dir: &Path, device: &Device) -> Result<(CnnRunInfo, Net, TrainState), NetError> {
        let info = read_info(dir)?;
        let path = dir.join("checkpoint.safetensors");
        let bytes =
            std::fs::read(&path).map_err(|e| NetError::file(&path, format!("no checkpoint to resume from ({e})")))?;
        let (_, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| NetError::file(&path, format!("not a safetensors file: {e}")))?;
        let format = meta.metadata().as_ref().and_then(|m| m.get("format")).cloned().unwrap_or_default();
        let state: CheckpointState = format
            .strip_prefix(CHECKPOINT_FORMAT)
            .and_then(|json| serde_json::from_str(json.trim()).ok())
            .ok_or_else(|| NetError::file(&path, format!("not a {CHECKPOINT_FORMAT} checkpoint")))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| NetError::file(&path, e))?;
        let net = init_net(&info.config, info.classes.len(), device)?;
        set_params(&net, &st, "param.", &path)?;
        let mut slots = Vec::new();
        for (name, _) in net.params() {
            let slot = |k: usize| {
                f32_tensor(&st, &format!("slot{k}.{name}")).map(|(_, v)| v).map_err(|r| NetError::file(&path, r))
            };
            slots.push([slot(0)?, slot(1)?]);
        }
        let optimizer = Optimizer::resume(info.config.optimizer, state.iterations, slots);
        Ok((info, net, TrainState { optimizer, history: state.history }))
    }
}

/// One `train-cnn` run from its start to its last epoch, for any caller: made new
/// ([`CnnTraining::create`]) or continued from its checkpoint ([`CnnTraining::resume`]), its
/// splits loaded ([`CnnTraining::load`]), then trained ([`CnnTraining::train`]), saving after
/// every epoch. Nothing is written before the first epoch ends.
pub struct CnnTraining {
    /// The run's `run.json` as it stands.
    pub info: CnnRunInfo,
    /// The network: initial, or at the checkpoint.
    pub net: Net,
    state: TrainState,
    /// The run folder, and whether an earlier run there may be replaced.
    out: PathBuf,
    overwrite: bool,
    resumed: bool,
}

impl CnnTraining {
    /// A new run of `config` into `out` on the classes of `dataset`, validated on split
    /// `validation` (what [`validation_split`](crate::validation_split) picks), trained on
    /// `device`. `out` may replace an earlier run only with `overwrite`, and is checked now, not
    /// after training.
    pub fn create(
        out: &Path,
        overwrite: bool,
        config: CnnConfig,
        dataset: &Dataset,
        validation: Option<String>,
        device: &Device,
    ) -> Result<CnnTraining, NetError> {
        config.check()?;
        RunDir::check(out, overwrite)?;
        let optimizer = config.optimizer;
        let (info, net) = CnnRun::start(config, dataset.classes.names().to_vec(), &dataset.source, validation, device)?;
        let state = TrainState::start(&net, optimizer);
        Ok(CnnTraining { info, net, state, out: out.to_path_buf(), overwrite, resumed: false })
    }

    /// The run in `out` continued from its last checkpoint on `device` to `epochs` in all
    /// (default: its configured count); refused when it has trained as far already.
    pub fn resume(out: &Path, epochs: Option<usize>, device: &Device) -> Result<CnnTraining, NetError> {
        let (info, net, state) = CnnRun::resume(out, epochs, device)?;
        Ok(CnnTraining { info, net, state, out: out.to_path_buf(), overwrite: true, resumed: true })
    }

    /// Epochs trained so far (from the checkpoint when resumed).
    pub fn epochs_done(&self) -> usize {
        self.state.epochs_done()
    }

    /// Split `name` of `dataset` decoded and resized for the network (`tick` after each photo),
    /// with the photos that could not be read.
    pub fn load(
        &self,
        dataset: &Dataset,
        name: &str,
        tick: impl Fn() + Sync,
    ) -> Result<(ImageSet, Vec<DatasetError>), NetError> {
        let split = dataset
            .split(name)
            .ok_or_else(|| NetError::file(&dataset.source, format!("no `{name}` split to train on")))?;
        Ok(ImageSet::load(&split.samples, self.info.config.resize(), tick))
    }

    /// Trains on to the last epoch, saving the run after every one ([`CnnRun::save_epoch`]); a
    /// new run's folder appears at the first. An interruption ([`NetError::Interrupted`])
    /// leaves the last whole epoch saved, or, before the first, no folder.
    pub fn train(
        mut self,
        train_set: &ImageSet,
        validation: Option<&ImageSet>,
        stop: Option<&AtomicBool>,
        mut on_event: impl FnMut(FitEvent) -> Result<(), NetError>,
    ) -> Result<CnnRunInfo, NetError> {
        let mut out = match self.resumed {
            // new weights: a temperature fitted to the old ones no longer holds
            true => {
                Temperature::remove(&self.out)?;
                RunDir::existing(&self.out)
            }
            false => RunDir::begin(&self.out, self.overwrite)?,
        };
        let (config, net, info) = (self.info.config.clone(), &self.net, &mut self.info);
        crate::train(net, self.state, &config, train_set, validation, stop, |event| {
            if let FitEvent::Epoch { state, .. } = &event {
                CnnRun::save_epoch(out.path(), info, net, state)?;
                out.publish()?;
            }
            on_event(event)
        })?;
        Ok(self.info)
    }
}

/// A split of a dataset run through a CNN run's network.
#[derive(Debug)]
pub struct Scored {
    /// The split scored.
    pub split: String,
    /// Class names in id order.
    pub classes: Vec<String>,
    /// Paths relative to the data root, in row order.
    pub paths: Vec<String>,
    /// The true classes when the split is labelled.
    pub labels: Option<Vec<usize>>,
    /// Per row, the digest of the photo as it was when its features were made
    /// (`imgclf_features::photo_digest`), where a feature file records it (head runs).
    pub photos: Option<Vec<u64>>,
    /// `(images, classes)`.
    pub probs: Array2<f32>,
    /// Images that could not be read.
    pub skipped: Vec<DatasetError>,
}

impl CnnRun {
    /// Class probabilities for split `split` (default: `validation`, else `test`) of `data`
    /// (default: the data root trained on), whose classes must be the run's.
    pub fn score_split(&self, data: Option<&Path>, split: Option<&str>) -> Result<Scored, NetError> {
        let root = data.unwrap_or(&self.info.data);
        let dataset = Dataset::open(root)?;
        let (name, samples) = pick_split(&dataset, &self.info.classes, split, &self.dir)?;
        let (set, skipped) = ImageSet::load(samples, self.info.config.resize(), || {});
        let probs = predict(&self.net, &set, self.info.config.input)?;
        let labelled = samples.first().is_some_and(|s| s.label.is_some());
        Ok(Scored {
            split: name,
            classes: self.info.classes.clone(),
            paths: set.paths,
            labels: labelled.then_some(set.labels),
            photos: None,
            probs,
            skipped,
        })
    }

    /// Class probabilities for photos; unreadable ones are skipped and reported.
    pub fn predict_samples(&self, samples: &[Sample]) -> Result<Predictions, NetError> {
        let (set, skipped) = ImageSet::load(samples, self.info.config.resize(), || {});
        let probs = predict(&self.net, &set, self.info.config.input)?;
        Ok(Predictions { samples: crate::data::kept(samples, &set.paths), probs, maps: Vec::new(), skipped })
    }
}

/// Split `split` of `dataset` (default: validation, else a labelled test), whose classes
/// must be `classes`, the ones run `run` was trained on.
pub(crate) fn pick_split<'a>(
    dataset: &'a Dataset,
    classes: &[String],
    split: Option<&str>,
    run: &Path,
) -> Result<(String, &'a [Sample]), NetError> {
    let root = &dataset.source;
    if !dataset.classes.is_empty() && dataset.classes.names() != classes {
        return Err(NetError::file(
            root,
            format!("classes {:?}, but {} was trained on {classes:?}", dataset.classes.names(), run.display()),
        ));
    }
    let name = match split {
        Some(name) => name.to_string(),
        None => validation_split(dataset, None)?
            .ok_or_else(|| NetError::file(root, "no labelled validation or test split; name one (`split`)"))?,
    };
    let names = || dataset.splits.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
    let samples = &dataset
        .split(&name)
        .ok_or_else(|| NetError::file(root, format!("no `{name}` split (it has {})", names())))?
        .samples;
    Ok((name, samples))
}

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    iterations: u64,
    history: Vec<EpochStats>,
}

fn write_info(dir: &Path, info: &CnnRunInfo) -> Result<(), NetError> {
    let json = serde_json::to_string_pretty(info).expect("run info serialises");
    write_atomic(&dir.join("run.json"), json.as_bytes())
}

fn read_info(dir: &Path) -> Result<CnnRunInfo, NetError> {
    CnnRunInfo::read(dir)
}

fn named_values(net: &Net) -> Result<Vec<NamedTensor>, NetError> {
    net.tensors()
        .into_iter()
        .map(|(name, var)| Ok((name, var.dims().to_vec(), var.flatten_all()?.to_vec1::<f32>()?)))
        .collect()
}

/// Loads tensors `{prefix}{name}` into the net's tensors (parameters and moving averages),
/// checking every shape.
fn set_params(net: &Net, st: &SafeTensors, prefix: &str, path: &Path) -> Result<(), NetError> {
    for (name, var) in net.tensors() {
        let (shape, values) = f32_tensor(st, &format!("{prefix}{name}")).map_err(|r| NetError::file(path, r))?;
        if shape != var.dims() {
            return Err(NetError::file(path, format!("`{name}` is {shape:?}, the network needs {:?}", var.dims())));
        }
        var.set(&Tensor::from_vec(values, shape, var.device())?)?;
    }
    Ok(())
}

/// [`imgclf_dataset::write_atomic`], failing with the file's name.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NetError> {
    imgclf_dataset::write_atomic(path, bytes).map_err(NetError::io(path))
}
