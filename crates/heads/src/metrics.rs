//! What `imgclf evaluate` reports: accuracy, log loss, calibration (expected calibration error,
//! Brier score, the reliability diagram's bins), per-class scores, the confusion matrix and the
//! most confidently wrong images.

use std::fmt;

use ndarray::ArrayView2;
use serde::Serialize;

use crate::train::argmax;

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScores {
    /// The class.
    pub name: String,
    /// Of the images predicted as it, the share that are.
    pub precision: f64,
    /// Of its images, the share predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Rows whose true class this is.
    pub support: usize,
}

/// One misclassified image and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopLoss {
    /// The image.
    pub path: String,
    /// Its true class.
    pub label: String,
    /// The class predicted.
    pub predicted: String,
    /// Probability the head gave the true class.
    pub p_true: f32,
    /// Its log loss.
    pub loss: f64,
}

/// Bins of the reliability diagram and of the expected calibration error (Guo et al. 2017).
pub const CALIBRATION_BINS: usize = 15;

/// One bin of a reliability diagram: the rows whose top probability is in `(lo, hi]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bin {
    /// The bin's lower edge (excluded).
    pub lo: f64,
    /// Its upper edge (included).
    pub hi: f64,
    /// Rows in it.
    pub rows: usize,
    /// Their mean top probability (0 when empty).
    pub confidence: f64,
    /// The share of them predicted right (0 when empty).
    pub accuracy: f64,
}

/// How far probabilities can be trusted as probabilities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// Expected calibration error: `Σ |bin| / rows · |accuracy − confidence|` over
    /// [`CALIBRATION_BINS`] equal-width bins of the top probability.
    pub ece: f64,
    /// Brier score: the mean over rows of `Σ_k (p_k − [k = label])²` (for two classes, twice
    /// scikit-learn's `brier_score_loss` of the second class's probability).
    pub brier: f64,
    /// The bins, lowest first.
    pub bins: Vec<Bin>,
}

/// The calibration of `probs` `(rows, classes)` against `labels`.
pub fn calibration(probs: ArrayView2<f32>, labels: &[usize]) -> Calibration {
    let m = CALIBRATION_BINS;
    let (mut rows, mut confidence, mut right) = (vec![0usize; m], vec![0.0f64; m], vec![0usize; m]);
    let mut brier = 0.0;
    for (p, &label) in probs.outer_iter().zip(labels) {
        let top = argmax(p);
        let c = p[top] as f64;
        let bin = ((c * m as f64).ceil() as usize).clamp(1, m) - 1;
        rows[bin] += 1;
        confidence[bin] += c;
        right[bin] += usize::from(top == label);
        brier += p.iter().enumerate().map(|(k, &v)| (v as f64 - f64::from(u8::from(k == label))).powi(2)).sum::<f64>();
    }
    let n = labels.len().max(1) as f64;
    let bins: Vec<Bin> = (0..m)
        .map(|b| {
            let count = rows[b].max(1) as f64;
            Bin {
                lo: b as f64 / m as f64,
                hi: (b + 1) as f64 / m as f64,
                rows: rows[b],
                confidence: confidence[b] / count,
                accuracy: right[b] as f64 / count,
            }
        })
        .collect();
    let ece = bins.iter().map(|b| b.rows as f64 / n * (b.accuracy - b.confidence).abs()).sum();
    Calibration { ece, brier: brier / n, bins }
}

/// Scores of a head's probabilities against true labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Images scored.
    pub rows: usize,
    /// Share predicted right.
    pub accuracy: f64,
    /// Mean cross-entropy, probabilities clipped to [1e-15, 1 - 1e-15] as scikit-learn does.
    pub log_loss: f64,
    /// Expected calibration error, Brier score and the reliability diagram's bins.
    pub calibration: Calibration,
    /// Per-class scores, in id order.
    pub classes: Vec<ClassScores>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    /// Highest-loss misclassified rows, worst first.
    pub top_losses: Vec<TopLoss>,
}

/// One row's log loss from its true class's probability, clipped to [1e-15, 1 − 1e-15] as
/// scikit-learn's `log_loss` clips it.
pub(crate) fn row_log_loss(p_true: f32) -> f64 {
    -f64::from(p_true).clamp(1e-15, 1.0 - 1e-15).ln()
}

/// Scores `probs` `(rows, classes)` against `labels`; `paths` name the rows for top losses.
pub fn evaluate(
    classes: &[String],
    probs: ArrayView2<f32>,
    labels: &[usize],
    paths: &[String],
    top: usize,
) -> Evaluation {
    let k = classes.len();
    let mut confusion = vec![vec![0usize; k]; k];
    let mut log_loss = 0.0;
    let mut wrong = Vec::new();
    for (i, p) in probs.outer_iter().enumerate() {
        let (truth, predicted) = (labels[i], argmax(p));
        confusion[truth][predicted] += 1;
        let loss = row_log_loss(p[truth]);
        log_loss += loss;
        if truth != predicted {
            wrong.push(TopLoss {
                path: paths[i].clone(),
                label: classes[truth].clone(),
                predicted: classes[predicted].clone(),
                p_true: p[truth],
                loss,
            });
        }
    }
    wrong.sort_by(|a, b| b.loss.total_cmp(&a.loss).then_with(|| a.path.cmp(&b.path)));
    wrong.truncate(top);
    let rows = labels.len();
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let scores = (0..k)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let predicted: usize = (0..k).map(|t| confusion[t][c]).sum();
            let support: usize = confusion[c].iter().sum();
            let ratio = |n: usize| if n == 0 { 0.0 } else { tp / n as f64 };
            let (precision, recall) = (ratio(predicted), ratio(support));
            let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            ClassScores { name: classes[c].clone(), precision, recall, f1, support }
        })
        .collect();
    Evaluation {
        rows,
        accuracy: correct as f64 / rows.max(1) as f64,
        log_loss: log_loss / rows.max(1) as f64,
        calibration: calibration(probs, labels),
        classes: scores,
        confusion,
        top_losses: wrong,
    }
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(
            f,
            "accuracy {:.4}   log loss {:.4}   ECE {:.4}   Brier {:.4}   ({} images)",
            self.accuracy, self.log_loss, self.calibration.ece, self.calibration.brier, self.rows
        )?;
        let width = self.classes.iter().map(|c| c.name.len()).max().unwrap_or(5).max(5);
        writeln!(f, "\n{:>width$}  precision  recall      f1  support", "class")?;
        for c in &self.classes {
            writeln!(
                f,
                "{:>width$}  {:>9.4}  {:>6.4}  {:>6.4}  {:>7}",
                c.name, c.precision, c.recall, c.f1, c.support
            )?;
        }
        writeln!(f, "\nconfusion matrix (rows: true class, columns: predicted, in class order)")?;
        let cell = self.confusion.iter().flatten().max().map_or(1, |m| m.to_string().len()).max(3);
        for (name, row) in self.classes.iter().zip(&self.confusion) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:>cell$}")).collect();
            writeln!(f, "{:>width$}  {}", name.name, cells.join(" "))?;
        }
        if !self.top_losses.is_empty() {
            writeln!(f, "\ntop losses (most confidently wrong first)")?;
            for t in &self.top_losses {
                writeln!(
                    f,
                    "  {:.3}  {}  true {}, predicted {} (p_true {:.4})",
                    t.loss, t.path, t.label, t.predicted, t.p_true
                )?;
            }
        }
        Ok(())
    }
}

/// The file `evaluate` and `report` leave in a run folder: the scores of the last split they
/// scored, for `imgclf runs`.
pub const EVALUATED_FILE: &str = "evaluation.json";

/// A run's scores on one split, as [`EVALUATED_FILE`] keeps them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluated {
    /// The split scored.
    pub split: String,
    /// Its rows.
    pub rows: usize,
    /// Accuracy.
    pub accuracy: f64,
    /// Mean log loss.
    pub log_loss: f64,
    /// Expected calibration error (15 bins).
    pub ece: f64,
    /// Brier score.
    pub brier: f64,
    /// The temperature the probabilities were calibrated with, if any.
    pub temperature: Option<f64>,
}

impl Evaluated {
    /// The record of `evaluation` on `split`, calibrated by `temperature`.
    pub fn new(evaluation: &Evaluation, split: &str, temperature: Option<f64>) -> Evaluated {
        Evaluated {
            split: split.into(),
            rows: evaluation.rows,
            accuracy: evaluation.accuracy,
            log_loss: evaluation.log_loss,
            ece: evaluation.calibration.ece,
            brier: evaluation.calibration.brier,
            temperature,
        }
    }

    /// Writes it into run folder `dir`, whole.
    pub fn write(&self, dir: &std::path::Path) -> Result<(), crate::HeadError> {
        let path = dir.join(EVALUATED_FILE);
        let json = serde_json::to_string_pretty(self).expect("scores serialise");
        imgclf_dataset::write_atomic(&path, json.as_bytes()).map_err(crate::HeadError::io(&path))
    }

    /// The record in run folder `dir`, when one was written and reads.
    pub fn read(dir: &std::path::Path) -> Option<Evaluated> {
        let text = imgclf_dataset::read_text(&dir.join(EVALUATED_FILE), imgclf_dataset::TEXT_FILE_LIMIT).ok()?;
        serde_json::from_str(&text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn scores_a_small_case_worked_by_hand() {
        let classes = ["a".to_string(), "b".to_string(), "c".to_string()];
        let probs = array![[0.7f32, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]];
        let labels = [0, 1, 1, 2, 0];
        let paths: Vec<String> = (0..5).map(|i| format!("img{i}.jpg")).collect();
        let e = evaluate(&classes, probs.view(), &labels, &paths, 1);
        assert_eq!(e.confusion, vec![vec![1, 0, 1], vec![1, 1, 0], vec![0, 0, 1]]);
        assert!((e.accuracy - 0.6).abs() < 1e-12);
        let expected = -(0.7f64.ln() + 0.8f64.ln() + 0.3f64.ln() + 0.6f64.ln() + 0.1f64.ln()) / 5.0;
        assert!((e.log_loss - expected).abs() < 1e-6);
        // class a: predicted twice (rows 0, 2), right once; true twice, found once.
        assert!((e.classes[0].precision - 0.5).abs() < 1e-12 && (e.classes[0].recall - 0.5).abs() < 1e-12);
        // class c: predicted twice, right once; its only true row found.
        assert!((e.classes[2].precision - 0.5).abs() < 1e-12 && e.classes[2].recall == 1.0);
        assert!((e.classes[2].f1 - 2.0 / 3.0).abs() < 1e-12);
        // The worst miss is row 4: true a at p=0.1.
        assert_eq!(e.top_losses.len(), 1);
        assert_eq!((e.top_losses[0].path.as_str(), e.top_losses[0].predicted.as_str()), ("img4.jpg", "c"));
        let text = e.to_string();
        assert!(text.contains("accuracy 0.6000") && text.contains("img4.jpg"), "{text}");
        assert!(text.contains("ECE ") && text.contains("Brier "), "{text}");
    }

    #[test]
    fn calibration_bins_the_top_probability_as_guo_et_al() {
        // top probabilities 0.7 (right), 0.75 (right), 0.55 (wrong), 0.55 (right), 0.75 (wrong)
        let probs =
            array![[0.7f32, 0.2, 0.1], [0.1, 0.75, 0.15], [0.55, 0.35, 0.1], [0.2, 0.25, 0.55], [0.1, 0.15, 0.75]];
        let c = calibration(probs.view(), &[0, 1, 1, 2, 0]);
        let filled: Vec<(usize, usize)> =
            c.bins.iter().enumerate().filter(|(_, b)| b.rows > 0).map(|(i, b)| (i, b.rows)).collect();
        // (8/15, 9/15] holds 0.55, (10/15, 11/15] 0.7, (11/15, 12/15] 0.75
        assert_eq!(filled, vec![(8, 2), (10, 1), (11, 2)]);
        let bin = &c.bins[11];
        assert!((bin.confidence - 0.75).abs() < 1e-6 && (bin.accuracy - 0.5).abs() < 1e-12);
        // (|0.5 - 0.55|·2 + |1 - 0.7|·1 + |0.5 - 0.75|·2) / 5
        assert!((c.ece - 0.18).abs() < 1e-6, "{}", c.ece);
        let rows = [0.14, 0.095, 0.735, 0.305, 1.395];
        assert!((c.brier - rows.iter().sum::<f64>() / 5.0).abs() < 1e-6, "{}", c.brier);
        // a top probability of exactly 1 is in the last bin
        let edges = calibration(array![[1.0f32, 0.0], [0.0, 1.0]].view(), &[0, 0]);
        assert_eq!((edges.bins[14].rows, edges.bins[14].accuracy), (2, 0.5));
    }
}
