//! A fully connected layer, optionally followed by ReLU, as one candle custom op with its own
//! backward pass: one matrix product forward, two backward, and no elementwise tensors. As
//! candle ops (matmul, broadcast add, relu and their backward passes) it was a dozen small
//! operations per step, each paying for its own threads and buffers.

use crate::matmul::{matmul, matmul_in};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use ndarray::{Array2, ArrayView2, Axis, Order};

use crate::conv::{storage_values, values};

/// `x (n, inputs) · kernel (inputs, outputs) + bias (outputs)`, through ReLU when `relu`.
pub fn dense(x: &Tensor, kernel: &Tensor, bias: &Tensor, relu: bool) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return crate::reference::dense(x, kernel, bias, relu);
    }
    x.contiguous()?.apply_op3(&kernel.contiguous()?, &bias.contiguous()?, Dense { relu })
}

struct Dense {
    relu: bool,
}

fn view<'a>(s: &'a [f32], layout: &Layout, what: &str) -> Result<ArrayView2<'a, f32>> {
    let (rows, cols) = layout.shape().dims2()?;
    ArrayView2::from_shape((rows, cols), s).map_err(|e| candle_core::Error::Msg(format!("dense {what}: {e}")))
}

/// `a · b` for a batch `a (n, k)`, row-major: gemm writes batch-sized products 1.5-2x faster
/// column-major, and laying out `n` rows afterwards is cheap.
fn product(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    matmul_in(a, b, Order::ColumnMajor).as_standard_layout().into_owned()
}

impl CustomOp3 for Dense {
    fn name(&self) -> &'static str {
        if self.relu { "dense-relu" } else { "dense" }
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
        let x = view(values(xs, xl, "dense input")?, xl, "input")?;
        let kernel = view(values(ks, kl, "dense kernel")?, kl, "kernel")?;
        let bias = values(bs, bl, "dense bias")?;
        if x.ncols() != kernel.nrows() || bias.len() != kernel.ncols() {
            candle_core::bail!("dense: input {:?}, kernel {:?}, bias {}", x.dim(), kernel.dim(), bias.len())
        }
        let mut y = product(x, kernel);
        for mut row in y.outer_iter_mut() {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v = if self.relu { (*v + b).max(0.0) } else { *v + b });
        }
        let shape = Shape::from(y.dim());
        Ok((CpuStorage::F32(y.into_raw_vec_and_offset().0), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let ((xs, xl), (ks, kl), (rs, rl), (gs, gl)) =
            (x.storage_and_layout(), kernel.storage_and_layout(), res.storage_and_layout(), grad.storage_and_layout());
        let xv = view(storage_values(&xs, xl, "dense input")?, xl, "input")?;
        let kv = view(storage_values(&ks, kl, "dense kernel")?, kl, "kernel")?;
        let incoming = view(storage_values(&gs, gl, "dense gradient")?, gl, "gradient")?;
        let masked;
        let g = match self.relu {
            // ReLU passed a gradient where its output is positive
            true => {
                let out = view(storage_values(&rs, rl, "dense output")?, rl, "output")?;
                masked = ndarray::Zip::from(&incoming).and(&out).map_collect(|&g, &y| if y > 0.0 { g } else { 0.0 });
                masked.view()
            }
            false => incoming,
        };
        let dev = x.device();
        let dk = matmul(xv.t(), g);
        let db = g.sum_axis(Axis(0));
        let dx = match x.track_op() {
            true => Some(Tensor::from_vec(product(g, kv.t()).into_raw_vec_and_offset().0, x.shape(), dev)?),
            false => None,
        };
        let dk = Tensor::from_vec(dk.into_raw_vec_and_offset().0, kernel.shape(), dev)?;
        let db = Tensor::from_vec(db.into_raw_vec_and_offset().0, kv.ncols(), dev)?;
        Ok((dx, Some(dk), Some(db)))
    }
}
