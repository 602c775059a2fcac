//! What the sources that hold their photos (tar shards, Parquet files of images) share: the
//! split a file's name gives, the class index of labels read as text, and the rule that a
//! split is labelled throughout or not at all.

use std::path::{Path, PathBuf};

use crate::{ClassIndex, DatasetError, Member, Sample, natural_cmp};

/// The files directly in `dir` whose extension is `ext` (any case), in natural name order.
pub(crate) fn files_in(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, DatasetError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(DatasetError::io(dir))? {
        let path = entry.map_err(DatasetError::io(dir))?.path();
        if path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext)) {
            files.push(path);
        }
    }
    files.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
    Ok(files)
}

/// The split a file belongs to, from its name's first word: `train…`, `val…`/`valid…`/
/// `validation…`, `test…`; any other name is train's (`train-000000.tar`,
/// `test-00000-of-00002.parquet`).
pub(crate) fn split_of(file: &Path) -> &'static str {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_ascii_lowercase();
    match name.split(['-', '_', '.']).next().unwrap_or_default() {
        "val" | "valid" | "validation" => "validation",
        "test" => "test",
        _ => "train",
    }
}

/// A readable sample without a label in a split whose other samples have one (a split is
/// labelled throughout or not at all; a faulty sample, skipped when read, may lack one).
pub(crate) fn unlabelled_among_labelled(samples: &[Sample]) -> Option<&Sample> {
    let readable = |s: &&Sample| !matches!(s.member, Some(Member::Fault { .. }));
    let labelled = samples.iter().any(|s| s.label.is_some());
    samples.iter().filter(readable).find(|s| labelled && s.label.is_none())
}

/// The class index of labels read as text: names as written, or, where every label is a
/// number (a `.cls`), the numbers zero-padded to one width so that sorted names keep the numbers' order.
pub(crate) fn class_index(labels: Vec<String>) -> ClassIndex {
    let numbers: Option<Vec<u64>> = labels.iter().map(|l| l.parse().ok()).collect();
    match numbers {
        Some(numbers) => {
            let width = numbers.iter().max().map_or(1, |m| m.to_string().len());
            ClassIndex::new(numbers.iter().map(|n| format!("{n:0width$}")).collect())
        }
        None => ClassIndex::new(labels),
    }
}

/// A label's class name in `classes` (a number padded as [`class_index`] padded it).
pub(crate) fn class_name(label: &str, classes: &ClassIndex) -> String {
    match (label.parse::<u64>(), classes.names().first()) {
        (Ok(n), Some(first)) if first.parse::<u64>().is_ok() => format!("{n:0width$}", width = first.len()),
        _ => label.to_string(),
    }
}
