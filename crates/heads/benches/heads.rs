//! Seconds per epoch of the logistic and mlp heads on 20,000 × 6,144 random features (the
//! width of ResNet50 + Xception + InceptionV3 GAP vectors), batch 128, Adadelta: the numbers
//! to compare with `tools/bench_keras_heads.py` on the same machine.
//!
//!     cargo bench -p imgclf-heads --bench heads [-- ROWS DIM EPOCHS]

use std::time::Instant;

use imgclf_heads::prelude::*;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (rows, dim, epochs) =
        (*args.first().unwrap_or(&20_000), *args.get(1).unwrap_or(&6_144), *args.get(2).unwrap_or(&8));
    let inputs = HeadInputs::synthetic(rows, dim, 1);
    println!("{rows} x {dim} random features, batch 128, {epochs} epochs, adadelta");
    for (name, architecture) in [("logistic", Architecture::Logistic), ("mlp-256", Architecture::Mlp { hidden: 256 })] {
        // the tutorial's head: adadelta, batch 128, dropout 0.5
        let base = TrainConfig::tutorial();
        let config = TrainConfig { head: HeadConfig { architecture, ..base.head }, epochs, seed: 1, ..base };
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
