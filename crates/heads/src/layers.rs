//! The building blocks of a head, as plain structs with a forward and a backward pass.

use ndarray::{Array1, Array2, ArrayView2, Axis};

use imgclf_dataset::Rng;
use imgclf_kernels::matmul;

/// A fully connected layer `y = x·kernel + bias`; the kernel is `(inputs, outputs)` as in Keras.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// `(inputs, outputs)`, as Keras stores it.
    pub kernel: Array2<f32>,
    /// One value per output.
    pub bias: Array1<f32>,
}

impl Dense {
    /// Keras' default initialisation: Glorot-uniform kernel, zero bias.
    pub fn glorot(inputs: usize, outputs: usize, rng: &mut Rng) -> Dense {
        let limit = (6.0 / (inputs + outputs) as f32).sqrt();
        let kernel = Array2::from_shape_simple_fn((inputs, outputs), || (2.0 * rng.next_f32() - 1.0) * limit);
        Dense { kernel, bias: Array1::zeros(outputs) }
    }

    /// `x · kernel + bias` for a batch of rows.
    pub fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut y = matmul(x, self.kernel.view());
        y += &self.bias;
        y
    }

    /// Gradients of the kernel and the bias, given the layer's input and `dL/dy`.
    pub fn param_grads(&self, x: ArrayView2<f32>, dy: ArrayView2<f32>) -> (Array2<f32>, Array1<f32>) {
        (matmul(x.t(), dy), dy.sum_axis(Axis(0)))
    }

    /// `dL/dx`, given `dL/dy`.
    pub fn input_grad(&self, dy: ArrayView2<f32>) -> Array2<f32> {
        matmul(dy, self.kernel.t())
    }
}

/// ReLU in place.
pub fn relu(x: &mut Array2<f32>) {
    x.mapv_inplace(|v| v.max(0.0));
}

/// `dL/dx` of ReLU from its output `y` and `dL/dy`, in place on `dy`.
pub fn relu_backward(dy: &mut Array2<f32>, y: ArrayView2<f32>) {
    ndarray::Zip::from(dy).and(y).for_each(|d, &v| {
        if v <= 0.0 {
            *d = 0.0
        }
    });
}

/// Keras' inverted dropout: in training each value is kept with probability `1 - rate` and
/// scaled by `1 / (1 - rate)`, so inference uses the layer unchanged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// The share of values dropped in training.
    pub rate: f32,
}

impl Dropout {
    /// A mask to multiply the layer's input (and its gradient) by; `None` when the rate is 0.
    pub fn mask(&self, shape: (usize, usize), rng: &mut Rng) -> Option<Array2<f32>> {
        if self.rate <= 0.0 {
            return None;
        }
        let mut mask = Array2::zeros(shape);
        self.fill(mask.as_slice_mut().expect("fresh arrays are contiguous"), rng);
        Some(mask)
    }

    /// Fills `mask` with 0 (with probability `rate`, resolved to 1/65536) or `1 / (1 - rate)`.
    /// Four 16-bit draws per generator step: dropout masks are the bulk of the random numbers.
    pub fn fill(&self, mask: &mut [f32], rng: &mut Rng) {
        let keep = 1.0 / (1.0 - self.rate);
        let threshold = (self.rate as f64 * 65_536.0).round() as u64;
        for four in mask.chunks_mut(4) {
            let r = rng.next_u64();
            for (i, m) in four.iter_mut().enumerate() {
                *m = if (r >> (16 * i)) & 0xFFFF >= threshold { keep } else { 0.0 };
            }
        }
    }
}

/// `Σ aᵢ·bᵢ` with sixteen running sums, so that it vectorises (the order is fixed, so the
/// result is too).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{assert_close, numeric_grad};
    use ndarray::array;

    /// A smooth scalar function of a layer's output, for finite differences.
    fn objective(y: &Array2<f32>, w: &Array2<f32>) -> f32 {
        (y * w).sum()
    }

    #[test]
    fn dense_gradients_match_finite_differences() {
        let mut rng = Rng::new(3);
        let layer = Dense { bias: array![0.1, -0.2, 0.3], ..Dense::glorot(4, 3, &mut rng) };
        let x = Array2::from_shape_fn((5, 4), |(i, j)| (i as f32 - 2.0) * 0.3 + j as f32 * 0.1);
        let w = Array2::from_shape_fn((5, 3), |(i, j)| ((i * 3 + j) as f32).sin());
        let (dk, db) = layer.param_grads(x.view(), w.view());
        let dx = layer.input_grad(w.view());

        let num_k = numeric_grad(&layer.kernel, |k| {
            objective(&Dense { kernel: k.clone(), ..layer.clone() }.forward(x.view()), &w)
        });
        let num_b = numeric_grad(&layer.bias.clone().insert_axis(Axis(0)), |b| {
            objective(&Dense { bias: b.row(0).to_owned(), ..layer.clone() }.forward(x.view()), &w)
        });
        let num_x = numeric_grad(&x, |x| objective(&layer.forward(x.view()), &w));
        assert_close(&dk, &num_k, 1e-2);
        assert_close(&db.insert_axis(Axis(0)), &num_b, 1e-2);
        assert_close(&dx, &num_x, 1e-2);
    }

    #[test]
    fn relu_gradient_matches_finite_differences() {
        let x = array![[-1.0f32, 0.5, 2.0], [0.3, -0.7, -0.1]];
        let w = array![[1.0f32, 2.0, -1.0], [0.5, 1.5, 3.0]];
        let mut y = x.clone();
        relu(&mut y);
        let mut dy = w.clone();
        relu_backward(&mut dy, y.view());
        let num = numeric_grad(&x, |x| {
            let mut y = x.clone();
            relu(&mut y);
            objective(&y, &w)
        });
        assert_close(&dy, &num, 1e-2);
    }

    #[test]
    fn dropout_keeps_the_expected_share_and_scales_survivors() {
        let mask = Dropout { rate: 0.25 }.mask((200, 501), &mut Rng::new(9)).unwrap();
        let kept = mask.iter().filter(|&&m| m > 0.0).count() as f32 / mask.len() as f32;
        assert!((kept - 0.75).abs() < 0.01, "kept {kept}");
        assert!(mask.iter().all(|&m| m == 0.0 || (m - 1.0 / 0.75).abs() < 1e-6));
        // The expected activation is unchanged, which is why inference skips the layer.
        assert!((mask.mean().unwrap() - 1.0).abs() < 0.01);
        assert!(Dropout { rate: 0.0 }.mask((2, 2), &mut Rng::new(9)).is_none());
    }
}
