//! Mini-batch training the way Keras' `fit` does it: shuffled batches each epoch, validation
//! after each epoch, early stopping on validation loss, class weights.

use std::time::Instant;

use ndarray::{ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::HeadError;
use crate::data::HeadInputs;
use crate::head::{Architecture, Head, HeadConfig, Standardizer};
use crate::optim::{Optimizer, OptimizerConfig};
use imgclf_dataset::Rng;
use imgclf_dataset::limits::{self, BATCH, EPOCHS, HIDDEN, L2, PATIENCE, VAL_SPLIT};

/// Everything that decides a training run; stored in `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The head's architecture and regularisation.
    pub head: HeadConfig,
    /// The optimizer with its rates.
    pub optimizer: OptimizerConfig,
    /// Epochs to train.
    pub epochs: usize,
    /// Rows per gradient step.
    pub batch_size: usize,
    /// Seed of initialisation, shuffling, dropout and the held-out rows.
    pub seed: u64,
    /// Standardise each feature with the training rows' mean and standard deviation.
    pub standardize: bool,
    /// Share of train held out (seeded, stratified) for validation when the features have no
    /// `validation` split.
    pub val_split: Option<f32>,
    /// Stop after this many epochs without a lower validation loss, keeping the best weights.
    pub patience: Option<usize>,
    /// Loss weight per class.
    pub class_weight: ClassWeight,
}

impl TrainConfig {
    /// The tutorial's head, what `imgclf train-head` does without flags: Dropout(0.5) → Dense
    /// (logistic), Adadelta (learning rate 1.0), 8 epochs of batches of 128, seed 0.
    pub fn tutorial() -> TrainConfig {
        TrainConfig {
            head: HeadConfig { architecture: Architecture::Logistic, dropout: 0.5, l2: 0.0 },
            optimizer: OptimizerConfig::keras_default("adadelta").expect("a Keras optimizer"),
            epochs: 8,
            batch_size: 128,
            seed: 0,
            standardize: false,
            val_split: None,
            patience: None,
            class_weight: ClassWeight::None,
        }
    }
}

/// Per-class loss weights, as Keras' `class_weight`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeight {
    /// Every class weighs the same.
    None,
    /// `rows / (classes · rows of the class)`, as scikit-learn's `"balanced"`.
    Balanced,
    /// One weight per class, in class-id order.
    Manual(Vec<f32>),
}

impl std::str::FromStr for ClassWeight {
    type Err = String;

    /// `none`, `balanced`, or one number per class, comma-separated.
    fn from_str(s: &str) -> Result<ClassWeight, String> {
        match s {
            "none" => return Ok(ClassWeight::None),
            "balanced" => return Ok(ClassWeight::Balanced),
            _ => {}
        }
        let weights = s
            .split(',')
            .map(|w| {
                w.trim().parse::<f32>().map_err(|_| format!("`{w}` is not a number (expected `balanced` or W,W,...)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(format!("`{s}`: class weights must be numbers >= 0"));
        }
        Ok(ClassWeight::Manual(weights))
    }
}

/// One line of `history.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// The epoch (1-based).
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Training accuracy.
    pub acc: f64,
    /// Validation loss, when there is validation.
    pub val_loss: Option<f64>,
    /// Validation accuracy, when there is validation.
    pub val_acc: Option<f64>,
    /// Seconds the epoch took.
    pub seconds: f64,
}

/// Where the validation rows came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validation {
    /// The features' own split of that name.
    Split(String),
    /// Rows held out of train.
    Holdout {
        /// The share of train held out.
        fraction: f32,
        /// Rows held out.
        rows: usize,
    },
    /// No validation.
    None,
}

/// Progress reports, for bars and Keras-style epoch lines.
#[derive(Debug)]
pub enum TrainEvent<'a> {
    /// An epoch starts.
    EpochStart {
        /// The epoch (1-based).
        epoch: usize,
        /// Epochs in all.
        epochs: usize,
        /// Batches in this epoch.
        batches: usize,
    },
    /// A batch was trained.
    Batch,
    /// An epoch ended: its numbers.
    EpochEnd(&'a EpochStats),
    /// Early stopping ended training.
    Stopped {
        /// The last epoch trained.
        epoch: usize,
        /// The epoch whose weights are kept.
        best_epoch: usize,
    },
}

/// A trained head and how it got there.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The head with the kept epoch's weights.
    pub head: Head,
    /// Every epoch's numbers.
    pub history: Vec<EpochStats>,
    /// The epoch whose weights `head` holds (1-based).
    pub best_epoch: usize,
    /// What validation was measured on.
    pub validation: Validation,
}

/// Rows of one matrix with their labels, used without copying the matrix.
struct Rows<'a> {
    x: ArrayView2<'a, f32>,
    labels: &'a [usize],
    index: Vec<usize>,
}

const INIT: u64 = 1;
const SHUFFLE: u64 = 2;
const DROPOUT: u64 = 3;
const HOLDOUT: u64 = 4;

/// Trains a head on the `train` split. The same inputs, config and seed give the same
/// weights and numbers.
pub fn train(
    inputs: &HeadInputs,
    config: &TrainConfig,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<Trained, HeadError> {
    check(config, inputs.classes.len())?;
    let first_file = inputs.sources.first().map(|s| s.file.clone()).unwrap_or_default();
    let labelled = |name: &str| inputs.split(name).and_then(|s| s.labels.as_ref().map(|l| (s, l)));
    let Some((train_split, train_labels)) = labelled("train") else {
        return Err(HeadError::Input { path: first_file, reason: "no labelled `train` split to train on".into() });
    };
    let all: Vec<usize> = (0..train_labels.len()).collect();
    let (train_rows, val_rows, validation) = match (labelled("validation"), config.val_split) {
        (Some(_), Some(_)) => {
            return Err(HeadError::Config(
                "`val_split` holds out part of train, but the features have a `validation` split; drop one".into(),
            ));
        }
        (Some((split, labels)), None) => {
            let val = Rows { x: split.x.view(), labels, index: (0..labels.len()).collect() };
            (all, Some(val), Validation::Split(split.name.clone()))
        }
        (None, Some(fraction)) => {
            let (keep, held) = stratified_holdout(train_labels, inputs.classes.len(), fraction, config.seed);
            let validation = Validation::Holdout { fraction, rows: held.len() };
            (keep, Some(Rows { x: train_split.x.view(), labels: train_labels, index: held }), validation)
        }
        (None, None) => (all, None, Validation::None),
    };
    if config.patience.is_some() && val_rows.is_none() {
        return Err(HeadError::Config(
            "early stopping (`patience`) watches validation loss: give `val_split`, or features with a validation split".into(),
        ));
    }
    let train = Rows { x: train_split.x.view(), labels: train_labels, index: train_rows };
    let weights = class_weights(&config.class_weight, &train, inputs.classes.len());

    let mut head = Head::new(config.head, inputs.dim(), inputs.classes.len(), &mut Rng::stream(config.seed, INIT, 0));
    if config.standardize {
        head.standardizer = Some(Standardizer::fit(train.x, &train.index));
    }
    let sizes: Vec<usize> = head.params_mut().iter().map(|p| p.len()).collect();
    let mut optimizer = Optimizer::new(config.optimizer, &sizes);

    let batches = train.index.len().div_ceil(config.batch_size);
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, Head)> = None;
    for epoch in 1..=config.epochs {
        on_event(TrainEvent::EpochStart { epoch, epochs: config.epochs, batches });
        let started = Instant::now();
        let mut order = train.index.clone();
        Rng::stream(config.seed, SHUFFLE, epoch as u64).shuffle(&mut order);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for (b, rows) in order.chunks(config.batch_size).enumerate() {
            let labels: Vec<usize> = rows.iter().map(|&r| train.labels[r]).collect();
            let w: Option<Vec<f32>> = weights.as_ref().map(|w| labels.iter().map(|&l| w[l]).collect());
            let dropout = Rng::stream(config.seed, DROPOUT, ((epoch as u64) << 32) | b as u64).next_u64();
            let out = head.batch_grads(train.x, rows, &labels, w.as_deref(), dropout);
            let weighted: f64 =
                out.losses.iter().enumerate().map(|(i, &l)| (l * w.as_ref().map_or(1.0, |w| w[i])) as f64).sum();
            loss_sum += weighted + head.penalty() as f64 * rows.len() as f64;
            correct += count_correct(head.loss.probabilities(out.logits.view()).view(), &labels);
            let grads: Vec<&[f32]> = out.grads.iter().map(Vec::as_slice).collect();
            optimizer.step(&mut head.params_mut(), &grads);
            on_event(TrainEvent::Batch);
        }
        let n = train.index.len() as f64;
        let (val_loss, val_acc) = match &val_rows {
            Some(v) => {
                let (loss, acc) = score(&head, v);
                (Some(loss + head.penalty() as f64), Some(acc))
            }
            None => (None, None),
        };
        let stats = EpochStats {
            epoch,
            loss: loss_sum / n,
            acc: correct as f64 / n,
            val_loss,
            val_acc,
            seconds: started.elapsed().as_secs_f64(),
        };
        on_event(TrainEvent::EpochEnd(&stats));
        history.push(stats);
        if let (Some(patience), Some(loss)) = (config.patience, val_loss) {
            if best.as_ref().is_none_or(|(b, _, _)| loss < *b) {
                best = Some((loss, epoch, head.clone()));
            }
            let best_epoch = best.as_ref().map_or(epoch, |b| b.1);
            if epoch - best_epoch >= patience && epoch < config.epochs {
                on_event(TrainEvent::Stopped { epoch, best_epoch });
                break;
            }
        }
    }
    let (head, best_epoch) = match best {
        Some((_, epoch, head)) => (head, epoch),
        None => (head, history.len()),
    };
    Ok(Trained { head, history, best_epoch, validation })
}

fn check(config: &TrainConfig, classes: usize) -> Result<(), HeadError> {
    let fail = |m: String| Err(HeadError::Config(m));
    let h = &config.head;
    if classes < 2 {
        return fail(format!("a classifier needs at least 2 classes, the features have {classes}"));
    }
    let limited = || -> Result<(), String> {
        EPOCHS.check_usize(config.epochs)?;
        BATCH.check_usize(config.batch_size)?;
        limits::DROPOUT.check_f32(h.dropout)?;
        L2.check_f32(h.l2)?;
        if let Architecture::Mlp { hidden } = h.architecture {
            HIDDEN.check_usize(hidden)?;
        }
        config.val_split.map(|f| VAL_SPLIT.check_f32(f)).transpose()?;
        config.patience.map(|p| PATIENCE.check_usize(p)).transpose()?;
        Ok(())
    };
    limited().map_err(HeadError::Config)?;
    config.optimizer.check()?;
    if let ClassWeight::Manual(w) = &config.class_weight
        && (w.len() != classes || w.iter().any(|&v| v.is_nan() || v <= 0.0))
    {
        return fail(format!("`class_weight` needs {classes} positive weights (one per class), got {w:?}"));
    }
    Ok(())
}

/// Per class, a seeded shuffle and the first `round(fraction · n)` rows held out (at least
/// one and never all of a class with two or more rows). Returns (kept, held), each sorted.
fn stratified_holdout(labels: &[usize], classes: usize, fraction: f32, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let (mut keep, mut held) = (Vec::new(), Vec::new());
    for class in 0..classes {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&r| labels[r] == class).collect();
        Rng::stream(seed, HOLDOUT, class as u64).shuffle(&mut rows);
        let n = rows.len();
        let k = if n < 2 { 0 } else { ((fraction * n as f32).round() as usize).clamp(1, n - 1) };
        held.extend_from_slice(&rows[..k]);
        keep.extend_from_slice(&rows[k..]);
    }
    keep.sort_unstable();
    held.sort_unstable();
    (keep, held)
}

fn class_weights(weights: &ClassWeight, train: &Rows, classes: usize) -> Option<Vec<f32>> {
    match weights {
        ClassWeight::None => None,
        ClassWeight::Manual(w) => Some(w.clone()),
        ClassWeight::Balanced => {
            let mut counts = vec![0usize; classes];
            train.index.iter().for_each(|&r| counts[train.labels[r]] += 1);
            let n = train.index.len() as f32;
            Some(counts.iter().map(|&c| if c == 0 { 0.0 } else { n / (classes as f32 * c as f32) }).collect())
        }
    }
}

fn count_correct(probs: ArrayView2<f32>, labels: &[usize]) -> usize {
    probs.outer_iter().zip(labels).filter(|(p, l)| argmax(*p) == **l).count()
}

/// Index of the largest value (the first on ties).
pub fn argmax(values: ArrayView1<f32>) -> usize {
    values.iter().enumerate().fold(0, |best, (i, &v)| if v > values[best] { i } else { best })
}

/// Mean cross-entropy and accuracy of `head` on `rows`, in inference mode.
fn score(head: &Head, rows: &Rows) -> (f64, f64) {
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for chunk in rows.index.chunks(4096) {
        let probs = head.predict(rows.x.select(Axis(0), chunk).view());
        let labels: Vec<usize> = chunk.iter().map(|&r| rows.labels[r]).collect();
        loss += labels.iter().enumerate().map(|(i, &l)| -(probs[[i, l]].max(1e-7) as f64).ln()).sum::<f64>();
        correct += count_correct(probs.view(), &labels);
    }
    let n = rows.index.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_is_stratified_disjoint_and_seeded() {
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i % 4 == 0)).collect(); // 25 of class 1
        let (keep, held) = stratified_holdout(&labels, 2, 0.2, 5);
        assert_eq!(held.iter().filter(|&&r| labels[r] == 1).count(), 5);
        assert_eq!(held.iter().filter(|&&r| labels[r] == 0).count(), 15);
        assert_eq!(keep.len() + held.len(), 100);
        assert!(held.iter().all(|r| !keep.contains(r)));
        assert_eq!(stratified_holdout(&labels, 2, 0.2, 5).1, held);
        assert_ne!(stratified_holdout(&labels, 2, 0.2, 6).1, held);
    }
}
