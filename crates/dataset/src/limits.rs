//! What each numeric setting may be: one table that every command's flags and every library
//! configuration check against, so `--lr nan` is refused the same way by `train-head`,
//! `train-cnn` and `fine-tune`, and a research script that builds a config by hand meets the
//! same rules.
//!
//! ```
//! use imgclf_dataset::limits::{DROPOUT, LEARNING_RATE, SHARDS};
//!
//! assert_eq!(LEARNING_RATE.check(0.01), Ok(0.01));
//! assert_eq!(LEARNING_RATE.check(f64::NAN).unwrap_err(), "learning_rate must be a number in (0, 10], got NaN");
//! assert!(DROPOUT.check(1.0).unwrap_err().contains("[0, 1)"));
//! assert_eq!((SHARDS.parser_usize())("4").unwrap(), 4);
//! assert!((SHARDS.parser_usize())("4294967296").unwrap_err().contains("[1, 10000]"));
//! ```

use std::fmt;

/// The allowed values of one numeric setting: an interval whose ends may each be open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// The setting's name in configs and `run.json` (`learning_rate`, `dropout`).
    pub name: &'static str,
    lo: f64,
    hi: f64,
    lo_open: bool,
    hi_open: bool,
    integer: bool,
}

impl Limit {
    const fn real(name: &'static str, lo: f64, hi: f64, lo_open: bool, hi_open: bool) -> Limit {
        Limit { name, lo, hi, lo_open, hi_open, integer: false }
    }

    const fn count(name: &'static str, lo: u64, hi: u64) -> Limit {
        Limit { name, lo: lo as f64, hi: hi as f64, lo_open: false, hi_open: false, integer: true }
    }

    /// Whether `v` is allowed: finite, inside the interval, and whole for a count.
    pub fn allows(&self, v: f64) -> bool {
        let above = if self.lo_open { v > self.lo } else { v >= self.lo };
        let below = if self.hi_open { v < self.hi } else { v <= self.hi };
        v.is_finite() && above && below && (!self.integer || v.fract() == 0.0)
    }

    /// `v` when allowed, else why not: `dropout must be a number in [0, 1), got 1.5`.
    pub fn check(&self, v: f64) -> Result<f64, String> {
        if self.allows(v) { Ok(v) } else { Err(format!("{} must be {self}, got {}", self.name, show(v))) }
    }

    /// [`Limit::check`] for an `f32` setting.
    pub fn check_f32(&self, v: f32) -> Result<f32, String> {
        self.check(f64::from(v)).map(|v| v as f32)
    }

    /// [`Limit::check`] for a count.
    pub fn check_usize(&self, v: usize) -> Result<usize, String> {
        self.check(v as f64).map(|v| v as usize)
    }

    /// The largest count allowed (a count's upper end).
    pub fn most(&self) -> usize {
        self.hi as usize
    }

    /// Parses a flag's text as a number and checks it; the message (which the command-line
    /// parser prefixes with the flag and the text) says what is allowed.
    fn parse(&self, s: &str) -> Result<f64, String> {
        let v: f64 = s.trim().parse().map_err(|_| format!("not a number; {}", self.allowed()))?;
        if self.allows(v) { Ok(v) } else { Err(self.allowed()) }
    }

    fn allowed(&self) -> String {
        format!("{} must be {self}", self.name)
    }

    /// A command-line value parser for an `f32` flag: `value_parser = LEARNING_RATE.parser_f32()`.
    pub fn parser_f32(self) -> impl Fn(&str) -> Result<f32, String> + Clone + Send + Sync + 'static {
        move |s| self.parse(s).map(|v| v as f32)
    }

    /// A command-line value parser for an `f64` flag.
    pub fn parser_f64(self) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
        move |s| self.parse(s)
    }

    /// A command-line value parser for a `u64` flag (a seed): whole numbers only.
    pub fn parser_u64(self) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
        move |s| {
            let v: u64 = s.trim().parse().map_err(|_| format!("not a whole number; {}", self.allowed()))?;
            if self.allows(v as f64) { Ok(v) } else { Err(self.allowed()) }
        }
    }

    /// A command-line value parser for a count flag (whole numbers only).
    pub fn parser_usize(self) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
        let parse = self.parser_u64();
        move |s| parse(s).map(|v| v as usize)
    }
}

impl fmt::Display for Limit {
    /// `a number in (0, 10]`, or `a whole number in [1, 4096]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.integer { "a whole number" } else { "a number" };
        let (open, close) = (if self.lo_open { '(' } else { '[' }, if self.hi_open { ')' } else { ']' });
        write!(f, "{kind} in {open}{}, {}{close}", show(self.lo), show(self.hi))
    }
}

/// A number as people write it: `NaN`, `inf`, `0.5`, `10000`.
fn show(v: f64) -> String {
    if v.is_nan() { "NaN".into() } else { format!("{v}") }
}

/// Optimizer step size (every optimizer; Keras' adadelta uses 1.0).
pub const LEARNING_RATE: Limit = Limit::real("learning_rate", 0.0, 10.0, true, false);
/// SGD momentum.
pub const MOMENTUM: Limit = Limit::real("momentum", 0.0, 1.0, false, true);
/// Keras' inverse-time decay per step: lr / (1 + decay · step).
pub const DECAY: Limit = Limit::real("decay", 0.0, 10.0, false, false);
/// Dropout rate.
pub const DROPOUT: Limit = Limit::real("dropout", 0.0, 1.0, false, true);
/// L2 weight decay on the kernels.
pub const L2: Limit = Limit::real("l2", 0.0, 10.0, false, false);
/// The L-BFGS probe's inverse L2 strength, scikit-learn's `C`.
pub const INVERSE_L2: Limit = Limit::real("c", 0.0, 1e12, true, false);
/// The L-BFGS probe's gradient tolerance, scikit-learn's `tol`.
pub const TOL: Limit = Limit::real("tol", 0.0, 1.0, true, false);
/// The L-BFGS probe's iterations at most.
pub const MAX_ITER: Limit = Limit::count("max_iter", 1, 100_000);
/// Label smoothing of the targets.
pub const LABEL_SMOOTHING: Limit = Limit::real("label_smoothing", 0.0, 1.0, false, true);
/// Share of train held out for validation.
pub const VAL_SPLIT: Limit = Limit::real("val_split", 0.0, 1.0, true, true);
/// Clipping of two-class probabilities in a Kaggle CSV.
pub const CLIP: Limit = Limit::real("clip", 0.0, 0.5, false, true);
/// Augmentation: degrees of rotation.
pub const ROTATION: Limit = Limit::real("rotation_range", 0.0, 360.0, false, false);
/// Augmentation: a shift, a share of the side below 1, pixels from 1.
pub const SHIFT: Limit = Limit::real("shift_range", 0.0, 10_000.0, false, false);
/// Augmentation: degrees of shear (Keras 2).
pub const SHEAR: Limit = Limit::real("shear_range", 0.0, 89.0, false, false);
/// Augmentation: a zoom factor, either end of `zoom_range`.
pub const ZOOM: Limit = Limit::real("zoom_range", 0.0, 10.0, true, false);
/// Augmentation: a brightness factor, either end of `brightness_range`.
pub const BRIGHTNESS: Limit = Limit::real("brightness_range", 0.0, 10.0, false, false);
/// Augmentation: the value range of a channel shift.
pub const CHANNEL_SHIFT: Limit = Limit::real("channel_shift_range", 0.0, 255.0, false, false);
/// Augmentation: the fill value of `fill=constant`.
pub const CVAL: Limit = Limit::real("cval", -1e6, 1e6, false, false);
/// Augmentation: Keras' final multiplier (`rescale=1/255`).
pub const RESCALE: Limit = Limit::real("rescale", 0.0, 1e6, true, false);
/// Passes over the training data.
pub const EPOCHS: Limit = Limit::count("epochs", 1, 100_000);
/// Images or rows per gradient step.
pub const BATCH: Limit = Limit::count("batch", 1, 65_536);
/// Images per inference call.
pub const INFERENCE_BATCH: Limit = Limit::count("batch", 1, 4096);
/// Units of a hidden dense layer.
pub const HIDDEN: Limit = Limit::count("hidden", 1, 65_536);
/// Epochs without improvement before an early stop.
pub const PATIENCE: Limit = Limit::count("patience", 1, 100_000);
/// The seed of every random draw (shuffles, initial weights, dropout, augmentation).
pub const SEED: Limit = Limit::count("seed", 0, u64::MAX);
/// Threads of an engine or a decode pool.
pub const THREADS: Limit = Limit::count("threads", 1, 1024);
/// Parts of a sharded extraction; an extraction also caps it by its batches.
pub const SHARDS: Limit = Limit::count("shards", 1, 10_000);
/// Seconds between an extraction's checkpoints.
pub const CHECKPOINT_SECS: Limit = Limit::real("checkpoint_secs", 0.0, 1e9, true, false);
/// Batches between an extraction's checkpoints.
pub const CHECKPOINT_BATCHES: Limit = Limit::count("checkpoint_batches", 1, 1_000_000_000);
/// Images or classes listed or drawn (CAM samples, a prediction's top classes).
pub const LISTED: Limit = Limit::count("count", 1, 100_000);
/// Pixels across one drawn photo (CAM pictures).
pub const WIDTH: Limit = Limit::count("width", 32, 2048);
/// Augmented variants drawn of one image, and photos per row of a contact sheet.
pub const VARIANTS: Limit = Limit::count("count", 1, 1000);
/// Most confident mistakes listed by an evaluation (0: none).
pub const TOP: Limit = Limit::count("top", 0, 100_000);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_open_and_closed_are_kept() {
        assert!(LEARNING_RATE.allows(10.0) && !LEARNING_RATE.allows(0.0) && !LEARNING_RATE.allows(10.01));
        assert!(MOMENTUM.allows(0.0) && !MOMENTUM.allows(1.0) && MOMENTUM.allows(0.999));
        assert!(EPOCHS.allows(1.0) && !EPOCHS.allows(0.0) && !EPOCHS.allows(1.5) && !EPOCHS.allows(100_001.0));
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!DECAY.allows(v) && !CVAL.allows(v), "{v}");
        }
    }

    #[test]
    fn parsers_refuse_garbage_and_name_the_range() {
        let lr = LEARNING_RATE.parser_f32();
        assert_eq!(lr("1e-3"), Ok(1e-3));
        for bad in ["nan", "inf", "-inf", "-1", "0", "1e30", "fast", ""] {
            let e = lr(bad).unwrap_err();
            assert!(e.contains("learning_rate must be a number in (0, 10]"), "{bad}: {e}");
        }
        let batch = BATCH.parser_usize();
        assert_eq!(batch("32"), Ok(32));
        for bad in ["0", "-1", "1.5", "65537", "18446744073709551616", "x"] {
            assert!(batch(bad).unwrap_err().contains("a whole number in [1, 65536]"), "{bad}");
        }
        assert_eq!(EPOCHS.check_usize(0).unwrap_err(), "epochs must be a whole number in [1, 100000], got 0");
    }
}
