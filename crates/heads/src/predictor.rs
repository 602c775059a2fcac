//! A run applied to new photos: every backbone it was trained on (each model checked
//! against the sha256 in `run.json`), then the head.

use std::path::PathBuf;

use image::RgbImage;
use imgclf_dataset::{Dataset, DatasetError, Sample, is_photo_collection};
use imgclf_runtime::{Backbone, Engine, EngineConfig};
use ndarray::{Array2, Array4, Axis, concatenate};
use rayon::prelude::*;

use crate::{HeadError, Run};

/// A loaded run with one engine per backbone.
pub struct Predictor {
    /// The run whose head predicts.
    pub run: Run,
    backbones: Vec<(Backbone, Engine)>,
    with_maps: bool,
}

/// Predictions for the images that could be read, in the order given.
#[derive(Debug)]
pub struct Predictions {
    /// The photos read, in input order.
    pub samples: Vec<Sample>,
    /// `(images, classes)`.
    pub probs: Array2<f32>,
    /// Per backbone, `(images, C, H, W)` feature maps, when the predictor keeps them.
    pub maps: Vec<Array4<f32>>,
    /// Files that could not be read, with why.
    pub skipped: Vec<DatasetError>,
}

impl Predictor {
    /// Opens each backbone of the run on an engine. `with_maps` also loads the feature maps
    /// (for class activation maps).
    pub fn load(run: Run, engine: &EngineConfig, with_maps: bool) -> Result<Predictor, HeadError> {
        let mut backbones = Vec::new();
        for source in &run.info.sources {
            let fail = |reason: String| HeadError::Run { path: run.dir.join("run.json"), reason };
            if source.model.as_os_str().is_empty() {
                return Err(fail(format!(
                    "names no model file for {} (its features predate that record): `extract` again and retrain",
                    source.backbone
                )));
            }
            if !source.model.is_file() {
                return Err(fail(format!("the model of {} is missing: {}", source.backbone, source.model.display())));
            }
            let backbone = Backbone::open(&source.model)?;
            if backbone.sha256 != source.model_sha256 {
                return Err(fail(format!(
                    "{} has changed since the head was trained (sha256 {}, trained on {})",
                    source.model.display(),
                    backbone.sha256,
                    source.model_sha256
                )));
            }
            let engine = if with_maps { backbone.engine_with_map(engine)? } else { backbone.engine(engine)? };
            backbones.push((backbone, engine));
        }
        Ok(Predictor { run, backbones, with_maps })
    }

    /// Class probabilities for photos (calibrated when the run has a temperature), `batch` per inference call; decoding and resizing run
    /// in parallel. Unreadable photos are skipped and reported.
    pub fn predict(&mut self, samples: &[Sample], batch: usize) -> Result<Predictions, HeadError> {
        let mut out = Predictions {
            samples: Vec::new(),
            probs: Array2::zeros((0, self.run.head.classes())),
            maps: Vec::new(),
            skipped: Vec::new(),
        };
        let mut maps: Vec<Vec<Array4<f32>>> = vec![Vec::new(); self.backbones.len()];
        let mut probs = Vec::new();
        for chunk in samples.chunks(batch.max(1)) {
            // Each photo is decoded once, then resized to every backbone's input; an image that
            // fails for one backbone is skipped for all.
            let decoded: Vec<Result<Vec<RgbImage>, DatasetError>> = chunk
                .par_iter()
                .map(|sample| {
                    let photo = sample.load_rgb()?;
                    self.backbones.iter().map(|(b, _)| b.spec.resize.apply(&photo, &sample.path)).collect()
                })
                .collect();
            let mut kept = Vec::new();
            let mut per_backbone: Vec<Vec<RgbImage>> = vec![Vec::new(); self.backbones.len()];
            for (sample, result) in chunk.iter().zip(decoded) {
                match result {
                    Ok(images) => {
                        kept.push(sample.clone());
                        images.into_iter().zip(&mut per_backbone).for_each(|(img, list)| list.push(img));
                    }
                    Err(e) => out.skipped.push(e),
                }
            }
            if kept.is_empty() {
                continue;
            }
            let mut columns = Vec::new();
            for (k, ((backbone, engine), images)) in self.backbones.iter_mut().zip(&per_backbone).enumerate() {
                let embedding = backbone.embed(engine, images, self.with_maps)?;
                columns.push(embedding.pooled);
                maps[k].extend(embedding.maps);
            }
            let views: Vec<_> = columns.iter().map(|c| c.view()).collect();
            let x = concatenate(Axis(1), &views).expect("one row per kept image in every block");
            probs.push(self.run.predict(x.view()));
            out.samples.extend(kept);
        }
        if !probs.is_empty() {
            let views: Vec<_> = probs.iter().map(|p| p.view()).collect();
            out.probs = concatenate(Axis(0), &views).expect("same number of classes");
        }
        // no maps when no image could be read (concatenating nothing has no shape)
        if self.with_maps && !out.samples.is_empty() {
            out.maps = maps
                .into_iter()
                .map(|blocks| {
                    let views: Vec<_> = blocks.iter().map(|b| b.view()).collect();
                    concatenate(Axis(0), &views).expect("same map shape per backbone")
                })
                .collect();
        }
        Ok(out)
    }

    /// How backbone `index` resizes images: what part of a photo its feature map covers.
    pub fn resize(&self, index: usize) -> imgclf_dataset::Resize {
        self.backbones[index].0.spec.resize
    }

    /// The backbones' names and feature widths, in column order.
    pub fn backbones(&self) -> Vec<(&str, usize)> {
        self.run.info.sources.iter().map(|s| (s.backbone.as_str(), s.dim)).collect()
    }
}

/// The photos named: image files as given, folders replaced by the images inside them (sorted
/// naturally, not recursing), and manifests, tar shards or Parquet files of images (anything
/// `--data` takes but split folders) by every photo they hold, split after split.
pub fn image_samples(paths: &[PathBuf]) -> Result<Vec<Sample>, HeadError> {
    let mut samples = Vec::new();
    for p in paths {
        if is_photo_collection(p) {
            let dataset = Dataset::open(p)?;
            samples.extend(dataset.splits.into_iter().flat_map(|s| s.samples));
        } else if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(HeadError::io(p))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && imgclf_dataset::is_image_file(f))
                .collect();
            inside.sort_by(|a, b| imgclf_dataset::natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
            samples.extend(inside.into_iter().map(file_sample));
        } else {
            samples.push(file_sample(p.clone()));
        }
    }
    Ok(samples)
}

/// A photo given by its path, which is also how it is named.
fn file_sample(path: PathBuf) -> Sample {
    let rel = path.display().to_string();
    Sample::file(path, rel, None)
}
