//! Every layer against candle's own ops (`imgclf_kernels::reference`), written once and run on
//! every device this machine has: the public op (the custom op on the CPU, the reference on
//! any other device) must give the reference's output and gradients, computed on the CPU.

use candle_core::{Device, Result, Tensor, Var};
use imgclf_kernels::reference;

/// The CPU, and each GPU candle was built for and finds.
fn devices() -> Vec<Device> {
    let mut devices = vec![Device::Cpu];
    if candle_core::utils::cuda_is_available() {
        devices.extend(Device::new_cuda(0));
    }
    if candle_core::utils::metal_is_available() {
        devices.extend(Device::new_metal(0));
    }
    devices
}

/// Distinct values in about [-1.6, 1.6], varied by `seed`.
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| (((i * 31 + seed * 17) % 23) as f32 - 11.0) / 7.0).collect()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().and_then(|t| t.to_device(&Device::Cpu)).and_then(|t| t.to_vec1::<f32>()).unwrap()
}

type Op<'a> = dyn Fn(&[Tensor]) -> Result<Tensor> + 'a;

/// The output of `op` over inputs of `shapes` on `device`, and the gradient of a weighted sum
/// of it for each input.
fn run(device: &Device, shapes: &[Vec<usize>], op: &Op<'_>) -> (Vec<f32>, Vec<Vec<f32>>) {
    let vars: Vec<Var> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| Var::from_vec(values(s.iter().product(), i + 1), s.clone(), device).unwrap())
        .collect();
    let y = op(&vars.iter().map(|v| v.as_tensor().clone()).collect::<Vec<_>>()).unwrap();
    let weights = Tensor::from_vec(values(y.elem_count(), 7), y.shape(), device).unwrap();
    let grads = y.mul(&weights).unwrap().sum_all().unwrap().backward().unwrap();
    (flat(&y), vars.iter().map(|v| flat(grads.get(v).expect("every input has a gradient"))).collect())
}

/// `op` on every device against `reference` on the CPU, within `tolerance`: outputs, and
/// gradients when `grads`.
fn parity(case: &str, shapes: &[Vec<usize>], op: &Op<'_>, reference: &Op<'_>, grads: bool, tolerance: f32) {
    let (want, want_grads) = run(&Device::Cpu, shapes, reference);
    for device in devices() {
        let (got, got_grads) = run(&device, shapes, op);
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len(), "{case} on {device:?}: {what} sizes");
            let diff = a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
            assert!(diff <= tolerance, "{case} on {device:?}: {what} differs by {diff}");
        };
        close(&got, &want, "output");
        if grads {
            for (i, (g, w)) in got_grads.iter().zip(&want_grads).enumerate() {
                close(g, w, &format!("gradient of input {i}"));
            }
        }
    }
}

#[test]
fn conv2d_matches_candles_convolution_and_its_gradients() {
    for (pad, k) in [(0, 3), (1, 3), (2, 5)] {
        parity(
            &format!("conv2d pad {pad} k {k}"),
            &[vec![2, 3, 9, 8], vec![4, 3, k, k], vec![4]],
            &|t| imgclf_kernels::conv2d(&t[0], &t[1], &t[2], pad),
            &|t| reference::conv2d(&t[0], &t[1], &t[2], pad),
            true,
            1e-4,
        );
    }
}

#[test]
fn dense_equals_candles_matmul_bias_and_relu() {
    for relu in [false, true] {
        parity(
            &format!("dense relu {relu}"),
            &[vec![5, 7], vec![7, 4], vec![4]],
            &|t| imgclf_kernels::dense(&t[0], &t[1], &t[2], relu),
            &|t| reference::dense(&t[0], &t[1], &t[2], relu),
            true,
            1e-5,
        );
    }
}

#[test]
fn depthwise_matches_candles_grouped_convolution() {
    // symmetric and TF-"SAME"-style asymmetric padding
    for (k, pads) in [(3, [1, 1, 1, 1]), (5, [2, 2, 2, 2]), (3, [0, 0, 1, 1]), (3, [0, 0, 0, 0])] {
        parity(
            &format!("depthwise k {k} pads {pads:?}"),
            &[vec![2, 4, 7, 6], vec![4, 1, k, k], vec![4]],
            &|t| imgclf_kernels::depthwise_conv2d(&t[0], &t[1], &t[2], pads),
            &|t| reference::depthwise_conv2d(&t[0], &t[1], &t[2], pads),
            true,
            1e-4,
        );
    }
}

/// Pooling's outputs only: candle's max-pool gradient is no reference (a quarter of the true
/// one, and misplaced when a size is odd); `pool_relu`'s own test checks it by finite
/// differences, and the fused op's equals conv2d then pool_relu bit for bit. `pool_relu` picks
/// values, so it equals the reference exactly.
#[test]
fn pooling_ops_equal_relu_of_candles_max_pool() {
    parity(
        "pool_relu",
        &[vec![2, 3, 7, 5]],
        &|t| imgclf_kernels::pool_relu(&t[0]),
        &|t| reference::pool_relu(&t[0]),
        false,
        0.0,
    );
    for (pad, k) in [(0, 3), (1, 3)] {
        parity(
            &format!("conv_relu_pool pad {pad} k {k}"),
            &[vec![2, 3, 9, 8], vec![4, 3, k, k], vec![4]],
            &|t| imgclf_kernels::conv_relu_pool(&t[0], &t[1], &t[2], pad),
            &|t| reference::conv_relu_pool(&t[0], &t[1], &t[2], pad),
            false,
            1e-4,
        );
    }
}
