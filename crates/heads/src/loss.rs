//! Cross-entropy losses computed from logits, so that no probability is ever rounded to 0 or 1
//! before its logarithm is taken.

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Binary cross-entropy on one sigmoid output for two classes; categorical cross-entropy on
/// softmax outputs for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Sigmoid output, two classes.
    BinaryCrossentropy,
    /// Softmax output, more classes.
    CategoricalCrossentropy,
}

impl Loss {
    /// The loss Keras uses for `classes` classes.
    pub fn for_classes(classes: usize) -> Loss {
        if classes == 2 { Loss::BinaryCrossentropy } else { Loss::CategoricalCrossentropy }
    }

    /// Width of the output layer for `classes` classes.
    pub fn outputs(self, classes: usize) -> usize {
        match self {
            Loss::BinaryCrossentropy => 1,
            Loss::CategoricalCrossentropy => classes,
        }
    }

    /// Per-row losses and the gradient of `Σ wᵢ·lossᵢ / rows` (Keras' weighted mean) with
    /// respect to the logits. `weights` are per-row sample weights (class weights).
    pub fn forward_backward(
        self,
        logits: ArrayView2<f32>,
        labels: &[usize],
        weights: Option<&[f32]>,
    ) -> (Vec<f32>, Array2<f32>) {
        let rows = logits.nrows();
        let mut grad = Array2::zeros(logits.raw_dim());
        let losses = logits
            .outer_iter()
            .zip(grad.outer_iter_mut())
            .enumerate()
            .map(|(i, (z, mut g))| {
                let scale = weights.map_or(1.0, |w| w[i]) / rows as f32;
                let g = g.as_slice_mut().expect("fresh rows are contiguous");
                match z.as_slice() {
                    Some(z) => self.row(z, labels[i], scale, g),
                    None => self.row(&z.to_vec(), labels[i], scale, g),
                }
            })
            .collect();
        (losses, grad)
    }

    /// The loss of one row of logits `z` with true class `label`; writes `scale · dloss/dz`
    /// into `grad`.
    pub fn row(self, z: &[f32], label: usize, scale: f32, grad: &mut [f32]) -> f32 {
        match self {
            Loss::BinaryCrossentropy => {
                let (z, y) = (z[0], (label == 1) as u8 as f32);
                grad[0] = scale * (sigmoid(z) - y);
                z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()
            }
            Loss::CategoricalCrossentropy => {
                let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let sum: f32 = z.iter().map(|&v| (v - max).exp()).sum();
                for (k, (g, &zk)) in grad.iter_mut().zip(z).enumerate() {
                    *g = scale * ((zk - max).exp() / sum - (k == label) as u8 as f32);
                }
                max + sum.ln() - z[label]
            }
        }
    }

    /// Class probabilities `(rows, classes)`: `[1 - p, p]` for the binary case.
    pub fn probabilities(self, logits: ArrayView2<f32>) -> Array2<f32> {
        match self {
            Loss::BinaryCrossentropy => {
                // each column from the logit, not one as 1 − the other: a confident row's
                // small probability keeps its digits (what temperature scaling reads back)
                let mut out = Array2::zeros((logits.nrows(), 2));
                out.column_mut(1).assign(&logits.column(0).mapv(sigmoid));
                out.column_mut(0).assign(&logits.column(0).mapv(|z| sigmoid(-z)));
                out
            }
            Loss::CategoricalCrossentropy => {
                let mut out = logits.to_owned();
                for mut row in out.axis_iter_mut(Axis(0)) {
                    let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                    row.mapv_inplace(|v| (v - max).exp());
                    let sum = row.sum();
                    row /= sum;
                }
                out
            }
        }
    }
}

fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{assert_close, numeric_grad};
    use ndarray::array;

    fn mean_loss(loss: Loss, z: &Array2<f32>, labels: &[usize], weights: Option<&[f32]>) -> f32 {
        let (l, _) = loss.forward_backward(z.view(), labels, weights);
        l.iter().enumerate().map(|(i, v)| v * weights.map_or(1.0, |w| w[i])).sum::<f32>() / l.len() as f32
    }

    #[test]
    fn gradients_match_finite_differences() {
        let weights = [0.5f32, 2.0, 1.0];
        let binary = array![[0.3f32], [-1.2], [2.5]];
        let categorical = array![[0.3f32, -0.1, 0.8], [-1.2, 0.4, 0.0], [2.5, 2.4, -3.0]];
        for (loss, z) in [(Loss::BinaryCrossentropy, binary), (Loss::CategoricalCrossentropy, categorical)] {
            let labels = [1, 0, 1];
            for w in [None, Some(&weights[..])] {
                let (_, grad) = loss.forward_backward(z.view(), &labels, w);
                assert_close(&grad, &numeric_grad(&z, |z| mean_loss(loss, z, &labels, w)), 1e-2);
            }
        }
    }

    #[test]
    fn values_are_the_textbook_ones_and_stay_finite_for_huge_logits() {
        let (l, _) =
            Loss::BinaryCrossentropy.forward_backward(array![[0.0f32], [200.0], [-200.0]].view(), &[1, 0, 0], None);
        assert!((l[0] - std::f32::consts::LN_2).abs() < 1e-6);
        assert!((l[1] - 200.0).abs() < 1e-3, "confidently wrong costs the logit, not inf: {}", l[1]);
        assert!(l[2].abs() < 1e-6);
        let z = array![[1000.0f32, 0.0, -1000.0]];
        let (l, g) = Loss::CategoricalCrossentropy.forward_backward(z.view(), &[1], None);
        assert!((l[0] - 1000.0).abs() < 1e-3 && g.iter().all(|v| v.is_finite()));
        let p = Loss::CategoricalCrossentropy.probabilities(array![[1.0f32, 2.0, 3.0]].view());
        let e = [1f32.exp(), 2f32.exp(), 3f32.exp()];
        assert!((p[[0, 2]] - e[2] / e.iter().sum::<f32>()).abs() < 1e-6);
        let p = Loss::BinaryCrossentropy.probabilities(array![[-700.0f32], [0.0]].view());
        assert_eq!(p.row(1).to_vec(), vec![0.5, 0.5]);
        assert!(p[[0, 1]] >= 0.0 && p[[0, 0]] == 1.0);
    }
}
