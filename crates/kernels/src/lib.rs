//! CPU math with backward passes, the floor under the heads and the CNNs: the matrix product
//! ([`matmul`], through `gemm`), and the layers the small CNNs and fine-tuning train with as
//! candle custom ops with their own backward passes ([`conv2d`], [`conv_relu_pool`],
//! [`pool_relu`], [`dense`], [`depthwise_conv2d`]), the optimizer's in-place parameter update
//! ([`update_in_place`]) and the process settings that make training fast.
//!
//! Each layer takes its custom op on the CPU and candle's own ops ([`reference`](mod@reference)) on any other
//! device, so a GPU training path needs no change above this crate; the tests hold the two to
//! the same outputs and gradients.
//!
//! ```
//! use candle_core::{Device, Tensor};
//!
//! let x = Tensor::ones((1, 1, 4, 4), candle_core::DType::F32, &Device::Cpu)?;
//! let kernel = Tensor::ones((2, 1, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
//! let bias = Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu)?;
//! let y = imgclf_kernels::conv_relu_pool(&x, &kernel, &bias, 1)?;
//! assert_eq!(y.dims(), &[1, 2, 2, 2]);
//! assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [9.0; 8]);
//! # Ok::<(), candle_core::Error>(())
//! ```

#![warn(missing_docs)]

mod conv;
mod dense;
mod depthwise;
mod fused;
mod matmul;
mod pool;
mod process;
pub mod reference;
mod update;

pub use conv::conv2d;
pub use dense::dense;
pub use depthwise::depthwise_conv2d;
pub use fused::conv_relu_pool;
pub use matmul::{matmul, matmul_in};
pub use pool::pool_relu;
pub use process::{candle_on_one_thread, keep_freed_memory};
pub use update::update_in_place;
