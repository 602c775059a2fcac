//! The dense classifier: optional standardisation, an optional hidden ReLU layer, dropout,
//! and the output layer.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::layers::{Dense, Dropout, dot, relu, relu_backward};
use crate::loss::Loss;
use imgclf_dataset::Rng;

/// The shape of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Architecture {
    /// `Dropout → Dense(classes)`: the tutorial's head on concatenated GAP features.
    Logistic,
    /// `Dense(hidden, relu) → Dropout → Dense(classes)`: the tutorial's bottleneck head.
    Mlp {
        /// Units of the hidden ReLU layer.
        hidden: usize,
    },
}

/// Architecture and regularisation of a head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Logistic or with a hidden layer.
    pub architecture: Architecture,
    /// Dropout rate before the output layer (training only).
    pub dropout: f32,
    /// L2 penalty `l2 · Σ kernel²` added to the loss for every kernel (Keras' `l2(l2)`).
    pub l2: f32,
}

/// Per-feature `(x - mean) / scale`, fitted on the training rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    /// Per-feature mean of the training rows.
    pub mean: Array1<f32>,
    /// Per-feature standard deviation of the training rows (1 where it is 0).
    pub scale: Array1<f32>,
}

impl Standardizer {
    /// Mean and standard deviation of the given rows of `x` (accumulated in f64, no copy);
    /// constant features get scale 1.
    pub fn fit(x: ArrayView2<f32>, rows: &[usize]) -> Standardizer {
        let mut moments = Moments::new(x.ncols());
        moments.add(x, rows);
        moments.standardizer()
    }

    /// Standardises `x`'s rows in place.
    pub fn apply(&self, x: &mut Array2<f32>) {
        *x -= &self.mean;
        *x /= &self.scale;
    }
}

/// The sums a [`Standardizer`] is fitted from, fed a block of rows at a time: rows fed in
/// ascending order give the statistics of [`Standardizer::fit`] bit for bit, whatever the blocks.
#[derive(Debug, Clone)]
pub struct Moments {
    sum: Array1<f64>,
    sq: Array1<f64>,
    rows: usize,
}

impl Moments {
    /// No rows yet, `dim` features.
    pub fn new(dim: usize) -> Moments {
        Moments { sum: Array1::zeros(dim), sq: Array1::zeros(dim), rows: 0 }
    }

    /// Adds rows `rows` of the block `x`.
    pub fn add(&mut self, x: ArrayView2<f32>, rows: &[usize]) {
        for &r in rows {
            ndarray::Zip::from(&mut self.sum).and(&mut self.sq).and(x.row(r)).for_each(|s, q, &v| {
                *s += v as f64;
                *q += v as f64 * v as f64;
            });
        }
        self.rows += rows.len();
    }

    /// The mean and standard deviation of the rows added; constant features get scale 1.
    pub fn standardizer(&self) -> Standardizer {
        let n = self.rows.max(1) as f64;
        let mean = self.sum.mapv(|s| s / n);
        let scale = ndarray::Zip::from(&self.sq).and(&mean).map_collect(|&q, &m| {
            let sd = (q / n - m * m).max(0.0).sqrt();
            if sd > 1e-6 { sd as f32 } else { 1.0 }
        });
        Standardizer { mean: mean.mapv(|m| m as f32), scale }
    }
}

/// A dense classifier over feature vectors of one width.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// Architecture and regularisation.
    pub config: HeadConfig,
    /// The loss its output is trained with (sigmoid or softmax).
    pub loss: Loss,
    /// Standardisation of the inputs, when trained with it.
    pub standardizer: Option<Standardizer>,
    /// The hidden ReLU layer of an mlp head.
    pub hidden: Option<Dense>,
    /// The output layer: logits.
    pub output: Dense,
}

/// What one training batch produced: per-row losses (without the L2 term) and the gradient of
/// each parameter tensor, in [`Head::params_mut`] order.
pub struct BatchGrads {
    /// Each row's loss.
    pub losses: Vec<f32>,
    /// Each row's logits.
    pub logits: Array2<f32>,
    /// Gradients of the mean loss, one per trainable tensor.
    pub grads: Vec<Vec<f32>>,
}

impl Head {
    /// A freshly initialised head (Glorot-uniform kernels, zero biases).
    pub fn new(config: HeadConfig, inputs: usize, classes: usize, rng: &mut Rng) -> Head {
        let loss = Loss::for_classes(classes);
        let (hidden, width) = match config.architecture {
            Architecture::Logistic => (None, inputs),
            Architecture::Mlp { hidden } => (Some(Dense::glorot(inputs, hidden, rng)), hidden),
        };
        let output = Dense::glorot(width, loss.outputs(classes), rng);
        Head { config, loss, standardizer: None, hidden, output }
    }

    /// Width of the feature vector the head takes.
    pub fn inputs(&self) -> usize {
        self.hidden.as_ref().unwrap_or(&self.output).kernel.nrows()
    }

    /// Number of classes it tells apart.
    pub fn classes(&self) -> usize {
        self.output.bias.len().max(2)
    }

    /// Class probabilities `(rows, classes)` for raw (unstandardised) feature rows, in
    /// inference mode, a few thousand rows at a time.
    pub fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut out = Array2::zeros((x.nrows(), self.classes()));
        for (chunk, mut dst) in x.axis_chunks_iter(Axis(0), 4096).zip(out.axis_chunks_iter_mut(Axis(0), 4096)) {
            let mut x = chunk.to_owned();
            if let Some(s) = &self.standardizer {
                s.apply(&mut x);
            }
            let logits = match &self.hidden {
                Some(hidden) => {
                    let mut h = hidden.forward(x.view());
                    relu(&mut h);
                    self.output.forward(h.view())
                }
                None => self.output.forward(x.view()),
            };
            dst.assign(&self.loss.probabilities(logits.view()));
        }
        out
    }

    /// Forward and backward pass in training mode over `rows` of the raw feature matrix `x`
    /// (standardised here), with `labels` and optional sample `weights` per batch row.
    /// Dropout masks are drawn from `seed` alone. The gradients include the L2 term.
    pub fn batch_grads(
        &self,
        x: ArrayView2<f32>,
        rows: &[usize],
        labels: &[usize],
        weights: Option<&[f32]>,
        seed: u64,
    ) -> BatchGrads {
        let (logits, losses, mut grads) = match &self.hidden {
            None => self.logistic_grads(x, rows, labels, weights, seed),
            Some(hidden) => {
                let mut x = x.select(Axis(0), rows);
                if let Some(s) = &self.standardizer {
                    s.apply(&mut x);
                }
                let mut h = hidden.forward(x.view());
                relu(&mut h);
                let mask = Dropout { rate: self.config.dropout }.mask(h.dim(), &mut Rng::new(seed));
                let dropped = mask.as_ref().map_or_else(|| h.clone(), |m| m * &h);
                let logits = self.output.forward(dropped.view());
                let (losses, dz) = self.loss.forward_backward(logits.view(), labels, weights);
                let (dk, db) = self.output.param_grads(dropped.view(), dz.view());
                let mut dh = self.output.input_grad(dz.view());
                if let Some(m) = &mask {
                    dh *= m;
                }
                relu_backward(&mut dh, h.view());
                let (dk1, db1) = hidden.param_grads(x.view(), dh.view());
                let flat = |a: Array2<f32>| a.as_standard_layout().into_owned().into_raw_vec_and_offset().0;
                (logits, losses, vec![flat(dk1), db1.to_vec(), flat(dk), db.to_vec()])
            }
        };
        let l2 = self.config.l2;
        if l2 > 0.0 {
            // Kernels sit at the even positions: kernel, bias, kernel, bias.
            for (g, k) in grads.iter_mut().step_by(2).zip(self.kernels()) {
                g.iter_mut().zip(k.iter()).for_each(|(g, &w)| *g += 2.0 * l2 * w);
            }
        }
        BatchGrads { losses, logits, grads }
    }

    /// The logistic head's batch, fused: each row is standardised, dropped out and pushed
    /// through the output layer without copying the batch. Chunks of rows run in parallel and
    /// their partial gradients are summed in chunk order, so any thread count gives the same sums.
    fn logistic_grads(
        &self,
        x: ArrayView2<f32>,
        rows: &[usize],
        labels: &[usize],
        weights: Option<&[f32]>,
        seed: u64,
    ) -> (Array2<f32>, Vec<f32>, Vec<Vec<f32>>) {
        const CHUNK: usize = 16;
        let (d, o) = self.output.kernel.dim();
        let kernel = self.output.kernel.as_slice().expect("kernels are contiguous");
        let bias = self.output.bias.as_slice().expect("biases are contiguous");
        let dropout = Dropout { rate: self.config.dropout };
        // Per chunk: kernel and bias gradients, losses, logits.
        let partials: Vec<[Vec<f32>; 4]> = rows
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(c, chunk)| {
                let (mut dk, mut db) = (vec![0.0f32; d * o], vec![0.0f32; o]);
                let (mut losses, mut logits) = (Vec::with_capacity(chunk.len()), Vec::with_capacity(chunk.len() * o));
                let (mut input, mut mask, mut z, mut dz) =
                    (vec![0.0f32; d], vec![0.0f32; d], vec![0.0f32; o], vec![0.0f32; o]);
                for (i, &r) in chunk.iter().enumerate() {
                    let row = c * CHUNK + i;
                    input.iter_mut().zip(x.row(r)).for_each(|(v, &x)| *v = x);
                    if let Some(s) = &self.standardizer {
                        input.iter_mut().zip(&s.mean).zip(&s.scale).for_each(|((v, m), s)| *v = (*v - m) / s);
                    }
                    if dropout.rate > 0.0 {
                        dropout.fill(
                            &mut mask,
                            &mut Rng::new(seed ^ (row as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                        );
                        input.iter_mut().zip(&mask).for_each(|(v, m)| *v *= m);
                    }
                    if o == 1 {
                        z[0] = bias[0] + dot(&input, kernel);
                    } else {
                        z.copy_from_slice(bias);
                        for (&v, k) in input.iter().zip(kernel.chunks_exact(o)).filter(|(v, _)| **v != 0.0) {
                            z.iter_mut().zip(k).for_each(|(z, k)| *z += v * k);
                        }
                    }
                    let scale = weights.map_or(1.0, |w| w[row]) / rows.len() as f32;
                    losses.push(self.loss.row(&z, labels[row], scale, &mut dz));
                    logits.extend_from_slice(&z);
                    if o == 1 {
                        dk.iter_mut().zip(&input).for_each(|(g, v)| *g += v * dz[0]);
                    } else {
                        for (&v, g) in input.iter().zip(dk.chunks_exact_mut(o)).filter(|(v, _)| **v != 0.0) {
                            g.iter_mut().zip(&dz).for_each(|(g, dz)| *g += v * dz);
                        }
                    }
                    db.iter_mut().zip(&dz).for_each(|(g, dz)| *g += dz);
                }
                [dk, db, losses, logits]
            })
            .collect();
        let (mut dk, mut db) = (vec![0.0f32; d * o], vec![0.0f32; o]);
        let (mut losses, mut logits) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len() * o));
        for [pk, pb, pl, pz] in partials {
            dk.iter_mut().zip(&pk).for_each(|(a, b)| *a += b);
            db.iter_mut().zip(&pb).for_each(|(a, b)| *a += b);
            losses.extend(pl);
            logits.extend(pz);
        }
        let logits = Array2::from_shape_vec((rows.len(), o), logits).expect("one row of logits per input row");
        (logits, losses, vec![dk, db])
    }

    /// The L2 term the loss carries: `l2 · Σ kernel²`.
    pub fn penalty(&self) -> f32 {
        if self.config.l2 == 0.0 {
            return 0.0;
        }
        self.config.l2 * self.kernels().iter().map(|k| k.iter().map(|w| w * w).sum::<f32>()).sum::<f32>()
    }

    fn kernels(&self) -> Vec<&Array2<f32>> {
        self.hidden.iter().chain([&self.output]).map(|d| &d.kernel).collect()
    }

    /// Every trainable tensor as a flat slice: `[hidden.kernel, hidden.bias,] output.kernel, output.bias`.
    pub fn params_mut(&mut self) -> Vec<&mut [f32]> {
        let mut out = Vec::new();
        for d in self.hidden.iter_mut().chain([&mut self.output]) {
            out.push(d.kernel.as_slice_mut().expect("kernels are contiguous"));
            out.push(d.bias.as_slice_mut().expect("biases are contiguous"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{assert_close, numeric_grad};

    /// The training loss of `head` on a batch, dropout off, L2 included.
    fn batch_loss(head: &Head, x: &Array2<f32>, labels: &[usize], weights: &[f32]) -> f32 {
        let rows: Vec<usize> = (0..labels.len()).collect();
        let g = head.batch_grads(x.view(), &rows, labels, Some(weights), 5);
        g.losses.iter().zip(weights).map(|(l, w)| l * w).sum::<f32>() / labels.len() as f32 + head.penalty()
    }

    #[test]
    fn head_gradients_match_finite_differences_for_every_architecture_and_loss() {
        // Standardisation, dropout and L2 on: every part of the training pass is checked.
        let x = Array2::from_shape_fn((6, 5), |(i, j)| ((i * 5 + j) as f32 * 0.7).sin());
        let weights = [1.0, 0.5, 2.0, 1.0, 1.5, 1.0];
        for architecture in [Architecture::Logistic, Architecture::Mlp { hidden: 4 }] {
            for classes in [2, 3] {
                let labels: Vec<usize> = (0..6).map(|i| i % classes).collect();
                // Dropout masks depend on the seed only, so with a fixed seed the loss is a
                // smooth function of the parameters and finite differences apply.
                let config = HeadConfig { architecture, dropout: 0.3, l2: 0.05 };
                let mut head = Head::new(config, 5, classes, &mut Rng::new(11));
                head.standardizer = Some(Standardizer::fit(x.view(), &[0, 1, 2, 3, 4, 5]));
                // Nudge the biases off zero so ReLU kinks are not hit exactly.
                for p in head.params_mut().into_iter().skip(1).step_by(2) {
                    p.iter_mut().enumerate().for_each(|(i, b)| *b = 0.1 + 0.05 * i as f32);
                }
                let rows: Vec<usize> = (0..6).collect();
                let analytic = head.batch_grads(x.view(), &rows, &labels, Some(&weights), 5).grads;
                let shapes: Vec<(usize, usize)> = head
                    .hidden
                    .iter()
                    .chain([&head.output])
                    .flat_map(|d| [d.kernel.dim(), (1, d.bias.len())])
                    .collect();
                for (t, (&shape, grad)) in shapes.iter().zip(&analytic).enumerate() {
                    let current = Array2::from_shape_vec(shape, head.clone().params_mut()[t].to_vec()).unwrap();
                    let numeric = numeric_grad(&current, |p| {
                        let mut probe = head.clone();
                        probe.params_mut()[t].copy_from_slice(p.as_slice().unwrap());
                        batch_loss(&probe, &x, &labels, &weights)
                    });
                    let analytic = Array2::from_shape_vec(shape, grad.clone()).unwrap();
                    assert_close(&analytic, &numeric, 2e-2);
                }
            }
        }
    }

    #[test]
    fn standardizer_centres_and_scales_and_leaves_constant_columns_finite() {
        let x = ndarray::array![[1.0f32, 5.0, 2.0], [3.0, 5.0, 4.0], [5.0, 5.0, 9.0]];
        let s = Standardizer::fit(x.view(), &[0, 1, 2]);
        let mut y = x.clone();
        s.apply(&mut y);
        let mean = y.mean_axis(Axis(0)).unwrap();
        assert!(mean.iter().all(|m| m.abs() < 1e-6));
        let std = y.std_axis(Axis(0), 0.0);
        assert!((std[0] - 1.0).abs() < 1e-5 && (std[2] - 1.0).abs() < 1e-5 && std[1] == 0.0);
    }
}
