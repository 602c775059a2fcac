//! Feature files from Python: `FeatureFile` (its attributes at once, its rows on demand as
//! numpy arrays) and `extract`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use imgclf_dataset::Dataset;
use imgclf_features::{Checkpoints, ExtractOptions, FeatureReader, Progress, Shard, Storage, extract_all};
use imgclf_runtime::{Backbone, EngineConfig, resolve_model};
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::calls::{Counter, device_config, interruptible};
use crate::errors::{FeatureError, Raise};

/// A feature file (`gap_<Backbone>.h5`): its splits, classes, backbone and attributes at once,
/// its rows on demand as float32 `(N, D)` arrays.
#[pyclass(module = "imgclf", unsendable)]
pub(crate) struct FeatureFile {
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
        // a split can be gigabytes: other Python threads run while it is read
        let (features, labels, paths) = py
            .detach(|| -> Result<_, imgclf_features::FeatureError> {
                let features = self.reader.features(split, rows.clone())?;
                let labels = self.reader.labels(split, rows.clone())?;
                let paths = if paths { Some(self.reader.paths(split, rows)?) } else { None };
                Ok((features, labels, paths))
            })
            .raise()?;
        Ok((features.into_pyarray(py), labels.map(|l| l.into_pyarray(py)), paths))
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
pub(crate) fn extract(
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
        dataset.keep_splits(splits).raise()?;
    }
    let backbones = models
        .iter()
        .map(|m| Backbone::open(&resolve_model(m).raise()?).raise())
        .collect::<PyResult<Vec<Backbone>>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let config = device_config(engine, device, precision, 1)?;
    let threads = threads.unwrap_or_else(|| ExtractOptions::engine_threads(config.device));
    let defaults = ExtractOptions::new(EngineConfig { threads, ..config });
    let storage: Storage = store.parse().map_err(|e| PyValueError::new_err(format!("store: {e}")))?;
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
