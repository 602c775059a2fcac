//! What an extraction is asked to do and what it tells its caller on the way: shared by
//! [`extract`](crate::extract) and the pipeline that runs it.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use imgclf_dataset::limits::{CHECKPOINT_BATCHES, CHECKPOINT_SECS, INFERENCE_BATCH, THREADS};
use imgclf_runtime::{Device, EngineConfig, cores};

use crate::{FeatureError, Shard, Storage};

/// How to run an extraction: start from [`ExtractOptions::new`] and change what differs,
/// `ExtractOptions { batch: 8, ..ExtractOptions::new(engine) }`.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Engine, device, precision, engine threads and feed.
    pub engine: EngineConfig,
    /// Images per inference call.
    pub batch: usize,
    /// Threads that decode, resize and preprocess the next batches while the engine runs.
    pub decode_threads: usize,
    /// Recompute even when a valid cached file exists.
    pub force: bool,
    /// Set (by a signal handler) to stop between batches with [`FeatureError::Interrupted`](crate::FeatureError::Interrupted).
    pub stop: Option<Arc<AtomicBool>>,
    /// Compute only this part of every split, into `gap_<Backbone>.shard-K-of-N.h5`
    /// (joined by [`crate::merge`]).
    pub shard: Option<Shard>,
    /// How often the rows done are committed to the output's parts folder, which a rerun
    /// continues from after a stop or a kill.
    pub checkpoints: Checkpoints,
    /// How the values are stored: f32, or f16 for half the disk (part of the cache rule).
    pub storage: Storage,
}

impl ExtractOptions {
    /// What `imgclf extract` does unless told otherwise, on `engine`: batches of 32 on the CPU
    /// and 256 on a GPU, the decode threads [`ExtractOptions::thread_split`] gives this
    /// machine's cores, a commit every 30 s, f32 storage, every image, a cached file reused.
    pub fn new(engine: EngineConfig) -> ExtractOptions {
        let (_, decode_threads) = Self::thread_split(cores(), engine.device);
        ExtractOptions {
            batch: if engine.device.is_gpu() { 256 } else { 32 },
            decode_threads,
            force: false,
            stop: None,
            shard: None,
            checkpoints: Checkpoints::default(),
            storage: Storage::F32,
            engine,
        }
    }

    /// Refuses what the command line's flags refuse (`imgclf_dataset::limits`): a batch, decode
    /// threads or checkpoint interval out of range, so a script building options by hand meets
    /// the same rules.
    pub fn check(&self) -> Result<(), FeatureError> {
        INFERENCE_BATCH.check_usize(self.batch).map_err(FeatureError::Config)?;
        THREADS.check_usize(self.decode_threads).map_err(FeatureError::Config)?;
        if !self.checkpoints.is_off() {
            CHECKPOINT_SECS.check(self.checkpoints.seconds).map_err(FeatureError::Config)?;
            if self.checkpoints.batches != usize::MAX {
                CHECKPOINT_BATCHES.check_usize(self.checkpoints.batches).map_err(FeatureError::Config)?;
            }
        }
        Ok(())
    }

    /// The engine threads extract runs with on `device` unless told: this machine's share of
    /// [`ExtractOptions::thread_split`].
    pub fn engine_threads(device: Device) -> usize {
        Self::thread_split(cores(), device).0
    }

    /// Default (engine threads, decode threads) for `cores` cores. On up to 4 cores both
    /// stages take every core (measured best on 2: the decode threads fill the engine's gaps).
    /// On more, they share the cores without overlap, since a parallel operator waits for its
    /// slowest thread and a decode thread preempting one stalls it: decoding and resizing a
    /// photo costs about 1 core-ms, a Lite0 image about 22 core-ms of engine time, so one
    /// decode thread in 8 (at least 2) keeps the engine fed. On a GPU the engine's CPU threads
    /// only run the few nodes left on the CPU, and decoding is the bottleneck: every core
    /// decodes.
    pub fn thread_split(cores: usize, device: Device) -> (usize, usize) {
        let cores = cores.max(1);
        match device {
            Device::Cuda(_) => (2.min(cores), cores),
            Device::Cpu if cores <= 4 => (cores, cores),
            Device::Cpu => {
                let decode = cores.div_ceil(8).max(2);
                (cores - decode, decode)
            }
        }
    }
}

/// When a pass commits its rows: every `seconds`, or every `batches` batches, whichever
/// comes first. A kill loses at most that much work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checkpoints {
    /// Seconds between commits.
    pub seconds: f64,
    /// Batches between commits (`usize::MAX`: time alone decides).
    pub batches: usize,
}

impl Checkpoints {
    /// No commits: rows go straight to the output (no parts folder, no extra disk), and a
    /// stopped or killed run starts over.
    pub const OFF: Checkpoints = Checkpoints { seconds: f64::INFINITY, batches: usize::MAX };

    /// Whether these are [`Checkpoints::OFF`].
    pub fn is_off(&self) -> bool {
        self.seconds == f64::INFINITY && self.batches == usize::MAX
    }
}

impl Default for Checkpoints {
    /// Every 30 seconds.
    fn default() -> Checkpoints {
        Checkpoints { seconds: 30.0, batches: usize::MAX }
    }
}

/// What the caller hears while an extraction runs (to drive a progress bar).
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// Computation starts: this many images will go through `engine`.
    Start {
        /// The backbones computed, joined with ` + `.
        backbone: &'a str,
        /// Where they run (`ort`, `tract`, `ort cuda:0`).
        engine: &'a str,
        /// Images to go through.
        images: usize,
    },
    /// This many more images were handled (read or skipped).
    Advance(usize),
    /// An earlier run's committed parts are kept: the pass continues after `images` images.
    Resumed {
        /// Images handled by earlier runs.
        images: usize,
    },
    /// An image could not be read and gets no row.
    Skipped(&'a Skipped),
}

/// An image that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The image's path relative to the data root.
    pub path: String,
    /// Why it could not be used.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclf_runtime::EngineKind;

    #[test]
    fn defaults_are_the_commands_and_check_refuses_what_its_flags_refuse() {
        let cpu = ExtractOptions::new(EngineConfig::cpu(EngineKind::Tract, 1));
        assert_eq!((cpu.batch, cpu.storage, cpu.checkpoints), (32, Storage::F32, Checkpoints::default()));
        assert!(!cpu.force && cpu.shard.is_none() && cpu.check().is_ok());
        let gpu =
            ExtractOptions::new(EngineConfig { device: Device::Cuda(0), ..EngineConfig::cpu(EngineKind::Ort, 1) });
        assert_eq!(gpu.batch, 256);
        assert!(ExtractOptions { checkpoints: Checkpoints::OFF, ..cpu.clone() }.check().is_ok());
        for (bad, why) in [
            (ExtractOptions { batch: 0, ..cpu.clone() }, "batch must be a whole number in [1, 4096], got 0"),
            (ExtractOptions { decode_threads: 5000, ..cpu.clone() }, "threads must be a whole number in [1, 1024]"),
            (
                ExtractOptions { checkpoints: Checkpoints { seconds: f64::NAN, batches: 3 }, ..cpu.clone() },
                "checkpoint_secs must be a number in (0, 1000000000], got NaN",
            ),
            (
                ExtractOptions { checkpoints: Checkpoints { seconds: 30.0, batches: 0 }, ..cpu.clone() },
                "checkpoint_batches must be a whole number",
            ),
        ] {
            let error = bad.check().unwrap_err().to_string();
            assert!(error.contains(why), "{error}");
        }
    }
}
