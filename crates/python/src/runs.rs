//! Runs from Python: `Run` (any kind: predict, evaluate, report), `train_head` with every
//! train-head setting, and `list_runs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use imgclf_heads::{HeadInputs, TrainEvent, TrainOptions, image_samples};
use imgclf_nets::{AnyRun, Scored, SplitSource};
use imgclf_report::ReportOptions;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::calls::{Counter, engine_config, interruptible, json_to_py};
use crate::errors::{HeadError, Raise, ReportError};

/// A run folder of any kind (`train-head`, `train-cnn`, `fine-tune`): its classes, run.json
/// and temperature; it scores splits, predicts arrays, photos and splits, and writes its report.
#[pyclass(module = "imgclf", unsendable)]
pub(crate) struct Run {
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
        Ok(run.predict(x).into_pyarray(py))
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
        let config = engine_config(engine)?;
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
            engine: engine_config(engine)?,
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
        let config = engine_config("auto")?;
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
pub(crate) fn train_head(
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
    let resolved = options.config_for(&inputs).raise()?;
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
pub(crate) fn list_runs<'py>(py: Python<'py>, dirs: Vec<PathBuf>) -> PyResult<Bound<'py, PyList>> {
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
