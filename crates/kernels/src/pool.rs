//! ReLU followed by 2×2 max pooling (stride 2, sizes rounded down) as one candle custom op.
//! Equal to `relu(max_pool2d(x, 2))` since ReLU is monotonic; one pass forward and one pass
//! backward over the convolution's output, where candle's max-pool backward makes six.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::conv::values;

/// `max(0, max of each 2×2 window)` of `x (n, c, h, w)`: `(n, c, h / 2, w / 2)`.
pub fn pool_relu(x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return crate::reference::pool_relu(x);
    }
    x.contiguous()?.apply_op1(PoolRelu)
}

/// `(n, c, h, w)`.
type Dims4 = (usize, usize, usize, usize);

fn input<'a>(s: &'a CpuStorage, l: &Layout) -> Result<(&'a [f32], Dims4)> {
    Ok((values(s, l, "pool_relu input")?, l.shape().dims4()?))
}

/// Which value of window `(oy, ox)` of a `w`-wide plane is the first largest (`dy · 2 + dx`),
/// and that value; NaNs never win. Branch-free: the data decides every comparison, so a
/// branch per comparison would be mispredicted half the time (it once took a quarter of a
/// small-CNN training step).
pub(crate) fn window_max(plane: &[f32], w: usize, oy: usize, ox: usize) -> (u8, f32) {
    let top = 2 * oy * w + 2 * ox;
    max4([plane[top], plane[top + 1]], [plane[top + w], plane[top + w + 1]])
}

/// [`window_max`] of the window with rows `top` and `bottom`.
#[inline(always)]
fn max4([a, b]: [f32; 2], [c, d]: [f32; 2]) -> (u8, f32) {
    let v = a.max(b).max(c.max(d));
    let mut k = 3;
    k = if c == v { 2 } else { k };
    k = if b == v { 1 } else { k };
    k = if a == v { 0 } else { k };
    (k, v)
}

/// A window whose largest value is not positive: ReLU passes no gradient.
pub(crate) const NO_WINNER: u8 = u8::MAX;

/// ReLU and 2×2 max pooling of a `w`-wide plane into `y`, with which value of each window won
/// ([`window_max`]'s numbering, or [`NO_WINNER`]). Two rows at a time, with selects rather
/// than branches (half the windows are positive, at random), so the compiler vectorises it.
pub(crate) fn relu_pool_plane(plane: &[f32], w: usize, y: &mut [f32], won: &mut [u8]) {
    let wp = w / 2;
    if wp == 0 {
        return;
    }
    let rows = plane.chunks_exact(w);
    let pairs = rows.clone().step_by(2).zip(rows.skip(1).step_by(2));
    for ((top, bottom), (y, won)) in pairs.zip(y.chunks_exact_mut(wp).zip(won.chunks_exact_mut(wp))) {
        let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
        for ((y, won), (t, b)) in y.iter_mut().zip(won.iter_mut()).zip(windows) {
            let (k, v) = max4([t[0], t[1]], [b[0], b[1]]);
            let positive = v > 0.0;
            *y = if positive { v } else { 0.0 };
            *won = if positive { k } else { NO_WINNER };
        }
    }
}

/// The index in a `w`-wide plane of value `k` (as [`window_max`] numbers them) of window `(oy, ox)`.
pub(crate) fn window_index(w: usize, oy: usize, ox: usize, k: u8) -> usize {
    (2 * oy + usize::from(k / 2)) * w + 2 * ox + usize::from(k % 2)
}

struct PoolRelu;

impl CustomOp1 for PoolRelu {
    fn name(&self) -> &'static str {
        "pool2-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, (n, c, h, w)) = input(s, l)?;
        let (ho, wo) = (h / 2, w / 2);
        let mut y = vec![0.0f32; n * c * ho * wo];
        // which value won is for backward, which finds it again from `x`
        let mut won = vec![0u8; y.len()];
        if ho * wo > 0 {
            y.par_chunks_mut(ho * wo)
                .zip(won.par_chunks_mut(ho * wo))
                .zip(x.par_chunks(h * w))
                .for_each(|((out, won), plane)| relu_pool_plane(plane, w, out, won));
        }
        Ok((CpuStorage::F32(y), Shape::from((n, c, ho, wo))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &PoolReluGrad)?))
    }
}

/// `(x, grad of the pooled output)` → the gradient of `x`: each window's gradient goes to its
/// first largest value when that value is positive.
struct PoolReluGrad;

impl CustomOp2 for PoolReluGrad {
    fn name(&self) -> &'static str {
        "pool2-relu-grad"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, (n, c, h, w)) = input(xs, xl)?;
        let (grad, _) = input(gs, gl)?;
        let (ho, wo) = (h / 2, w / 2);
        let mut dx = vec![0.0f32; n * c * h * w];
        if ho * wo > 0 {
            dx.par_chunks_mut(h * w).zip(x.par_chunks(h * w)).zip(grad.par_chunks(ho * wo)).for_each(
                |((out, plane), g)| {
                    for oy in 0..ho {
                        for ox in 0..wo {
                            let (k, v) = window_max(plane, w, oy, ox);
                            out[window_index(w, oy, ox, k)] = if v > 0.0 { g[oy * wo + ox] } else { 0.0 };
                        }
                    }
                },
            );
        }
        Ok((CpuStorage::F32(dx), Shape::from((n, c, h, w))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Forward against candle's `relu(max_pool2d)`; the gradient against finite differences.
    /// (candle's own max-pool gradient is not a reference: it is a quarter of the true one,
    /// and misplaced when a size is odd.)
    #[test]
    fn equals_relu_of_max_pool_and_its_gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        // distinct values 1/7 apart; odd sizes: the last row and column are dropped
        let values: Vec<f32> = (0..2 * 3 * 7 * 5).map(|i| ((i * 37) % 211) as f32 / 7.0 - 15.0).collect();
        let x = Var::from_vec(values.clone(), (2, 3, 7, 5), &dev).unwrap();
        let ours = pool_relu(&x).unwrap();
        let theirs = crate::reference::pool_relu(&x).unwrap();
        assert_eq!(ours.dims(), &[2, 3, 3, 2]);
        assert_eq!(
            ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        let weights =
            Tensor::from_vec((0..ours.elem_count()).map(|i| i as f32 - 20.0).collect(), ours.shape(), &dev).unwrap();
        let objective = |v: &[f32]| -> f32 {
            let t = Tensor::from_slice(v, (2, 3, 7, 5), &dev).unwrap();
            pool_relu(&t).unwrap().mul(&weights).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap()
        };
        let grads = ours.mul(&weights).unwrap().sum_all().unwrap().backward().unwrap();
        let analytic = grads.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (base, eps) = (objective(&values), 0.01);
        for (j, want) in analytic.iter().enumerate() {
            let mut bumped = values.clone();
            bumped[j] += eps;
            let numeric = (objective(&bumped) - base) / eps;
            assert!((numeric - want).abs() < 0.05, "element {j}: finite difference {numeric}, gradient {want}");
        }
        assert!(analytic.iter().filter(|g| **g != 0.0).count() > 10, "some windows pass a gradient");
    }
}
