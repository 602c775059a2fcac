//! The networks against Keras' own summaries, learning (a tiny set to 100% training accuracy),
//! and checkpoint/resume equality. Synthetic images: these need nothing outside the repo.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use image::RgbImage;
use imgclf_augment::AugmentParams;
use imgclf_dataset::{ClassIndex, Dataset, Filter, Rng};
use imgclf_heads::{OptimizerConfig, RunDir};
use imgclf_nets::Device;
use imgclf_nets::prelude::*;
use serde_json::Value;

/// Layer kinds, output shapes and parameter counts as Keras' `model.summary()` gives them
/// (`tools/keras_cnn_reference.py summaries`, TensorFlow 2.15).
#[test]
fn layers_match_keras_summaries() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/nets/keras_summaries.json");
    let keras: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let tutorial = Variant::default();
    let variant = Variant { batch_norm: true, dropout: Some(0.5) };
    for (key, arch, variant, size, classes) in [
        ("small_150", Arch::Small, tutorial, 150, 2),
        ("lenet_32_43", Arch::Lenet, tutorial, 32, 43),
        ("lenet_48_43", Arch::Lenet, tutorial, 48, 43),
        ("lenet_bn_dropout_32_43", Arch::Lenet, variant, 32, 43),
    ] {
        let net = Net::with_variant(arch, variant, [size, size], classes, &mut Rng::new(0), &Device::Cpu).unwrap();
        let layers = keras[key]["layers"].as_array().unwrap();
        // Keras ends with the output's Activation layer; ours is in the loss.
        let (last, layers) = layers.split_last().unwrap();
        assert_eq!(last["kind"], "Activation");
        assert_eq!(net.summary().len(), layers.len(), "{key}: layer count");
        for (i, (ours, theirs)) in net.summary().iter().zip(layers).enumerate() {
            assert_eq!(ours.kind, theirs["kind"].as_str().unwrap(), "{key} layer {i}");
            let shape: Vec<usize> = serde_json::from_value(theirs["output_shape"].clone()).unwrap();
            assert_eq!(ours.output_shape, shape, "{key} layer {i} ({}) shape", ours.kind);
            assert_eq!(ours.params as u64, theirs["params"].as_u64().unwrap(), "{key} layer {i} params");
        }
        assert_eq!(net.parameter_count() as u64, keras[key]["total_params"].as_u64().unwrap(), "{key} total");
    }
}

/// `per_class` images of `classes` colour-and-stripe patterns with pixel noise.
fn patterns(classes: usize, per_class: usize, size: u32, seed: u64) -> ImageSet {
    let mut rng = Rng::new(seed);
    let mut set = ImageSet::default();
    for class in 0..classes {
        for i in 0..per_class {
            let image = RgbImage::from_fn(size, size, |x, y| {
                let stripe = if class % 2 == 0 { x } else { y };
                let on = (stripe / 4 + class as u32 / 2).is_multiple_of(2);
                let base = [(class * 60 % 256) as u8, if on { 200 } else { 40 }, (255 - class * 50 % 256) as u8];
                image::Rgb(base.map(|v| v.saturating_add((rng.next_f32() * 30.0) as u8)))
            });
            set.images.push(image);
            set.labels.push(class);
            set.paths.push(format!("{class}/{i}.png"));
        }
    }
    set
}

fn config(arch: Arch, size: usize, epochs: usize, optimizer: &str, augment: Option<AugmentParams>) -> CnnConfig {
    CnnConfig {
        arch,
        variant: Variant::default(),
        size: [size, size],
        epochs,
        batch_size: 8,
        optimizer: OptimizerConfig::keras_default(optimizer).unwrap(),
        schedule: Schedule::Constant,
        augment,
        input: Input::Unit,
        interpolation: Filter::Bilinear,
        label_smoothing: 0.0,
        seed: 5,
    }
}

fn fit(config: &CnnConfig, set: &ImageSet, classes: usize) -> (Net, TrainState) {
    let net = imgclf_nets::init_net(config, classes, &Device::Cpu).unwrap();
    let state = TrainState::start(&net, config.optimizer);
    let state = train(&net, state, config, set, Some(set), None, |_| Ok(())).unwrap();
    (net, state)
}

#[test]
fn lenet_and_the_small_cnn_learn_a_tiny_set_perfectly() {
    let set = patterns(4, 6, 24, 1);
    let (net, state) = fit(&config(Arch::Lenet, 24, 25, "adam", None), &set, 4);
    let last = state.history.last().unwrap();
    assert_eq!(last.val_acc, Some(1.0), "LeNet: {last:?}");
    assert!(last.loss < state.history[0].loss / 5.0, "the loss fell: {:?}", state.history);
    assert_eq!(imgclf_nets::score(&net, &set, Input::Unit).unwrap().1, 1.0);

    let set = patterns(2, 8, 30, 2);
    let (_, state) = fit(&config(Arch::Small, 30, 40, "rmsprop", None), &set, 2);
    assert_eq!(state.history.last().unwrap().val_acc, Some(1.0), "small CNN: {:?}", state.history.last());
}

/// A dataset of classes `a` and `b` at `root` with no photos: the sets are made in memory.
fn two_classes(root: &Path) -> Dataset {
    let (root, source) = (root.to_path_buf(), root.to_path_buf());
    Dataset { root, source, classes: ClassIndex::new(vec!["a".into(), "b".into()]), splits: Vec::new() }
}

/// Trains `config` into run folder `dir`, checkpointing every epoch; stops after epoch
/// `stop_after` when given, as Ctrl-C would.
fn run(dir: &Path, config: &CnnConfig, set: &ImageSet, stop_after: Option<usize>) -> Result<(), NetError> {
    let training = CnnTraining::create(dir, false, config.clone(), &two_classes(dir), None, &Device::Cpu)?;
    let stop = AtomicBool::new(false);
    training
        .train(set, Some(set), Some(&stop), |event| {
            if let FitEvent::Epoch { state, .. } = event {
                stop.store(Some(state.epochs_done()) == stop_after, Ordering::Relaxed);
            }
            Ok(())
        })
        .map(|_| ())
}

/// An interrupted run resumed from its checkpoint ends with the same weights and numbers as
/// an uninterrupted one: augmentation, shuffling and dropout are keyed by seed and epoch, and
/// the checkpoint holds the optimizer's state.
#[test]
fn resuming_from_a_checkpoint_equals_an_uninterrupted_run() {
    let set = patterns(2, 6, 30, 3);
    let augment = AugmentParams { rotation_range: 20.0, horizontal_flip: true, ..AugmentParams::default() };
    // batch norm: its moving averages are state the checkpoint must carry too
    let config = CnnConfig {
        variant: Variant { batch_norm: true, dropout: Some(0.3) },
        ..config(Arch::Small, 30, 3, "adam", Some(augment))
    };
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    run(&whole, &config, &set, None).unwrap();
    let cut = tmp.path().join("cut");
    let err = run(&cut, &config, &set, Some(1)).expect_err("stopped after epoch 1").to_string();
    assert!(err.contains("interrupted during epoch 2") && err.contains("epoch 1"), "{err}");
    let info = CnnRun::load(&cut).unwrap().info;
    assert_eq!((info.epochs_run, info.complete), (1, false));

    let resumed = CnnTraining::resume(&cut, None, &Device::Cpu).unwrap();
    assert_eq!(resumed.epochs_done(), 1);
    resumed.train(&set, Some(&set), None, |_| Ok(())).unwrap();
    let bytes = |dir: &Path| std::fs::read(dir.join("weights.safetensors")).unwrap();
    assert!(bytes(&whole) == bytes(&cut), "resumed weights differ from the uninterrupted run's");
    let (a, b) = (CnnRun::load(&whole).unwrap().info, CnnRun::load(&cut).unwrap().info);
    assert!(a.complete && b.complete);
    let numbers = |m: Option<imgclf_heads::EpochStats>| m.map(|m| (m.epoch, m.loss, m.acc, m.val_loss, m.val_acc));
    assert_eq!(numbers(a.metrics), numbers(b.metrics));

    // the seed matters: another seed gives other weights
    let other = tmp.path().join("other");
    run(&other, &CnnConfig { seed: 6, ..config.clone() }, &set, None).unwrap();
    assert!(bytes(&other) != bytes(&whole));
}

#[test]
fn a_run_folder_never_replaces_what_is_not_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    std::fs::write(photos.join("cat.jpg"), b"x").unwrap();
    let config = config(Arch::Lenet, 16, 1, "adam", None);
    let err = RunDir::begin(&photos, true).unwrap_err().to_string();
    assert!(err.contains("no run.json"), "{err}");
    assert!(photos.join("cat.jpg").exists());
    // a config that cannot train is refused before anything is written
    let out = RunDir::begin(&tmp.path().join("run"), false).unwrap();
    let nan = CnnConfig { label_smoothing: f32::NAN, ..config };
    let err = CnnTraining::create(&tmp.path().join("run"), false, nan, &two_classes(tmp.path()), None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("label_smoothing must be a number in [0, 1), got NaN"), "{err}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    drop(out);
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, ["photos"], "no run folder and no staging folder");
}
