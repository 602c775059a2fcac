//! `imgclf` from Python: the libraries behind a PyO3 module (`imgclf._imgclf`, re-exported by
//! the `imgclf` package in `python/imgclf`). Arrays cross as numpy arrays: rows the library
//! made are handed over without a copy; long calls release the GIL and stop between batches
//! on Ctrl-C. Errors raise one class per library error kind, all under `ImgclfError`, with the
//! library's one-line message.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use image::RgbImage;
use imgclf_dataset::{Dataset, Sample};
use imgclf_features::{ExtractOptions, FeatureReader, extract_all};
use imgclf_heads::{HeadInputs, Run, TrainConfig, image_samples};
use imgclf_runtime::{Backbone, Device, EngineConfig, EngineKind, Precision, resolve_model};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2, PyReadonlyArray4};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

create_exception!(_imgclf, ImgclfError, PyException, "The base of every error imgclf raises.");
create_exception!(_imgclf, DatasetError, ImgclfError, "Photos and data roots: unreadable, missing or inconsistent.");
create_exception!(_imgclf, EngineError, ImgclfError, "Models and engines: a spec, an ONNX file or ONNX Runtime.");
create_exception!(_imgclf, FeatureError, ImgclfError, "Feature files: unreadable, damaged, or of another dataset.");
create_exception!(_imgclf, HeadError, ImgclfError, "Heads and runs: settings, inputs and run folders.");
create_exception!(_imgclf, ReportError, ImgclfError, "Reports and tables of runs.");

/// A library error as its Python exception (a stop between batches as KeyboardInterrupt).
trait Raise<T> {
    fn raise(self) -> PyResult<T>;
}

macro_rules! raise_as {
    ($($error:ty => $class:ident),* $(,)?) => {$(
        impl<T> Raise<T> for Result<T, $error> {
            fn raise(self) -> PyResult<T> {
                self.map_err(|e| $class::new_err(e.to_string()))
            }
        }
    )*};
}

raise_as!(
    imgclf_dataset::DatasetError => DatasetError,
    imgclf_runtime::RuntimeError => EngineError,
    imgclf_heads::HeadError => HeadError,
    imgclf_report::ReportError => ReportError,
);

impl<T> Raise<T> for Result<T, imgclf_features::FeatureError> {
    fn raise(self) -> PyResult<T> {
        self.map_err(|e| match e {
            imgclf_features::FeatureError::Interrupted { .. } => PyKeyboardInterrupt::new_err(e.to_string()),
            e => FeatureError::new_err(e.to_string()),
        })
    }
}

/// The engine settings of `engine` (`auto`, `ort`, `tract`) on the CPU, on every core.
fn engine_config(engine: &str) -> PyResult<EngineConfig> {
    let kind: EngineKind = engine.parse().map_err(|e: String| PyValueError::new_err(format!("engine: {e}")))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let config = EngineConfig::new(kind, Device::Cpu, Precision::Fp32, cores);
    config.check().raise()?;
    Ok(config)
}

/// Runs `work` without the GIL on a thread of its own while this one checks for Ctrl-C every
/// 50 ms; on Ctrl-C `stop` is set (the library stops between batches) and the work's result,
/// an interruption, is returned.
fn interruptible<T: Send>(py: Python<'_>, stop: &AtomicBool, work: impl FnOnce() -> T + Send) -> T {
    py.detach(|| {
        std::thread::scope(|scope| {
            let worker = scope.spawn(work);
            while !worker.is_finished() {
                std::thread::sleep(Duration::from_millis(50));
                if Python::attach(|py| py.check_signals()).is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })
}

/// A feature file (`gap_<Backbone>.h5`): its splits, classes, backbone and attributes at once,
/// its rows on demand as float32 `(N, D)` arrays.
#[pyclass(module = "imgclf", unsendable)]
struct FeatureFile {
    reader: FeatureReader,
}

#[pymethods]
impl FeatureFile {
    /// Opens a feature file, refusing one that is not imgclf's or is damaged.
    #[new]
    fn new(path: PathBuf) -> PyResult<FeatureFile> {
        Ok(FeatureFile { reader: FeatureReader::open(&path).raise()? })
    }

    /// The file's path.
    #[getter]
    fn path(&self) -> PathBuf {
        self.reader.path().to_path_buf()
    }

    /// The backbone that made the features.
    #[getter]
    fn backbone(&self) -> String {
        self.reader.info.backbone.clone()
    }

    /// Class names in id order.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.reader.info.classes.clone()
    }

    /// The feature width D.
    #[getter]
    fn dim(&self) -> usize {
        self.reader.dim
    }

    /// The splits, in file order.
    #[getter]
    fn splits(&self) -> Vec<String> {
        self.reader.rows.iter().map(|(name, _)| name.clone()).collect()
    }

    /// Rows of split `split`.
    fn rows(&self, split: &str) -> PyResult<usize> {
        self.split_rows(split)
    }

    /// Everything else the file records: the model's path and sha256, the engine, the input
    /// size, the cache fingerprint, the storage and the checksum of the rows.
    #[getter]
    fn attrs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let info = &self.reader.info;
        let attrs = PyDict::new(py);
        attrs.set_item("backbone", &info.backbone)?;
        attrs.set_item("model", &info.model)?;
        attrs.set_item("model_sha256", &info.model_sha256)?;
        attrs.set_item("engine", &info.engine)?;
        attrs.set_item("input_size", info.input_size.to_vec())?;
        attrs.set_item("fingerprint", &info.fingerprint)?;
        attrs.set_item("storage", self.reader.storage.name())?;
        attrs.set_item("checksum", self.reader.checksum())?;
        Ok(attrs)
    }

    /// Rows `start..stop` of `split` (default: all): float32 `(N, D)`, int64 labels (None
    /// for an unlabelled split) and the photos' paths.
    #[pyo3(signature = (split, start = 0, stop = None))]
    #[allow(clippy::type_complexity)]
    fn read<'py>(
        &self,
        py: Python<'py>,
        split: &str,
        start: usize,
        stop: Option<usize>,
    ) -> PyResult<(Bound<'py, PyArray2<f32>>, Option<Bound<'py, PyArray1<i64>>>, Vec<String>)> {
        let rows = self.split_rows(split)?;
        let stop = stop.unwrap_or(rows).min(rows);
        if start > stop {
            return Err(PyValueError::new_err(format!("rows {start}..{stop} of `{split}`: start after stop")));
        }
        let block = self.reader.block(split, start..stop).raise()?;
        let labels = block.labels.map(|l| l.into_pyarray(py));
        Ok((block.features.into_pyarray(py), labels, block.paths))
    }
}

impl FeatureFile {
    fn split_rows(&self, split: &str) -> PyResult<usize> {
        self.reader.split_rows(split).ok_or_else(|| {
            FeatureError::new_err(format!(
                "{}: no split `{split}` (it has {})",
                self.reader.path().display(),
                self.splits().join(", ")
            ))
        })
    }
}

/// Extracts features from the photos `data` names (a data root, a manifest, Parquet files or
/// WebDataset tars, as `imgclf extract --data`) through each model, into one feature file per
/// model in `out`; a valid cached file is reused unless `force`. Returns the files.
#[pyfunction]
#[pyo3(signature = (data, models, out = PathBuf::from("features"), engine = "auto", batch = None, force = false))]
fn extract(
    py: Python<'_>,
    data: PathBuf,
    models: Vec<PathBuf>,
    out: PathBuf,
    engine: &str,
    batch: Option<usize>,
    force: bool,
) -> PyResult<Vec<FeatureFile>> {
    let dataset = Dataset::open(&data).raise()?;
    let backbones = models
        .iter()
        .map(|m| Backbone::open(&resolve_model(m).raise()?).raise())
        .collect::<PyResult<Vec<Backbone>>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let defaults = ExtractOptions::new(engine_config(engine)?);
    let options =
        ExtractOptions { batch: batch.unwrap_or(defaults.batch), force, stop: Some(stop.clone()), ..defaults };
    let reports =
        interruptible(py, &stop, || extract_all(&dataset, &backbones, &out, &options, &mut |_| {})).raise()?;
    reports.iter().map(|r| FeatureFile::new(r.output.clone())).collect()
}

/// Features of photos in memory: `images` is a uint8 `(N, H, W, 3)` RGB array (each resized
/// as `extract` resizes a decoded photo) or a list of image paths; returns float32 `(N, D)`,
/// the rows `extract` writes for the same photos.
#[pyfunction]
#[pyo3(signature = (model, images, engine = "auto", batch = 32))]
fn embed<'py>(
    py: Python<'py>,
    model: PathBuf,
    images: &Bound<'py, PyAny>,
    engine: &str,
    batch: usize,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let backbone = Backbone::open(&resolve_model(&model).raise()?).raise()?;
    let photos: Vec<(RgbImage, PathBuf)> = match images.extract::<PyReadonlyArray4<u8>>() {
        Ok(array) => {
            let array = array.as_array();
            let (n, h, w, c) = array.dim();
            if c != 3 {
                return Err(PyValueError::new_err(format!("images: (N, H, W, 3) RGB expected, got {c} channels")));
            }
            (0..n)
                .map(|i| {
                    let pixels: Vec<u8> = array.index_axis(ndarray::Axis(0), i).iter().copied().collect();
                    let image = RgbImage::from_raw(w as u32, h as u32, pixels).expect("H × W × 3 bytes");
                    (image, PathBuf::from(format!("images[{i}]")))
                })
                .collect()
        }
        Err(_) => {
            let paths: Vec<PathBuf> = images.extract().map_err(|_| {
                PyValueError::new_err("images: a uint8 (N, H, W, 3) array or a list of image paths expected")
            })?;
            let samples: Vec<Sample> = image_samples(&paths).raise()?;
            samples.iter().map(|s| Ok((s.load_rgb().raise()?, s.path.clone()))).collect::<PyResult<_>>()?
        }
    };
    let config = engine_config(engine)?;
    let stop = AtomicBool::new(false);
    let rows = interruptible(py, &stop, || -> PyResult<ndarray::Array2<f32>> {
        let mut engine = backbone.engine(&config).raise()?;
        let mut blocks = Vec::new();
        for chunk in photos.chunks(batch.max(1)) {
            if stop.load(Ordering::Relaxed) {
                return Err(PyKeyboardInterrupt::new_err("embedding stopped between batches"));
            }
            let resized = chunk
                .iter()
                .map(|(image, path)| backbone.spec.resize.apply(image, path).raise())
                .collect::<PyResult<Vec<_>>>()?;
            blocks.push(backbone.embed(&mut engine, &resized, false).raise()?.pooled);
        }
        let views: Vec<_> = blocks.iter().map(|b| b.view()).collect();
        match views.is_empty() {
            true => Ok(ndarray::Array2::zeros((0, 0))),
            false => Ok(ndarray::concatenate(ndarray::Axis(0), &views).expect("one width")),
        }
    })?;
    Ok(rows.into_pyarray(py))
}

/// A trained head's run folder (`imgclf train-head`): its classes and settings, and its
/// probabilities for feature rows.
#[pyclass(module = "imgclf")]
struct HeadRun {
    run: Run,
}

#[pymethods]
impl HeadRun {
    /// Opens the run folder `dir` (with its temperature, when calibrated).
    #[new]
    fn new(dir: PathBuf) -> PyResult<HeadRun> {
        Ok(HeadRun { run: Run::load(&dir).raise()? })
    }

    /// The run folder.
    #[getter]
    fn dir(&self) -> PathBuf {
        self.run.dir.clone()
    }

    /// Class names in id order.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.run.info.classes.clone()
    }

    /// `run.json`, as a dict.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &serde_json::to_string(&self.run.info).expect("run info serialises"))
    }

    /// Class probabilities `(N, classes)` float32 for feature rows `x` (float32 `(N, D)`, the
    /// run's feature files' columns joined in its order), calibrated when the run is.
    fn predict<'py>(&self, py: Python<'py>, x: PyReadonlyArray2<'py, f32>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let x = x.as_array();
        if x.ncols() != self.run.head.inputs() {
            return Err(HeadError::new_err(format!(
                "{} features a row, but run {} takes {}",
                x.ncols(),
                self.run.dir.display(),
                self.run.head.inputs()
            )));
        }
        let mut probs = self.run.head.predict(x);
        if let Some(t) = &self.run.temperature {
            t.apply(&mut probs);
        }
        Ok(probs.into_pyarray(py))
    }
}

/// Trains a head on feature files into run folder `out`, as `imgclf train-head` does, with
/// `config` the `config` object of a run.json (every setting; default: the tutorial's head)
/// and at most `memory_budget` bytes of rows held (default: a quarter of what is free).
#[pyfunction]
#[pyo3(signature = (features, out, config = None, memory_budget = None, overwrite = false))]
fn train_head(
    py: Python<'_>,
    features: Vec<PathBuf>,
    out: PathBuf,
    config: Option<&Bound<'_, PyAny>>,
    memory_budget: Option<usize>,
    overwrite: bool,
) -> PyResult<HeadRun> {
    let config: TrainConfig = match config {
        None => TrainConfig::tutorial(),
        Some(c) => {
            let text: String = py.import("json")?.call_method1("dumps", (c,))?.extract()?;
            serde_json::from_str(&text).map_err(|e| PyValueError::new_err(format!("config: {e}")))?
        }
    };
    imgclf_heads::RunDir::check(&out, overwrite).raise()?;
    let inputs = HeadInputs::open(&features, &["train", "validation"], memory_budget).raise()?;
    let stop = AtomicBool::new(false);
    let run = interruptible(py, &stop, || -> Result<Run, imgclf_heads::HeadError> {
        let trained = imgclf_heads::train(&inputs, &config, &mut |_| {})?;
        let history = trained.history.clone();
        let run = Run::new(&out, &inputs, &config, trained);
        run.save(&history, overwrite)?;
        Ok(run)
    })
    .raise()?;
    Ok(HeadRun { run })
}

/// Every run folder at or under `dirs`, one dict each (kind, backbones, head, epochs, seed,
/// validation accuracy and log loss, the last evaluation's scores, seconds, date).
#[pyfunction]
fn list_runs<'py>(py: Python<'py>, dirs: Vec<PathBuf>) -> PyResult<Bound<'py, PyList>> {
    let (rows, errors) = imgclf_report::find_runs(&dirs, imgclf_report::SortBy::Date);
    if let (true, Some(e)) = (rows.is_empty(), errors.into_iter().next()) {
        return Err(e).raise();
    }
    let out = PyList::empty(py);
    for r in rows {
        let row = PyDict::new(py);
        row.set_item("dir", &r.dir)?;
        row.set_item("kind", &r.kind)?;
        row.set_item("backbones", &r.backbones)?;
        row.set_item("head", &r.head)?;
        row.set_item("epochs", r.epochs)?;
        row.set_item("seed", r.seed)?;
        row.set_item("val_acc", r.val_acc)?;
        row.set_item("val_loss", r.val_loss)?;
        let e = r.evaluated.as_ref();
        row.set_item("scored", e.map(|e| e.split.clone()))?;
        row.set_item("log_loss", e.map(|e| e.log_loss))?;
        row.set_item("ece", e.map(|e| e.ece))?;
        row.set_item("brier", e.map(|e| e.brier))?;
        row.set_item("temperature", e.and_then(|e| e.temperature))?;
        row.set_item("seconds", r.seconds)?;
        row.set_item("date", &r.date)?;
        out.append(row)?;
    }
    Ok(out)
}

/// JSON text as Python objects (through the json module: no second serialiser).
fn json_to_py<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text,))
}

/// The module the `imgclf` package re-exports.
#[pymodule]
fn _imgclf(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ImgclfError", py.get_type::<ImgclfError>())?;
    m.add("DatasetError", py.get_type::<DatasetError>())?;
    m.add("EngineError", py.get_type::<EngineError>())?;
    m.add("FeatureError", py.get_type::<FeatureError>())?;
    m.add("HeadError", py.get_type::<HeadError>())?;
    m.add("ReportError", py.get_type::<ReportError>())?;
    m.add_class::<FeatureFile>()?;
    m.add_class::<HeadRun>()?;
    m.add_function(wrap_pyfunction!(extract, m)?)?;
    m.add_function(wrap_pyfunction!(embed, m)?)?;
    m.add_function(wrap_pyfunction!(train_head, m)?)?;
    m.add_function(wrap_pyfunction!(list_runs, m)?)?;
    Ok(())
}
