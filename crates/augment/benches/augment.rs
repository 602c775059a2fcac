//! Augmented 150 × 150 RGB images per second with the tutorial's generator (rotation 40,
//! shifts 0.2, shear 0.2, zoom 0.2, horizontal flips, nearest fill), on one core and on all
//! cores: the numbers to compare with `tools/bench_keras_augment.py` on the same machine.
//!
//!     cargo bench -p imgclf-augment --bench augment [-- IMAGES ROUNDS]

use std::time::Instant;

use image::RgbImage;
use imgclf_augment::prelude::*;
use imgclf_dataset::Rng;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (count, rounds) = (*args.first().unwrap_or(&256), *args.get(1).unwrap_or(&8));
    let mut rng = Rng::new(1);
    let images: Vec<RgbImage> = (0..count)
        .map(|_| RgbImage::from_fn(150, 150, |_, _| image::Rgb([0, 1, 2].map(|_| (rng.next_u64() >> 56) as u8))))
        .collect();
    let augmenter = Augmenter::new(AugmentParams {
        rotation_range: 40.0,
        width_shift_range: 0.2,
        height_shift_range: 0.2,
        shear_range: 0.2,
        zoom_range: AugmentParams::zoom(0.2),
        horizontal_flip: true,
        fill_mode: FillMode::Nearest,
        ..AugmentParams::default()
    })
    .unwrap();
    let total = (count * rounds) as f64;
    let started = Instant::now();
    for round in 0..rounds {
        for (i, img) in images.iter().enumerate() {
            std::hint::black_box(augmenter.augment(img, 7, (round * count + i) as u64));
        }
    }
    let one = total / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for round in 0..rounds {
        for (b, batch) in images.chunks(32).enumerate() {
            std::hint::black_box(augmenter.augment_batch(batch, 7, (round * count + b * 32) as u64).unwrap());
        }
    }
    let all = total / started.elapsed().as_secs_f64();
    let cores = rayon::current_num_threads();
    println!(
        "{total} augmented 150x150 images: {one:.0} images/s on one core, {all:.0} images/s on {cores} cores (batches of 32)"
    );
}
