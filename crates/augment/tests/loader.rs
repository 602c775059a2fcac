//! Streaming augmented batches from the fixture dataset's files.

use std::path::PathBuf;

use imgclf_augment::prelude::*;
use imgclf_dataset::{Dataset, Filter, Fit, Resize};

fn train_samples() -> Vec<imgclf_dataset::Sample> {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/tiny_data"));
    Dataset::open(&root).unwrap().split("train").unwrap().samples.clone()
}

#[test]
fn batches_cover_each_readable_image_once_reproducibly_and_report_the_broken_one() {
    let samples = train_samples();
    assert_eq!(samples.len(), 13, "12 readable images and broken.jpg");
    let resize = Resize { width: 16, height: 12, fit: Fit::Stretch, filter: Filter::Bilinear };
    let augmenter =
        Augmenter::new(AugmentParams { rotation_range: 30.0, horizontal_flip: true, ..AugmentParams::default() })
            .unwrap();
    let options = LoaderOptions { batch_size: 5, seed: 3, epoch: 0, shuffle: true, prefetch: 2 };
    let load = |options: LoaderOptions| {
        BatchLoader::start(samples.clone(), resize, augmenter.clone(), options).collect::<Vec<_>>()
    };

    let batches = load(options);
    assert_eq!(batches.iter().map(|b| b.samples.len() + b.skipped.len()).collect::<Vec<_>>(), [5, 5, 3]);
    let skipped: Vec<String> = batches.iter().flat_map(|b| b.skipped.iter().map(|e| e.to_string())).collect();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].contains("broken.jpg"), "{skipped:?}");
    let mut seen: Vec<&str> = batches.iter().flat_map(|b| b.samples.iter().map(|s| s.rel.as_str())).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 12);
    for b in &batches {
        assert_eq!(b.images.dim(), (b.samples.len(), 12, 16, 3));
        // Each image is the augmenter's output for (seed, epoch · len + sample index).
        for (k, sample) in b.samples.iter().enumerate() {
            let i = samples.iter().position(|s| s.rel == sample.rel).unwrap() as u64;
            let expected = augmenter.augment(&sample.load_resized(&resize).unwrap(), 3, i);
            assert_eq!(b.images.index_axis(ndarray::Axis(0), k), expected);
        }
    }
    let again = load(options);
    assert!(batches.iter().zip(&again).all(|(a, b)| a.images == b.images && a.samples == b.samples));
    let next_epoch = load(LoaderOptions { epoch: 1, ..options });
    assert_ne!(batches[0].samples, next_epoch[0].samples, "another epoch, another order");
}

#[test]
fn dropping_the_loader_early_stops_its_worker() {
    let resize = Resize { width: 8, height: 8, fit: Fit::Stretch, filter: Filter::Nearest };
    let augmenter = Augmenter::new(AugmentParams::default()).unwrap();
    let options = LoaderOptions { batch_size: 1, seed: 0, epoch: 0, shuffle: false, prefetch: 1 };
    let mut loader = BatchLoader::start(train_samples(), resize, augmenter, options);
    assert!(loader.next().is_some());
    drop(loader); // must not hang or panic
}
