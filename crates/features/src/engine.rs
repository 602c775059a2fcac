//! Two inference engines behind one `Engine`: ONNX Runtime (through `ort`, loaded at run
//! time from a `libonnxruntime` found on this machine) and tract (pure Rust, always built).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ndarray::{ArrayD, ArrayView4, Axis};
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorRef, ValueType};
use rayon::prelude::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::{FeatureError, Layout, ModelSpec};

/// Which engine to use; `Auto` takes ONNX Runtime when its library is found, else tract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineKind {
    #[default]
    Auto,
    Ort,
    Tract,
}

impl EngineKind {
    pub fn parse(s: &str) -> Option<EngineKind> {
        match s {
            "auto" => Some(EngineKind::Auto),
            "ort" | "onnxruntime" => Some(EngineKind::Ort),
            "tract" => Some(EngineKind::Tract),
            _ => None,
        }
    }
}

/// A loaded model that maps a batch of input tensors to the named outputs it was asked for.
pub struct Engine {
    backend: Backend,
    model: PathBuf,
    outputs: Vec<String>,
    /// Why `Auto` fell back to tract, for the user to read; `None` when nothing fell back.
    pub fallback_reason: Option<String>,
}

enum Backend {
    Ort(Box<Session>),
    /// tract with the batch pinned to 1 (its optimiser fails on some symbolic batch dims):
    /// images of a batch run in parallel on the engine's own thread pool.
    Tract(Arc<TypedRunnableModel>, rayon::ThreadPool),
}

impl Engine {
    /// Loads `model` for the outputs named in `outputs`, checking the spec's input name and
    /// shape and the output names against the graph.
    pub fn load(
        model: &Path,
        spec: &ModelSpec,
        outputs: &[&str],
        kind: EngineKind,
        threads: usize,
    ) -> Result<Engine, FeatureError> {
        let threads = threads.max(1);
        let (backend, fallback_reason) = match kind {
            EngineKind::Tract => (load_tract(model, spec, outputs, threads)?, None),
            EngineKind::Ort => (load_ort(model, spec, outputs, threads)?, None),
            EngineKind::Auto => match ort_environment() {
                Ok(_) => (load_ort(model, spec, outputs, threads)?, None),
                Err(e) => (load_tract(model, spec, outputs, threads)?, Some(e.to_string())),
            },
        };
        Ok(Engine {
            backend,
            model: model.to_path_buf(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            fallback_reason,
        })
    }

    /// `ort` or `tract`: which engine is running.
    pub fn name(&self) -> &'static str {
        match self.backend {
            Backend::Ort(_) => "ort",
            Backend::Tract(..) => "tract",
        }
    }

    /// Runs a batch and returns the requested outputs, in the order they were named.
    pub fn run(&mut self, input: ArrayView4<'_, f32>) -> Result<Vec<ArrayD<f32>>, FeatureError> {
        let engine = self.name();
        let fail = |reason: String| FeatureError::Engine { model: self.model.clone(), engine, reason };
        match &mut self.backend {
            Backend::Ort(session) => run_ort(session, input, &self.outputs).map_err(|e| fail(e.to_string())),
            Backend::Tract(plan, pool) => run_tract(plan, pool, input).map_err(|e| fail(format!("{e:#}"))),
        }
    }
}

// ---------------------------------------------------------------- ONNX Runtime

static ORT_ENV: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Where `libonnxruntime` is: `ORT_DYLIB_PATH`, else the `onnxruntime` package of the active
/// or project virtualenv (`$VIRTUAL_ENV`, `./.venv`), else of `python3`.
pub fn find_ort_library() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let venvs = std::env::var_os("VIRTUAL_ENV").map(PathBuf::from).into_iter().chain([PathBuf::from(".venv")]);
    for venv in venvs {
        let Ok(libs) = std::fs::read_dir(venv.join("lib")) else { continue };
        for python in libs.flatten() {
            if let Some(lib) = library_in(&python.path().join("site-packages/onnxruntime/capi")) {
                return Some(lib);
            }
        }
    }
    let probe = std::process::Command::new("python3")
        .args(["-c", "import importlib.util as u; s = u.find_spec('onnxruntime'); print(s.submodule_search_locations[0] if s else '')"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let dir = String::from_utf8_lossy(&probe.stdout).trim().to_string();
    (!dir.is_empty()).then(|| library_in(&Path::new(&dir).join("capi"))).flatten()
}

fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so")))
        .collect();
    found.sort();
    found.pop()
}

/// The process-wide ONNX Runtime environment, created once from the library found on this
/// machine. Checked before any other `ort` call, since `ort` panics without a library.
pub fn ort_environment() -> Result<&'static Environment, FeatureError> {
    ORT_ENV
        .get_or_init(|| {
            let lib = find_ort_library().ok_or(
                "no libonnxruntime found: set ORT_DYLIB_PATH to libonnxruntime.so, or `pip install onnxruntime` (>= 1.31)",
            )?;
            if !lib.is_file() {
                return Err(format!("ORT_DYLIB_PATH={} is not a file", lib.display()));
            }
            let builder = ort::init_from(&lib).map_err(|e| e.to_string())?;
            builder.with_name("imgclf").build().map_err(|e| format!("{}: {e}", lib.display()))
        })
        .as_ref()
        .map_err(|e| FeatureError::OrtUnavailable(e.clone()))
}

fn load_ort(model: &Path, spec: &ModelSpec, outputs: &[&str], threads: usize) -> Result<Backend, FeatureError> {
    let env = ort_environment()?;
    let build = || -> ort::Result<Session> {
        Session::builder(env)?
            .with_intra_threads(threads)
            .map_err(|e| -> ort::Error { e.into() })?
            .with_intra_op_spinning(false)
            .map_err(|e| -> ort::Error { e.into() })?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| -> ort::Error { e.into() })?
            .commit_from_file(model)
    };
    let session = build().map_err(|e| FeatureError::Engine {
        model: model.to_path_buf(),
        engine: "ort",
        reason: e.to_string(),
    })?;
    let mismatch = |reason: String| FeatureError::SpecMismatch { model: model.to_path_buf(), reason };
    let input = session.inputs().iter().find(|i| i.name() == spec.input_name).ok_or_else(|| {
        mismatch(format!(
            "no input `{}` (it has {})",
            spec.input_name,
            names(session.inputs().iter().map(|i| i.name()))
        ))
    })?;
    if let ValueType::Tensor { shape, .. } = input.dtype() {
        check_input_shape(spec, &shape.iter().map(|&d| (d > 0).then_some(d as usize)).collect::<Vec<_>>())
            .map_err(mismatch)?;
    }
    for want in outputs {
        if !session.outputs().iter().any(|o| o.name() == *want) {
            return Err(mismatch(format!(
                "no output `{want}` (it has {})",
                names(session.outputs().iter().map(|o| o.name()))
            )));
        }
    }
    Ok(Backend::Ort(Box::new(session)))
}

fn run_ort(session: &mut Session, input: ArrayView4<'_, f32>, outputs: &[String]) -> ort::Result<Vec<ArrayD<f32>>> {
    let name = session.inputs()[0].name().to_string();
    let input = input.as_standard_layout();
    let tensor = TensorRef::from_array_view(input.view())?;
    let result = session.run(ort::inputs![name => tensor])?;
    outputs.iter().map(|o| Ok(result[o.as_str()].try_extract_array::<f32>()?.to_owned())).collect()
}

// ---------------------------------------------------------------- tract

fn load_tract(model: &Path, spec: &ModelSpec, outputs: &[&str], threads: usize) -> Result<Backend, FeatureError> {
    let mismatch = |reason: String| FeatureError::SpecMismatch { model: model.to_path_buf(), reason };
    let engine_err =
        |e: TractError| FeatureError::Engine { model: model.to_path_buf(), engine: "tract", reason: format!("{e:#}") };
    let graph = tract_onnx::onnx().model_for_path(model).map_err(engine_err)?;
    let input_names: Vec<String> =
        graph.input_outlets().map_err(engine_err)?.iter().map(|o| graph.node(o.node).name.clone()).collect();
    let Some(index) = input_names.iter().position(|n| *n == spec.input_name) else {
        return Err(mismatch(format!(
            "no input `{}` (it has {})",
            spec.input_name,
            names(input_names.iter().map(|s| s.as_str()))
        )));
    };
    // the declared input shape, before we pin it: symbolic dims read as unknown
    let declared = graph.input_fact(index).map_err(engine_err)?.shape.clone();
    let dims: Vec<Option<usize>> = declared
        .dims()
        .map(|d| d.concretize().and_then(|d| d.as_i64().and_then(|v| usize::try_from(v).ok())))
        .collect();
    if declared.rank().concretize().is_some() {
        check_input_shape(spec, &dims).map_err(mismatch)?;
    }
    for want in outputs {
        let known = graph.outlet_labels.values().any(|l| l == want) || graph.nodes().iter().any(|n| n.name == *want);
        if !known {
            return Err(mismatch(format!("no output `{want}`")));
        }
    }
    let plan = graph
        .with_input_fact(index, f32::fact(spec.input_shape(1)).into())
        .and_then(|g| g.with_outputs_by_name(outputs))
        .and_then(|g| g.into_optimized())
        .and_then(|g| g.into_runnable())
        .map_err(engine_err)?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| FeatureError::Engine {
        model: model.to_path_buf(),
        engine: "tract",
        reason: e.to_string(),
    })?;
    Ok(Backend::Tract(plan, pool))
}

fn run_tract(
    plan: &Arc<TypedRunnableModel>,
    pool: &rayon::ThreadPool,
    input: ArrayView4<'_, f32>,
) -> TractResult<Vec<ArrayD<f32>>> {
    let per_image: Vec<Vec<ArrayD<f32>>> = pool.install(|| {
        (0..input.len_of(Axis(0)))
            .into_par_iter()
            .map(|i| {
                let image = input.index_axis(Axis(0), i);
                let tensor: Tensor = image.insert_axis(Axis(0)).to_owned().into_dyn().into();
                let out = plan.run(tvec!(tensor.into()))?;
                out.iter().map(|t| Ok(t.to_plain_array_view::<f32>()?.to_owned())).collect()
            })
            .collect::<TractResult<_>>()
    })?;
    let n_outputs = per_image.first().map_or(0, Vec::len);
    (0..n_outputs)
        .map(|k| {
            let views: Vec<_> = per_image.iter().map(|outs| outs[k].view()).collect();
            Ok(ndarray::concatenate(Axis(0), &views)?)
        })
        .collect()
}

// ---------------------------------------------------------------- shared checks

/// Compares a graph's declared input dims (`None` = dynamic) with the spec's layout and size.
fn check_input_shape(spec: &ModelSpec, dims: &[Option<usize>]) -> Result<(), String> {
    let want = spec.input_shape(1);
    if dims.len() != 4 {
        return Err(format!(
            "input `{}` has {} dimensions; the spec describes a 4-D image batch",
            spec.input_name,
            dims.len()
        ));
    }
    for (axis, (got, want)) in dims.iter().zip(want).enumerate().skip(1) {
        if let Some(got) = got
            && *got != want
        {
            let layout = match spec.layout {
                Layout::Nchw => "NCHW",
                Layout::Nhwc => "NHWC",
            };
            return Err(format!(
                "input `{}` has size {got} on axis {axis}, but the spec ({layout}, {}x{}) says {want}",
                spec.input_name, spec.resize.height, spec.resize.width
            ));
        }
    }
    Ok(())
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<_> = it.map(|s| format!("`{s}`")).collect();
    v.join(", ")
}
