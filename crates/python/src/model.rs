//! Backbones from Python: `Model` (loaded once, for many batches) and `embed`.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use image::RgbImage;
use imgclf_dataset::Sample;
use imgclf_heads::image_samples;
use imgclf_runtime::{Backbone, resolve_model};
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray4};
use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use rayon::prelude::*;

use crate::calls::{Counter, engine_config, interruptible};
use crate::errors::Raise;

/// A backbone loaded on an engine once, to embed many batches: its name, width and input size.
#[pyclass(module = "imgclf", unsendable)]
pub(crate) struct Model {
    backbone: Backbone,
    engine: imgclf_runtime::Engine,
}

#[pymethods]
impl Model {
    /// Opens `model` (an ONNX file with its spec beside it, or a name in the model cache) on
    /// `engine` (`auto`, `ort`, `tract`), on the CPU.
    #[new]
    #[pyo3(signature = (model, engine = "auto"))]
    fn new(model: PathBuf, engine: &str) -> PyResult<Model> {
        let backbone = Backbone::open(&resolve_model(&model).raise()?).raise()?;
        let engine = backbone.engine(&engine_config(engine)?).raise()?;
        Ok(Model { backbone, engine })
    }

    /// The backbone's name.
    #[getter]
    fn name(&self) -> String {
        self.backbone.spec.name.clone()
    }

    /// The input size `(height, width)` a photo is resized to.
    #[getter]
    fn input_size(&self) -> (u32, u32) {
        (self.backbone.spec.resize.height, self.backbone.spec.resize.width)
    }

    /// Features of photos in memory: `images` is a uint8 `(N, H, W, 3)` RGB array or a list of
    /// image paths; returns float32 `(N, D)`, the rows `extract` writes for the same photos
    /// (each resized as `extract` resizes a decoded photo). With `resize=False` an array
    /// already at the model's input size goes to the model as it is.
    #[pyo3(signature = (images, batch = 32, resize = true, progress = None))]
    fn embed<'py>(
        &mut self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        batch: usize,
        resize: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (photos, names) = self.photos(images, resize)?;
        let stop = AtomicBool::new(false);
        let counter = Counter::default();
        counter.start(photos.len());
        let Model { backbone, engine } = self;
        let rows = interruptible(py, &stop, &counter, progress.as_ref(), || -> PyResult<ndarray::Array2<f32>> {
            let mut blocks = Vec::new();
            let step = batch.max(1);
            for (chunk, names) in photos.chunks(step).zip(names.chunks(step)) {
                if stop.load(Ordering::Relaxed) {
                    return Err(PyKeyboardInterrupt::new_err("embedding stopped between batches"));
                }
                // a batch already at the input size goes in as it is, not copied
                let resized: Cow<[RgbImage]> = match resize {
                    true => Cow::Owned(
                        chunk
                            .par_iter()
                            .zip(names)
                            .map(|(image, name)| backbone.spec.resize.apply(image, name).raise())
                            .collect::<PyResult<_>>()?,
                    ),
                    false => Cow::Borrowed(chunk),
                };
                blocks.push(backbone.embed(engine, &resized, false).raise()?.pooled);
                counter.advance(chunk.len());
            }
            let views: Vec<_> = blocks.iter().map(|b| b.view()).collect();
            match views.is_empty() {
                true => Ok(ndarray::Array2::zeros((0, 0))),
                false => Ok(ndarray::concatenate(ndarray::Axis(0), &views).expect("one width")),
            }
        })?;
        Ok(rows.into_pyarray(py))
    }
}

impl Model {
    /// The photos `images` names (an array's rows, or image files decoded), and a name for each
    /// (for errors).
    fn photos(&self, images: &Bound<'_, PyAny>, resize: bool) -> PyResult<(Vec<RgbImage>, Vec<PathBuf>)> {
        let Ok(array) = images.extract::<PyReadonlyArray4<u8>>() else {
            let paths: Vec<PathBuf> = images.extract().map_err(|_| {
                PyValueError::new_err("images: a uint8 (N, H, W, 3) array or a list of image paths expected")
            })?;
            let samples: Vec<Sample> = image_samples(&paths).raise()?;
            let photos = samples.iter().map(|s| s.load_rgb().raise()).collect::<PyResult<_>>()?;
            return Ok((photos, samples.into_iter().map(|s| s.path).collect()));
        };
        let array = array.as_array();
        let (n, h, w, c) = array.dim();
        if c != 3 {
            return Err(PyValueError::new_err(format!("images: (N, H, W, 3) RGB expected, got {c} channels")));
        }
        let (height, width) = self.input_size();
        if !resize && (w, h) != (width as usize, height as usize) {
            return Err(PyValueError::new_err(format!(
                "images: {h}×{w}, but resize=False needs the model's input size, {height}×{width}"
            )));
        }
        let photos = (0..n)
            .map(|i| {
                let pixels: Vec<u8> = array.index_axis(ndarray::Axis(0), i).iter().copied().collect();
                RgbImage::from_raw(w as u32, h as u32, pixels).expect("H × W × 3 bytes")
            })
            .collect();
        Ok((photos, (0..n).map(|i| PathBuf::from(format!("images[{i}]"))).collect()))
    }
}

/// [`Model::embed`] with the model loaded for this call alone.
#[pyfunction]
#[pyo3(signature = (model, images, engine = "auto", batch = 32, resize = true, progress = None))]
pub(crate) fn embed<'py>(
    py: Python<'py>,
    model: PathBuf,
    images: &Bound<'py, PyAny>,
    engine: &str,
    batch: usize,
    resize: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    Model::new(model, engine)?.embed(py, images, batch, resize, progress)
}
