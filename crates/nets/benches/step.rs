//! One training step (forward, loss, backward) of the tutorial's nets at batch 32, with
//! imgclf-kernels' custom ops (`conv2d`, `pool_relu`) and with candle's own ops on the same
//! weights: what the custom ops are worth. `cargo bench -p imgclf-nets --bench step`.

use std::time::Instant;

use candle_core::{Device, Tensor};
use imgclf_dataset::Rng;
use imgclf_nets::{Arch, LayerSpec, Net, Variant, loss};

/// The same network through candle's own ops (`imgclf_kernels::reference`, `relu`,
/// `max_pool2d`), taking the weights in `net.params()` order (no dropout, as in inference).
fn candle_forward(net: &Net, x: &Tensor) -> Tensor {
    let params = net.params();
    let mut weights = params.iter().map(|(_, v)| v.as_tensor());
    let mut x = x.clone();
    for spec in net.arch.layers(net.classes, Variant::default()) {
        x = match spec {
            LayerSpec::Conv { kernel, same, .. } => {
                let (k, b) = (weights.next().unwrap(), weights.next().unwrap());
                let pad = if same { kernel / 2 } else { 0 };
                imgclf_kernels::reference::conv2d(&x, k, b, pad).unwrap()
            }
            LayerSpec::Relu => x.relu().unwrap(),
            LayerSpec::MaxPool => x.max_pool2d(2).unwrap(),
            LayerSpec::Flatten => x.flatten_from(1).unwrap(),
            LayerSpec::Dense { .. } => {
                let (k, b) = (weights.next().unwrap(), weights.next().unwrap());
                imgclf_kernels::reference::dense(&x, k, b, false).unwrap()
            }
            LayerSpec::Dropout { .. } | LayerSpec::BatchNorm => x,
        };
    }
    x
}

/// Median seconds of 5 steps (after one warm-up) of `forward` → loss → backward.
fn time_step(classes: usize, labels: &[usize], forward: impl Fn() -> Tensor) -> (f64, f64) {
    let mut runs = Vec::new();
    for _ in 0..6 {
        let start = Instant::now();
        let logits = forward();
        let forward_s = start.elapsed().as_secs_f64();
        loss(&logits, labels, classes, 0.0).unwrap().backward().unwrap();
        runs.push((start.elapsed().as_secs_f64(), forward_s));
    }
    runs.remove(0);
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    runs[runs.len() / 2]
}

fn main() {
    // as `imgclf train-cnn` does
    // SAFETY: first thing in main: no other thread runs yet.
    unsafe { imgclf_kernels::candle_on_one_thread() };
    imgclf_kernels::keep_freed_memory();
    println!("| net | ops | step (s) | forward (s) | images/s |");
    println!("|---|---|---|---|---|");
    for (arch, size, classes) in [(Arch::Small, 150, 2), (Arch::Lenet, 32, 43)] {
        let net = Net::new(arch, [size, size], classes, &mut Rng::new(1), &Device::Cpu).unwrap();
        let x = Tensor::rand(0f32, 1.0, (32, 3, size, size), &Device::Cpu).unwrap();
        let labels: Vec<usize> = (0..32).map(|i| i % classes).collect();
        let ours = time_step(classes, &labels, || net.forward(&x, None).unwrap());
        let theirs = time_step(classes, &labels, || candle_forward(&net, &x));
        for (ops, (step, forward)) in [("imgclf-kernels custom ops", ours), ("candle's own ops", theirs)] {
            println!("| {arch:?} {size} px | {ops} | {step:.3} | {forward:.3} | {:.0} |", 32.0 / step);
        }
    }
}
