//! Two inference engines behind one `Engine`: ONNX Runtime (through `ort`, loaded at run
//! time from a `libonnxruntime` found on this machine, on the CPU or an NVIDIA GPU) and
//! tract (pure Rust, always built, CPU only).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ndarray::{ArrayD, ArrayView4, Axis};
use ort::environment::Environment;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{Tensor, TensorRef, ValueType};
use rayon::prelude::*;
use tract_onnx::prelude::{Tensor as TractTensor, *};
use tract_onnx::tract_hir::infer::Factoid;

use crate::adapter::{PIXELS, POOLED, pixel_model};
use crate::{Device, EngineConfig, Feed, ModelSpec, Precision, RuntimeError};

/// Which engine to use; `Auto` takes ONNX Runtime when its library is found, else tract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineKind {
    /// ONNX Runtime when its library is found, else tract (on the CPU).
    #[default]
    Auto,
    /// ONNX Runtime through `ort`.
    Ort,
    /// tract, the pure-Rust engine.
    Tract,
}

imgclf_dataset::named_enum!(EngineKind {
    EngineKind::Auto => "auto",
    EngineKind::Ort => "ort" | "onnxruntime",
    EngineKind::Tract => "tract",
});

/// A loaded model that maps a batch of input tensors to the named outputs it was asked for.
pub struct Engine {
    backend: Backend,
    model: PathBuf,
    config: EngineConfig,
    /// Why `Auto` fell back to tract, for the user to read; `None` when nothing fell back.
    pub fallback_reason: Option<String>,
}

enum Backend {
    Ort(Box<OrtSession>),
    /// tract with the batch pinned to 1 (its optimiser fails on some symbolic batch dims):
    /// images of a batch run in parallel on the engine's own thread pool.
    Tract(Arc<TypedRunnableModel>, rayon::ThreadPool),
}

impl Engine {
    /// Loads `model` for the outputs named in `outputs`, checking the spec's input name and
    /// shape and the output names against the graph. A GPU that cannot be used is an error,
    /// never a quiet run on the CPU; `Auto` falls back to tract only on the CPU.
    pub fn load(
        model: &Path,
        spec: &ModelSpec,
        outputs: &[&str],
        config: &EngineConfig,
    ) -> Result<Engine, RuntimeError> {
        config.check()?;
        let config = EngineConfig { threads: config.threads.max(1), ..*config };
        // only a plain CPU run may fall back to tract, and it says why
        let fallback_reason = match (config.kind, config.device, config.feed) {
            (EngineKind::Auto, Device::Cpu, Feed::Floats) => ort_environment().err().map(|e| e.to_string()),
            _ => None,
        };
        let backend = if config.kind == EngineKind::Tract || fallback_reason.is_some() {
            load_tract(model, spec, outputs, config.threads)?
        } else {
            Backend::Ort(Box::new(OrtSession::load(model, spec, outputs, &config)?))
        };
        Ok(Engine { backend, model: model.to_path_buf(), config, fallback_reason })
    }

    /// `ort` or `tract`: which engine is running.
    pub fn name(&self) -> &'static str {
        match self.backend {
            Backend::Ort(_) => "ort",
            Backend::Tract(..) => "tract",
        }
    }

    /// Where it runs, as reports and feature files say it: `ort`, `tract` (the CPU), or
    /// `ort cuda:0` (`ort cuda:0 tf32` at TF32 precision).
    pub fn describe(&self) -> String {
        match (self.name(), self.config.device, self.config.precision) {
            (name, Device::Cpu, _) => name.to_string(),
            (name, device, Precision::Fp32) => format!("{name} {device}"),
            (name, device, precision) => format!("{name} {device} {precision}"),
        }
    }

    /// How this engine takes its batches: [`Engine::run`] for `Floats`, [`Engine::run_pixels`]
    /// for `Pixels`.
    pub fn feed(&self) -> Feed {
        self.config.feed
    }

    /// Runs a batch and returns the requested outputs, in the order they were named.
    pub fn run(&mut self, input: ArrayView4<'_, f32>) -> Result<Vec<ArrayD<f32>>, RuntimeError> {
        let engine = self.name();
        let fail = |reason: String| RuntimeError::Engine { model: self.model.clone(), engine, reason };
        if self.config.feed == Feed::Pixels {
            return Err(fail("this engine takes pixels (Engine::run_pixels), not floats".into()));
        }
        match &mut self.backend {
            Backend::Ort(session) => session.run(input).map_err(|e| fail(one_line(&e.to_string()))),
            Backend::Tract(plan, pool) => run_tract(plan, pool, input).map_err(|e| fail(format!("{e:#}"))),
        }
    }

    /// A buffer for up to `capacity` images of decoded pixels, for [`Engine::run_pixels`]: in
    /// page-locked memory on a GPU, so the copy to the device needs no staging.
    pub fn pixel_batch(&self, capacity: usize, spec: &ModelSpec) -> Result<PixelBatch, RuntimeError> {
        let Backend::Ort(session) = &self.backend else {
            return Err(self.fail("the pixel feed runs through ONNX Runtime only".into()));
        };
        let shape = [capacity.max(1), spec.resize.height as usize, spec.resize.width as usize, 3];
        let tensor =
            session.allocator().and_then(|a| Tensor::<u8>::new(&a, shape)).map_err(|e| self.fail(e.to_string()))?;
        Ok(PixelBatch { tensor })
    }

    /// Runs the first `n` images of a pixel batch through a `Pixels` engine, its input and
    /// outputs bound through ONNX Runtime's IO binding.
    pub fn run_pixels(&mut self, batch: &PixelBatch, n: usize) -> Result<Vec<ArrayD<f32>>, RuntimeError> {
        let result = match &mut self.backend {
            Backend::Ort(session) => session.run_pixels(batch, n),
            Backend::Tract(..) => Err(ort::Error::new("the pixel feed runs through ONNX Runtime only")),
        };
        result.map_err(|e| self.fail(one_line(&e.to_string())))
    }

    fn fail(&self, reason: String) -> RuntimeError {
        RuntimeError::Engine { model: self.model.clone(), engine: self.name(), reason }
    }
}

/// Decoded pixels of a batch (`capacity×H×W×3`, RGB, `u8`) in memory ONNX Runtime reads
/// directly; made by [`Engine::pixel_batch`], filled image by image, reused batch after batch.
pub struct PixelBatch {
    tensor: Tensor<u8>,
}

impl PixelBatch {
    /// The whole buffer, one `H×W×3` slot per image.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.tensor.extract_tensor_mut().1
    }
}

// ---------------------------------------------------------------- ONNX Runtime

/// The process's ONNX Runtime: its environment and the library it came from.
static ORT_ENV: OnceLock<Result<(Environment, PathBuf), String>> = OnceLock::new();

/// The project's GPU virtualenv, made by `./just setup-gpu`.
pub const GPU_VENV: &str = ".venv-gpu";

/// Where `libonnxruntime` is: `ORT_DYLIB_PATH`, else the `onnxruntime` package of the active
/// or project virtualenv (`$VIRTUAL_ENV`, `./.venv`), else of `python3`.
pub fn find_ort_library() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let venvs = std::env::var_os("VIRTUAL_ENV").map(PathBuf::from).into_iter().chain([PathBuf::from(".venv")]);
    for venv in venvs {
        if let Some(lib) = library_in_venv(&venv) {
            return Some(lib);
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

/// The library for a GPU run: `ORT_DYLIB_PATH`, else onnxruntime-gpu in [`GPU_VENV`], else
/// whatever [`find_ort_library`] finds (whose CUDA provider is then checked).
fn find_gpu_ort_library() -> Option<PathBuf> {
    match std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => library_in_venv(Path::new(GPU_VENV)).or_else(find_ort_library),
    }
}

fn library_in_venv(venv: &Path) -> Option<PathBuf> {
    let libs = std::fs::read_dir(venv.join("lib")).ok()?;
    libs.flatten().find_map(|python| library_in(&python.path().join("site-packages/onnxruntime/capi")))
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
pub fn ort_environment() -> Result<&'static Environment, RuntimeError> {
    ort_environment_for(Device::Cpu).map(|(env, _)| env)
}

/// [`ort_environment`] for a device, with the library it came from: a GPU run looks for
/// onnxruntime-gpu first. The first call in a process decides which library it loads.
fn ort_environment_for(device: Device) -> Result<&'static (Environment, PathBuf), RuntimeError> {
    ORT_ENV
        .get_or_init(|| {
            let found = if device.is_gpu() { find_gpu_ort_library() } else { find_ort_library() };
            let lib = found.ok_or(
                "no libonnxruntime found: set ORT_DYLIB_PATH to libonnxruntime.so, or `pip install onnxruntime` (>= 1.31)",
            )?;
            if !lib.is_file() {
                return Err(format!("ORT_DYLIB_PATH={} is not a file", lib.display()));
            }
            let builder = ort::init_from(&lib).map_err(|e| e.to_string())?;
            let env = builder.with_name("imgclf").build().map_err(|e| format!("{}: {e}", lib.display()))?;
            Ok((env, lib))
        })
        .as_ref()
        .map_err(|e| RuntimeError::OrtUnavailable(e.clone()))
}

/// An ONNX Runtime session, the device it runs on, the input it takes and the outputs it gives.
struct OrtSession {
    session: Session,
    device: Device,
    input: String,
    outputs: Vec<String>,
}

impl OrtSession {
    fn load(
        model: &Path,
        spec: &ModelSpec,
        outputs: &[&str],
        config: &EngineConfig,
    ) -> Result<OrtSession, RuntimeError> {
        let (env, library) = ort_environment_for(config.device)?;
        if config.device.is_gpu() {
            crate::cuda::ready(library)?;
        }
        let pixels = match config.feed {
            Feed::Pixels => Some(pixel_model(model, spec)?),
            Feed::Floats => None,
        };
        let fail = |e: ort::Error| RuntimeError::Engine {
            model: model.to_path_buf(),
            engine: "ort",
            reason: match config.device {
                Device::Cpu => one_line(&e.to_string()),
                device => format!("{device}: {}", one_line(&e.to_string())),
            },
        };
        let session = build_session(env, model, pixels.as_deref(), config).map_err(fail)?;
        let mismatch = |reason: String| RuntimeError::SpecMismatch { model: model.to_path_buf(), reason };
        let input_name = if pixels.is_some() { PIXELS } else { spec.input_name.as_str() };
        let input = session.inputs().iter().find(|i| i.name() == input_name).ok_or_else(|| {
            mismatch(format!("no input `{input_name}` (it has {})", names(session.inputs().iter().map(|i| i.name()))))
        })?;
        if let (ValueType::Tensor { shape, .. }, None) = (input.dtype(), &pixels) {
            spec.check_input_shape(&shape.iter().map(|&d| (d > 0).then_some(d as usize)).collect::<Vec<_>>())
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
        // the pixel feed pools a feature map on the device: rows, not maps, come back
        let outputs = match (&pixels, &spec.pooled) {
            (Some(_), None) => vec![POOLED.to_string()],
            _ => outputs.iter().map(|s| s.to_string()).collect(),
        };
        Ok(OrtSession { input: input_name.to_string(), session, device: config.device, outputs })
    }

    /// Where pixel batches live: page-locked host memory on a GPU (the device copies it
    /// without staging), ONNX Runtime's CPU memory otherwise.
    fn allocator(&self) -> ort::Result<Allocator> {
        match self.device {
            Device::Cpu => Ok(Allocator::default()),
            Device::Cuda(id) => {
                let pinned = MemoryInfo::new(
                    AllocationDevice::CUDA_PINNED,
                    id as i32,
                    AllocatorType::Device,
                    MemoryType::CPUInput,
                )?;
                Allocator::new(&self.session, pinned)
            }
        }
    }

    fn run(&mut self, input: ArrayView4<'_, f32>) -> ort::Result<Vec<ArrayD<f32>>> {
        let input = input.as_standard_layout();
        let tensor = TensorRef::from_array_view(input.view())?;
        let result = self.session.run(ort::inputs![self.input.as_str() => tensor])?;
        self.outputs.iter().map(|o| Ok(result[o.as_str()].try_extract_array::<f32>()?.to_owned())).collect()
    }

    /// The first `n` images of `batch` through IO binding: the input is copied to the device
    /// straight from its pinned buffer, the outputs are bound to host memory.
    fn run_pixels(&mut self, batch: &PixelBatch, n: usize) -> ort::Result<Vec<ArrayD<f32>>> {
        let mut binding = self.session.create_binding()?;
        // The whole buffer every time, however many of its images are this batch's (a split's
        // last batch, a batch with skipped images): the input shape never changes within a
        // run, so CUDA allocates once and cuDNN searches each convolution's algorithm once,
        // where every new shape cost seconds. Rows past `n` (earlier pixels) are dropped.
        binding.bind_input(PIXELS, &batch.tensor)?;
        let host = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::CPUOutput)?;
        for output in &self.outputs {
            binding.bind_output_to_device(output.as_str(), &host)?;
        }
        let result = self.session.run_binding(&binding)?;
        self.outputs
            .iter()
            .map(|o| {
                let all = result[o.as_str()].try_extract_array::<f32>()?;
                Ok(all.slice_axis(Axis(0), (0..n.min(all.shape()[0])).into()).to_owned())
            })
            .collect()
    }
}

/// A session on the configured device: the CUDA provider is registered with
/// `error_on_failure`, so a provider that cannot start fails the build instead of leaving
/// every node on the CPU.
fn build_session(
    env: &Environment,
    model: &Path,
    pixels: Option<&[u8]>,
    config: &EngineConfig,
) -> ort::Result<Session> {
    let mut builder = Session::builder(env)?
        .with_intra_threads(config.threads)
        .map_err(|e| -> ort::Error { e.into() })?
        .with_intra_op_spinning(false)
        .map_err(|e| -> ort::Error { e.into() })?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| -> ort::Error { e.into() })?;
    if let Device::Cuda(id) = config.device {
        let cuda = ort::ep::CUDA::default()
            .with_device_id(id as i32)
            .with_tf32(config.precision == Precision::Tf32)
            .build()
            .error_on_failure();
        builder = builder.with_execution_providers([cuda]).map_err(|e| -> ort::Error { e.into() })?;
    }
    match pixels {
        Some(bytes) => builder.commit_from_memory(bytes),
        None => builder.commit_from_file(model),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------- tract

fn load_tract(model: &Path, spec: &ModelSpec, outputs: &[&str], threads: usize) -> Result<Backend, RuntimeError> {
    let mismatch = |reason: String| RuntimeError::SpecMismatch { model: model.to_path_buf(), reason };
    let engine_err =
        |e: TractError| RuntimeError::Engine { model: model.to_path_buf(), engine: "tract", reason: format!("{e:#}") };
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
        spec.check_input_shape(&dims).map_err(mismatch)?;
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
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| RuntimeError::Engine {
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
                let tensor: TractTensor = image.insert_axis(Axis(0)).to_owned().into_dyn().into();
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

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<_> = it.map(|s| format!("`{s}`")).collect();
    v.join(", ")
}
