//! `imgclf` from Python: the libraries behind a PyO3 module (`imgclf._imgclf`, re-exported by
//! the `imgclf` package in `python/imgclf`). Arrays cross as numpy arrays: rows the library
//! made are handed over without a copy; long calls release the GIL and stop between batches
//! on Ctrl-C (`calls.rs`). Errors raise one class per library error kind, all under
//! `ImgclfError`, with the library's one-line message (`errors.rs`). Feature files and
//! `extract` are in `features.rs`, backbones and `embed` in `model.rs`, runs in `runs.rs`.

use pyo3::prelude::*;

mod calls;
mod errors;
mod features;
mod model;
mod runs;

/// The module the `imgclf` package re-exports.
#[pymodule]
fn _imgclf(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ImgclfError", py.get_type::<errors::ImgclfError>())?;
    m.add("DatasetError", py.get_type::<errors::DatasetError>())?;
    m.add("EngineError", py.get_type::<errors::EngineError>())?;
    m.add("FeatureError", py.get_type::<errors::FeatureError>())?;
    m.add("HeadError", py.get_type::<errors::HeadError>())?;
    m.add("NetError", py.get_type::<errors::NetError>())?;
    m.add("ReportError", py.get_type::<errors::ReportError>())?;
    m.add_class::<features::FeatureFile>()?;
    m.add_class::<runs::Run>()?;
    m.add_class::<model::Model>()?;
    m.add_function(wrap_pyfunction!(features::extract, m)?)?;
    m.add_function(wrap_pyfunction!(model::embed, m)?)?;
    m.add_function(wrap_pyfunction!(runs::train_head, m)?)?;
    m.add_function(wrap_pyfunction!(runs::list_runs, m)?)?;
    Ok(())
}
