//! What an extraction is asked to do and what it tells its caller on the way: shared by
//! [`extract`](crate::extract) and the pipeline that runs it.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use imgclf_runtime::{Device, EngineConfig};

use crate::{Shard, Storage};

/// How to run an extraction.
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
