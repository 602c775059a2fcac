//! A backbone: an ONNX model with its spec and sha256, loaded on an engine and run on photos
//! the way `extract` runs it (`embed`), for the stages that see new images (predict, CAM).

use std::path::{Path, PathBuf};

use image::RgbImage;
use ndarray::{Array2, Array4};

use crate::extract::{pool_output, preprocess_batch, sha256_file};
use crate::{Engine, EngineConfig, FeatureError, ModelSpec};

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
    pub fn open(model: &Path) -> Result<Backbone, FeatureError> {
        let sha256 = sha256_file(model)?;
        Ok(Backbone { model: model.to_path_buf(), spec: ModelSpec::for_model(model)?, sha256 })
    }

    /// Loads this backbone's feature output on an engine that [`Backbone::embed`] feeds
    /// (floats, whatever `config.feed` says).
    pub fn engine(&self, config: &EngineConfig) -> Result<Engine, FeatureError> {
        Engine::load(&self.model, &self.spec, &[self.spec.feature_output()], &config.with_floats())
    }

    /// Loads the feature output and the feature map (what class activation maps weigh) on
    /// an engine; refused when the spec names no map.
    pub fn engine_with_map(&self, config: &EngineConfig) -> Result<Engine, FeatureError> {
        if self.spec.feature_map.is_none() {
            return Err(FeatureError::Spec {
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
    pub fn embed(&self, engine: &mut Engine, images: &[RgbImage], with_map: bool) -> Result<Embedding, FeatureError> {
        let outputs = engine.run(preprocess_batch(&self.spec, images).view())?;
        let pooled = pool_output(self, &outputs[0], images.len())?;
        let maps = match (&self.spec.feature_map, with_map) {
            (Some((name, layout)), true) => {
                let map = outputs.last().expect("one output at least").view();
                let map = map.into_dimensionality::<ndarray::Ix4>().map_err(|_| FeatureError::SpecMismatch {
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
}

/// What [`Backbone::embed`] returns.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// `(n, D)` pooled features, one row per image.
    pub pooled: Array2<f32>,
    /// `(n, C, H, W)` feature maps, when asked for.
    pub maps: Option<Array4<f32>>,
}
