//! Depthwise 2-D convolution (one `k×k` filter per channel, stride 1, zero padding on each
//! side) with bias, as a candle custom op with its backward pass: direct loops, channels in
//! parallel. Built from candle's own ops it took one narrowed copy per tap and made a
//! fine-tuning step of EfficientNet's last blocks many times slower than its 1×1 convolutions.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::conv::values;

/// `x (n, c, h, w)` with `kernel (c, 1, k, k)` and `bias (c)`, padded by
/// `[top, left, bottom, right]`: `(n, c, h + top + bottom - k + 1, w + left + right - k + 1)`.
pub fn depthwise_conv2d(x: &Tensor, kernel: &Tensor, bias: &Tensor, pads: [usize; 4]) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return crate::reference::depthwise_conv2d(x, kernel, bias, pads);
    }
    x.contiguous()?.apply_op3(&kernel.contiguous()?, &bias.contiguous()?, Depthwise { pads })
}

#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    pads: [usize; 4],
}

impl Geometry {
    fn new(x: &[usize], kernel: &[usize], pads: [usize; 4]) -> Result<Geometry> {
        let [n, c, h, w] = x[..] else { candle_core::bail!("depthwise: input must be 4-D, got {x:?}") };
        let [kc, 1, k, k2] = kernel[..] else {
            candle_core::bail!("depthwise: kernel must be (c, 1, k, k), got {kernel:?}")
        };
        if kc != c || k != k2 || h + pads[0] + pads[2] < k || w + pads[1] + pads[3] < k {
            candle_core::bail!("depthwise: input {x:?} does not fit kernel {kernel:?} with pads {pads:?}")
        }
        Ok(Geometry { n, c, h, w, k, pads })
    }

    fn out(&self) -> (usize, usize) {
        (self.h + self.pads[0] + self.pads[2] + 1 - self.k, self.w + self.pads[1] + self.pads[3] + 1 - self.k)
    }

    /// Calls `f(output index, input index, tap)` for every output pixel of one plane and every
    /// kernel tap that lands inside the input.
    fn taps(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (ho, wo) = self.out();
        for y in 0..ho {
            for dy in 0..self.k {
                let Some(sy) = (y + dy).checked_sub(self.pads[0]).filter(|&s| s < self.h) else { continue };
                for x in 0..wo {
                    for dx in 0..self.k {
                        let Some(sx) = (x + dx).checked_sub(self.pads[1]).filter(|&s| s < self.w) else { continue };
                        f(y * wo + x, sy * self.w + sx, dy * self.k + dx);
                    }
                }
            }
        }
    }
}

struct Depthwise {
    pads: [usize; 4],
}

impl CustomOp3 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
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
        let g = Geometry::new(xl.dims(), kl.dims(), self.pads)?;
        let (x, kernel, bias) = (
            values(xs, xl, "depthwise input")?,
            values(ks, kl, "depthwise kernel")?,
            values(bs, bl, "depthwise bias")?,
        );
        let (ho, wo) = g.out();
        let mut y = vec![0.0f32; g.n * g.c * ho * wo];
        y.par_chunks_mut(ho * wo).zip(x.par_chunks(g.h * g.w)).enumerate().for_each(|(plane, (out, input))| {
            let c = plane % g.c;
            let taps = &kernel[c * g.k * g.k..][..g.k * g.k];
            out.fill(bias[c]);
            g.taps(|o, i, t| out[o] += input[i] * taps[t]);
        });
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.c, ho, wo))))
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
        let g = Geometry::new(x.dims(), kernel.dims(), self.pads)?;
        // one op computes all three gradients; they are cut apart here
        let all = Tensor::cat(&[x.flatten_all()?, kernel.flatten_all()?, grad.flatten_all()?], 0)?
            .apply_op1_no_bwd(&DepthwiseGrad { g })?;
        let (xs, ks) = (g.n * g.c * g.h * g.w, g.c * g.k * g.k);
        let dx = all.narrow(0, 0, xs)?.reshape(x.shape())?;
        let dk = all.narrow(0, xs, ks)?.reshape(kernel.shape())?;
        let db = all.narrow(0, xs + ks, g.c)?;
        Ok((Some(dx), Some(dk), Some(db)))
    }
}

/// `[x, kernel, grad]` flattened and joined → `[dx, dkernel, dbias]` flattened and joined.
/// Per channel, sums run over images and pixels in order: thread counts never change them.
struct DepthwiseGrad {
    g: Geometry,
}

impl CustomOp1 for DepthwiseGrad {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.g;
        let all = values(s, l, "depthwise gradient inputs")?;
        let (ho, wo) = g.out();
        let (plane, kk) = (g.h * g.w, g.k * g.k);
        let (x, rest) = all.split_at(g.n * g.c * plane);
        let (kernel, grad) = rest.split_at(g.c * kk);
        let per_channel: Vec<(Vec<f32>, Vec<f32>, f32)> = (0..g.c)
            .into_par_iter()
            .map(|c| {
                let taps = &kernel[c * kk..][..kk];
                let (mut dx, mut dk, mut db) = (vec![0.0f32; g.n * plane], vec![0.0f32; kk], 0.0f32);
                for i in 0..g.n {
                    let input = &x[(i * g.c + c) * plane..][..plane];
                    let gy = &grad[(i * g.c + c) * ho * wo..][..ho * wo];
                    let dxi = &mut dx[i * plane..][..plane];
                    db += gy.iter().sum::<f32>();
                    g.taps(|o, p, t| {
                        dxi[p] += gy[o] * taps[t];
                        dk[t] += gy[o] * input[p];
                    });
                }
                (dx, dk, db)
            })
            .collect();
        let mut out = vec![0.0f32; g.n * g.c * plane + g.c * kk + g.c];
        let (dx_all, rest) = out.split_at_mut(g.n * g.c * plane);
        let (dk_all, db_all) = rest.split_at_mut(g.c * kk);
        for (c, (dx, dk, db)) in per_channel.into_iter().enumerate() {
            for i in 0..g.n {
                dx_all[(i * g.c + c) * plane..][..plane].copy_from_slice(&dx[i * plane..][..plane]);
            }
            dk_all[c * kk..][..kk].copy_from_slice(&dk);
            db_all[c] = db;
        }
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}
