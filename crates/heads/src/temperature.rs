//! Temperature scaling (Guo et al. 2017): one number `T` that divides a model's logits, fitted
//! on a labelled split to minimise its log loss. It changes no prediction (the order of the
//! classes stays) and only how sure the probabilities are. It works from probabilities alone,
//! so it serves every run kind: `softmax(ln p / T)` is `softmax(z / T)` for the logits `z`
//! behind `p` (and a sigmoid's two columns the same). Kept in the run folder as
//! `temperature.json`, which the loaders of every run kind read.

use std::path::Path;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::HeadError;
use crate::metrics::{calibration, row_log_loss};

/// The file in a run folder that holds its temperature.
pub const TEMPERATURE_FILE: &str = "temperature.json";
/// Format tag of `temperature.json`.
const FORMAT: &str = "imgclf-temperature/1";
/// The range `T` is searched in.
const LOWEST: f64 = 1e-3;
const HIGHEST: f64 = 1e3;

/// A run's fitted temperature and what it did on the split it was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Temperature {
    /// `imgclf-temperature/1`.
    pub format: String,
    /// Divides the logits: above 1 the run was over-confident, below 1 under-confident.
    pub temperature: f64,
    /// The split it was fitted on: its scores are not held out from the temperature.
    pub fitted_on: String,
    /// Rows of that split.
    pub rows: usize,
    /// That split's scores before.
    pub before: Scores,
    /// And after.
    pub after: Scores,
}

/// The probability scores temperature changes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Mean log loss.
    pub log_loss: f64,
    /// Expected calibration error (15 bins).
    pub ece: f64,
    /// Brier score.
    pub brier: f64,
}

impl Scores {
    /// The scores of `probs` against `labels`.
    pub fn of(probs: ArrayView2<f32>, labels: &[usize]) -> Scores {
        let c = calibration(probs, labels);
        Scores { log_loss: log_loss(probs, labels), ece: c.ece, brier: c.brier }
    }
}

/// Mean log loss, each row's as `evaluate` takes it.
fn log_loss(probs: ArrayView2<f32>, labels: &[usize]) -> f64 {
    let sum: f64 = labels.iter().enumerate().map(|(i, &l)| row_log_loss(probs[[i, l]])).sum();
    sum / labels.len().max(1) as f64
}

impl Temperature {
    /// Fits `T` to `probs` (a model's, uncalibrated) against `labels` of split `split`: the
    /// minimum of the log loss of `softmax(ln p / T)` over `T` in [0.001, 1000] (the loss is
    /// convex in `1/T`; bisection on its derivative).
    pub fn fit(probs: ArrayView2<f32>, labels: &[usize], split: &str) -> Result<Temperature, HeadError> {
        if labels.is_empty() {
            return Err(HeadError::Config(format!("split `{split}` has no rows to fit a temperature on")));
        }
        let logs = log_probs(probs);
        // d/dβ of the mean log loss at β = 1/T: E[Σ_j q_j z_j − z_y], q = softmax(β z)
        let slope = |beta: f64| -> f64 {
            let mut sum = 0.0;
            for (z, &y) in logs.outer_iter().zip(labels) {
                let top = z.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                let weights: Vec<f64> = z.iter().map(|&v| (beta * (v - top)).exp()).collect();
                let total: f64 = weights.iter().sum();
                sum += z.iter().zip(&weights).map(|(v, w)| v * w).sum::<f64>() / total - z[y];
            }
            sum / labels.len() as f64
        };
        let (mut lo, mut hi) = ((1.0 / HIGHEST).ln(), (1.0 / LOWEST).ln());
        let beta = if slope(lo.exp()) >= 0.0 {
            lo.exp()
        } else if slope(hi.exp()) <= 0.0 {
            hi.exp()
        } else {
            for _ in 0..100 {
                let mid = 0.5 * (lo + hi);
                if slope(mid.exp()) < 0.0 { lo = mid } else { hi = mid }
            }
            (0.5 * (lo + hi)).exp()
        };
        let temperature = 1.0 / beta;
        let before = Scores::of(probs, labels);
        let mut calibrated = probs.to_owned();
        scale(&mut calibrated, temperature);
        let after = Scores::of(calibrated.view(), labels);
        Ok(Temperature {
            format: FORMAT.into(),
            temperature,
            fitted_on: split.into(),
            rows: labels.len(),
            before,
            after,
        })
    }

    /// Divides the logits behind `probs` by the temperature, in place.
    pub fn apply(&self, probs: &mut Array2<f32>) {
        scale(probs, self.temperature);
    }

    /// The temperature of the run in `dir`: `None` when it was never calibrated.
    pub fn read(dir: &Path) -> Result<Option<Temperature>, HeadError> {
        let path = dir.join(TEMPERATURE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = imgclf_dataset::read_text(&path, imgclf_dataset::TEXT_FILE_LIMIT).map_err(HeadError::io(&path))?;
        let t: Temperature =
            serde_json::from_str(&text).map_err(|e| HeadError::run(&path, format!("not a temperature file: {e}")))?;
        if t.format != FORMAT || !(t.temperature.is_finite() && t.temperature > 0.0) {
            return Err(HeadError::run(
                &path,
                format!("format `{}`, temperature {}: not one this version reads", t.format, t.temperature),
            ));
        }
        Ok(Some(t))
    }

    /// Writes `dir/temperature.json` whole (a reader never sees half of it).
    pub fn write(&self, dir: &Path) -> Result<(), HeadError> {
        let path = dir.join(TEMPERATURE_FILE);
        let json = serde_json::to_string_pretty(self).expect("a temperature serialises");
        imgclf_dataset::write_atomic(&path, json.as_bytes()).map_err(HeadError::io(&path))
    }

    /// Removes the run's temperature, if it has one.
    pub fn remove(dir: &Path) -> Result<(), HeadError> {
        let path = dir.join(TEMPERATURE_FILE);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(HeadError::io(&path)(e)),
            _ => Ok(()),
        }
    }
}

/// What a page or a printout says of a run's calibration when it scores split `scored`:
/// `not calibrated`, its temperature, and whether `scored` is the split it was fitted on.
pub fn calibration_note(temperature: Option<&Temperature>, scored: &str) -> String {
    match temperature {
        None => "not calibrated".into(),
        Some(t) if t.fitted_on == scored => {
            format!("calibrated: {t}; `{scored}` is that split, so its calibrated scores are not held out")
        }
        Some(t) => format!("calibrated: {t}"),
    }
}

impl std::fmt::Display for Temperature {
    /// `temperature 1.83 (fitted on `validation`, 800 rows)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "temperature {:.4} (fitted on `{}`, {} rows)", self.temperature, self.fitted_on, self.rows)
    }
}

/// `ln p` in f64, each probability at least the smallest positive f32 (a class whose
/// probability underflowed stays the least likely).
fn log_probs(probs: ArrayView2<f32>) -> Array2<f64> {
    probs.mapv(|p| f64::from(p.max(f32::MIN_POSITIVE)).ln())
}

/// `probs` ← `softmax(ln probs / t)`, row by row, in f64.
fn scale(probs: &mut Array2<f32>, t: f64) {
    let logs = log_probs(probs.view());
    for (z, mut out) in logs.outer_iter().zip(probs.outer_iter_mut()) {
        let top = z.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let e: Vec<f64> = z.iter().map(|&v| ((v - top) / t).exp()).collect();
        let total: f64 = e.iter().sum();
        out.iter_mut().zip(&e).for_each(|(o, e)| *o = (e / total) as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Loss;
    use imgclf_dataset::Rng;

    /// Logits of `rows` rows of `classes` classes whose labels are drawn from
    /// `softmax(z / truth)`: a model over-confident by the factor `truth`.
    fn overconfident(rows: usize, classes: usize, truth: f64, seed: u64) -> (Array2<f32>, Vec<usize>) {
        let mut rng = Rng::new(seed);
        let logits = Array2::from_shape_fn((rows, classes), |_| (rng.next_f32() - 0.5) * 12.0);
        let mut tempered = logits.mapv(|v| (f64::from(v) / truth) as f32);
        let loss = if classes == 1 { Loss::BinaryCrossentropy } else { Loss::CategoricalCrossentropy };
        tempered = loss.probabilities(tempered.view());
        let labels = tempered
            .outer_iter()
            .map(|p| {
                let u = rng.next_f32();
                let mut acc = 0.0;
                p.iter()
                    .position(|&q| {
                        acc += q;
                        u < acc
                    })
                    .unwrap_or(p.len() - 1)
            })
            .collect();
        (loss.probabilities(logits.view()), labels)
    }

    #[test]
    fn the_fit_recovers_the_factor_the_logits_were_scaled_by() {
        for (classes, truth) in [(1, 2.5), (5, 0.6), (10, 1.7)] {
            let (probs, labels) = overconfident(20_000, classes, truth, 7);
            let t = Temperature::fit(probs.view(), &labels, "validation").unwrap();
            assert!((t.temperature / truth - 1.0).abs() < 0.06, "{classes} classes: {} for {truth}", t.temperature);
            assert!(t.after.log_loss < t.before.log_loss && t.after.ece < t.before.ece, "{t:?}");
        }
    }

    #[test]
    fn applying_divides_the_logits_exactly_and_keeps_every_prediction() {
        let logits = ndarray::array![[3.0f32], [-1.5], [0.25]];
        let probs = Loss::BinaryCrossentropy.probabilities(logits.view());
        let t = Temperature { temperature: 2.0, ..Temperature::fit(probs.view(), &[1, 0, 1], "v").unwrap() };
        let mut calibrated = probs.clone();
        t.apply(&mut calibrated);
        let expected = Loss::BinaryCrossentropy.probabilities(logits.mapv(|z| z / 2.0).view());
        for (a, b) in calibrated.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-6, "{calibrated} against {expected}");
        }
        let logits = ndarray::array![[2.0f32, -1.0, 0.5, 9.0]];
        let mut p = Loss::CategoricalCrossentropy.probabilities(logits.view());
        Temperature { temperature: 0.5, ..t }.apply(&mut p);
        let expected = Loss::CategoricalCrossentropy.probabilities(logits.mapv(|z| z * 2.0).view());
        assert!(p.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-6), "{p} against {expected}");
    }

    #[test]
    fn no_rows_are_refused_and_a_run_without_a_file_is_not_calibrated() {
        let e = Temperature::fit(Array2::zeros((0, 2)).view(), &[], "validation").unwrap_err().to_string();
        assert!(e.contains("`validation` has no rows"), "{e}");
        let t = tempfile::tempdir().unwrap();
        assert_eq!(Temperature::read(t.path()).unwrap(), None);
        std::fs::write(t.path().join(TEMPERATURE_FILE), "{\"format\": \"x\"}").unwrap();
        let e = Temperature::read(t.path()).unwrap_err().to_string();
        assert!(e.contains("temperature.json") && e.contains("not a temperature file"), "{e}");
    }
}
