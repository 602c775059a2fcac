//! The same layers built from candle's own ops: what each kernel of this crate computes on
//! any device but the CPU (where the custom ops run), and what the tests hold the CPU kernels
//! to, output and gradients. They are slower on the CPU (see each kernel's module), and
//! candle's max-pool gradient is not exact where windows tie or sizes are odd, which is why
//! [`pool_relu`](crate::pool_relu) is tested against finite differences instead.

use candle_core::{Result, Tensor};

/// [`conv2d`](crate::conv2d) from candle's convolution and a broadcast add.
pub fn conv2d(x: &Tensor, kernel: &Tensor, bias: &Tensor, pad: usize) -> Result<Tensor> {
    let o = kernel.dim(0)?;
    x.conv2d(kernel, pad, 1, 1, 1)?.broadcast_add(&bias.reshape((1, o, 1, 1))?)
}

/// [`pool_relu`](crate::pool_relu) from candle's max pool and ReLU.
pub fn pool_relu(x: &Tensor) -> Result<Tensor> {
    x.max_pool2d(2)?.relu()
}

/// [`conv_relu_pool`](crate::conv_relu_pool): [`conv2d`] then [`pool_relu`].
pub fn conv_relu_pool(x: &Tensor, kernel: &Tensor, bias: &Tensor, pad: usize) -> Result<Tensor> {
    pool_relu(&conv2d(x, kernel, bias, pad)?)
}

/// [`dense`](crate::dense) from candle's matmul, broadcast add and ReLU.
pub fn dense(x: &Tensor, kernel: &Tensor, bias: &Tensor, relu: bool) -> Result<Tensor> {
    let y = x.matmul(kernel)?.broadcast_add(bias)?;
    if relu { y.relu() } else { Ok(y) }
}

/// [`depthwise_conv2d`](crate::depthwise_conv2d) from zero padding and candle's grouped
/// convolution (one group per channel).
pub fn depthwise_conv2d(x: &Tensor, kernel: &Tensor, bias: &Tensor, pads: [usize; 4]) -> Result<Tensor> {
    let c = kernel.dim(0)?;
    let padded = x.pad_with_zeros(2, pads[0], pads[2])?.pad_with_zeros(3, pads[1], pads[3])?;
    padded.conv2d(kernel, 0, 1, 1, c)?.broadcast_add(&bias.reshape((1, c, 1, 1))?)
}
