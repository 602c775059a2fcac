//! Mini-batch training the way Keras' `fit` does it: shuffled batches each epoch, validation
//! after each epoch, early stopping on validation loss, class weights.

use std::time::Instant;

use ndarray::{Array2, ArrayView1, ArrayView2, CowArray, Ix2, s};
use serde::{Deserialize, Serialize};

use crate::HeadError;
use crate::data::{HeadInputs, RowReader};
use crate::head::{Architecture, Head, HeadConfig, Moments};
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

/// Rows of one split with their labels, read through a [`RowReader`].
struct Rows<'a> {
    reader: &'a RowReader<'a>,
    labels: &'a [usize],
    index: Vec<usize>,
}

/// Train rows in memory: the matrix that holds them (a held split's whole matrix, else the
/// rows read), where in it the chunk's rows are, and the label of each of its rows.
struct Chunk<'a> {
    x: CowArray<'a, f32, Ix2>,
    at: Vec<usize>,
    labels: Vec<usize>,
}

const INIT: u64 = 1;
const SHUFFLE: u64 = 2;
const DROPOUT: u64 = 3;
const HOLDOUT: u64 = 4;
const CHUNKS: u64 = 5;

/// Trains a head on the `train` split. The same inputs, config and seed give the same
/// weights and numbers.
///
/// A held split is one chunk. A split read from the files comes in chunks of at most
/// [`HeadInputs::chunk_rows`] rows, each made of short blocks of rows (at most 64, at least 64
/// blocks a chunk) drawn from the whole split in a seeded order redrawn every epoch: a
/// file's rows sit in class order, and a chunk of neighbouring rows would hold a few classes.
/// Rows are shuffled within a chunk from the one stream a held split is shuffled with, so a
/// split that fits one chunk trains exactly as when held.
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
    let chunk_rows = match &train_split.x {
        Some(_) => usize::MAX,
        None => inputs.chunk_rows(),
    };
    if chunk_rows < config.batch_size {
        return Err(HeadError::Config(format!(
            "`memory_budget` of {} MiB holds {chunk_rows} rows of {} features, fewer than a batch of {}: raise it, or \
             lower `batch_size`",
            inputs.memory_budget >> 20,
            inputs.dim(),
            config.batch_size
        )));
    }
    let train_reader = inputs.reader("train")?;
    let val_split = labelled("validation");
    let val_reader = val_split.map(|(split, _)| inputs.reader(&split.name)).transpose()?;
    let all: Vec<usize> = (0..train_labels.len()).collect();
    let (train_rows, val_rows, validation) = match (val_split, config.val_split) {
        (Some(_), Some(_)) => {
            return Err(HeadError::Config(
                "`val_split` holds out part of train, but the features have a `validation` split; drop one".into(),
            ));
        }
        (Some((split, labels)), None) => {
            let reader = val_reader.as_ref().expect("opened above");
            let val = Rows { reader, labels, index: (0..labels.len()).collect() };
            (all, Some(val), Validation::Split(split.name.clone()))
        }
        (None, Some(fraction)) => {
            let (keep, held) = stratified_holdout(train_labels, inputs.classes.len(), fraction, config.seed);
            let validation = Validation::Holdout { fraction, rows: held.len() };
            (keep, Some(Rows { reader: &train_reader, labels: train_labels, index: held }), validation)
        }
        (None, None) => (all, None, Validation::None),
    };
    if config.patience.is_some() && val_rows.is_none() {
        return Err(HeadError::Config(
            "early stopping (`patience`) watches validation loss: give `val_split`, or features with a validation split".into(),
        ));
    }
    let train = Rows { reader: &train_reader, labels: train_labels, index: train_rows };
    let weights = class_weights(&config.class_weight, &train, inputs.classes.len());
    let held = train_split.x.is_some();
    let blocks = blocks(&train.index, block_rows(chunk_rows));
    let per_chunk = match held {
        true => blocks.len().max(1),
        false => chunk_rows / block_rows(chunk_rows),
    };
    let read = |rows: Vec<usize>| -> Result<Chunk, HeadError> {
        Ok(match held {
            true => Chunk { x: train.reader.range(0..train_split.len())?, at: rows, labels: train.labels.to_vec() },
            false => Chunk {
                x: CowArray::from(train.reader.gather(&rows)?),
                at: (0..rows.len()).collect(),
                labels: rows.iter().map(|&r| train.labels[r]).collect(),
            },
        })
    };
    let chunk_rows_of = |group: &[usize]| -> Vec<usize> {
        let mut rows: Vec<usize> = group.iter().flat_map(|&b| blocks[b].iter().copied()).collect();
        rows.sort_unstable();
        rows
    };

    let mut head = Head::new(config.head, inputs.dim(), inputs.classes.len(), &mut Rng::stream(config.seed, INIT, 0));
    if config.standardize {
        // one pass in ascending row order: the sums of a held split, bit for bit
        let mut moments = Moments::new(inputs.dim());
        let ascending: Vec<usize> = (0..blocks.len()).collect();
        for group in ascending.chunks(per_chunk) {
            let chunk = read(chunk_rows_of(group))?;
            moments.add(chunk.x.view(), &chunk.at);
        }
        head.standardizer = Some(moments.standardizer());
    }
    let sizes: Vec<usize> = head.params_mut().iter().map(|p| p.len()).collect();
    let mut optimizer = Optimizer::new(config.optimizer, &sizes);

    let mut history = Vec::new();
    let mut best: Option<(f64, usize, Head)> = None;
    for epoch in 1..=config.epochs {
        let mut visit: Vec<usize> = (0..blocks.len()).collect();
        if !held {
            Rng::stream(config.seed, CHUNKS, epoch as u64).shuffle(&mut visit);
        }
        let chunks: Vec<Vec<usize>> = visit.chunks(per_chunk).map(chunk_rows_of).collect();
        let batches = chunks.iter().map(|c| c.len().div_ceil(config.batch_size)).sum();
        on_event(TrainEvent::EpochStart { epoch, epochs: config.epochs, batches });
        let started = Instant::now();
        let mut shuffle = Rng::stream(config.seed, SHUFFLE, epoch as u64);
        let (mut loss_sum, mut correct, mut b) = (0.0f64, 0usize, 0u64);
        for rows in chunks {
            let Chunk { x, mut at, labels: label_of } = read(rows)?;
            shuffle.shuffle(&mut at);
            for batch in at.chunks(config.batch_size) {
                let labels: Vec<usize> = batch.iter().map(|&r| label_of[r]).collect();
                let w: Option<Vec<f32>> = weights.as_ref().map(|w| labels.iter().map(|&l| w[l]).collect());
                let dropout = Rng::stream(config.seed, DROPOUT, ((epoch as u64) << 32) | b).next_u64();
                let out = head.batch_grads(x.view(), batch, &labels, w.as_deref(), dropout);
                let weighted: f64 =
                    out.losses.iter().enumerate().map(|(i, &l)| (l * w.as_ref().map_or(1.0, |w| w[i])) as f64).sum();
                let batch_loss = weighted + head.penalty() as f64 * batch.len() as f64;
                if !batch_loss.is_finite() {
                    let value = if batch_loss.is_nan() { "NaN" } else { "infinite" }.to_string();
                    return Err(HeadError::Diverged { epoch, batch: b + 1, value });
                }
                loss_sum += batch_loss;
                correct += count_correct(head.loss.probabilities(out.logits.view()).view(), &labels);
                let grads: Vec<&[f32]> = out.grads.iter().map(Vec::as_slice).collect();
                optimizer.step(&mut head.params_mut(), &grads);
                on_event(TrainEvent::Batch);
                b += 1;
            }
        }
        let n = train.index.len() as f64;
        let (val_loss, val_acc) = match &val_rows {
            Some(v) => {
                let (loss, acc) = score(&head, v, score_rows(inputs))?;
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

/// Mean cross-entropy and accuracy of `head` on `rows`, in inference mode, read `step` rows
/// at a time.
fn score(head: &Head, rows: &Rows, step: usize) -> Result<(f64, f64), HeadError> {
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for chunk in rows.index.chunks(step) {
        let probs = head.predict(rows.reader.gather(chunk)?.view());
        let labels: Vec<usize> = chunk.iter().map(|&r| rows.labels[r]).collect();
        loss += labels.iter().enumerate().map(|(i, &l)| -(probs[[i, l]].max(1e-7) as f64).ln()).sum::<f64>();
        correct += count_correct(probs.view(), &labels);
    }
    let n = rows.index.len().max(1) as f64;
    Ok((loss / n, correct as f64 / n))
}

/// Rows scored at once: 4,096, fewer where the budget's chunk is smaller.
fn score_rows(inputs: &HeadInputs) -> usize {
    inputs.chunk_rows().min(4096)
}

/// Class probabilities of `head` for every row of split `split`, read a block of rows at a
/// time (the same numbers as [`Head::predict`] on the held split).
pub fn predict_split(head: &Head, inputs: &HeadInputs, split: &str) -> Result<Array2<f32>, HeadError> {
    let reader = inputs.reader(split)?;
    let rows = inputs.split(split).map_or(0, |s| s.len());
    let step = score_rows(inputs);
    let mut probs = Array2::zeros((rows, head.classes()));
    for start in (0..rows).step_by(step) {
        let end = (start + step).min(rows);
        probs.slice_mut(s![start..end, ..]).assign(&head.predict(reader.range(start..end)?.view()));
    }
    Ok(probs)
}

/// Rows of the blocks a chunk of `chunk_rows` is drawn in: 64 (one HDF5 chunk of a feature
/// file) when a chunk holds 64 blocks or more, fewer so that it does.
fn block_rows(chunk_rows: usize) -> usize {
    (chunk_rows / 64).clamp(1, 64)
}

/// The rows of `index` (ascending) in blocks of `block_rows` neighbouring rows, empty blocks
/// left out.
fn blocks(index: &[usize], block_rows: usize) -> Vec<Vec<usize>> {
    let mut blocks: Vec<Vec<usize>> = Vec::new();
    let mut current = usize::MAX;
    for &r in index {
        if r / block_rows != current {
            current = r / block_rows;
            blocks.push(Vec::new());
        }
        blocks.last_mut().expect("pushed above").push(r);
    }
    blocks
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
