//! Where a backbone runs: the names users type (`cpu`, `cuda:1`, `fp32`, `tf32`) and the one
//! [`EngineConfig`] every engine is built from, so a request for the GPU is never quietly
//! served by the CPU.

use std::fmt;
use std::str::FromStr;

use crate::{EngineKind, RuntimeError};

/// The device an engine computes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU (ort or tract).
    #[default]
    Cpu,
    /// An NVIDIA GPU, by CUDA device index, through ONNX Runtime's CUDA execution provider.
    Cuda(u32),
}

impl Device {
    /// Whether this is a GPU.
    pub fn is_gpu(self) -> bool {
        matches!(self, Device::Cuda(_))
    }
}

impl FromStr for Device {
    type Err = String;

    /// `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
    fn from_str(s: &str) -> Result<Device, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("`{s}`: expected cpu, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Arithmetic of convolutions and matrix products on the GPU. `Fp32` keeps GPU features
/// within 1e-5 of the CPU's; `Tf32` (tensor cores, 10-bit mantissa) is about twice as fast
/// and differs by about 1e-3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Full fp32: TF32 off.
    #[default]
    Fp32,
    /// TF32 on the tensor cores for convolutions and matrix products.
    Tf32,
}

imgclf_dataset::named_enum!(Precision { Precision::Fp32 => "fp32", Precision::Tf32 => "tf32" });

/// How the engine takes a batch: float tensors laid out and normalised on the CPU, or the
/// decoded `u8` pixels (`N×H×W×3`, RGB) with the conversion run inside the graph (nodes
/// prepended to the model) and the batch bound through ONNX Runtime's IO binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Float tensors made on the CPU ([`crate::Engine::run`]).
    Floats,
    /// `u8` pixels, converted in the graph ([`crate::Engine::run_pixels`]).
    Pixels,
}

/// Everything an engine is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Which engine: ONNX Runtime, tract, or the first found.
    pub kind: EngineKind,
    /// Where it computes.
    pub device: Device,
    /// At what precision (GPU only).
    pub precision: Precision,
    /// ONNX Runtime's intra-op threads, or tract's parallel images.
    pub threads: usize,
    /// How batches reach the engine; [`EngineConfig::new`] picks `Pixels` on a GPU (4× fewer
    /// bytes over PCIe, no float work on the CPU) and `Floats` on the CPU.
    pub feed: Feed,
}

/// This machine's cores: the default of every thread count (engine, decoding), for the CLI,
/// the libraries and the wheel alike.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl EngineConfig {
    /// A configuration with the feed that suits `device`.
    pub fn new(kind: EngineKind, device: Device, precision: Precision, threads: usize) -> EngineConfig {
        let feed = if device.is_gpu() { Feed::Pixels } else { Feed::Floats };
        EngineConfig { kind, device, precision, threads, feed }
    }

    /// The CPU at fp32: what every engine did before devices existed.
    pub fn cpu(kind: EngineKind, threads: usize) -> EngineConfig {
        EngineConfig::new(kind, Device::Cpu, Precision::Fp32, threads)
    }

    /// The same configuration feeding floats: what callers that preprocess on the CPU
    /// ([`crate::Backbone::embed`], [`crate::preprocess_batch`]) load.
    pub fn with_floats(self) -> EngineConfig {
        EngineConfig { feed: Feed::Floats, ..self }
    }

    /// Refuses combinations that cannot run as asked, before anything is loaded.
    pub fn check(&self) -> Result<(), RuntimeError> {
        let refuse = |reason: &str| Err(RuntimeError::Device(reason.to_string()));
        if self.device.is_gpu() && self.kind == EngineKind::Tract {
            return refuse("the tract engine runs on the CPU only: a GPU needs the ort engine (or auto)");
        }
        if !self.device.is_gpu() && self.precision == Precision::Tf32 {
            return refuse("precision tf32 is a GPU setting: the CPU computes in fp32");
        }
        if self.kind == EngineKind::Tract && self.feed == Feed::Pixels {
            return refuse("the pixel feed runs through ONNX Runtime only");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print_the_same_names() {
        for (text, device) in [("cpu", Device::Cpu), ("cuda:0", Device::Cuda(0)), ("cuda:3", Device::Cuda(3))] {
            assert_eq!(text.parse::<Device>().unwrap(), device);
            assert_eq!(device.to_string(), text);
        }
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        for bad in ["", "gpu0", "cuda:", "cuda:-1", "cuda:x", "CPU"] {
            assert!(bad.parse::<Device>().unwrap_err().contains("expected cpu, cuda or cuda:N"), "{bad}");
        }
        assert_eq!("tf32".parse::<Precision>().unwrap().to_string(), "tf32");
        assert!("fp16".parse::<Precision>().is_err());
    }

    #[test]
    fn impossible_combinations_are_refused() {
        let gpu = EngineConfig::new(EngineKind::Tract, Device::Cuda(0), Precision::Fp32, 1);
        assert!(gpu.check().unwrap_err().to_string().contains("tract engine runs on the CPU only"));
        let tf32 = EngineConfig::new(EngineKind::Ort, Device::Cpu, Precision::Tf32, 1);
        assert!(tf32.check().unwrap_err().to_string().contains("GPU setting"));
        assert_eq!(EngineConfig::new(EngineKind::Auto, Device::Cuda(1), Precision::Tf32, 1).feed, Feed::Pixels);
        assert_eq!(EngineConfig::cpu(EngineKind::Auto, 2).feed, Feed::Floats);
        assert!(EngineConfig::cpu(EngineKind::Ort, 2).check().is_ok());
    }
}
