//! Convolution, ReLU and 2×2 max pooling as one candle custom op: the block every
//! convolution of the tutorial's nets is. The convolution's output, the largest tensor of a
//! training step (90 MB for the small CNN's first layer at batch 32), never becomes a tensor:
//! forward keeps only which value of each window won, and backward scatters the pooled
//! gradient straight into the convolution's gradients. As separate ops, candle allocates that
//! output, its gradient, and a zeroed copy to accumulate the gradient into, every step. The
//! results are those of [`conv2d`](crate::conv2d) then [`pool_relu`](crate::pool_relu), bit for bit.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use ndarray::{Array1, Array2, ArrayView2};
use rayon::prelude::*;

use crate::conv::{ConvArgs, Dims, conv_args, dims, storage_values};
use crate::pool::{NO_WINNER, relu_pool_plane, window_index};

/// `max(0, max of each 2×2 window)` of `x (n, c, h, w)` convolved with `kernel (o, c, k, k)`
/// (`pad` zeros on every side) plus `bias (o)`: `(n, o, ho / 2, wo / 2)`.
pub fn conv_relu_pool(x: &Tensor, kernel: &Tensor, bias: &Tensor, pad: usize) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return crate::reference::conv_relu_pool(x, kernel, bias, pad);
    }
    let op = ConvReluPool { pad, winners: OnceLock::new() };
    x.contiguous()?.apply_op3(&kernel.contiguous()?, &bias.contiguous()?, op)
}

struct ConvReluPool {
    pad: usize,
    /// Per pooled output, which of its window's four values won (`dy · 2 + dx`), or
    /// [`NO_WINNER`]: set once by the forward pass, read by the backward pass of this call.
    winners: OnceLock<Vec<u8>>,
}

/// The pooled output's height and width.
fn pooled(d: &Dims) -> (usize, usize) {
    let (ho, wo) = d.out();
    (ho / 2, wo / 2)
}

impl CustomOp3 for ConvReluPool {
    fn name(&self) -> &'static str {
        "conv2d-relu-pool2"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ConvArgs { d, x, kernel, bias } = conv_args(self.pad, (xs, xl), (ks, kl), (bs, bl))?;
        let ((_, wo), (hp, wp)) = (d.out(), pooled(&d));
        let per_out = d.o * hp * wp;
        let (mut y, mut winners) = (vec![0.0f32; d.n * per_out], vec![NO_WINNER; d.n * per_out]);
        if per_out > 0 {
            y.par_chunks_mut(per_out).zip(winners.par_chunks_mut(per_out)).enumerate().for_each(|(i, (y, won))| {
                let conv = d.forward_image(kernel, bias, d.image(x, i));
                for (plane, (y, won)) in conv.outer_iter().zip(y.chunks_mut(hp * wp).zip(won.chunks_mut(hp * wp))) {
                    relu_pool_plane(plane.as_slice().expect("rows of a fresh array are contiguous"), wo, y, won);
                }
            });
        }
        if self.winners.set(winners).is_err() {
            candle_core::bail!("conv_relu_pool: one op ran forward twice")
        }
        Ok((CpuStorage::F32(y), Shape::from((d.n, d.o, hp, wp))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let Some(winners) = self.winners.get() else { candle_core::bail!("conv_relu_pool: backward before forward") };
        let ((xs, xl), (ks, kl), (gs, gl)) =
            (x.storage_and_layout(), kernel.storage_and_layout(), grad.storage_and_layout());
        let d = dims(xl, kl.dims(), self.pad)?;
        let (xv, kv, gv) = (
            storage_values(&xs, xl, "conv input")?,
            storage_values(&ks, kl, "conv kernel")?,
            storage_values(&gs, gl, "gradient")?,
        );
        let kernel_2d = ArrayView2::from_shape((d.o, d.rows()), kv).expect("kernel shape checked");
        let ((ho, wo), (hp, wp)) = (d.out(), pooled(&d));
        let per_out = d.o * hp * wp;
        if winners.len() != gv.len() || gv.len() != d.n * per_out {
            candle_core::bail!("conv_relu_pool: backward without its forward pass")
        }
        // The network's input needs no gradient: skipping it saves the largest product.
        let input_grad = x.track_op();
        let per_image = d.per_image();
        let mut dx = vec![0.0f32; if input_grad { d.n * per_image } else { 0 }];
        let dx_images: Vec<Option<&mut [f32]>> = match input_grad {
            true => dx.chunks_mut(per_image.max(1)).map(Some).collect(),
            false => (0..d.n).map(|_| None).collect(),
        };
        let partial: Vec<(Array2<f32>, Array1<f32>)> = dx_images
            .into_par_iter()
            .enumerate()
            .map(|(i, dx_image)| {
                // the pooled gradient, put back where each window's winner was
                let mut g = Array2::<f32>::zeros((d.o, ho * wo));
                let (pooled_grad, won) = (&gv[i * per_out..][..per_out], &winners[i * per_out..][..per_out]);
                for (c, mut plane) in g.outer_iter_mut().enumerate() {
                    for oy in 0..hp {
                        for ox in 0..wp {
                            let j = c * hp * wp + oy * wp + ox;
                            // a zero written into a window without a winner changes nothing
                            let g = if won[j] == NO_WINNER { 0.0 } else { pooled_grad[j] };
                            plane[window_index(wo, oy, ox, won[j] & 3)] = g;
                        }
                    }
                }
                if let Some(image) = dx_image {
                    d.input_grad_image(kernel_2d, g.view(), image);
                }
                d.kernel_grad_image(d.image(xv, i), g.view())
            })
            .collect();
        let sum = d.sum_kernel_grads(&partial);
        let dev = x.device();
        let dk = sum.slice(ndarray::s![.., ..d.rows()]).iter().copied().collect::<Vec<f32>>();
        let dk = Tensor::from_vec(dk, kernel.shape(), dev)?;
        let db = Tensor::from_slice(&sum.column(d.rows()).to_vec(), d.o, dev)?;
        let dx = if input_grad { Some(Tensor::from_vec(dx, (d.n, d.c, d.h, d.w), dev)?) } else { None };
        Ok((dx, Some(dk), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    use crate::conv::test_values as values;

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    /// The fused op against `conv2d` then `pool_relu`: the same output and gradients, bit for
    /// bit, with and without padding, odd sizes (the last row and column dropped), and with
    /// and without the input's gradient.
    #[test]
    fn equals_conv_then_pool_relu_bit_for_bit() {
        let dev = Device::Cpu;
        for (pad, k, h, w, input_grad) in
            [(0, 3, 9, 8, true), (1, 3, 7, 7, true), (2, 5, 8, 9, true), (0, 3, 9, 8, false)]
        {
            let x = Var::from_vec(values(2 * 3 * h * w, 1), (2, 3, h, w), &dev).unwrap();
            let kernel = Var::from_vec(values(4 * 3 * k * k, 2), (4, 3, k, k), &dev).unwrap();
            let bias = Var::from_vec(values(4, 4), 4, &dev).unwrap();
            let input = if input_grad { x.as_tensor().clone() } else { x.as_tensor().detach() };
            let ours = conv_relu_pool(&input, &kernel, &bias, pad).unwrap();
            let theirs = crate::pool_relu(&crate::conv2d(&input, &kernel, &bias, pad).unwrap()).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert_eq!(flat(&ours), flat(&theirs), "pad {pad} k {k}: output");
            assert!(flat(&ours).contains(&0.0) && flat(&ours).iter().any(|v| *v > 0.0), "ReLU bites");
            let weights = Tensor::from_vec(values(ours.elem_count(), 3), ours.shape(), &dev).unwrap();
            let (ga, gb) = (
                ours.mul(&weights).unwrap().sum_all().unwrap().backward().unwrap(),
                theirs.mul(&weights).unwrap().sum_all().unwrap().backward().unwrap(),
            );
            for (var, what) in [(&kernel, "kernel"), (&bias, "bias")] {
                assert_eq!(flat(ga.get(var).unwrap()), flat(gb.get(var).unwrap()), "pad {pad} k {k}: {what} gradient");
            }
            match (ga.get(&x), gb.get(&x)) {
                (Some(a), Some(b)) => assert_eq!(flat(a), flat(b), "pad {pad} k {k}: input gradient"),
                (None, None) => assert!(!input_grad),
                _ => panic!("pad {pad} k {k}: one path computed the input's gradient, the other not"),
            }
        }
    }
}
