//! Fine-tuning a backbone's last block together with a trained dense head, as the tutorial
//! fine-tunes VGG16's last conv block: the frozen start of the backbone runs once per image
//! (its output cached in memory), and the last residual block ([`Tail`], weights from the ONNX
//! initializers) plus the head train with SGD at a low learning rate.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::{Device, Tensor, Var};
use imgclf_dataset::{Dataset, DatasetError, Rng, Sample};
use imgclf_heads::{
    BackboneSummary, NamedTensor, RunHeader, RunSummary, f32_safetensors, f32_tensor, history_csv, parse_run_json,
    run_json_text, settings,
};
use imgclf_heads::{EpochStats, OptimizerConfig, Predictions, Rule, Run, RunDir, Temperature, curves_png};
use imgclf_runtime::onnx::{self, pb};
use imgclf_runtime::{Backbone, Engine, EngineConfig, ModelSpec, preprocess_batch};
use rayon::prelude::*;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::run::{Scored, pick_split, write_atomic};
use crate::train::{
    Batches, FitEvent, FitSettings, Schedule, TrainState, Trainable, fit, predict_batches, score_batches,
};
use crate::{Dense, NetError, Tail, last_block_input, prefix_model, validation_split};

/// Format tag of a fine-tuning run's `run.json`.
pub const FINETUNE_RUN_FORMAT: &str = "imgclf-finetune-run/1";

/// A dense head from `train-head` as candle layers: fixed standardisation, optional hidden
/// ReLU layer, dropout, output.
pub struct HeadLayers {
    standardizer: Option<(Tensor, Tensor)>,
    hidden: Option<Dense>,
    output: Dense,
    /// Dropout before the output layer, in training.
    pub dropout: f32,
}

fn var(values: &[f32], shape: &[usize], device: &Device) -> Result<Var, NetError> {
    Ok(Var::from_tensor(&Tensor::from_slice(values, shape, device)?)?)
}

impl HeadLayers {
    /// The layers of a trained head, with its weights, on `device`.
    pub fn from_head(head: &imgclf_heads::Head, device: &Device) -> Result<HeadLayers, NetError> {
        let dense = |d: &imgclf_heads::Dense| -> Result<Dense, NetError> {
            let kernel: Vec<f32> = d.kernel.iter().copied().collect();
            let bias = var(&d.bias.to_vec(), &[d.bias.len()], device)?;
            Ok(Dense { kernel: var(&kernel, d.kernel.shape(), device)?, bias })
        };
        let standardizer = match &head.standardizer {
            Some(s) => Some((
                Tensor::from_slice(&s.mean.to_vec(), s.mean.len(), device)?,
                Tensor::from_slice(&s.scale.to_vec(), s.scale.len(), device)?,
            )),
            None => None,
        };
        let hidden = head.hidden.as_ref().map(dense).transpose()?;
        Ok(HeadLayers { standardizer, hidden, output: dense(&head.output)?, dropout: head.config.dropout })
    }

    fn forward(&self, x: &Tensor, dropout: Option<&mut Rng>) -> Result<Tensor, NetError> {
        let mut x = match &self.standardizer {
            Some((mean, scale)) => x.broadcast_sub(mean)?.broadcast_div(scale)?,
            None => x.clone(),
        };
        if let Some(hidden) = &self.hidden {
            x = hidden.forward(&x)?.relu()?;
        }
        if let (Some(rng), true) = (dropout, self.dropout > 0.0) {
            x = crate::arch::dropout(&x, self.dropout, rng)?;
        }
        self.output.forward(&x)
    }

    fn params(&self) -> Vec<(String, &Var)> {
        let mut out = Vec::new();
        for (name, dense) in [("hidden", self.hidden.as_ref()), ("output", Some(&self.output))] {
            if let Some(d) = dense {
                out.extend([(format!("head.{name}.kernel"), &d.kernel), (format!("head.{name}.bias"), &d.bias)]);
            }
        }
        out
    }
}

/// A dense head trained on candle (features in, logits out), as fine-tuning trains it behind
/// the tail; `benches/dense_head.rs` times it against imgclf-heads' own path.
impl Trainable for HeadLayers {
    fn params(&self) -> Vec<(String, &Var)> {
        HeadLayers::params(self)
    }

    fn logits(&self, x: &Tensor, dropout: Option<&mut Rng>) -> Result<Tensor, NetError> {
        self.forward(x, dropout)
    }

    fn classes(&self) -> usize {
        // a sigmoid unit stands for two classes
        self.output.kernel.dims()[1].max(2)
    }

    fn device(&self) -> &Device {
        self.output.kernel.device()
    }
}

/// The trainable part of a fine-tuned backbone: last block → global average pool → head.
pub struct FineTuned {
    /// The backbone's trainable end.
    pub tail: Tail,
    /// The head on its pooled output.
    pub head: HeadLayers,
    /// Classes of the output.
    pub classes: usize,
}

impl Trainable for FineTuned {
    fn params(&self) -> Vec<(String, &Var)> {
        let mut out = self.tail.params();
        out.extend(self.head.params());
        out
    }

    fn logits(&self, x: &Tensor, dropout: Option<&mut Rng>) -> Result<Tensor, NetError> {
        let pooled = self.tail.forward(x)?.flatten_from(2)?.mean(2)?;
        self.head.forward(&pooled, dropout)
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn device(&self) -> &Device {
        self.head.device()
    }
}

/// Cached outputs of the frozen start, one `(C, H, W)` block per image, with labels and paths.
#[derive(Debug, Default)]
pub struct Activations {
    /// Every image's block, one after another.
    pub values: Vec<f32>,
    /// `[C, H, W]`.
    pub shape: [usize; 3],
    /// Class id per image.
    pub labels: Vec<usize>,
    /// Path per image, relative to the data root.
    pub paths: Vec<String>,
}

impl Batches for Activations {
    fn labels(&self) -> &[usize] {
        &self.labels
    }

    fn batch(&self, indices: &[usize], _epoch: Option<usize>) -> Result<Tensor, NetError> {
        let size: usize = self.shape.iter().product();
        let mut x = Vec::with_capacity(indices.len() * size);
        for &i in indices {
            x.extend_from_slice(&self.values[i * size..(i + 1) * size]);
        }
        let [c, h, w] = self.shape;
        Ok(Tensor::from_vec(x, (indices.len(), c, h, w), &Device::Cpu)?)
    }
}

/// The frozen start of a backbone on an engine: photos in, the tail's input out.
pub struct Frozen {
    /// The backbone's spec: how photos are resized and normalised.
    pub spec: ModelSpec,
    /// The tensor it outputs: the tail's input.
    pub output: String,
    engine: Engine,
}

impl Frozen {
    /// The frozen start `model` (a `frozen.onnx`) on an engine, computing `output`.
    pub fn load(model: &Path, spec: ModelSpec, output: &str, engine: &EngineConfig) -> Result<Frozen, NetError> {
        let engine = Engine::load(model, &spec, &[output], &engine.with_floats())?;
        Ok(Frozen { spec, output: output.into(), engine })
    }

    /// Where it runs, as [`Engine::describe`] says.
    pub fn engine(&self) -> String {
        self.engine.describe()
    }

    /// The activations of `samples` (decoded and resized as the backbone's spec says, in
    /// parallel, `batch` per engine call); unreadable images are skipped and returned.
    pub fn run(
        &mut self,
        samples: &[Sample],
        batch: usize,
        tick: impl Fn(usize) + Sync,
    ) -> Result<(Activations, Vec<DatasetError>), NetError> {
        let mut out = Activations::default();
        let mut skipped = Vec::new();
        for chunk in samples.chunks(batch.max(1)) {
            let loaded: Vec<Result<image::RgbImage, DatasetError>> =
                chunk.par_iter().map(|s| s.load_resized(&self.spec.resize)).collect();
            let mut images = Vec::new();
            for (sample, result) in chunk.iter().zip(loaded) {
                match result {
                    Ok(image) => {
                        images.push(image);
                        out.labels.push(sample.label.unwrap_or(0));
                        out.paths.push(sample.rel.clone());
                    }
                    Err(e) => skipped.push(e),
                }
            }
            if !images.is_empty() {
                let y = self.engine.run(preprocess_batch(&self.spec, &images).view())?.remove(0);
                let &[_, c, h, w] = y.shape() else {
                    return Err(NetError::Config(format!(
                        "`{}` is {:?}, expected (n, C, H, W)",
                        self.output,
                        y.shape()
                    )));
                };
                out.shape = [c, h, w];
                out.values.extend(y.iter().copied());
            }
            tick(chunk.len());
        }
        Ok((out, skipped))
    }
}

/// What `fine-tune` was asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneConfig {
    /// Epochs to train.
    pub epochs: usize,
    /// Images per gradient step.
    pub batch_size: usize,
    /// SGD's learning rate.
    pub learning_rate: f32,
    /// SGD's momentum.
    pub momentum: f32,
    /// Seed of shuffling and dropout.
    pub seed: u64,
}

impl FineTuneConfig {
    /// Refuses values outside [`imgclf_dataset::limits`].
    pub fn check(&self) -> Result<(), NetError> {
        use imgclf_dataset::limits::{BATCH, EPOCHS, LEARNING_RATE, MOMENTUM};
        let limited = || -> Result<(), String> {
            EPOCHS.check_usize(self.epochs)?;
            BATCH.check_usize(self.batch_size)?;
            LEARNING_RATE.check_f32(self.learning_rate)?;
            MOMENTUM.check_f32(self.momentum)?;
            Ok(())
        };
        limited().map_err(NetError::Config)
    }
}

/// Loss and accuracy on a split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Log loss.
    pub loss: f64,
    /// Accuracy.
    pub acc: f64,
}

/// `run.json` of a fine-tuning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneInfo {
    /// Format, writer and command line.
    #[serde(flatten)]
    pub header: RunHeader,
    /// The training settings.
    pub config: FineTuneConfig,
    /// Class names in id order.
    pub classes: Vec<String>,
    /// The train-head run it started from.
    pub base_run: PathBuf,
    /// The backbone's name.
    pub backbone: String,
    /// The backbone's ONNX file and its sha256: the tail is rebuilt from it.
    pub model: PathBuf,
    /// sha256 of the model file.
    pub model_sha256: String,
    /// The backbone's spec JSON (resize and normalisation of photos).
    pub spec: String,
    /// The tail's input (the frozen start's output, computed by `frozen.onnx`) and output.
    pub from: String,
    /// The tail's output: the feature map the head pools.
    pub to: String,
    /// The data root trained on.
    pub data: PathBuf,
    /// The split validated on, if any.
    pub validation: Option<String>,
    /// The head's structure (its weights are in weights.safetensors).
    pub hidden: bool,
    /// Whether the head standardises its inputs.
    pub standardized: bool,
    /// The head's dropout rate.
    pub dropout: f32,
    /// Validation numbers of the frozen-feature head before fine-tuning (through this same
    /// pipeline), and after each epoch.
    pub before: Option<Score>,
    /// Every epoch's numbers.
    pub history: Vec<EpochStats>,
    /// Where the frozen start ran while training (`ort`, `tract`, `ort cuda:0`).
    #[serde(default)]
    pub engine: String,
}

impl FineTuneInfo {
    /// `run.json`'s text of a fine-tuning run in `dir`, parsed (another kind is refused).
    pub fn parse(dir: &Path, text: &str) -> Result<FineTuneInfo, NetError> {
        Ok(parse_run_json(dir, text, FINETUNE_RUN_FORMAT, "fine-tune")?)
    }

    /// The run's facts for pages and tables.
    pub fn summary(&self) -> RunSummary {
        let backbone = BackboneSummary {
            name: self.backbone.clone(),
            model_sha256: self.model_sha256.clone(),
            width: None,
            features: None,
            model: self.model.clone(),
        };
        RunSummary {
            kind: "fine-tune",
            header: self.header.clone(),
            backbones: vec![backbone],
            head: format!("{} (fine-tuned)", if self.hidden { "mlp" } else { "logistic" }),
            settings: settings(&self.config),
            seed: Some(self.config.seed),
            data: Some(self.data.clone()),
            engine: Some(self.engine.clone()).filter(|e| !e.is_empty()),
            validation: self.validation.as_ref().map(|name| format!("split `{name}`")),
            epochs_run: self.history.len(),
            best_epoch: None,
            kept: self.history.last().cloned(),
            base_run: Some(self.base_run.clone()),
        }
    }

    /// The frozen start of run folder `dir` (its `frozen.onnx`) on an engine.
    pub fn frozen(&self, dir: &Path, engine: &EngineConfig) -> Result<Frozen, NetError> {
        let spec = ModelSpec::parse(&self.spec).map_err(|e| NetError::file(dir.join("run.json"), e))?;
        Frozen::load(&dir.join("frozen.onnx"), spec, &self.from, engine)
    }
}

/// A fine-tuning run folder: `frozen.onnx` (the backbone up to the tail), `weights.safetensors`
/// (tail and head), `run.json`, `history.csv`, `curves.png`.
pub struct FineTuneRun {
    /// The run folder.
    pub dir: PathBuf,
    /// Its `run.json`.
    pub info: FineTuneInfo,
    /// The tail and head with their weights.
    pub model: FineTuned,
    /// Its temperature, when `calibrate` fitted one (applied by [`crate::AnyRun`]).
    pub temperature: Option<Temperature>,
}

/// One `fine-tune` run from its start to its end, for any caller: [`FineTuning::create`] cuts
/// the tail from the base run's backbone and loads the frozen start on an engine,
/// [`FineTuning::cache`] runs the frozen start once over a split's photos,
/// [`FineTuning::train`] trains tail and head and publishes the run folder. An error or an
/// interruption before the end leaves no folder.
pub struct FineTuning {
    /// The run being made.
    pub run: FineTuneRun,
    /// Its data root.
    pub dataset: Dataset,
    frozen: Frozen,
    out: RunDir,
}

impl FineTuning {
    /// Prepares a fine-tuning of `base` (a train-head run on one backbone) on the photos under
    /// `data` into `out`, its tail starting at `from` (default: the last residual block's
    /// input), its frozen start run by `engine`, its tail and head trained on `device`.
    pub fn create(
        out: RunDir,
        base: &Run,
        data: &Path,
        from: Option<&str>,
        config: FineTuneConfig,
        engine: &EngineConfig,
        device: &Device,
    ) -> Result<FineTuning, NetError> {
        let mut run = FineTuneRun::create(out.path(), base, from, data, config, device)?;
        let frozen = run.frozen(engine)?;
        run.info.engine = frozen.engine();
        let dataset = Dataset::open(&run.info.data)?;
        Ok(FineTuning { run, dataset, frozen, out })
    }

    /// Split `name`'s activations at the tail's input (`tick` with the photos done after each
    /// engine call), with the photos that could not be read.
    pub fn cache(
        &mut self,
        name: &str,
        tick: impl Fn(usize) + Sync,
    ) -> Result<(Activations, Vec<DatasetError>), NetError> {
        let split = self
            .dataset
            .split(name)
            .ok_or_else(|| NetError::file(&self.dataset.source, format!("no `{name}` split to fine-tune on")))?;
        self.frozen.run(&split.samples, 32, tick)
    }

    /// Validation numbers of the head before fine-tuning ([`FineTuneRun::score_before`]).
    pub fn score_before(&mut self, validation: &Activations) -> Result<Score, NetError> {
        self.run.score_before(validation)
    }

    /// Trains tail and head ([`FineTuneRun::train`]), then publishes the run folder.
    pub fn train(
        mut self,
        train_set: &Activations,
        validation: Option<&Activations>,
        stop: Option<&AtomicBool>,
        on_event: impl FnMut(FitEvent) -> Result<(), NetError>,
    ) -> Result<FineTuneInfo, NetError> {
        self.run.train(train_set, validation, stop, on_event)?;
        self.out.publish()?;
        Ok(self.run.info)
    }
}

fn read_model(path: &Path) -> Result<pb::ModelProto, NetError> {
    let bytes = std::fs::read(path).map_err(NetError::io(path))?;
    onnx::decode(&bytes).map_err(|reason| NetError::file(path, reason))
}

impl FineTuneRun {
    /// Prepares a fine-tuning of `base` (a train-head run on one backbone): finds the tail
    /// (from `from`, else the input of the last residual block, to the spec's feature map),
    /// writes it into `dir` (an empty folder: a [`RunDir`](imgclf_heads::RunDir)'s) with the frozen start,
    /// and returns the run, untrained, its tail and head on `device`.
    pub fn create(
        dir: &Path,
        base: &Run,
        from: Option<&str>,
        data: &Path,
        config: FineTuneConfig,
        device: &Device,
    ) -> Result<FineTuneRun, NetError> {
        config.check()?;
        let [source] = &base.info.sources[..] else {
            return Err(NetError::file(
                &base.dir,
                format!("a head on {} backbones; fine-tune takes a head trained on one", base.info.sources.len()),
            ));
        };
        let backbone = Backbone::open(&source.model)?;
        if backbone.sha256 != source.model_sha256 {
            return Err(NetError::file(&source.model, "has changed since the head was trained (sha256 differs)"));
        }
        let to = match &backbone.spec.feature_map {
            Some((name, imgclf_runtime::Layout::Nchw)) => name.clone(),
            Some(_) => {
                return Err(NetError::file(
                    &source.model,
                    "an NHWC feature map: fine-tuning rebuilds NCHW backbones only",
                ));
            }
            None => return Err(NetError::file(&source.model, "its spec names no `features` map to fine-tune up to")),
        };
        let onnx = read_model(&source.model)?;
        let from = match from {
            Some(f) => f.to_string(),
            None => last_block_input(&onnx).ok_or_else(|| {
                NetError::file(&source.model, "no residual block found; name the tail's first tensor (`from`)")
            })?,
        };
        let tail = Tail::from_onnx(&onnx, &from, &to, device).map_err(|e| NetError::file(&source.model, e))?;
        let dataset = Dataset::open(data)?;
        if dataset.classes.names() != base.info.classes {
            return Err(NetError::file(
                data,
                format!("classes {:?}, but the head was trained on {:?}", dataset.classes.names(), base.info.classes),
            ));
        }
        let head = &base.head;
        let info = FineTuneInfo {
            header: RunHeader::new(FINETUNE_RUN_FORMAT, format!("imgclf-nets {}", env!("CARGO_PKG_VERSION"))),
            config,
            classes: base.info.classes.clone(),
            base_run: std::path::absolute(&base.dir).map_err(NetError::io(&base.dir))?,
            backbone: source.backbone.clone(),
            model: std::path::absolute(&source.model).map_err(NetError::io(&source.model))?,
            model_sha256: source.model_sha256.clone(),
            spec: backbone.spec.source_json.clone(),
            from: from.clone(),
            to,
            data: std::path::absolute(data).map_err(NetError::io(data))?,
            validation: validation_split(&dataset, None)?,
            hidden: head.hidden.is_some(),
            standardized: head.standardizer.is_some(),
            dropout: head.config.dropout,
            before: None,
            history: Vec::new(),
            engine: String::new(),
        };
        let model = FineTuned { tail, head: HeadLayers::from_head(head, device)?, classes: info.classes.len() };
        Self::save(dir, &info, &model)?;
        write_atomic(&dir.join("frozen.onnx"), &onnx::encode(&prefix_model(&onnx, &from)?))?;
        Ok(FineTuneRun { dir: dir.to_path_buf(), info, model, temperature: None })
    }

    /// The frozen start on an engine.
    pub fn frozen(&self, engine: &EngineConfig) -> Result<Frozen, NetError> {
        self.info.frozen(&self.dir, engine)
    }

    /// The head's score on `validation` before any fine-tuning, recorded in `run.json`.
    pub fn score_before(&mut self, validation: &Activations) -> Result<Score, NetError> {
        let (loss, acc) = score_batches(&self.model, validation)?;
        self.info.before = Some(Score { loss, acc });
        Ok(Score { loss, acc })
    }

    /// Trains the tail and the head together with SGD as `info.config` says (the tutorial's:
    /// constant rate, no label smoothing), saving into the run folder after every epoch. An
    /// interruption ([`NetError::Interrupted`]) leaves the last whole epoch saved.
    pub fn train(
        &mut self,
        train_set: &Activations,
        validation: Option<&Activations>,
        stop: Option<&AtomicBool>,
        mut on_event: impl FnMut(FitEvent) -> Result<(), NetError>,
    ) -> Result<(), NetError> {
        let config = &self.info.config;
        let mut optimizer = OptimizerConfig::keras_default("sgd").expect("sgd is known");
        optimizer.learning_rate = config.learning_rate;
        optimizer.rule = Rule::Sgd { momentum: config.momentum, nesterov: false };
        let settings = FitSettings {
            epochs: config.epochs,
            batch_size: config.batch_size,
            schedule: Schedule::Constant,
            label_smoothing: 0.0,
            seed: config.seed,
        };
        let state = TrainState::start(&self.model, optimizer);
        let validation = validation.map(|v| v as &dyn Batches);
        let FineTuneRun { dir, info, model, .. } = self;
        fit(&*model, state, &settings, train_set, validation, stop, |event| {
            if let FitEvent::Epoch { state, .. } = &event {
                info.history = state.history.clone();
                FineTuneRun::save(dir, info, model)?;
            }
            on_event(event)
        })
        .map(|_| ())
    }

    /// Writes weights, history, curves and `run.json` into `dir`, each renamed into place.
    pub fn save(dir: &Path, info: &FineTuneInfo, model: &FineTuned) -> Result<(), NetError> {
        let mut tensors: Vec<NamedTensor> = Vec::new();
        for (name, v) in model.params() {
            tensors.push((name, v.dims().to_vec(), v.flatten_all()?.to_vec1::<f32>()?));
        }
        if let Some((mean, scale)) = &model.head.standardizer {
            for (name, t) in [("head.standardizer.mean", mean), ("head.standardizer.scale", scale)] {
                tensors.push((name.into(), t.dims().to_vec(), t.to_vec1::<f32>()?));
            }
        }
        write_atomic(&dir.join("weights.safetensors"), &f32_safetensors(&tensors, FINETUNE_RUN_FORMAT))?;
        write_atomic(&dir.join("history.csv"), history_csv(&info.history).as_bytes())?;
        curves_png(&info.history, &dir.join("curves.png"))?;
        let json = serde_json::to_string_pretty(info).expect("run info serialises");
        write_atomic(&dir.join("run.json"), json.as_bytes())
    }

    /// Reads a fine-tuning run: the tail rebuilt from the backbone (checked by sha256), then
    /// every weight from `weights.safetensors`.
    pub fn load(dir: &Path) -> Result<FineTuneRun, NetError> {
        FineTuneRun::from_run_json(dir, &run_json_text(dir, "fine-tune")?)
    }

    /// [`FineTuneRun::load`] with `run.json`'s text already read.
    pub fn from_run_json(dir: &Path, text: &str) -> Result<FineTuneRun, NetError> {
        let info = FineTuneInfo::parse(dir, text)?;
        let backbone = Backbone::open(&info.model)?;
        if backbone.sha256 != info.model_sha256 {
            return Err(NetError::file(&info.model, "has changed since the fine-tuning (sha256 differs)"));
        }
        // scored on the CPU, as `evaluate`, `predict` and `report` do
        let device = &Device::Cpu;
        let tail = Tail::from_onnx(&read_model(&info.model)?, &info.from, &info.to, device)?;
        let weights = dir.join("weights.safetensors");
        let bytes = std::fs::read(&weights).map_err(NetError::io(&weights))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| NetError::file(&weights, e))?;
        let get = |name: &str| f32_tensor(&st, name).map_err(|r| NetError::file(&weights, r));
        let tensor = |name: &str| -> Result<Var, NetError> {
            let (shape, values) = get(name)?;
            var(&values, &shape, device)
        };
        let standardizer = if info.standardized {
            let (m, s) = (get("head.standardizer.mean")?, get("head.standardizer.scale")?);
            Some((Tensor::from_vec(m.1, m.0, device)?, Tensor::from_vec(s.1, s.0, device)?))
        } else {
            None
        };
        let dense = |name: &str| -> Result<Dense, NetError> {
            Ok(Dense { kernel: tensor(&format!("head.{name}.kernel"))?, bias: tensor(&format!("head.{name}.bias"))? })
        };
        let hidden = if info.hidden { Some(dense("hidden")?) } else { None };
        let head = HeadLayers { standardizer, hidden, output: dense("output")?, dropout: info.dropout };
        for (name, var) in tail.params() {
            let (shape, values) = get(&name)?;
            if shape != var.dims() {
                return Err(NetError::file(
                    &weights,
                    format!("`{name}` is {shape:?}, the tail needs {:?}", var.dims()),
                ));
            }
            var.set(&Tensor::from_vec(values, shape, var.device())?)?;
        }
        let classes = info.classes.len();
        let temperature = Temperature::read(dir)?;
        Ok(FineTuneRun { dir: dir.to_path_buf(), info, model: FineTuned { tail, head, classes }, temperature })
    }

    /// Class probabilities for split `split` (default: validation, else test) of `data`
    /// (default: the data root fine-tuned on).
    pub fn score_split(
        &self,
        data: Option<&Path>,
        split: Option<&str>,
        engine: &EngineConfig,
    ) -> Result<Scored, NetError> {
        let root = data.unwrap_or(&self.info.data);
        let dataset = Dataset::open(root)?;
        let (name, samples) = pick_split(&dataset, &self.info.classes, split, &self.dir)?;
        let (activations, skipped) = self.frozen(engine)?.run(samples, 32, |_| {})?;
        let probs = predict_batches(&self.model, &activations)?;
        let labelled = samples.first().is_some_and(|s| s.label.is_some());
        let labels = labelled.then(|| activations.labels.clone());
        Ok(Scored {
            split: name,
            classes: self.info.classes.clone(),
            paths: activations.paths,
            labels,
            photos: None,
            probs,
            skipped,
        })
    }

    /// Class probabilities for photos; unreadable ones are skipped and reported.
    pub fn predict_samples(&self, samples: &[Sample], engine: &EngineConfig) -> Result<Predictions, NetError> {
        let (activations, skipped) = self.frozen(engine)?.run(samples, 32, |_| {})?;
        let probs = predict_batches(&self.model, &activations)?;
        Ok(Predictions { samples: crate::data::kept(samples, &activations.paths), probs, maps: Vec::new(), skipped })
    }
}
