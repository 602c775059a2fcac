//! What `imgclf evaluate` reports: accuracy, log loss, per-class scores, the confusion matrix
//! and the most confidently wrong images.

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

/// Scores of a head's probabilities against true labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Images scored.
    pub rows: usize,
    /// Share predicted right.
    pub accuracy: f64,
    /// Mean cross-entropy, probabilities clipped to [1e-15, 1 - 1e-15] as scikit-learn does.
    pub log_loss: f64,
    /// Per-class scores, in id order.
    pub classes: Vec<ClassScores>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    /// Highest-loss misclassified rows, worst first.
    pub top_losses: Vec<TopLoss>,
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
        let loss = -(p[truth] as f64).clamp(1e-15, 1.0 - 1e-15).ln();
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
        classes: scores,
        confusion,
        top_losses: wrong,
    }
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(f, "accuracy {:.4}   log loss {:.4}   ({} images)", self.accuracy, self.log_loss, self.rows)?;
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
    }
}
