//! Finite-difference helpers for the gradient tests.

use ndarray::Array2;

/// Central differences of `f` with respect to every element of `x`.
pub fn numeric_grad(x: &Array2<f32>, f: impl Fn(&Array2<f32>) -> f32) -> Array2<f32> {
    let eps = 1e-3;
    let mut grad = Array2::zeros(x.raw_dim());
    let mut probe = x.clone();
    for (idx, g) in grad.indexed_iter_mut() {
        let v = x[idx];
        probe[idx] = v + eps;
        let up = f(&probe) as f64;
        probe[idx] = v - eps;
        let down = f(&probe) as f64;
        probe[idx] = v;
        *g = ((up - down) / (2.0 * eps as f64)) as f32;
    }
    grad
}

/// Asserts `a ≈ b` elementwise within `tol` times the larger of 1 and `b`'s largest value.
pub fn assert_close(a: &Array2<f32>, b: &Array2<f32>, tol: f32) {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst <= tol * scale, "max difference {worst} (scale {scale})\nanalytic {a}\nnumeric {b}");
}
