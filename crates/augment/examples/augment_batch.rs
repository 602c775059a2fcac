//! Augment a batch: the tutorial's `ImageDataGenerator` settings on three fixture photos,
//! drawn per image from the seed (so the batch is the same on any number of threads), and a
//! contact sheet of one photo's variants.
//!
//!     cargo run -p imgclf-augment --example augment_batch

use imgclf_augment::prelude::*;
use imgclf_augment::{contact_sheet, variants};
use imgclf_dataset::{Filter, Fit, Resize, load_rgb};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny_data/train");
    let resize = Resize { width: 64, height: 64, fit: Fit::Stretch, filter: Filter::Bilinear };
    let photos = ["cats/cat.0.jpg", "cats/cat.1.jpg", "dogs/dog.0.jpg"]
        .iter()
        .map(|name| {
            let path = fixtures.join(name);
            Ok(resize.apply(&load_rgb(&path)?, &path)?)
        })
        .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;

    let params: AugmentParams = "rotation=40,shift=0.2,shear=0.2,zoom=0.2,hflip,fill=nearest".parse()?;
    let augmenter = Augmenter::new(params)?;
    let batch = augmenter.augment_batch(&photos, 7, 0)?; // (images, height, width, channels), 0..255
    println!("batch {:?}, mean {:.1} (the photos' {:.1})", batch.shape(), batch.mean().unwrap_or(0.0), mean(&photos));

    let sheet = contact_sheet(&variants(&augmenter, &photos[0], 8, 7), 4);
    let out = std::env::temp_dir().join("imgclf_augment_example.png");
    sheet.save(&out)?;
    println!("8 variants of cat.0.jpg: {}", out.display());
    Ok(())
}

fn mean(photos: &[image::RgbImage]) -> f64 {
    let values: Vec<f64> = photos.iter().flat_map(|p| p.as_raw().iter().map(|&v| f64::from(v))).collect();
    values.iter().sum::<f64>() / values.len() as f64
}
