//! Prediction CSVs in the format Kaggle's competitions take.

use std::path::Path;

use imgclf_dataset::natural_cmp;
use ndarray::ArrayView2;

use crate::train::argmax;

/// What each CSV row holds after its id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CsvStyle {
    /// Two classes: `id,label` with the probability of class 1, clipped to `[clip, 1 - clip]`
    /// (a confident mistake then costs at most `-ln(clip)` of log loss).
    Probability {
        /// The smallest probability written.
        clip: f32,
    },
    /// `id,label` with the predicted class name.
    Label,
    /// `id,<class 0>,<class 1>,...`: one probability column per class.
    Proba,
}

/// The CSV text for rows with the given image paths and class probabilities. The id is the
/// file stem (`test/123.jpg` → `123`), or the path without its extension when stems repeat;
/// rows are in natural id order (`2` before `10`).
///
/// ```
/// use imgclf_heads::{CsvStyle, prediction_csv};
/// use ndarray::array;
/// let classes = ["cats".to_string(), "dogs".to_string()];
/// let paths = ["test/10.jpg".to_string(), "test/2.jpg".to_string()];
/// let probs = array![[0.1, 0.9], [0.999, 0.001]];
/// // two classes, Kaggle's form: the probability of the second, clipped
/// let csv = prediction_csv(&classes, &paths, probs.view(), CsvStyle::Probability { clip: 0.005 });
/// assert_eq!(csv, "id,label\n2,0.005\n10,0.9\n");
/// ```
pub fn prediction_csv(classes: &[String], paths: &[String], probs: ArrayView2<f32>, style: CsvStyle) -> String {
    let stem = |p: &str| Path::new(p).file_stem().map_or(p.to_string(), |s| s.to_string_lossy().into_owned());
    let mut ids: Vec<String> = paths.iter().map(|p| stem(p)).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != ids.len() {
        ids = paths.iter().map(|p| Path::new(p).with_extension("").to_string_lossy().into_owned()).collect();
    }
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|&a, &b| natural_cmp(&ids[a], &ids[b]));

    let mut out = match style {
        CsvStyle::Proba => format!("id,{}\n", classes.iter().map(|c| field(c)).collect::<Vec<_>>().join(",")),
        _ => "id,label\n".to_string(),
    };
    for i in order {
        let p = probs.row(i);
        let value = match style {
            CsvStyle::Probability { clip } => format!("{}", p[1].clamp(clip, 1.0 - clip)),
            CsvStyle::Label => field(&classes[argmax(p)]),
            CsvStyle::Proba => p.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","),
        };
        out.push_str(&format!("{},{value}\n", field(&ids[i])));
    }
    out
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn binary_rows_are_clipped_probabilities_of_class_one_in_natural_id_order() {
        let probs = array![[0.2f32, 0.8], [1.0, 0.0], [0.0, 1.0]];
        let csv = prediction_csv(
            &names(&["cat", "dog"]),
            &names(&["10.jpg", "2.jpg", "1.jpg"]),
            probs.view(),
            CsvStyle::Probability { clip: 0.005 },
        );
        assert_eq!(csv, "id,label\n1,0.995\n2,0.005\n10,0.8\n");
    }

    #[test]
    fn many_classes_give_names_or_a_column_each_and_fields_are_quoted() {
        let probs = array![[0.1f32, 0.7, 0.2], [0.5, 0.25, 0.25]];
        let classes = names(&["stop", "yield, ahead", "speed"]);
        let paths = names(&["a/1.png", "b/1.png"]);
        let csv = prediction_csv(&classes, &paths, probs.view(), CsvStyle::Label);
        assert_eq!(csv, "id,label\na/1,\"yield, ahead\"\nb/1,stop\n", "repeated stems fall back to the path");
        let csv = prediction_csv(&classes, &paths, probs.view(), CsvStyle::Proba);
        assert_eq!(csv, "id,stop,\"yield, ahead\",speed\na/1,0.1,0.7,0.2\nb/1,0.5,0.25,0.25\n");
    }
}
