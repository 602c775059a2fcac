//! Training a [`Net`] from pixels: augmented, shuffled batches, Keras' optimizers and losses,
//! validation each epoch, and a checkpoint after every epoch from which a resumed run continues
//! exactly as an uninterrupted one (every random draw is keyed by seed, epoch and batch).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{D, DType, Device, Tensor, Var};
use imgclf_augment::{AugmentParams, Augmenter};
use imgclf_dataset::limits::{self, BATCH, EPOCHS, LABEL_SMOOTHING};
use imgclf_dataset::{Filter, Resize, Rng};
use imgclf_heads::{EpochStats, Optimizer, OptimizerConfig, argmax};
use imgclf_kernels::update_in_place;
use serde::{Deserialize, Serialize};

use crate::data::{ImageSet, Input, batch_tensor, resize_to};
use crate::{Arch, Net, NetError, Variant};

/// Why a CNN's augmentation takes no `rescale`: Keras scripts add `rescale=1./255`, which
/// here would apply on top of the input scaling, to training batches only.
pub(crate) const RESCALE_BUILT_IN: &str = "augmentation's rescale: the network's input scaling (`unit`: x / 255, the \
     tutorial's rescale=1./255) already applies, in training and scoring alike; a rescale would apply again, to training \
     batches only: leave it out";

/// Everything that decides a training run's result (with the data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnnConfig {
    /// The network.
    pub arch: Arch,
    /// Batch norm and dropout beyond the tutorial's layers.
    #[serde(default)]
    pub variant: Variant,
    /// `[height, width]` the images are resized to.
    pub size: [usize; 2],
    /// Epochs in all.
    pub epochs: usize,
    /// Images per gradient step.
    pub batch_size: usize,
    /// The optimizer with its rates.
    pub optimizer: OptimizerConfig,
    /// The learning rate across epochs.
    pub schedule: Schedule,
    /// Augmentation of training images; validation images are never augmented.
    pub augment: Option<AugmentParams>,
    /// How pixels are scaled.
    pub input: Input,
    /// How photos are resized to `size` (Keras' `load_img` interpolation): nearest for the
    /// small CNN, as its tutorial's `flow_from_directory`; runs from before this setting
    /// were resized bilinearly.
    #[serde(default = "bilinear", with = "filter_name")]
    pub interpolation: Filter,
    /// Targets become `(1 - s) · one_hot + s / classes` (Keras' `label_smoothing`).
    pub label_smoothing: f32,
    /// Seed of initialisation, shuffling, augmentation and dropout.
    pub seed: u64,
}

impl CnnConfig {
    /// The tutorial's recipe for `arch`. The small CNN: 150 px resized with the nearest pixel
    /// (`flow_from_directory`'s default), 30 epochs, RMSprop (Keras' defaults), shear 0.2, zoom
    /// 0.2 and horizontal flips. LeNet: 32 px resized bilinearly, 35 epochs, Adam with the
    /// decay `lr / epochs`, rotation 30, shifts 0.1, shear 0.2, zoom 0.2. Both: batch 32,
    /// pixels `x / 255`, a constant schedule, seed 0.
    pub fn tutorial(arch: Arch) -> CnnConfig {
        let (size, epochs, optimizer) = match arch {
            Arch::Small => (150, 30, "rmsprop"),
            Arch::Lenet => (32, 35, "adam"),
        };
        let interpolation = match arch {
            Arch::Small => Filter::Nearest,
            Arch::Lenet => Filter::Bilinear,
        };
        let mut optimizer = OptimizerConfig::keras_default(optimizer).expect("a Keras optimizer");
        optimizer.decay = arch.tutorial_decay(optimizer.learning_rate, epochs);
        CnnConfig {
            arch,
            variant: Variant::default(),
            size: [size, size],
            epochs,
            batch_size: 32,
            optimizer,
            schedule: Schedule::Constant,
            augment: Some(arch.tutorial_augment()),
            input: Input::Unit,
            interpolation,
            label_smoothing: 0.0,
            seed: 0,
        }
    }

    /// Refuses settings no run can use, naming the one at fault.
    pub fn check(&self) -> Result<(), NetError> {
        let bad = |reason: String| Err(NetError::Config(reason));
        let limited = || -> Result<(), String> {
            LABEL_SMOOTHING.check_f32(self.label_smoothing)?;
            self.variant.dropout.map(|d| limits::DROPOUT.check_f32(d)).transpose()?;
            EPOCHS.check_usize(self.epochs)?;
            BATCH.check_usize(self.batch_size)?;
            Ok(())
        };
        limited().map_err(NetError::Config)?;
        self.optimizer.check()?;
        if self.size.iter().any(|s| !(8..=1024).contains(s)) {
            return bad(format!("input size {:?}: each side from 8 to 1024", self.size));
        }
        if let Some(p) = &self.augment {
            Augmenter::new(p.clone()).map_err(|e| NetError::Config(e.to_string()))?;
            if p.rescale.is_some() {
                return bad(RESCALE_BUILT_IN.into());
            }
        }
        Ok(())
    }

    /// How every photo becomes the network's input size, in training and in prediction.
    pub fn resize(&self) -> Resize {
        resize_to(self.size, self.interpolation)
    }
}

fn bilinear() -> Filter {
    Filter::Bilinear
}

/// A [`Filter`] in `run.json` by its name (`nearest`, `bilinear`, ...).
mod filter_name {
    use imgclf_dataset::Filter;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(filter: &Filter, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(filter)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Filter, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The learning rate across epochs (on top of the optimizer's own per-step decay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The optimizer's rate throughout.
    Constant,
    /// `lr · (1 + cos(π · epoch / epochs)) / 2`, from `lr` in the first epoch towards 0.
    Cosine,
}

imgclf_dataset::named_enum!(Schedule { Schedule::Constant => "constant", Schedule::Cosine => "cosine" });

impl Schedule {
    fn factor(self, epoch: usize, epochs: usize) -> f32 {
        match self {
            Schedule::Constant => 1.0,
            Schedule::Cosine => (1.0 + (std::f32::consts::PI * epoch as f32 / epochs.max(1) as f32).cos()) / 2.0,
        }
    }
}

/// Where training stands after a whole epoch: what a checkpoint holds besides the weights.
#[derive(Debug, Clone)]
pub struct TrainState {
    /// The optimizer with its accumulators.
    pub optimizer: Optimizer,
    /// Every epoch's numbers so far.
    pub history: Vec<EpochStats>,
}

impl TrainState {
    /// The start of a run: no epochs, a fresh optimizer for the model's parameters.
    pub fn start(model: &dyn Trainable, config: OptimizerConfig) -> TrainState {
        let sizes: Vec<usize> = model.params().iter().map(|(_, v)| v.elem_count()).collect();
        TrainState { optimizer: Optimizer::new(config, &sizes), history: Vec::new() }
    }

    /// Whole epochs trained.
    pub fn epochs_done(&self) -> usize {
        self.history.len()
    }
}

/// What [`train`] and [`fit`] report as they go.
pub enum FitEvent<'a> {
    /// `done` of `total` samples of the current epoch.
    Batch {
        /// The epoch (1-based).
        epoch: usize,
        /// Samples trained so far this epoch.
        done: usize,
        /// Samples in the epoch.
        total: usize,
    },
    /// An epoch ended: its numbers, and the optimizer state and history to checkpoint (the
    /// weights are the model's, which the caller holds).
    Epoch {
        /// The epoch's numbers.
        stats: &'a EpochStats,
        /// The state to checkpoint.
        state: &'a TrainState,
    },
}

const SHUFFLE: u64 = 0x11;
const DROPOUT: u64 = 0x12;
/// Net weights are drawn from this stream of the seed.
pub const INIT: u64 = 0x10;

/// A network [`fit`] can train: named trainable tensors and logits for a batch.
pub trait Trainable {
    /// The trainable tensors, named.
    fn params(&self) -> Vec<(String, &Var)>;
    /// Logits `(n, units)`; with `dropout` (training), dropout layers draw their masks from it.
    fn logits(&self, x: &Tensor, dropout: Option<&mut Rng>) -> Result<Tensor, NetError>;
    /// Classes of the output.
    fn classes(&self) -> usize;
    /// Where its tensors live: batches, made in host memory, go there.
    fn device(&self) -> &Device;
}

impl Trainable for Net {
    fn params(&self) -> Vec<(String, &Var)> {
        Net::params(self)
    }
    fn logits(&self, x: &Tensor, dropout: Option<&mut Rng>) -> Result<Tensor, NetError> {
        self.forward(x, dropout)
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn device(&self) -> &Device {
        Net::device(self)
    }
}

/// Labelled samples that [`fit`] draws batches from.
pub trait Batches {
    /// Class id of every sample.
    fn labels(&self) -> &[usize];
    /// The inputs of samples `indices` in host memory (`fit` moves them to the model's
    /// device); `epoch` is set for training batches (augmented, when the source augments) and
    /// unset for validation.
    fn batch(&self, indices: &[usize], epoch: Option<usize>) -> Result<Tensor, NetError>;
}

/// An [`ImageSet`] as training batches: augmented per `config`, scaled per its input.
struct Images<'a> {
    set: &'a ImageSet,
    augmenter: Option<Augmenter>,
    seed: u64,
    input: Input,
}

impl Batches for Images<'_> {
    fn labels(&self) -> &[usize] {
        &self.set.labels
    }
    fn batch(&self, indices: &[usize], epoch: Option<usize>) -> Result<Tensor, NetError> {
        let augment = match (&self.augmenter, epoch) {
            (Some(a), Some(e)) => Some((a, self.seed, (e * self.set.len()) as u64)),
            _ => None,
        };
        batch_tensor(self.set, indices, augment, self.input)
    }
}

/// How [`fit`] trains, whatever the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitSettings {
    /// Epochs in all.
    pub epochs: usize,
    /// Samples per gradient step.
    pub batch_size: usize,
    /// The learning rate across epochs.
    pub schedule: Schedule,
    /// Label smoothing of the targets.
    pub label_smoothing: f32,
    /// Seed of shuffling and dropout.
    pub seed: u64,
}

/// Trains `net` from `state` (a fresh start or a checkpoint) up to `config.epochs` on
/// images, augmented as `config` says. See [`fit`].
pub fn train(
    net: &Net,
    state: TrainState,
    config: &CnnConfig,
    train: &ImageSet,
    validation: Option<&ImageSet>,
    stop: Option<&AtomicBool>,
    on_event: impl FnMut(FitEvent) -> Result<(), NetError>,
) -> Result<TrainState, NetError> {
    let augmenter = match &config.augment {
        Some(params) => Some(Augmenter::new(params.clone())?),
        None => None,
    };
    let train = Images { set: train, augmenter, seed: config.seed, input: config.input };
    let validation = validation.map(|set| Images { set, augmenter: None, seed: config.seed, input: config.input });
    let settings = FitSettings {
        epochs: config.epochs,
        batch_size: config.batch_size,
        schedule: config.schedule,
        label_smoothing: config.label_smoothing,
        seed: config.seed,
    };
    fit(net, state, &settings, &train, validation.as_ref().map(|v| v as &dyn Batches), stop, on_event)
}

/// The training loop: shuffled batches, loss, gradients, one optimizer step each, validation
/// after every epoch. Shuffling, augmentation and dropout are keyed by seed, epoch and batch,
/// so a run resumed from a checkpoint continues exactly. `stop`, when set, ends the run
/// between batches with [`NetError::Interrupted`]; the last [`FitEvent::Epoch`] is then
/// the state to resume from.
pub fn fit(
    model: &dyn Trainable,
    mut state: TrainState,
    settings: &FitSettings,
    train: &dyn Batches,
    validation: Option<&dyn Batches>,
    stop: Option<&AtomicBool>,
    mut on_event: impl FnMut(FitEvent) -> Result<(), NetError>,
) -> Result<TrainState, NetError> {
    let samples = train.labels().len();
    if samples == 0 {
        return Err(NetError::Config("no training samples could be read".into()));
    }
    let base_lr = state.optimizer.config.learning_rate;
    for epoch in state.epochs_done()..settings.epochs {
        let started = Instant::now();
        state.optimizer.config.learning_rate = base_lr * settings.schedule.factor(epoch, settings.epochs);
        let mut order: Vec<usize> = (0..samples).collect();
        Rng::stream(settings.seed, SHUFFLE, epoch as u64).shuffle(&mut order);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for (b, chunk) in order.chunks(settings.batch_size.max(1)).enumerate() {
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Err(NetError::Interrupted { epoch: epoch + 1, saved: epoch });
            }
            let x = train.batch(chunk, Some(epoch))?.to_device(model.device())?;
            let labels: Vec<usize> = chunk.iter().map(|&i| train.labels()[i]).collect();
            let mut rng = Rng::stream(settings.seed, DROPOUT, ((epoch as u64) << 32) | b as u64);
            let logits = model.logits(&x, Some(&mut rng))?;
            let loss = loss(&logits, &labels, model.classes(), settings.label_smoothing)?;
            let grads = loss.backward()?;
            let rates = state.optimizer.begin_step();
            for (i, (name, var)) in model.params().iter().enumerate() {
                let g = grads.get(var).ok_or_else(|| NetError::Config(format!("no gradient reached {name}")))?;
                update_in_place(var, g, |p, g| state.optimizer.update(rates, i, p, g))?;
            }
            loss_sum += f64::from(loss.to_scalar::<f32>()?) * chunk.len() as f64;
            let probs = probabilities(&logits.detach(), model.classes())?;
            correct += probs.outer_iter().zip(&labels).filter(|(p, l)| argmax(p.view()) == **l).count();
            let done = b * settings.batch_size + chunk.len();
            on_event(FitEvent::Batch { epoch: epoch + 1, done, total: samples })?;
        }
        let (val_loss, val_acc) = match validation {
            Some(v) if !v.labels().is_empty() => {
                let (l, a) = score_batches(model, v)?;
                (Some(l), Some(a))
            }
            _ => (None, None),
        };
        let stats = EpochStats {
            epoch: epoch + 1,
            loss: loss_sum / samples as f64,
            acc: correct as f64 / samples as f64,
            val_loss,
            val_acc,
            seconds: started.elapsed().as_secs_f64(),
        };
        state.history.push(stats.clone());
        on_event(FitEvent::Epoch { stats: &stats, state: &state })?;
    }
    state.optimizer.config.learning_rate = base_lr;
    Ok(state)
}

/// Class probabilities `(n, classes)` from logits: a sigmoid unit becomes two columns.
pub fn probabilities(logits: &Tensor, classes: usize) -> Result<ndarray::Array2<f32>, NetError> {
    let n = logits.dim(0)?;
    let probs = if logits.dim(1)? == 1 {
        // each column from the logit (not 1 − p): small probabilities keep their digits
        Tensor::cat(&[candle_nn::ops::sigmoid(&logits.neg()?)?, candle_nn::ops::sigmoid(logits)?], 1)?
    } else {
        candle_nn::ops::softmax(logits, D::Minus1)?
    };
    let values = probs.flatten_all()?.to_vec1::<f32>()?;
    Ok(ndarray::Array2::from_shape_vec((n, classes), values).expect("one row of probabilities per input"))
}

/// Class probabilities for every sample of `data`, in order (no augmentation, no dropout).
pub fn predict_batches(model: &dyn Trainable, data: &dyn Batches) -> Result<ndarray::Array2<f32>, NetError> {
    const BATCH: usize = 64;
    let indices: Vec<usize> = (0..data.labels().len()).collect();
    let mut blocks = Vec::new();
    for chunk in indices.chunks(BATCH) {
        let x = data.batch(chunk, None)?.to_device(model.device())?;
        blocks.push(probabilities(&model.logits(&x, None)?, model.classes())?);
    }
    let views: Vec<_> = blocks.iter().map(|b| b.view()).collect();
    Ok(if views.is_empty() {
        ndarray::Array2::zeros((0, model.classes()))
    } else {
        ndarray::concatenate(ndarray::Axis(0), &views).expect("same classes in every block")
    })
}

/// Mean loss and accuracy over every sample of `data`.
pub fn score_batches(model: &dyn Trainable, data: &dyn Batches) -> Result<(f64, f64), NetError> {
    let probs = predict_batches(model, data)?;
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for (p, &label) in probs.outer_iter().zip(data.labels()) {
        loss -= f64::from(p[label].max(1e-7)).ln();
        correct += usize::from(argmax(p) == label);
    }
    let n = data.labels().len().max(1) as f64;
    Ok((loss / n, correct as f64 / n))
}

/// Mean loss and accuracy of `net` over `set` (no augmentation, no dropout).
pub fn score(net: &Net, set: &ImageSet, input: Input) -> Result<(f64, f64), NetError> {
    score_batches(net, &Images { set, augmenter: None, seed: 0, input })
}

/// Class probabilities `(images, classes)` for every image of `set`, in order.
pub fn predict(net: &Net, set: &ImageSet, input: Input) -> Result<ndarray::Array2<f32>, NetError> {
    predict_batches(net, &Images { set, augmenter: None, seed: 0, input })
}

/// Mean cross-entropy from logits: binary (one sigmoid unit) or categorical (softmax), with
/// label smoothing as Keras applies it.
pub fn loss(logits: &Tensor, labels: &[usize], classes: usize, smoothing: f32) -> Result<Tensor, NetError> {
    let (n, units) = logits.dims2()?;
    let dev = logits.device();
    if units == 1 {
        let y: Vec<f32> = labels.iter().map(|&l| l as f32 * (1.0 - smoothing) + smoothing / 2.0).collect();
        let y = Tensor::from_vec(y, (n, 1), dev)?;
        // max(z, 0) - z·y + log(1 + exp(-|z|)): stable for any z
        let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
        return Ok(((logits.relu()? - logits.mul(&y)?)? + softplus)?.mean_all()?);
    }
    let mut targets = vec![smoothing / classes as f32; n * classes];
    for (row, &l) in labels.iter().enumerate() {
        targets[row * classes + l] += 1.0 - smoothing;
    }
    let targets = Tensor::from_vec(targets, (n, classes), dev)?;
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    Ok(targets.mul(&log_p)?.sum(D::Minus1)?.neg()?.mean_all()?.to_dtype(DType::F32)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(values: &[f32], shape: (usize, usize)) -> Tensor {
        Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).unwrap()
    }

    /// The small CNN resizes as flow_from_directory (nearest), LeNet bilinearly; run.json keeps
    /// the filter by name, and a run.json from before the setting reads as bilinear, what
    /// those runs were trained with.
    #[test]
    fn the_resize_filter_follows_the_tutorial_and_survives_run_json() {
        assert_eq!(CnnConfig::tutorial(Arch::Small).resize().filter, Filter::Nearest);
        assert_eq!(CnnConfig::tutorial(Arch::Lenet).resize().filter, Filter::Bilinear);
        let config = CnnConfig { interpolation: Filter::Bicubic, ..CnnConfig::tutorial(Arch::Small) };
        let mut json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["interpolation"], "bicubic");
        assert_eq!(serde_json::from_value::<CnnConfig>(json.clone()).unwrap(), config);
        json.as_object_mut().unwrap().remove("interpolation");
        assert_eq!(serde_json::from_value::<CnnConfig>(json).unwrap().interpolation, Filter::Bilinear);
    }

    #[test]
    fn binary_loss_matches_the_formula_and_stays_finite_for_large_logits() {
        let z = [2.0f32, -1.0, 300.0];
        let loss = loss(&t(&z, (3, 1)), &[1, 0, 0], 2, 0.0).unwrap().to_scalar::<f32>().unwrap();
        let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
        let want = (-(sig(2.0).ln()) - (1.0 - sig(-1.0)).ln() + 300.0) / 3.0;
        assert!((loss - want).abs() < 1e-4, "{loss} vs {want}");
    }

    #[test]
    fn categorical_loss_with_smoothing_mixes_in_the_uniform_target() {
        let z = [1.0f32, 2.0, 3.0];
        let log_p: Vec<f32> = {
            let m = z.iter().map(|v| v.exp()).sum::<f32>().ln();
            z.iter().map(|v| v - m).collect()
        };
        let plain = loss(&t(&z, (1, 3)), &[0], 3, 0.0).unwrap().to_scalar::<f32>().unwrap();
        assert!((plain + log_p[0]).abs() < 1e-5);
        let smooth = loss(&t(&z, (1, 3)), &[0], 3, 0.3).unwrap().to_scalar::<f32>().unwrap();
        let want = -(0.8 * log_p[0] + 0.1 * log_p[1] + 0.1 * log_p[2]);
        assert!((smooth - want).abs() < 1e-5, "{smooth} vs {want}");
    }

    #[test]
    fn cosine_schedule_starts_at_the_rate_and_halves_midway() {
        assert_eq!(Schedule::Cosine.factor(0, 10), 1.0);
        assert!((Schedule::Cosine.factor(5, 10) - 0.5).abs() < 1e-6);
        assert_eq!(Schedule::Constant.factor(7, 10), 1.0);
    }
}
