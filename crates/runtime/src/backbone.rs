//! A backbone: an ONNX model with its spec and sha256, loaded on an engine and run on photos
//! the way `extract` runs it (`embed`), for the stages that see new images (predict, CAM).

use std::io::Read;
use std::path::{Path, PathBuf};

use image::RgbImage;
use ndarray::{Array2, Array4};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::{Engine, EngineConfig, ModelSpec, RuntimeError, global_average_pool};

/// An ONNX backbone with its spec and the sha256 of the model file.
#[derive(Debug, Clone)]
pub struct Backbone {
    /// The ONNX model file.
    pub model: PathBuf,
    /// The spec beside it.
    pub spec: ModelSpec,
    /// sha256 of the model file, as lowercase hex.
    pub sha256: String,
}

impl Backbone {
    /// Reads the spec beside `model` and hashes the model file.
    pub fn open(model: &Path) -> Result<Backbone, RuntimeError> {
        let sha256 = sha256_file(model)?;
        Ok(Backbone { model: model.to_path_buf(), spec: ModelSpec::for_model(model)?, sha256 })
    }

    /// Loads this backbone's feature output on an engine that [`Backbone::embed`] feeds
    /// (floats, whatever `config.feed` says).
    pub fn engine(&self, config: &EngineConfig) -> Result<Engine, RuntimeError> {
        Engine::load(&self.model, &self.spec, &[self.spec.feature_output()], &config.with_floats())
    }

    /// Loads the feature output and the feature map (what class activation maps weigh) on
    /// an engine; refused when the spec names no map.
    pub fn engine_with_map(&self, config: &EngineConfig) -> Result<Engine, RuntimeError> {
        if self.spec.feature_map.is_none() {
            return Err(RuntimeError::Spec {
                path: self.model.with_extension("json"),
                reason: "names no `features` output: class activation maps need the last convolutional feature map \
                         (N×C×H×W or N×H×W×C) as an output of the model, named in the spec beside the pooled one"
                    .into(),
            });
        }
        Engine::load(&self.model, &self.spec, &self.spec.outputs(), &config.with_floats())
    }

    /// Pooled features `(n, D)` of decoded images (at the spec's input size), and with
    /// `with_map` the feature maps as `(n, C, H, W)`, from an engine made by
    /// [`Backbone::engine_with_map`].
    pub fn embed(&self, engine: &mut Engine, images: &[RgbImage], with_map: bool) -> Result<Embedding, RuntimeError> {
        let outputs = engine.run(preprocess_batch(&self.spec, images).view())?;
        let pooled = self.pool_output(&outputs[0], images.len())?;
        let maps = match (&self.spec.feature_map, with_map) {
            (Some((name, layout)), true) => {
                let map = outputs.last().expect("one output at least").view();
                let map = map.into_dimensionality::<ndarray::Ix4>().map_err(|_| RuntimeError::SpecMismatch {
                    model: self.model.clone(),
                    reason: format!(
                        "output `{name}` is not 4-D (shape {:?})",
                        outputs.last().map(|o| o.shape().to_vec())
                    ),
                })?;
                let map = if *layout == crate::Layout::Nhwc { map.permuted_axes([0, 3, 1, 2]) } else { map };
                Some(map.as_standard_layout().into_owned())
            }
            _ => None,
        };
        Ok(Embedding { pooled, maps })
    }

    /// The `(n, D)` feature rows of one engine output: pooled as given, or a map to pool.
    pub fn pool_output(&self, output: &ndarray::ArrayD<f32>, n: usize) -> Result<Array2<f32>, RuntimeError> {
        let backbone = self;
        let layout = backbone.spec.feature_map.as_ref().map_or(backbone.spec.layout, |(_, l)| *l);
        let mismatch = |reason: String| RuntimeError::SpecMismatch { model: backbone.model.clone(), reason };
        let pooled = global_average_pool(output.view(), layout)
            .map_err(|e| mismatch(format!("output `{}`: {e}", backbone.spec.feature_output())))?;
        if pooled.nrows() != n {
            return Err(mismatch(format!(
                "output `{}` has {} rows for {n} images",
                backbone.spec.feature_output(),
                pooled.nrows()
            )));
        }
        Ok(pooled)
    }
}

/// What [`Backbone::embed`] returns.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// `(n, D)` pooled features, one row per image.
    pub pooled: Array2<f32>,
    /// `(n, C, H, W)` feature maps, when asked for.
    pub maps: Option<Array4<f32>>,
}

/// The input tensor for resized images, laid out and normalised as `spec` says.
pub fn preprocess_batch(spec: &ModelSpec, images: &[RgbImage]) -> Array4<f32> {
    let mut input = Array4::zeros(spec.input_shape(images.len()));
    fill_batch(spec, images.par_iter(), input.as_slice_mut().expect("fresh arrays are contiguous"));
    input
}

/// Writes each image into its slot of `out` (one `3*H*W` slot per image, in order), in
/// parallel on the current rayon pool: the one preprocessing path of `preprocess_batch` and
/// the extraction pipeline.
pub fn fill_batch<'a>(spec: &ModelSpec, images: impl IndexedParallelIterator<Item = &'a RgbImage>, out: &mut [f32]) {
    let slot = spec.input_shape(1).iter().product::<usize>();
    out.par_chunks_mut(slot).zip(images).for_each(|(slot, image)| spec.fill_input(image, slot));
}

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, RuntimeError> {
    let mut file = std::fs::File::open(path).map_err(RuntimeError::io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(RuntimeError::io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}
