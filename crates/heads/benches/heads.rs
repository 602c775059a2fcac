//! Seconds per epoch of the logistic and mlp heads on 20,000 × 6,144 random features (the
//! width of ResNet50 + Xception + InceptionV3 GAP vectors), batch 128, Adadelta: the numbers
//! to compare with `tools/bench_keras_heads.py` on the same machine.
//!
//!     cargo bench -p imgclf-heads --bench heads [-- ROWS DIM EPOCHS]

use std::time::Instant;

use imgclf_heads::prelude::*;
use imgclf_heads::{Rng, Source, SplitData};
use ndarray::Array2;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (rows, dim, epochs) =
        (*args.first().unwrap_or(&20_000), *args.get(1).unwrap_or(&6_144), *args.get(2).unwrap_or(&8));
    let mut rng = Rng::new(1);
    let labels: Vec<usize> = (0..rows).map(|i| i % 2).collect();
    let x = Array2::from_shape_fn((rows, dim), |(r, c)| {
        rng.next_f32() + if c % 7 == 0 { 0.1 * labels[r] as f32 } else { 0.0 }
    });
    let inputs = HeadInputs {
        classes: vec!["a".into(), "b".into()],
        sources: vec![Source {
            file: "random".into(),
            backbone: "random".into(),
            model_sha256: String::new(),
            model: "".into(),
            dim,
            engine: String::new(),
        }],
        splits: vec![SplitData {
            name: "train".into(),
            x,
            labels: Some(labels),
            paths: (0..rows).map(|i| i.to_string()).collect(),
        }],
        unverified: Vec::new(),
    };
    println!("{rows} x {dim} random features, batch 128, {epochs} epochs, adadelta");
    for (name, architecture) in [("logistic", Architecture::Logistic), ("mlp-256", Architecture::Mlp { hidden: 256 })] {
        let config = TrainConfig {
            head: HeadConfig { architecture, dropout: 0.5, l2: 0.0 },
            optimizer: OptimizerConfig::keras_default("adadelta").unwrap(),
            epochs,
            batch_size: 128,
            seed: 1,
            standardize: false,
            val_split: None,
            patience: None,
            class_weight: ClassWeight::None,
        };
        let started = Instant::now();
        let trained = train(&inputs, &config, &mut |_| {}).unwrap();
        let total = started.elapsed().as_secs_f64();
        let per_epoch: Vec<String> = trained.history.iter().map(|h| format!("{:.3}", h.seconds)).collect();
        println!(
            "{name:>9}: {:.3} s/epoch (total {total:.2} s; epochs {})",
            total / epochs as f64,
            per_epoch.join(" ")
        );
    }
}
