//! The flags of every command that runs a backbone: engine, device and precision.

use anyhow::Context;
use imgclf_runtime::{Device, EngineConfig, EngineKind, Precision, cores};

#[derive(clap::Args, Clone, Copy)]
pub struct EngineArgs {
    /// Inference engine: auto (ONNX Runtime when its library is found, else tract; with
    /// --device cuda ONNX Runtime only), ort, or tract (pure Rust, CPU only).
    #[arg(long, default_value = "auto")]
    pub engine: EngineKind,
    /// Where backbones run: cpu, cuda (the first GPU) or cuda:N. cuda uses ONNX Runtime's CUDA
    /// provider (onnxruntime-gpu: ./just setup-gpu) and stops with the reason if it cannot
    /// start; it never falls back to the CPU.
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: Device,
    /// GPU arithmetic: fp32 (TF32 off: features within 1e-5 of the CPU's) or tf32 (tensor
    /// cores, about 2x faster, about 1e-3 off; extract caches its files apart from fp32 ones).
    #[arg(long, default_value = "fp32", value_name = "PRECISION")]
    pub precision: Precision,
}

impl EngineArgs {
    /// The engine configuration for `threads` engine threads (default: all cores), checked.
    pub fn config(&self, threads: Option<usize>) -> anyhow::Result<EngineConfig> {
        let threads = threads.unwrap_or_else(cores);
        let config = EngineConfig::new(self.engine, self.device, self.precision, threads);
        config.check().with_context(|| {
            format!("--engine {} --device {} --precision {}", self.engine, self.device, self.precision)
        })?;
        Ok(config)
    }
}
