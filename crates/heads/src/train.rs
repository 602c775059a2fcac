//! Mini-batch training the way Keras' `fit` does it: shuffled batches each epoch, validation
//! after each epoch, early stopping on validation loss, class weights.

use std::time::Instant;

use ndarray::{Array2, ArrayView1, ArrayView2, CowArray, Ix2, s};
use serde::{Deserialize, Serialize};

use crate::HeadError;
use crate::config::{ClassWeight, TrainConfig, Validation};
use crate::data::{HeadInputs, RowReader};
use crate::head::{Head, Moments, Standardizer};
use crate::optim::Optimizer;
use crate::plan::ChunkPlan;
use crate::sweep::{Sweep, SweepPoint};
use imgclf_dataset::Rng;

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
    /// An L-BFGS iteration ended (the probe, `Solver::Lbfgs`).
    Step {
        /// The iteration (1-based).
        iteration: usize,
        /// The penalised mean log loss.
        objective: f64,
        /// Its gradient's largest entry.
        gradient: f64,
    },
    /// L-BFGS stopped: after how many iterations, with what gradient, and why.
    Solved {
        /// Iterations taken.
        iterations: usize,
        /// The gradient's largest entry at the end.
        gradient: f64,
        /// Why it stopped.
        stop: crate::Stop,
    },
    /// The probe's sweep fitted and scored one `C`.
    Swept(SweepPoint),
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
    /// The probe's search for `C`, when it searched.
    pub sweep: Option<Sweep>,
}

/// Rows of one split with their labels, read through a [`RowReader`].
pub(crate) struct Rows<'a> {
    pub(crate) reader: &'a RowReader<'a>,
    pub(crate) labels: &'a [usize],
    pub(crate) index: Vec<usize>,
}

/// Train rows in memory: the matrix that holds them (a held split's whole matrix, else the
/// rows read), where in it the chunk's rows are, and the label of each of its rows.
pub(crate) struct Chunk<'a> {
    pub(crate) x: CowArray<'a, f32, Ix2>,
    pub(crate) at: Vec<usize>,
    pub(crate) labels: Vec<usize>,
}

const INIT: u64 = 1;
const SHUFFLE: u64 = 2;
const DROPOUT: u64 = 3;

impl ChunkPlan {
    /// Trains a head by mini-batches on the plan's rows of `inputs` (the features it was made
    /// from), visiting them chunk by chunk as [`ChunkPlan::epoch`] lays out; rows are shuffled
    /// within a chunk from the one stream a held split is shuffled with.
    pub(crate) fn sgd(&self, inputs: &HeadInputs, on_event: &mut dyn FnMut(TrainEvent)) -> Result<Trained, HeadError> {
        let config = &self.config;
        let train_split = inputs.split("train").expect("a plan is made from features with a train split");
        let train_labels = train_split.labels.as_deref().expect("a plan's train split is labelled");
        let train_reader = inputs.reader("train")?;
        let val_reader = self.validation_reader(inputs)?;
        let val_rows = self.validation_rows(inputs, &train_reader, val_reader.as_ref());
        let train = Rows { reader: &train_reader, labels: train_labels, index: self.rows.clone() };
        let weights = class_weights(&config.class_weight, &train, inputs.classes.len());

        let mut head =
            Head::new(config.head, inputs.dim(), inputs.classes.len(), &mut Rng::stream(config.seed, INIT, 0));
        if config.standardize {
            head.standardizer = Some(self.standardizer(&train_reader, train_labels, inputs.dim())?);
        }
        let sizes: Vec<usize> = head.params_mut().iter().map(|p| p.len()).collect();
        let mut optimizer = Optimizer::new(config.optimizer, &sizes);

        let mut history = Vec::new();
        let mut best: Option<(f64, usize, Head)> = None;
        for epoch in 1..=config.epochs {
            let batches = self.rows.len().div_ceil(config.batch_size);
            on_event(TrainEvent::EpochStart { epoch, epochs: config.epochs, batches });
            let started = Instant::now();
            let mut shuffle = Rng::stream(config.seed, SHUFFLE, epoch as u64);
            let mut steps = Steps::new(&mut head, &mut optimizer, weights.as_deref(), config, epoch);
            for rows in self.epoch(epoch) {
                let Chunk { x, mut at, labels } = self.chunk(&train_reader, train_labels, rows)?;
                shuffle.shuffle(&mut at);
                steps.chunk(x.view(), &at, &labels, on_event)?;
            }
            let (loss_sum, correct) = steps.finish(on_event)?;
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
        Ok(Trained { head, history, best_epoch, validation: self.validation.clone(), sweep: None })
    }

    /// Rows `rows` of train (labelled `labels`, read through `reader`) in memory: borrowed
    /// whole when the split is held, else read.
    pub(crate) fn chunk<'r>(
        &self,
        reader: &'r RowReader<'_>,
        labels: &[usize],
        rows: Vec<usize>,
    ) -> Result<Chunk<'r>, HeadError> {
        Ok(match self.is_held() {
            true => Chunk { x: reader.range(0..labels.len())?, at: rows, labels: labels.to_vec() },
            false => Chunk {
                x: CowArray::from(reader.gather(&rows)?),
                at: (0..rows.len()).collect(),
                labels: rows.iter().map(|&r| labels[r]).collect(),
            },
        })
    }

    /// The standardizer of the plan's train rows (`dim` features), read in ascending chunks.
    pub(crate) fn standardizer(
        &self,
        reader: &RowReader<'_>,
        labels: &[usize],
        dim: usize,
    ) -> Result<Standardizer, HeadError> {
        let mut moments = Moments::new(dim);
        for rows in self.ascending() {
            let chunk = self.chunk(reader, labels, rows)?;
            moments.add(chunk.x.view(), &chunk.at);
        }
        Ok(moments.standardizer())
    }

    /// The reader of the split validation scores, when it is a split of its own.
    pub(crate) fn validation_reader<'a>(&self, inputs: &'a HeadInputs) -> Result<Option<RowReader<'a>>, HeadError> {
        match &self.validation {
            Validation::Split(name) => Ok(Some(inputs.reader(name)?)),
            _ => Ok(None),
        }
    }

    /// The rows validation scores: a labelled split's (read through `split`, from
    /// [`ChunkPlan::validation_reader`]), or those held out of train (through `train`).
    pub(crate) fn validation_rows<'a>(
        &self,
        inputs: &'a HeadInputs,
        train: &'a RowReader<'a>,
        split: Option<&'a RowReader<'a>>,
    ) -> Option<Rows<'a>> {
        match (&self.validation, split) {
            (Validation::Split(name), Some(reader)) => {
                let labels = inputs.split(name).and_then(|s| s.labels.as_deref()).expect("a labelled split");
                Some(Rows { reader, labels, index: (0..labels.len()).collect() })
            }
            (Validation::Holdout { .. }, _) => {
                let labels = inputs.split("train").and_then(|s| s.labels.as_deref()).expect("a labelled train split");
                Some(Rows { reader: train, labels, index: self.held_out.clone() })
            }
            _ => None,
        }
    }
}

/// One epoch's optimizer steps: each batch's gradients applied, its loss and hits summed. A
/// chunk's last rows short of a batch wait for the next chunk's (copied: under a batch of
/// rows), so only the epoch's last batch is short, as when the rows are held.
struct Steps<'a> {
    head: &'a mut Head,
    optimizer: &'a mut Optimizer,
    weights: Option<&'a [f32]>,
    config: &'a TrainConfig,
    epoch: usize,
    /// Batches taken so far.
    b: u64,
    loss_sum: f64,
    correct: usize,
    /// Rows waiting for a batch, one after another, and their labels.
    pending: Vec<f32>,
    pending_labels: Vec<usize>,
}

impl<'a> Steps<'a> {
    fn new(
        head: &'a mut Head,
        optimizer: &'a mut Optimizer,
        weights: Option<&'a [f32]>,
        config: &'a TrainConfig,
        epoch: usize,
    ) -> Steps<'a> {
        let (pending, pending_labels) = (Vec::new(), Vec::new());
        Steps { head, optimizer, weights, config, epoch, b: 0, loss_sum: 0.0, correct: 0, pending, pending_labels }
    }

    /// Steps on rows `at` of a chunk `x` in that order, `labels` by row of `x`, in batches.
    fn chunk(
        &mut self,
        x: ArrayView2<f32>,
        at: &[usize],
        labels: &[usize],
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<(), HeadError> {
        let size = self.config.batch_size;
        let fill = (size - self.pending_labels.len()) % size;
        let (first, rest) = at.split_at(fill.min(at.len()));
        for batch in std::iter::once(first).chain(rest.chunks(size)) {
            if batch.len() == size && self.pending_labels.is_empty() {
                let batch_labels: Vec<usize> = batch.iter().map(|&r| labels[r]).collect();
                self.take(x, batch, &batch_labels, on_event)?;
                continue;
            }
            for &r in batch {
                self.pending.extend(x.row(r).iter());
                self.pending_labels.push(labels[r]);
            }
            if self.pending_labels.len() == size {
                self.take_pending(on_event)?;
            }
        }
        Ok(())
    }

    /// Steps on the rows still waiting, and returns the epoch's summed loss and hits.
    fn finish(mut self, on_event: &mut dyn FnMut(TrainEvent)) -> Result<(f64, usize), HeadError> {
        if !self.pending_labels.is_empty() {
            self.take_pending(on_event)?;
        }
        Ok((self.loss_sum, self.correct))
    }

    /// One step on rows `batch` of `x`, labelled `labels`.
    fn take(
        &mut self,
        x: ArrayView2<f32>,
        batch: &[usize],
        labels: &[usize],
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<(), HeadError> {
        let (config, epoch) = (self.config, self.epoch);
        let w: Option<Vec<f32>> = self.weights.map(|w| labels.iter().map(|&l| w[l]).collect());
        let dropout = Rng::stream(config.seed, DROPOUT, ((epoch as u64) << 32) | self.b).next_u64();
        let out = self.head.batch_grads(x, batch, labels, w.as_deref(), dropout);
        let weighted: f64 =
            out.losses.iter().enumerate().map(|(i, &l)| (l * w.as_ref().map_or(1.0, |w| w[i])) as f64).sum();
        let batch_loss = weighted + self.head.penalty() as f64 * batch.len() as f64;
        if !batch_loss.is_finite() {
            let value = if batch_loss.is_nan() { "NaN" } else { "infinite" }.to_string();
            return Err(HeadError::Diverged { epoch, batch: self.b + 1, value });
        }
        self.loss_sum += batch_loss;
        self.correct += count_correct(self.head.loss.probabilities(out.logits.view()).view(), labels);
        let grads: Vec<&[f32]> = out.grads.iter().map(Vec::as_slice).collect();
        self.optimizer.step(&mut self.head.params_mut(), &grads);
        on_event(TrainEvent::Batch);
        self.b += 1;
        Ok(())
    }

    /// One step on the rows waiting, which it empties.
    fn take_pending(&mut self, on_event: &mut dyn FnMut(TrainEvent)) -> Result<(), HeadError> {
        let (mut x, labels) = (std::mem::take(&mut self.pending), std::mem::take(&mut self.pending_labels));
        let rows = ArrayView2::from_shape((labels.len(), x.len() / labels.len()), &x).expect("whole rows");
        self.take(rows, &(0..labels.len()).collect::<Vec<_>>(), &labels, on_event)?;
        // the buffers are kept for the next chunk's short batch
        x.clear();
        self.pending = x;
        Ok(())
    }
}

pub(crate) fn class_weights(weights: &ClassWeight, train: &Rows, classes: usize) -> Option<Vec<f32>> {
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
pub(crate) fn score(head: &Head, rows: &Rows, step: usize) -> Result<(f64, f64), HeadError> {
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
pub(crate) fn score_rows(inputs: &HeadInputs) -> usize {
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
