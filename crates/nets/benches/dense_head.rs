//! One dense head trained two ways on the same random features, side by side in one run:
//! imgclf-heads' ndarray path (what `train-head` runs) and candle's autograd through
//! imgclf-kernels' dense op (what `fine-tune` runs behind the backbone's tail). Same rows,
//! batch 128, Adadelta, dropout 0.5; seconds per epoch. It decides whether heads keep their
//! own implementation (ARCHITECTURE.md).
//!
//!     cargo bench -p imgclf-nets --bench dense_head [-- ROWS DIM EPOCHS]

use std::time::Instant;

use candle_core::{Device, Tensor};
use imgclf_heads::Rng;
use imgclf_heads::prelude::*;
use imgclf_nets::{Batches, FitSettings, HeadLayers, NetError, Schedule, TrainState, fit};
use ndarray::Array2;

/// Feature rows as candle batches.
struct Rows<'a> {
    x: &'a Array2<f32>,
    labels: &'a [usize],
}

impl Batches for Rows<'_> {
    fn labels(&self) -> &[usize] {
        self.labels
    }
    fn batch(&self, indices: &[usize], _epoch: Option<usize>) -> Result<Tensor, NetError> {
        let values: Vec<f32> = indices.iter().flat_map(|&i| self.x.row(i).to_vec()).collect();
        Ok(Tensor::from_vec(values, (indices.len(), self.x.ncols()), &Device::Cpu)?)
    }
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (rows, dim, epochs) =
        (*args.first().unwrap_or(&20_000), *args.get(1).unwrap_or(&6_144), *args.get(2).unwrap_or(&3));
    // as `imgclf` does for every training command
    // SAFETY: first thing in main, no other thread runs yet.
    unsafe { imgclf_kernels::candle_on_one_thread() };
    imgclf_kernels::keep_freed_memory();
    let inputs = HeadInputs::synthetic(rows, dim, 1);
    let split = &inputs.splits[0];
    println!("{rows} x {dim} random features, batch 128, {epochs} epochs, adadelta, dropout 0.5; s/epoch");
    println!("{:>9}  {:>14}  {:>14}", "head", "imgclf-heads", "candle+kernels");
    for (name, architecture) in [("logistic", Architecture::Logistic), ("mlp-256", Architecture::Mlp { hidden: 256 })] {
        // the tutorial's head: adadelta, batch 128, dropout 0.5
        let base = TrainConfig::tutorial();
        let (head, optimizer) = (HeadConfig { architecture, ..base.head }, base.optimizer);
        let config = TrainConfig { head, epochs, seed: 1, ..base };
        let started = Instant::now();
        train(&inputs, &config, &mut |_| {}).unwrap();
        let ours = started.elapsed().as_secs_f64() / epochs as f64;

        let layers = HeadLayers::from_head(&Head::new(head, dim, 2, &mut Rng::new(1)), &Device::Cpu).unwrap();
        let settings =
            FitSettings { epochs, batch_size: 128, schedule: Schedule::Constant, label_smoothing: 0.0, seed: 1 };
        let data =
            Rows { x: split.x.as_ref().expect("synthetic rows are held"), labels: split.labels.as_ref().unwrap() };
        let started = Instant::now();
        fit(&layers, TrainState::start(&layers, optimizer), &settings, &data, None, None, |_| Ok(())).unwrap();
        let candle = started.elapsed().as_secs_f64() / epochs as f64;
        println!("{name:>9}  {ours:>14.3}  {candle:>14.3}");
    }
}
