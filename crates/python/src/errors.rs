//! One Python exception class per library error kind, all under `ImgclfError`, carrying the
//! library's one-line message; a stop between batches arrives as KeyboardInterrupt.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt};
use pyo3::prelude::*;

create_exception!(_imgclf, ImgclfError, PyException, "The base of every error imgclf raises.");
create_exception!(_imgclf, DatasetError, ImgclfError, "Photos and data roots: unreadable, missing or inconsistent.");
create_exception!(_imgclf, EngineError, ImgclfError, "Models and engines: a spec, an ONNX file or ONNX Runtime.");
create_exception!(_imgclf, FeatureError, ImgclfError, "Feature files: unreadable, damaged, or of another dataset.");
create_exception!(_imgclf, HeadError, ImgclfError, "Heads and runs: settings, inputs and run folders.");
create_exception!(_imgclf, NetError, ImgclfError, "Networks from pixels, fine-tuning, and run folders of any kind.");
create_exception!(_imgclf, ReportError, ImgclfError, "Reports and tables of runs.");

/// A library error as its Python exception (a stop between batches as KeyboardInterrupt).
pub(crate) trait Raise<T> {
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
