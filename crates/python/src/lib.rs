//! `imgclf` from Python: the libraries behind a PyO3 module (`imgclf._imgclf`, re-exported by
//! the `imgclf` package in `python/imgclf`). Arrays cross as numpy arrays: rows the library
//! made are handed over without a copy; long calls release the GIL and stop between batches
//! on Ctrl-C. Errors raise one class per library error kind, all under `ImgclfError`, with the
//! library's one-line message.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use image::RgbImage;
use imgclf_dataset::{Dataset, Sample};
use imgclf_features::{Checkpoints, ExtractOptions, FeatureReader, Progress, Shard, Storage, extract_all};
use imgclf_heads::{HeadInputs, TrainEvent, TrainOptions, image_samples};
use imgclf_nets::{AnyRun, Scored, SplitSource};
use imgclf_report::ReportOptions;
use imgclf_runtime::{Backbone, Device, EngineConfig, EngineKind, Precision, resolve_model};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2, PyReadonlyArray4};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rayon::prelude::*;

create_exception!(_imgclf, ImgclfError, PyException, "The base of every error imgclf raises.");
create_exception!(_imgclf, DatasetError, ImgclfError, "Photos and data roots: unreadable, missing or inconsistent.");
create_exception!(_imgclf, EngineError, ImgclfError, "Models and engines: a spec, an ONNX file or ONNX Runtime.");
create_exception!(_imgclf, FeatureError, ImgclfError, "Feature files: unreadable, damaged, or of another dataset.");
create_exception!(_imgclf, HeadError, ImgclfError, "Heads and runs: settings, inputs and run folders.");
create_exception!(_imgclf, NetError, ImgclfError, "Networks from pixels, fine-tuning, and run folders of any kind.");
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
    imgclf_nets::NetError => NetError,
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

/// The engine settings of `engine` (`auto`, `ort`, `tract`) on the CPU, on `threads` threads.
fn engine_config(engine: &str, threads: usize) -> PyResult<EngineConfig> {
    device_config(engine, "cpu", "fp32", threads)
}

/// The engine settings of `engine` on `device` (`cpu`, `cuda`, `cuda:N`) at `precision`
/// (`fp32`, `tf32`), on `threads` threads, checked as the CLI checks its flags.
fn device_config(engine: &str, device: &str, precision: &str, threads: usize) -> PyResult<EngineConfig> {
    let value = |name: &str, e: String| PyValueError::new_err(format!("{name}: {e}"));
    let kind: EngineKind = engine.parse().map_err(|e| value("engine", e))?;
    let device: Device = device.parse().map_err(|e| value("device", e))?;
    let precision: Precision = precision.parse().map_err(|e| value("precision", e))?;
    let config = EngineConfig::new(kind, device, precision, threads);
    config.check().raise()?;
    Ok(config)
}

/// This machine's cores: every engine thread count's default, as the CLI's.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How far a long call is: units done of a total, which the work updates from its thread and
/// the caller's thread hands to a Python callback.
#[derive(Default)]
struct Counter {
    done: AtomicUsize,
    total: AtomicUsize,
}

impl Counter {
    fn start(&self, total: usize) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }

    fn advance(&self, n: usize) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
}

/// Runs `work` without the GIL on a thread of its own while this one checks for Ctrl-C every
/// 50 ms and hands `counter` to `progress(done, total)` when it moved; on Ctrl-C (or an error
/// in `progress`) `stop` is set, the library stops between batches, and the work's result (an
/// interruption) is returned.
fn interruptible<T: Send>(
    py: Python<'_>,
    stop: &AtomicBool,
    counter: &Counter,
    progress: Option<&Py<PyAny>>,
    work: impl FnOnce() -> T + Send,
) -> T {
    py.detach(|| {
        std::thread::scope(|scope| {
            let worker = scope.spawn(work);
            let mut shown = (usize::MAX, usize::MAX);
            loop {
                let finished = worker.is_finished();
                let total = counter.total.load(Ordering::Relaxed);
                let now = (counter.done.load(Ordering::Relaxed).min(total), total);
                Python::attach(|py| {
                    let mut ok = py.check_signals().is_ok();
                    if let (Some(callback), true) = (progress, now != shown && now.1 > 0) {
                        ok &= callback.call1(py, now).is_ok();
                        shown = now;
                    }
                    if !ok {
                        stop.store(true, Ordering::Relaxed);
                    }
                });
                if finished {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
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
    /// for an unlabelled split) and the photos' paths (None with `paths=False`, which spares
    /// making a Python string a row).
    #[pyo3(signature = (split, start = 0, stop = None, paths = true))]
    #[allow(clippy::type_complexity)]
    fn read<'py>(
        &self,
        py: Python<'py>,
        split: &str,
        start: usize,
        stop: Option<usize>,
        paths: bool,
    ) -> PyResult<(Bound<'py, PyArray2<f32>>, Option<Bound<'py, PyArray1<i64>>>, Option<Vec<String>>)> {
        let rows = self.split_rows(split)?;
        let stop = stop.unwrap_or(rows).min(rows);
        if start > stop {
            return Err(PyValueError::new_err(format!("rows {start}..{stop} of `{split}`: start after stop")));
        }
        let rows = start..stop;
        let features = self.reader.features(split, rows.clone()).raise()?;
        let labels = self.reader.labels(split, rows.clone()).raise()?.map(|l| l.into_pyarray(py));
        let paths = match paths {
            true => Some(self.reader.paths(split, rows).raise()?),
            false => None,
        };
        Ok((features.into_pyarray(py), labels, paths))
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
/// model in `out`; a valid cached file is reused unless `force`. The other settings are the
/// CLI's flags (`shard="2/4"` computes that part into a shard file). Returns the files.
#[pyfunction]
#[pyo3(signature = (
    data, models, out = PathBuf::from("features"), engine = "auto", batch = None, force = false,
    splits = None, threads = None, decode_threads = None, store = "f32", device = "cpu",
    precision = "fp32", shard = None, checkpoint_secs = 30.0, progress = None
))]
#[allow(clippy::too_many_arguments)]
fn extract(
    py: Python<'_>,
    data: PathBuf,
    models: Vec<PathBuf>,
    out: PathBuf,
    engine: &str,
    batch: Option<usize>,
    force: bool,
    splits: Option<Vec<String>>,
    threads: Option<usize>,
    decode_threads: Option<usize>,
    store: &str,
    device: &str,
    precision: &str,
    shard: Option<&str>,
    checkpoint_secs: f64,
    progress: Option<Py<PyAny>>,
) -> PyResult<Vec<FeatureFile>> {
    let mut dataset = Dataset::open(&data).raise()?;
    if let Some(splits) = &splits {
        if let Some(missing) = splits.iter().find(|s| dataset.split(s).is_none()) {
            return Err(DatasetError::new_err(format!("{}: no split `{missing}`", data.display())));
        }
        dataset.splits.retain(|s| splits.contains(&s.name));
    }
    let backbones = models
        .iter()
        .map(|m| Backbone::open(&resolve_model(m).raise()?).raise())
        .collect::<PyResult<Vec<Backbone>>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let config = device_config(engine, device, precision, 1)?;
    let (engine_threads, _) = ExtractOptions::thread_split(cores(), config.device);
    let defaults = ExtractOptions::new(EngineConfig { threads: threads.unwrap_or(engine_threads), ..config });
    let storage = match store {
        "f32" => Storage::F32,
        "f16" => Storage::F16,
        other => return Err(PyValueError::new_err(format!("store: `{other}`: expected f32 or f16"))),
    };
    let options = ExtractOptions {
        batch: batch.unwrap_or(defaults.batch),
        decode_threads: decode_threads.unwrap_or(defaults.decode_threads),
        force,
        stop: Some(stop.clone()),
        storage,
        shard: shard
            .map(|s| s.parse::<Shard>().map_err(|e| PyValueError::new_err(format!("shard: {e}"))))
            .transpose()?,
        checkpoints: Checkpoints { seconds: checkpoint_secs, ..Checkpoints::default() },
        ..defaults
    };
    options.check().raise()?;
    if let Some(shard) = options.shard {
        shard.check(&dataset, options.batch).raise()?;
    }
    let counter = Counter::default();
    let reports = interruptible(py, &stop, &counter, progress.as_ref(), || {
        extract_all(&dataset, &backbones, &out, &options, &mut |p| match p {
            Progress::Start { images, .. } => counter.start(images),
            Progress::Advance(n) => counter.advance(n),
            _ => {}
        })
    })
    .raise()?;
    reports.iter().map(|r| FeatureFile::new(r.output.clone())).collect()
}

/// A backbone loaded on an engine once, to embed many batches: its name, width and input size.
#[pyclass(module = "imgclf", unsendable)]
struct Model {
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
        let engine = backbone.engine(&engine_config(engine, cores())?).raise()?;
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
        let photos = self.photos(images, resize)?;
        let stop = AtomicBool::new(false);
        let counter = Counter::default();
        counter.start(photos.len());
        let Model { backbone, engine } = self;
        let rows = interruptible(py, &stop, &counter, progress.as_ref(), || -> PyResult<ndarray::Array2<f32>> {
            let mut blocks = Vec::new();
            for chunk in photos.chunks(batch.max(1)) {
                if stop.load(Ordering::Relaxed) {
                    return Err(PyKeyboardInterrupt::new_err("embedding stopped between batches"));
                }
                let resized: Vec<RgbImage> = match resize {
                    true => chunk
                        .par_iter()
                        .map(|(image, path)| backbone.spec.resize.apply(image, path).raise())
                        .collect::<PyResult<_>>()?,
                    false => chunk.iter().map(|(image, _)| image.clone()).collect(),
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
    /// The photos `images` names (an array's rows, or image files decoded), with a name each.
    fn photos(&self, images: &Bound<'_, PyAny>, resize: bool) -> PyResult<Vec<(RgbImage, PathBuf)>> {
        let Ok(array) = images.extract::<PyReadonlyArray4<u8>>() else {
            let paths: Vec<PathBuf> = images.extract().map_err(|_| {
                PyValueError::new_err("images: a uint8 (N, H, W, 3) array or a list of image paths expected")
            })?;
            let samples: Vec<Sample> = image_samples(&paths).raise()?;
            return samples.iter().map(|s| Ok((s.load_rgb().raise()?, s.path.clone()))).collect();
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
        Ok((0..n)
            .map(|i| {
                let pixels: Vec<u8> = array.index_axis(ndarray::Axis(0), i).iter().copied().collect();
                let image = RgbImage::from_raw(w as u32, h as u32, pixels).expect("H × W × 3 bytes");
                (image, PathBuf::from(format!("images[{i}]")))
            })
            .collect())
    }
}

/// [`Model::embed`] with the model loaded for this call alone.
#[pyfunction]
#[pyo3(signature = (model, images, engine = "auto", batch = 32, resize = true, progress = None))]
fn embed<'py>(
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

/// A run folder of any kind (`train-head`, `train-cnn`, `fine-tune`): its classes, run.json
/// and temperature; it scores splits, predicts arrays, photos and splits, and writes its report.
#[pyclass(module = "imgclf", unsendable)]
struct Run {
    run: AnyRun,
}

#[pymethods]
impl Run {
    /// Opens the run folder `dir`, whatever its kind (with its temperature, when calibrated).
    #[new]
    fn new(dir: PathBuf) -> PyResult<Run> {
        Ok(Run { run: AnyRun::open(&dir).raise()? })
    }

    /// The run folder.
    #[getter]
    fn dir(&self) -> PathBuf {
        self.run.dir().to_path_buf()
    }

    /// `train-head`, `train-cnn` or `fine-tune`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.run.summary().kind
    }

    /// Class names in id order.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.run.classes().to_vec()
    }

    /// The temperature its probabilities are divided by (`imgclf calibrate`), or None.
    #[getter]
    fn temperature(&self) -> Option<f64> {
        self.run.temperature().map(|t| t.temperature)
    }

    /// `run.json`, as a dict.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &imgclf_heads::run_json_text(self.run.dir(), "train-head").raise()?)
    }

    /// Class probabilities `(N, classes)` float32 for a head run's feature rows `x` (float32
    /// `(N, D)`, its feature files' columns joined in its order), calibrated when the run is.
    fn predict<'py>(&self, py: Python<'py>, x: PyReadonlyArray2<'py, f32>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let AnyRun::Head(run) = &self.run else {
            return Err(HeadError::new_err(format!(
                "{} is a {} run, which reads photos: use predict_images",
                self.run.dir().display(),
                self.kind()
            )));
        };
        let x = x.as_array();
        if x.ncols() != run.head.inputs() {
            return Err(HeadError::new_err(format!(
                "{} features a row, but run {} takes {}",
                x.ncols(),
                run.dir.display(),
                run.head.inputs()
            )));
        }
        let mut probs = run.head.predict(x);
        if let Some(t) = &run.temperature {
            t.apply(&mut probs);
        }
        Ok(probs.into_pyarray(py))
    }

    /// Class probabilities for image files (or folders of them), through the run's backbones:
    /// `(probs, paths)` for the photos that could be read, in order.
    #[pyo3(signature = (images, engine = "auto", batch = 32))]
    fn predict_images<'py>(
        &self,
        py: Python<'py>,
        images: Vec<PathBuf>,
        engine: &str,
        batch: usize,
    ) -> PyResult<(Bound<'py, PyArray2<f32>>, Vec<PathBuf>)> {
        let samples = image_samples(&images).raise()?;
        let config = engine_config(engine, cores())?;
        let stop = AtomicBool::new(false);
        let run = &self.run;
        let predictions =
            interruptible(py, &stop, &Counter::default(), None, || run.predict_samples(&samples, &config, batch))
                .raise()?;
        let paths = predictions.samples.iter().map(|s| s.path.clone()).collect();
        Ok((predictions.probs.into_pyarray(py), paths))
    }

    /// Class probabilities for split `split` (default: validation, else test) from feature
    /// files (head runs) or a data root (the others; default: those run.json names):
    /// `(probs, paths, labels or None)`.
    #[pyo3(signature = (split = None, features = Vec::new(), data = None, memory_budget = None))]
    #[allow(clippy::type_complexity)]
    fn predict_split<'py>(
        &self,
        py: Python<'py>,
        split: Option<&str>,
        features: Vec<PathBuf>,
        data: Option<PathBuf>,
        memory_budget: Option<usize>,
    ) -> PyResult<(Bound<'py, PyArray2<f32>>, Vec<String>, Option<Vec<usize>>)> {
        let scored = self.scored(py, split, &features, data.as_deref(), memory_budget)?;
        Ok((scored.probs.into_pyarray(py), scored.paths, scored.labels))
    }

    /// Scores a labelled split (default: validation, else test) as `imgclf evaluate` does: a
    /// dict of accuracy, log loss, calibration (ECE, Brier, bins), per-class scores, the
    /// confusion matrix and the top losses.
    #[pyo3(signature = (split = None, features = Vec::new(), data = None, memory_budget = None, top = 10))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        split: Option<&str>,
        features: Vec<PathBuf>,
        data: Option<PathBuf>,
        memory_budget: Option<usize>,
        top: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let scored = self.scored(py, split, &features, data.as_deref(), memory_budget)?;
        let Some(labels) = &scored.labels else {
            return Err(HeadError::new_err(format!("split `{}`: unlabelled, nothing to score", scored.split)));
        };
        let evaluation = imgclf_heads::evaluate(&scored.classes, scored.probs.view(), labels, &scored.paths, top);
        let dict = json_to_py(py, &serde_json::to_string(&evaluation).expect("an evaluation serialises"))?;
        dict.set_item("split", &scored.split)?;
        Ok(dict)
    }

    /// Writes the run's page (`imgclf report`) to `out` (default: `report.html` in the run
    /// folder) and returns its path.
    #[pyo3(signature = (out = None, split = None, data = None, features = Vec::new(), engine = "auto"))]
    fn report(
        &self,
        py: Python<'_>,
        out: Option<PathBuf>,
        split: Option<&str>,
        data: Option<PathBuf>,
        features: Vec<PathBuf>,
        engine: &str,
    ) -> PyResult<PathBuf> {
        let out = out.unwrap_or_else(|| self.run.dir().join("report.html"));
        let options = ReportOptions {
            split,
            data: data.as_deref(),
            features: &features,
            memory_budget: None,
            top: 10,
            examples: 4,
            engine: engine_config(engine, cores())?,
        };
        let dir = self.run.dir().to_path_buf();
        let stop = AtomicBool::new(false);
        let page =
            interruptible(py, &stop, &Counter::default(), None, || imgclf_report::report(&dir, &options)).raise()?;
        imgclf_dataset::write_atomic(&out, page.html().as_bytes())
            .map_err(|e| ReportError::new_err(format!("{}: {e}", out.display())))?;
        Ok(out)
    }
}

impl Run {
    /// A split through the run, without the GIL.
    fn scored(
        &self,
        py: Python<'_>,
        split: Option<&str>,
        features: &[PathBuf],
        data: Option<&Path>,
        memory_budget: Option<usize>,
    ) -> PyResult<Scored> {
        let config = engine_config("auto", cores())?;
        let stop = AtomicBool::new(false);
        let run = &self.run;
        let source = SplitSource { data, features, memory_budget };
        interruptible(py, &stop, &Counter::default(), None, || run.score_split(source, split, &config)).raise()
    }
}

/// A number or a word as the text the command line would take (`0.1`, `auto`).
fn text_of(value: &Bound<'_, PyAny>) -> PyResult<String> {
    match value.extract::<String>() {
        Ok(s) => Ok(s),
        Err(_) => Ok(value.extract::<f64>()?.to_string()),
    }
}

/// Parses `value` (a str, or a number for numeric settings) as setting `name`.
fn setting<T: std::str::FromStr<Err = String>>(name: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<T>> {
    value.map(|v| text_of(v)?.parse().map_err(|e: String| PyValueError::new_err(format!("{name}: {e}")))).transpose()
}

/// Trains a head on feature files into run folder `out`, as `imgclf train-head` does, with
/// its every setting (the flags' names, `lr` for `--lr`, `batch` for `--batch`); without
/// `head`, the probe, C chosen on validation where there is validation.
#[pyfunction]
#[pyo3(signature = (
    features, out, *, head = None, solver = None, hidden = None, dropout = None, l2 = None,
    optimizer = None, lr = None, decay = None, momentum = None, nesterov = false, epochs = None,
    batch = None, seed = 0, standardize = false, val_split = None, patience = None,
    class_weight = None, c = None, refit = false, tol = None, max_iter = None,
    memory_budget = None, overwrite = false, progress = None
))]
#[allow(clippy::too_many_arguments)]
fn train_head(
    py: Python<'_>,
    features: Vec<PathBuf>,
    out: PathBuf,
    head: Option<&Bound<'_, PyAny>>,
    solver: Option<&Bound<'_, PyAny>>,
    hidden: Option<usize>,
    dropout: Option<f32>,
    l2: Option<f32>,
    optimizer: Option<&Bound<'_, PyAny>>,
    lr: Option<f32>,
    decay: Option<f32>,
    momentum: Option<f32>,
    nesterov: bool,
    epochs: Option<usize>,
    batch: Option<usize>,
    seed: u64,
    standardize: bool,
    val_split: Option<f32>,
    patience: Option<usize>,
    class_weight: Option<&Bound<'_, PyAny>>,
    c: Option<&Bound<'_, PyAny>>,
    refit: bool,
    tol: Option<f64>,
    max_iter: Option<usize>,
    memory_budget: Option<usize>,
    overwrite: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<Run> {
    let class_weight = match class_weight {
        Some(w) if w.extract::<String>().is_err() => {
            let weights: Vec<f64> = w.extract()?;
            let text = weights.iter().map(f64::to_string).collect::<Vec<_>>().join(",");
            Some(text.parse().map_err(|e: String| PyValueError::new_err(format!("class_weight: {e}")))?)
        }
        w => setting("class_weight", w)?,
    };
    let options = TrainOptions {
        head: setting("head", head)?,
        solver: setting("solver", solver)?,
        hidden,
        dropout,
        l2,
        optimizer: setting("optimizer", optimizer)?,
        learning_rate: lr,
        decay,
        momentum,
        nesterov,
        epochs,
        batch_size: batch,
        seed,
        standardize,
        val_split,
        patience,
        class_weight,
        c: setting("c", c)?,
        refit,
        tol,
        max_iter,
    };
    imgclf_heads::RunDir::check(&out, overwrite).raise()?;
    let inputs = HeadInputs::open(&features, &["train", "validation"], memory_budget).raise()?;
    let validated = val_split.is_some() || inputs.split("validation").is_some_and(|s| s.labels.is_some());
    let resolved = options.config(validated).raise()?;
    if let Some(note) = &resolved.note {
        py.import("warnings")?.call_method1("warn", (note.as_str(),))?;
    }
    let config = resolved.config;
    let stop = AtomicBool::new(false);
    let counter = Counter::default();
    let steps = match config.solver {
        imgclf_heads::Solver::Sgd => config.epochs,
        imgclf_heads::Solver::Lbfgs(l) => l.max_iter,
    };
    counter.start(steps);
    interruptible(py, &stop, &counter, progress.as_ref(), || -> Result<(), imgclf_heads::HeadError> {
        let trained = imgclf_heads::train(&inputs, &config, &mut |event| match event {
            TrainEvent::EpochEnd(_) | TrainEvent::Step { .. } => counter.advance(1),
            // converged, or stopped early: the bar is full
            TrainEvent::Solved { .. } | TrainEvent::Stopped { .. } => counter.advance(steps),
            _ => {}
        })?;
        let history = trained.history.clone();
        imgclf_heads::Run::new(&out, &inputs, &config, trained).save(&history, overwrite)
    })
    .raise()?;
    Run::new(out)
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
    m.add("NetError", py.get_type::<NetError>())?;
    m.add("ReportError", py.get_type::<ReportError>())?;
    m.add_class::<FeatureFile>()?;
    m.add_class::<Run>()?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(extract, m)?)?;
    m.add_function(wrap_pyfunction!(embed, m)?)?;
    m.add_function(wrap_pyfunction!(train_head, m)?)?;
    m.add_function(wrap_pyfunction!(list_runs, m)?)?;
    Ok(())
}
