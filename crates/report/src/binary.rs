//! Two classes: the ROC and precision-recall curves of the second class's probability, with
//! their areas as scikit-learn computes them (`roc_auc_score`, `average_precision_score`).

/// Points of both curves and their areas.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryCurves {
    /// `(false positive rate, true positive rate)` from `(0, 0)` to `(1, 1)`.
    pub roc: Vec<(f64, f64)>,
    /// Area under the ROC curve (trapezoids).
    pub roc_auc: f64,
    /// `(recall, precision)` from recall 0 (precision 1) upwards.
    pub pr: Vec<(f64, f64)>,
    /// Average precision: `Σ (R_k − R_{k−1}) P_k` over thresholds, as scikit-learn.
    pub average_precision: f64,
}

/// The curves of `scores` (the probability of the positive class) against `positive` (whether
/// each row is of it), one point per distinct score. `None` when one class has no rows.
pub fn binary_curves(scores: &[f32], positive: &[bool]) -> Option<BinaryCurves> {
    let p = positive.iter().filter(|&&y| y).count();
    let n = positive.len() - p;
    if p == 0 || n == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut roc = vec![(0.0, 0.0)];
    let mut pr = vec![(0.0, 1.0)];
    let (mut roc_auc, mut average_precision) = (0.0, 0.0);
    for (i, &row) in order.iter().enumerate() {
        if positive[row] {
            tp += 1
        } else {
            fp += 1
        }
        // a threshold between distinct scores: rows with equal scores enter together
        if order.get(i + 1).is_some_and(|&next| scores[next] == scores[row]) {
            continue;
        }
        let (fpr, tpr) = (fp as f64 / n as f64, tp as f64 / p as f64);
        let (last_fpr, last_tpr) = *roc.last().expect("starts at the origin");
        roc_auc += (fpr - last_fpr) * (tpr + last_tpr) / 2.0;
        roc.push((fpr, tpr));
        let precision = tp as f64 / (tp + fp) as f64;
        average_precision += (tpr - pr.last().expect("starts at recall 0").0) * precision;
        pr.push((tpr, precision));
    }
    Some(BinaryCurves { roc, roc_auc, pr, average_precision })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scikit-learn on the same rows: roc_auc_score 0.75, average_precision_score 0.8333...
    /// (y = [0, 0, 1, 1], scores = [0.1, 0.4, 0.35, 0.8]).
    #[test]
    fn areas_equal_scikit_learns_on_its_documented_example() {
        let c = binary_curves(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((c.roc_auc - 0.75).abs() < 1e-12, "{}", c.roc_auc);
        assert!((c.average_precision - 0.833_333_333_333_333_4).abs() < 1e-12, "{}", c.average_precision);
        assert_eq!(c.roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(c.roc.last(), Some(&(1.0, 1.0)));
    }

    #[test]
    fn ties_enter_together_and_one_class_has_no_curve() {
        // all scores equal: the ROC is the diagonal, AUC one half
        let c = binary_curves(&[0.5; 4], &[true, false, true, false]).unwrap();
        assert_eq!(c.roc, vec![(0.0, 0.0), (1.0, 1.0)]);
        assert_eq!(c.roc_auc, 0.5);
        assert_eq!(c.average_precision, 0.5);
        // perfectly separated: AUC and AP are 1
        let c = binary_curves(&[0.9, 0.8, 0.2, 0.1], &[true, true, false, false]).unwrap();
        assert_eq!((c.roc_auc, c.average_precision), (1.0, 1.0));
        assert!(binary_curves(&[0.3, 0.6], &[true, true]).is_none());
    }
}
