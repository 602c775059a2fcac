//! Train LeNet for one epoch: the tutorial's traffic-sign network and recipe (32 px, Adam,
//! rotation/shift/shear/zoom augmentation) on the fixture photos, scored on `validation`.
//!
//!     cargo run -p imgclf-nets --example lenet_epoch

use imgclf_dataset::Dataset;
use imgclf_nets::Device;
use imgclf_nets::init_net;
use imgclf_nets::prelude::*;

fn main() -> Result<(), NetError> {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let dataset = Dataset::open(fixtures.join("tiny_data"))?;
    let config = CnnConfig { epochs: 1, batch_size: 4, ..CnnConfig::tutorial(Arch::Lenet) };
    config.check()?;
    let load =
        |split: &str| ImageSet::load(&dataset.split(split).expect("in the fixtures").samples, config.resize(), || {});
    let (train_set, skipped) = load("train");
    let (validation, _) = load("validation");
    println!(
        "train {} photos ({} unreadable skipped), validation {}",
        train_set.len(),
        skipped.len(),
        validation.len()
    );

    let net = init_net(&config, dataset.classes.len(), &Device::Cpu)?;
    let start = TrainState::start(&net, config.optimizer);
    let state = train(&net, start, &config, &train_set, Some(&validation), None, |event| {
        if let FitEvent::Epoch { stats, .. } = event {
            println!(
                "epoch {}: loss {:.4}, acc {:.3}, val_acc {:?}",
                stats.epoch, stats.loss, stats.acc, stats.val_acc
            );
        }
        Ok(())
    })?;
    println!("{} epoch(s) done, {} optimizer steps", state.epochs_done(), state.optimizer.iterations);
    Ok(())
}
