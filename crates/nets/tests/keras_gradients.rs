//! One training step of the tutorial's small CNN against Keras' own: the same weights and
//! batch of real photos (fixtures/nets/small_cnn_gradients.safetensors, made by
//! `tools/keras_cnn_reference.py gradients` with TensorFlow 2.15) must give Keras' loss, every
//! gradient within 1e-4 relative, and after one RMSprop step (Keras' defaults) its weights.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use imgclf_dataset::Rng;
use imgclf_heads::{Optimizer, OptimizerConfig};
use imgclf_nets::{Arch, Net, loss};

fn fixture() -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nets/small_cnn_gradients.safetensors");
    candle_core::safetensors::load(&path, &Device::Cpu).expect("the Keras gradient fixture")
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Largest difference over the largest magnitude of `expected`.
fn relative(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len());
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = actual.iter().zip(expected).fold(0f32, |m, (a, e)| m.max((a - e).abs()));
    diff / scale
}

/// The small CNN at the fixture's input size, holding Keras' weights.
fn keras_net(f: &HashMap<String, Tensor>) -> Net {
    let size = f["x"].dim(2).unwrap();
    let net = Net::new(Arch::Small, [size, size], 2, &mut Rng::new(0), &Device::Cpu).unwrap();
    for (name, var) in net.params() {
        let weights = &f[&name];
        assert_eq!(var.dims(), weights.dims(), "{name}: imgclf's layout differs from the fixture's");
        var.set(weights).unwrap();
    }
    net
}

#[test]
fn one_step_of_the_small_cnn_matches_keras_gradients_and_rmsprop_update() {
    let f = fixture();
    let net = keras_net(&f);
    let labels: Vec<usize> = values(&f["labels"]).iter().map(|&l| l as usize).collect();
    assert!(labels.contains(&0) && labels.contains(&1), "both classes in the batch");

    let loss = loss(&net.forward(&f["x"], None).unwrap(), &labels, 2, 0.0).unwrap();
    let keras_loss = values(&f["loss"])[0];
    let ours = loss.to_scalar::<f32>().unwrap();
    assert!((ours - keras_loss).abs() <= 1e-5 * keras_loss.abs(), "loss {ours} vs Keras {keras_loss}");

    let grads = loss.backward().unwrap();
    let params = net.params();
    let mut gradients = Vec::new();
    for (name, var) in &params {
        let ours = values(grads.get(var).unwrap_or_else(|| panic!("no gradient reached {name}")));
        let theirs = values(&f[&format!("grad.{name}")]);
        let r = relative(&ours, &theirs);
        println!("{name}: gradient relative difference {r:.2e}");
        assert!(r <= 1e-4, "{name}: gradient differs from Keras' by {r:.2e} relative");
        gradients.push(ours);
    }

    let sizes: Vec<usize> = params.iter().map(|(_, v)| v.elem_count()).collect();
    let mut optimizer = Optimizer::new(OptimizerConfig::keras_default("rmsprop").unwrap(), &sizes);
    let mut weights: Vec<Vec<f32>> = params.iter().map(|(_, v)| values(v.as_tensor())).collect();
    let mut slices: Vec<&mut [f32]> = weights.iter_mut().map(|w| w.as_mut_slice()).collect();
    let grad_slices: Vec<&[f32]> = gradients.iter().map(|g| g.as_slice()).collect();
    optimizer.step(&mut slices, &grad_slices);
    for ((name, var), after) in params.iter().zip(&weights) {
        let before = values(var.as_tensor());
        let ours: Vec<f32> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let theirs: Vec<f32> = values(&f[&format!("rmsprop.{name}")]).iter().zip(&before).map(|(a, b)| a - b).collect();
        let r = relative(&ours, &theirs);
        assert!(r <= 1e-4, "{name}: RMSprop's update differs from Keras' by {r:.2e} relative");
    }
}
