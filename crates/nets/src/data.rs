//! Images held in memory at the network's input size, and the tensors made of them. Decoding
//! once and augmenting in memory keeps the 2 cores on the network instead of on JPEG decoding
//! every epoch (150×150 cats_dogs: 135 MB).

use candle_core::{Device, Tensor};
use image::RgbImage;
use imgclf_augment::Augmenter;
use imgclf_dataset::{Dataset, DatasetError, Filter, Fit, Resize, Sample};
use ndarray::Array3;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::NetError;

/// Labelled images resized to one size, with the paths (relative to the data root) they came from.
#[derive(Debug, Clone, Default)]
pub struct ImageSet {
    /// The images, resized.
    pub images: Vec<RgbImage>,
    /// Their class ids (0 where unlabelled).
    pub labels: Vec<usize>,
    /// Their paths relative to the data root.
    pub paths: Vec<String>,
}

impl ImageSet {
    /// Decodes and resizes samples in parallel (with [`resize_to`]'s stretch, as Keras'
    /// `target_size`; [`CnnConfig::resize`](crate::CnnConfig::resize) says how). Unreadable
    /// images are left out and returned. `tick` is called once per sample, for progress bars.
    pub fn load(samples: &[Sample], resize: Resize, tick: impl Fn() + Sync) -> (ImageSet, Vec<DatasetError>) {
        let loaded: Vec<Result<RgbImage, DatasetError>> = samples
            .par_iter()
            .map(|s| {
                let image = s.load_resized(&resize);
                tick();
                image
            })
            .collect();
        let (mut set, mut skipped) = (ImageSet::default(), Vec::new());
        for (sample, result) in samples.iter().zip(loaded) {
            match result {
                Ok(image) => {
                    set.images.push(image);
                    set.labels.push(sample.label.unwrap_or(0));
                    set.paths.push(sample.rel.clone());
                }
                Err(e) => skipped.push(e),
            }
        }
        (set, skipped)
    }

    /// How many images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// The labelled split to validate on: `requested`, else `validation`, else a labelled `test`,
/// else none.
pub fn validation_split(dataset: &Dataset, requested: Option<&str>) -> Result<Option<String>, NetError> {
    let labelled = |name: &str| dataset.split(name).is_some_and(|s| s.is_labelled());
    match requested {
        Some(name) if labelled(name) && name != "train" => Ok(Some(name.to_string())),
        Some(name) => Err(NetError::Config(format!(
            "`{name}` is not a labelled split other than train of {}",
            dataset.source.display()
        ))),
        None => Ok(["validation", "test"].into_iter().find(|n| labelled(n)).map(String::from)),
    }
}

/// How a photo becomes the network's input: the whole picture stretched to `[height, width]`
/// with `filter`.
pub fn resize_to(size: [usize; 2], filter: Filter) -> Resize {
    Resize { width: size[1] as u32, height: size[0] as u32, fit: Fit::Stretch, filter }
}

/// How pixel values (0–255) are scaled before the first layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Input {
    /// `x / 255`, the tutorial's `rescale=1./255`.
    Unit,
    /// Each image to zero mean and unit variance over its pixels (TF's
    /// `per_image_standardization`): dark and bright photos of a sign look alike.
    Standardize,
    /// Histogram equalisation (one mapping for all three channels, so hues keep their
    /// order), then `Standardize`: low-contrast photos spread over the whole range.
    Equalize,
}

imgclf_dataset::named_enum!(Input {
    Input::Unit => "unit",
    Input::Standardize => "standardize",
    Input::Equalize => "equalize",
});

impl Input {
    fn apply(self, x: &mut [f32]) {
        match self {
            Input::Unit => x.iter_mut().for_each(|v| *v /= 255.0),
            Input::Equalize => {
                equalize(x);
                Input::Standardize.apply(x);
            }
            Input::Standardize => {
                let n = x.len() as f32;
                let mean = x.iter().sum::<f32>() / n;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
                let scale = 1.0 / var.sqrt().max(1.0 / n.sqrt());
                x.iter_mut().for_each(|v| *v = (*v - mean) * scale);
            }
        }
    }
}

/// Replaces each value (0–255) by the share of the image's values at or below it: the
/// histogram over all channels made flat.
fn equalize(x: &mut [f32]) {
    let bin = |v: f32| v.round().clamp(0.0, 255.0) as usize;
    let mut cdf = [0usize; 256];
    x.iter().for_each(|&v| cdf[bin(v)] += 1);
    for i in 1..256 {
        cdf[i] += cdf[i - 1];
    }
    let n = x.len().max(1) as f32;
    x.iter_mut().for_each(|v| *v = cdf[bin(*v)] as f32 / n);
}

/// A `(n, 3, height, width)` tensor of images `indices` of `set`. With an augmenter, image `i`
/// gets the transform of stream index `stream_base + i`, so a batch depends only on the seed,
/// the epoch and the images in it. Made in host memory, where the images are: `fit` moves it to
/// the model's device.
pub fn batch_tensor(
    set: &ImageSet,
    indices: &[usize],
    augment: Option<(&Augmenter, u64, u64)>,
    input: Input,
) -> Result<Tensor, NetError> {
    let images: Vec<Vec<f32>> = indices
        .par_iter()
        .map(|&i| {
            let image = &set.images[i];
            let hwc = match augment {
                Some((augmenter, seed, stream_base)) => augmenter.augment(image, seed, stream_base + i as u64),
                None => {
                    let (w, h) = image.dimensions();
                    let values = image.as_raw().iter().map(|&v| f32::from(v)).collect();
                    Array3::from_shape_vec((h as usize, w as usize, 3), values).expect("an RGB image is h × w × 3")
                }
            };
            let (h, w, _) = hwc.dim();
            // channels-last to channels-first
            let mut chw = vec![0.0f32; 3 * h * w];
            for ((y, x, c), v) in hwc.indexed_iter() {
                chw[c * h * w + y * w + x] = *v;
            }
            input.apply(&mut chw);
            chw
        })
        .collect();
    let (h, w) = set.images.first().map_or((0, 0), |i| (i.height() as usize, i.width() as usize));
    Ok(Tensor::from_vec(images.concat(), (indices.len(), 3, h, w), &Device::Cpu)?)
}

/// The photos of `samples` that were read, in order: those whose identity is in `read`.
pub(crate) fn kept(samples: &[Sample], read: &[String]) -> Vec<Sample> {
    let read: std::collections::HashSet<&str> = read.iter().map(String::as_str).collect();
    samples.iter().filter(|s| read.contains(s.rel.as_str())).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardize_gives_zero_mean_unit_variance_and_survives_a_flat_image() {
        let mut x: Vec<f32> = (0..300).map(|i| (i % 17) as f32 * 9.0).collect();
        Input::Standardize.apply(&mut x);
        let mean = x.iter().sum::<f32>() / 300.0;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 300.0;
        assert!(mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3, "mean {mean} var {var}");
        let mut flat = vec![128.0; 12];
        Input::Standardize.apply(&mut flat);
        assert!(flat.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn equalize_spreads_a_narrow_histogram_over_the_range() {
        // a dull image: values 100..=103 only
        let mut x: Vec<f32> = (0..400).map(|i| 100.0 + (i % 4) as f32).collect();
        equalize(&mut x);
        assert_eq!(x[..4], [0.25, 0.5, 0.75, 1.0]);
    }

    #[test]
    fn batches_are_channels_first_and_scaled() {
        let image = RgbImage::from_fn(3, 2, |x, y| image::Rgb([(10 * x + y) as u8, 100, 255]));
        let set = ImageSet { images: vec![image], labels: vec![0], paths: vec!["a.png".into()] };
        let t = batch_tensor(&set, &[0], None, Input::Unit).unwrap();
        assert_eq!(t.dims(), &[1, 3, 2, 3]);
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // red plane, row 1, column 2: 10·2 + 1
        assert!((v[3 + 2] - 21.0 / 255.0).abs() < 1e-6);
        assert!(v[6..12].iter().all(|g| (g - 100.0 / 255.0).abs() < 1e-6));
        assert!(v[12..].iter().all(|b| *b == 1.0));
    }
}
