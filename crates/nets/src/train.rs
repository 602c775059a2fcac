//! Training a [`Net`] from pixels: augmented, shuffled batches, Keras' optimizers and losses,
//! validation each epoch, and a checkpoint after every epoch from which a resumed run continues
//! exactly as an uninterrupted one (every random draw is keyed by seed, epoch and batch).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{D, DType, Device, Tensor};
use imgclf_augment::{AugmentParams, Augmenter};
use imgclf_dataset::Rng;
use imgclf_heads::{EpochStats, Optimizer, OptimizerConfig, argmax};
use serde::{Deserialize, Serialize};

use crate::data::{ImageSet, Input, batch_tensor};
use crate::{Arch, Net, NetError};

/// Everything that decides a training run's result (with the data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnnConfig {
    pub arch: Arch,
    /// `[height, width]` the images are resized to.
    pub size: [usize; 2],
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerConfig,
    pub schedule: Schedule,
    /// Augmentation of training images; validation images are never augmented.
    pub augment: Option<AugmentParams>,
    pub input: Input,
    /// Targets become `(1 - s) · one_hot + s / classes` (Keras' `label_smoothing`).
    pub label_smoothing: f32,
    pub seed: u64,
}

/// The learning rate across epochs (on top of the optimizer's own per-step decay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    /// `lr · (1 + cos(π · epoch / epochs)) / 2`, from `lr` in the first epoch towards 0.
    Cosine,
}

impl Schedule {
    pub const NAMES: [&str; 2] = ["constant", "cosine"];

    pub fn parse(name: &str) -> Option<Schedule> {
        match name {
            "constant" => Some(Schedule::Constant),
            "cosine" => Some(Schedule::Cosine),
            _ => None,
        }
    }

    fn factor(self, epoch: usize, epochs: usize) -> f32 {
        match self {
            Schedule::Constant => 1.0,
            Schedule::Cosine => (1.0 + (std::f32::consts::PI * epoch as f32 / epochs.max(1) as f32).cos()) / 2.0,
        }
    }
}

/// Where training stands after a whole epoch: what a checkpoint holds besides the weights.
#[derive(Debug, Clone)]
pub struct Progress {
    pub optimizer: Optimizer,
    pub history: Vec<EpochStats>,
}

impl Progress {
    /// The start of a run: no epochs, a fresh optimizer for `net`'s parameters.
    pub fn start(net: &Net, config: OptimizerConfig) -> Progress {
        let sizes: Vec<usize> = net.params().iter().map(|(_, v)| v.elem_count()).collect();
        Progress { optimizer: Optimizer::new(config, &sizes), history: Vec::new() }
    }

    pub fn epochs_done(&self) -> usize {
        self.history.len()
    }
}

/// What [`train`] reports as it goes.
pub enum TrainEvent<'a> {
    /// `done` of `total` images of the current epoch.
    Batch { epoch: usize, done: usize, total: usize },
    /// An epoch ended: its numbers, and the state to checkpoint.
    Epoch { stats: &'a EpochStats, net: &'a Net, progress: &'a Progress },
}

const SHUFFLE: u64 = 0x11;
const DROPOUT: u64 = 0x12;
/// Net weights are drawn from this stream of the seed.
pub const INIT: u64 = 0x10;

/// Trains `net` from `progress` (a fresh start or a checkpoint) up to `config.epochs`.
/// `stop`, when set, ends the run between batches with [`NetError::Interrupted`]; the last
/// [`TrainEvent::Epoch`] is then the state to resume from.
pub fn train(
    net: &Net,
    mut progress: Progress,
    config: &CnnConfig,
    train: &ImageSet,
    validation: Option<&ImageSet>,
    stop: Option<&AtomicBool>,
    mut on_event: impl FnMut(TrainEvent) -> Result<(), NetError>,
) -> Result<Progress, NetError> {
    if train.is_empty() {
        return Err(NetError::Config("no training images could be read".into()));
    }
    let augmenter = match &config.augment {
        Some(params) => Some(Augmenter::new(params.clone())?),
        None => None,
    };
    let base_lr = config.optimizer.learning_rate;
    let mut values: Vec<Vec<f32>> =
        net.params().iter().map(|(_, v)| v.flatten_all().and_then(|t| t.to_vec1::<f32>())).collect::<Result<_, _>>()?;
    for epoch in progress.epochs_done()..config.epochs {
        let started = Instant::now();
        progress.optimizer.config.learning_rate = base_lr * config.schedule.factor(epoch, config.epochs);
        let mut order: Vec<usize> = (0..train.len()).collect();
        Rng::stream(config.seed, SHUFFLE, epoch as u64).shuffle(&mut order);
        let stream_base = (epoch * train.len()) as u64;
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for (b, chunk) in order.chunks(config.batch_size.max(1)).enumerate() {
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Err(NetError::Interrupted { epoch: epoch + 1, saved: epoch });
            }
            let x =
                batch_tensor(train, chunk, augmenter.as_ref().map(|a| (a, config.seed, stream_base)), config.input)?;
            let labels: Vec<usize> = chunk.iter().map(|&i| train.labels[i]).collect();
            let mut rng = Rng::stream(config.seed, DROPOUT, ((epoch as u64) << 32) | b as u64);
            let logits = net.forward(&x, Some(&mut rng))?;
            let loss = loss(&logits, &labels, net.classes, config.label_smoothing)?;
            let grads = loss.backward()?;
            let params = net.params();
            let mut gradients = Vec::with_capacity(params.len());
            for (name, var) in &params {
                let g = grads.get(var).ok_or_else(|| NetError::Config(format!("no gradient reached {name}")))?;
                gradients.push(g.flatten_all()?.to_vec1::<f32>()?);
            }
            let mut slices: Vec<&mut [f32]> = values.iter_mut().map(|v| v.as_mut_slice()).collect();
            let grad_slices: Vec<&[f32]> = gradients.iter().map(|g| g.as_slice()).collect();
            progress.optimizer.step(&mut slices, &grad_slices);
            for ((_, var), v) in params.iter().zip(&values) {
                var.set(&Tensor::from_slice(v, var.shape(), &Device::Cpu)?)?;
            }
            loss_sum += f64::from(loss.to_scalar::<f32>()?) * chunk.len() as f64;
            let probs = net.probabilities(&logits.detach())?;
            correct += probs.outer_iter().zip(&labels).filter(|(p, l)| argmax(p.view()) == **l).count();
            on_event(TrainEvent::Batch {
                epoch: epoch + 1,
                done: (b * config.batch_size + chunk.len()),
                total: train.len(),
            })?;
        }
        let (val_loss, val_acc) = match validation {
            Some(v) if !v.is_empty() => {
                let (l, a) = score(net, v, config.input)?;
                (Some(l), Some(a))
            }
            _ => (None, None),
        };
        let stats = EpochStats {
            epoch: epoch + 1,
            loss: loss_sum / train.len() as f64,
            acc: correct as f64 / train.len() as f64,
            val_loss,
            val_acc,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress.history.push(stats.clone());
        on_event(TrainEvent::Epoch { stats: &stats, net, progress: &progress })?;
    }
    progress.optimizer.config.learning_rate = base_lr;
    Ok(progress)
}

/// Mean loss and accuracy of `net` over `set` (no augmentation, no dropout).
pub fn score(net: &Net, set: &ImageSet, input: Input) -> Result<(f64, f64), NetError> {
    let probs = predict(net, set, input)?;
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for (p, &label) in probs.outer_iter().zip(&set.labels) {
        loss -= f64::from(p[label].max(1e-7)).ln();
        correct += usize::from(argmax(p) == label);
    }
    Ok((loss / set.len() as f64, correct as f64 / set.len() as f64))
}

/// Class probabilities `(images, classes)` for every image of `set`, in order.
pub fn predict(net: &Net, set: &ImageSet, input: Input) -> Result<ndarray::Array2<f32>, NetError> {
    const BATCH: usize = 64;
    let indices: Vec<usize> = (0..set.len()).collect();
    let mut blocks = Vec::new();
    for chunk in indices.chunks(BATCH) {
        let x = batch_tensor(set, chunk, None, input)?;
        blocks.push(net.probabilities(&net.forward(&x, None)?)?);
    }
    let views: Vec<_> = blocks.iter().map(|b| b.view()).collect();
    Ok(if views.is_empty() {
        ndarray::Array2::zeros((0, net.classes))
    } else {
        ndarray::concatenate(ndarray::Axis(0), &views).expect("same classes in every block")
    })
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

    fn t(values: &[f32], shape: (usize, usize)) -> Tensor {
        Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).unwrap()
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
