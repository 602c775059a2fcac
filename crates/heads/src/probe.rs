//! The linear probe as the literature fits it (the CLIP paper, DINOv2): logistic regression,
//! multinomial (binary for two classes), on standardised features, its penalised mean log loss
//! minimised by L-BFGS, each evaluation one pass over the train rows in f64. This is
//! scikit-learn's `LogisticRegression(solver="lbfgs")`: L2 on the kernel, not the bias, and
//! the same objective, so the same `C` and `tol` mean the same thing.

use std::time::Instant;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Zip};
use rayon::prelude::*;

use crate::HeadError;
use crate::config::{Lbfgs, TrainConfig};
use crate::data::HeadInputs;
use crate::head::{Head, Standardizer};
use crate::lbfgs::{Point, max_abs, minimize};
use crate::plan::ChunkPlan;
use crate::train::{EpochStats, Rows, TrainEvent, Trained, class_weights, score, score_rows};
use imgclf_dataset::Rng;

/// Rows a thread takes at a time; the blocks' sums are added in order, so the result does not
/// depend on the threads.
const BLOCK: usize = 256;

/// What one pass computed: the summed weighted loss, the summed gradients and the rows
/// classified right.
struct Sums {
    loss: f64,
    kernel: Array2<f64>,
    bias: Array1<f64>,
    correct: usize,
}

impl ChunkPlan {
    /// Fits the plan's logistic head by L-BFGS from zero weights (see the module docs): one
    /// `Step` event per iteration, a history line per iteration, validation scored at the end.
    pub(crate) fn fit_lbfgs(
        &self,
        inputs: &HeadInputs,
        lbfgs: Lbfgs,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<Trained, HeadError> {
        let config: &TrainConfig = &self.config;
        let classes = inputs.classes.len();
        let train_split = inputs.split("train").expect("a plan is made from features with a train split");
        let labels = train_split.labels.as_deref().expect("a plan's train split is labelled");
        let reader = inputs.reader("train")?;
        let train = Rows { reader: &reader, labels, index: self.rows.clone() };
        let standardizer = match config.standardize {
            true => Some(self.standardizer(&reader, labels, inputs.dim())?),
            false => None,
        };
        let weights = class_weights(&config.class_weight, &train, classes);
        let weight = |label: usize| weights.as_ref().map_or(1.0, |w| w[label] as f64);
        let total: f64 = self.rows.iter().map(|&r| weight(labels[r])).sum();
        let l2 = 1.0 / (2.0 * lbfgs.c * total);
        let mut head = Head::new(config.head, inputs.dim(), classes, &mut Rng::new(0));
        head.config.l2 = l2 as f32;
        head.standardizer = standardizer;
        let (dim, outputs) = head.output.kernel.dim();
        let chunks = self.ascending();

        let mut eval = |theta: &[f64]| -> Result<(f64, Vec<f64>, usize), HeadError> {
            let kernel = ArrayView2::from_shape((dim, outputs), &theta[..dim * outputs]).expect("kernel, then bias");
            let bias = ArrayView1::from(&theta[dim * outputs..]);
            let mut sums =
                Sums { loss: 0.0, kernel: Array2::zeros((dim, outputs)), bias: Array1::zeros(outputs), correct: 0 };
            for rows in &chunks {
                let chunk = self.chunk(&reader, labels, rows.clone())?;
                let blocks: Vec<Sums> = chunk
                    .at
                    .par_chunks(BLOCK)
                    .map(|at| {
                        let x = standardized(chunk.x.view(), at, head.standardizer.as_ref());
                        let y: Vec<usize> = at.iter().map(|&r| chunk.labels[r]).collect();
                        block(x, &y, kernel, bias, &weight)
                    })
                    .collect();
                for b in blocks {
                    sums.loss += b.loss;
                    sums.kernel += &b.kernel;
                    sums.bias += &b.bias;
                    sums.correct += b.correct;
                }
            }
            let f = sums.loss / total + l2 * kernel.iter().map(|w| w * w).sum::<f64>();
            let mut g = Vec::with_capacity(theta.len());
            g.extend(Zip::from(&sums.kernel).and(kernel).map_collect(|s, w| s / total + 2.0 * l2 * w));
            g.extend(sums.bias.iter().map(|s| s / total));
            Ok((f, g, sums.correct))
        };

        let n = self.rows.len().max(1) as f64;
        let mut history = Vec::new();
        let mut last = Instant::now();
        let mut on_iter = |iteration: usize, at: &Point<usize>| {
            let gradient = max_abs(&at.g);
            on_event(TrainEvent::Step { iteration, objective: at.f, gradient });
            let seconds = last.elapsed().as_secs_f64();
            last = Instant::now();
            let acc = at.aux as f64 / n;
            history.push(EpochStats { epoch: iteration, loss: at.f, acc, val_loss: None, val_acc: None, seconds });
        };
        let zeros = vec![0.0; dim * outputs + outputs];
        let min = minimize(&mut eval, zeros, lbfgs.tol, lbfgs.max_iter, &mut on_iter)?;
        let point = &min.point;
        if !point.f.is_finite() {
            return Err(HeadError::Diverged { epoch: min.iterations, batch: 1, value: format!("{}", point.f) });
        }
        let kernel = ArrayView2::from_shape((dim, outputs), &point.x[..dim * outputs]).expect("kernel, then bias");
        head.output.kernel = kernel.mapv(|w| w as f32);
        head.output.bias = point.x[dim * outputs..].iter().map(|&b| b as f32).collect();
        if history.is_empty() {
            // converged where it started
            let acc = point.aux as f64 / n;
            history.push(EpochStats { epoch: 0, loss: point.f, acc, val_loss: None, val_acc: None, seconds: 0.0 });
        }
        let split = self.validation_reader(inputs)?;
        if let Some(validation) = self.validation_rows(inputs, &reader, split.as_ref()) {
            let (loss, acc) = score(&head, &validation, score_rows(inputs))?;
            let stats = history.last_mut().expect("one line at least");
            (stats.val_loss, stats.val_acc) = (Some(loss + head.penalty() as f64), Some(acc));
        }
        on_event(TrainEvent::Solved { iterations: min.iterations, gradient: max_abs(&point.g), stop: min.stop });
        let best_epoch = history.last().map_or(0, |s| s.epoch);
        Ok(Trained { head, history, best_epoch, validation: self.validation.clone() })
    }
}

/// Rows `at` of `x`, standardised as [`Head::predict`] does (in f32), widened to f64.
fn standardized(x: ArrayView2<f32>, at: &[usize], standardizer: Option<&Standardizer>) -> Array2<f64> {
    let mut out = Array2::zeros((at.len(), x.ncols()));
    for (mut row, &r) in out.outer_iter_mut().zip(at) {
        match standardizer {
            Some(s) => Zip::from(&mut row)
                .and(x.row(r))
                .and(&s.mean)
                .and(&s.scale)
                .for_each(|o, &v, &m, &sd| *o = ((v - m) / sd) as f64),
            None => Zip::from(&mut row).and(x.row(r)).for_each(|o, &v| *o = v as f64),
        }
    }
    out
}

/// The weighted log loss of rows `x` (labels `y`) under `kernel` and `bias`, its gradients
/// and the rows classified right: binary cross-entropy on one logit, else softmax.
fn block(
    x: Array2<f64>,
    y: &[usize],
    kernel: ArrayView2<f64>,
    bias: ArrayView1<f64>,
    weight: &dyn Fn(usize) -> f64,
) -> Sums {
    let mut z = x.dot(&kernel);
    z += &bias;
    let (mut loss, mut correct) = (0.0, 0);
    for (mut z, &label) in z.outer_iter_mut().zip(y) {
        let w = weight(label);
        if z.len() == 1 {
            let v = z[0];
            let t = label as f64;
            loss += w * (v.max(0.0) + (-v.abs()).exp().ln_1p() - t * v);
            correct += usize::from((v > 0.0) == (label == 1));
            z[0] = w * (1.0 / (1.0 + (-v).exp()) - t);
        } else {
            let best = z.iter().enumerate().fold(0, |b, (i, &v)| if v > z[b] { i } else { b });
            let top = z[best];
            let lse = top + z.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
            loss += w * (lse - z[label]);
            correct += usize::from(best == label);
            z.iter_mut().enumerate().for_each(|(j, v)| *v = w * ((*v - lse).exp() - f64::from(u8::from(j == label))));
        }
    }
    Sums { loss, kernel: x.t().dot(&z), bias: z.sum_axis(Axis(0)), correct }
}
