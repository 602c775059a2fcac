//! The linear probe as the literature fits it (the CLIP paper, DINOv2): logistic regression,
//! multinomial (binary for two classes), on standardised features, its penalised mean log loss
//! minimised by L-BFGS, each evaluation one pass over the train rows in f64. This is
//! scikit-learn's `LogisticRegression(solver="lbfgs")`: L2 on the kernel, not the bias, and
//! the same objective, so the same `C` and `tol` mean the same thing.

use std::time::Instant;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, CowArray, Zip};
use rayon::prelude::*;

use crate::HeadError;
use crate::config::{InverseL2, Lbfgs, TrainConfig, Validation};
use crate::data::HeadInputs;
use crate::head::{Head, Standardizer};
use crate::lbfgs::{Minimum, Point, max_abs, minimize};
use crate::plan::ChunkPlan;
use crate::sweep::{Sweep, SweepPoint, grid_c, search};
use crate::train::{Chunk, EpochStats, Rows, TrainEvent, Trained, class_weights, score, score_rows};
use imgclf_dataset::Rng;

/// How much tighter than `tol` the sweep's fits and the fit it keeps converge.
pub(crate) const SWEEP_TOL: f64 = 100.0;

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

/// The penalised log loss over the rows fitted: the plan's train rows, and with a refit the
/// validation rows too. Parameters are the kernel `(dim, outputs)` then the bias, flat.
struct Objective<'a> {
    plan: &'a ChunkPlan,
    train: &'a Rows<'a>,
    /// Validation rows fitted as well (a refit), read `step` at a time.
    extra: Option<&'a Rows<'a>>,
    step: usize,
    standardizer: Option<Standardizer>,
    weights: Option<Vec<f32>>,
    dim: usize,
    outputs: usize,
}

impl Objective<'_> {
    fn weight(&self, label: usize) -> f64 {
        self.weights.as_ref().map_or(1.0, |w| f64::from(w[label]))
    }

    /// The rows' summed weights: `n` of scikit-learn's objective.
    fn total(&self) -> f64 {
        let sum = |rows: &Rows| rows.index.iter().map(|&r| self.weight(rows.labels[r])).sum::<f64>();
        sum(self.train) + self.extra.map_or(0.0, sum)
    }

    /// The rows in memory a chunk at a time: the plan's train chunks, then the extra rows.
    fn chunks(&self) -> impl Iterator<Item = Result<Chunk<'_>, HeadError>> {
        let train =
            self.plan.ascending().into_iter().map(|rows| self.plan.chunk(self.train.reader, self.train.labels, rows));
        let extra = self.extra.into_iter().flat_map(|rows| {
            rows.index.chunks(self.step).map(|at| {
                Ok(Chunk {
                    x: CowArray::from(rows.reader.gather(at)?),
                    at: (0..at.len()).collect(),
                    labels: at.iter().map(|&r| rows.labels[r]).collect(),
                })
            })
        });
        train.chain(extra)
    }

    /// Objective, gradient and rows classified right at `theta`, for L2 strength `l2`.
    fn eval(&self, theta: &[f64], l2: f64, total: f64) -> Result<(f64, Vec<f64>, usize), HeadError> {
        let (dim, outputs) = (self.dim, self.outputs);
        let kernel = ArrayView2::from_shape((dim, outputs), &theta[..dim * outputs]).expect("kernel, then bias");
        let bias = ArrayView1::from(&theta[dim * outputs..]);
        let mut sums =
            Sums { loss: 0.0, kernel: Array2::zeros((dim, outputs)), bias: Array1::zeros(outputs), correct: 0 };
        let weight = |label: usize| self.weight(label);
        for chunk in self.chunks() {
            let chunk = chunk?;
            let blocks: Vec<Sums> = chunk
                .at
                .par_chunks(BLOCK)
                .map(|at| {
                    let x = standardized(chunk.x.view(), at, self.standardizer.as_ref());
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
    }

    /// L-BFGS from `start` to the minimum at inverse strength `c`; each iterate goes to `on_iter`.
    fn solve(
        &self,
        c: f64,
        start: Vec<f64>,
        lbfgs: &Lbfgs,
        on_iter: &mut dyn FnMut(usize, &Point<usize>),
    ) -> Result<Minimum<usize>, HeadError> {
        let total = self.total();
        let l2 = 1.0 / (2.0 * c * total);
        let mut eval = |theta: &[f64]| self.eval(theta, l2, total);
        let min = minimize(&mut eval, start, lbfgs.tol, lbfgs.max_iter, on_iter)?;
        if !min.point.f.is_finite() {
            return Err(HeadError::Diverged { epoch: min.iterations, batch: 1, value: format!("{}", min.point.f) });
        }
        Ok(min)
    }

    /// `head` with the parameters `theta` and the L2 strength of `c` (for its penalty).
    fn set(&self, head: &mut Head, theta: &[f64], c: f64) {
        let kernel = ArrayView2::from_shape((self.dim, self.outputs), &theta[..self.dim * self.outputs])
            .expect("kernel, then bias");
        head.output.kernel = kernel.mapv(|w| w as f32);
        head.output.bias = theta[self.dim * self.outputs..].iter().map(|&b| b as f32).collect();
        head.config.l2 = (1.0 / (2.0 * c * self.total())) as f32;
    }
}

impl ChunkPlan {
    /// Fits the plan's logistic head by L-BFGS from zero weights (see the module docs), at the
    /// given `C` or at the one the sweep chose on validation (`Sweep` events, one a `C`): one
    /// `Step` event and history line per iteration of the kept fit, validation scored at the end.
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
        let mut head = Head::new(config.head, inputs.dim(), classes, &mut Rng::new(0));
        head.standardizer = standardizer;
        let (dim, outputs) = head.output.kernel.dim();
        let split = self.validation_reader(inputs)?;
        let validation = self.validation_rows(inputs, &reader, split.as_ref());
        let step = score_rows(inputs);
        let mut objective = Objective {
            plan: self,
            train: &train,
            extra: None,
            step,
            standardizer: head.standardizer.clone(),
            weights: class_weights(&config.class_weight, &train, classes),
            dim,
            outputs,
        };
        let zeros = vec![0.0; dim * outputs + outputs];
        let (c, sweep, lbfgs) = match lbfgs.c {
            InverseL2::Value(c) => (c, None, lbfgs),
            InverseL2::Auto => {
                // at scikit-learn's tol, features that nearly separate the classes stop where
                // the validation log loss is far from the minimum's (cats_dogs Lite0+1+2 at C = 1:
                // 0.0133 from zeros, 0.0082 at 1e-6): the sweep and the kept fit go to tol / 100
                let lbfgs = Lbfgs { tol: lbfgs.tol / SWEEP_TOL, ..lbfgs };
                let validation = validation.as_ref().expect("the plan refuses `auto` without validation");
                let sweep = sweep(&objective, &mut head.clone(), validation, &lbfgs, on_event)?;
                (sweep.chosen, Some(sweep), lbfgs)
            }
        };
        if lbfgs.refit {
            objective.extra = Some(validation.as_ref().expect("the plan refuses a refit without validation"));
        }

        let n = (self.rows.len() + objective.extra.map_or(0, |v| v.index.len())).max(1) as f64;
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
        let min = objective.solve(c, zeros, &lbfgs, &mut on_iter)?;
        let point = &min.point;
        objective.set(&mut head, &point.x, c);
        if history.is_empty() {
            // converged where it started
            let acc = point.aux as f64 / n;
            history.push(EpochStats { epoch: 0, loss: point.f, acc, val_loss: None, val_acc: None, seconds: 0.0 });
        }
        if let Some(validation) = &validation {
            let (loss, acc) = score(&head, validation, step)?;
            let stats = history.last_mut().expect("one line at least");
            // the log loss alone, as scikit-learn's `log_loss` and the sweep measure it
            (stats.val_loss, stats.val_acc) = (Some(loss), Some(acc));
        }
        on_event(TrainEvent::Solved { iterations: min.iterations, gradient: max_abs(&point.g), stop: min.stop });
        let best_epoch = history.last().map_or(0, |s| s.epoch);
        let validation = match lbfgs.refit {
            true => Validation::Refit(Box::new(self.validation.clone())),
            false => self.validation.clone(),
        };
        Ok(Trained { head, history, best_epoch, validation, sweep })
    }
}

/// The sweep (`sweep.rs`): the probe fitted on train at each `C` the search visits, each fit
/// warm-started from the nearest one fitted before (in grid steps), scored on `validation`.
fn sweep(
    objective: &Objective,
    head: &mut Head,
    validation: &Rows,
    lbfgs: &Lbfgs,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<Sweep, HeadError> {
    // warm starts: the last fit and the best so far, (grid step, loss, parameters)
    let mut last: Option<(i32, Vec<f64>)> = None;
    let mut best: Option<(i32, f64, Vec<f64>)> = None;
    let mut points = Vec::new();
    let chosen = search(|k| {
        let c = grid_c(k);
        let start = match (&last, &best) {
            (Some((j, x)), Some((b, _, y))) => if (k - j).abs() <= (k - b).abs() { x } else { y }.clone(),
            (Some((_, x)), None) => x.clone(),
            _ => vec![0.0; objective.dim * objective.outputs + objective.outputs],
        };
        let min = objective.solve(c, start, lbfgs, &mut |_, _| {})?;
        objective.set(head, &min.point.x, c);
        let (val_loss, val_acc) = score(head, validation, objective.step)?;
        let point = SweepPoint { c, val_loss, val_acc, iterations: min.iterations };
        on_event(TrainEvent::Swept(point));
        points.push(point);
        if best.as_ref().is_none_or(|(_, b, _)| val_loss < *b) {
            best = Some((k, val_loss, min.point.x.clone()));
        }
        last = Some((k, min.point.x));
        Ok::<f64, HeadError>(val_loss)
    })?;
    points.sort_by(|a, b| a.c.total_cmp(&b.c));
    Ok(Sweep { chosen: grid_c(chosen), points })
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
