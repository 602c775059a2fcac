//! `imgclf runs`: every run folder under some folders, one row each, to compare experiments.

use std::path::{Path, PathBuf};

use imgclf_heads::{Evaluated, RunSummary, read_history};
use imgclf_nets::AnyRunInfo;
use maud::{DOCTYPE, html};

use crate::{ReportError, fingerprint_of, modified};

/// One run folder, summarised.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// The folder.
    pub dir: PathBuf,
    /// `train-head`, `train-cnn` or `fine-tune`.
    pub kind: String,
    /// The backbones it stands on (none for a CNN from pixels).
    pub backbones: Vec<String>,
    /// The head or network (`logistic`, `mlp-256`, `lenet`, ...).
    pub head: String,
    /// Epochs run.
    pub epochs: usize,
    /// The seed trained with.
    pub seed: Option<u64>,
    /// Validation accuracy of the weights kept.
    pub val_acc: Option<f64>,
    /// Validation log loss of the weights kept.
    pub val_loss: Option<f64>,
    /// The last `evaluate` or `report` of the run: its split, log loss, ECE, Brier score and
    /// the temperature it was calibrated with.
    pub evaluated: Option<Evaluated>,
    /// Seconds of training (the epochs' sum).
    pub seconds: Option<f64>,
    /// The first 12 characters of each feature file's fingerprint: equal ones share features.
    pub fingerprints: Vec<String>,
    /// When `run.json` was written (`YYYY-MM-DD HH:MM UTC`).
    pub date: String,
}

/// The order of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Highest validation accuracy first.
    ValAcc,
    /// Lowest validation log loss first.
    LogLoss,
    /// Newest first.
    Date,
}

/// Every run folder (a folder with a `run.json`) at or under `dirs`, sorted; a `dirs` entry
/// that is no folder, and folders whose `run.json` cannot be read, are returned as errors
/// beside the rows; hidden folders (runs being written) are skipped.
pub fn find_runs(dirs: &[PathBuf], sort: SortBy) -> (Vec<RunRow>, Vec<ReportError>) {
    let (mut rows, mut errors) = (Vec::new(), Vec::new());
    let mut found = Vec::new();
    for dir in dirs {
        if dir.is_dir() {
            walk(dir, 0, &mut found);
        } else {
            errors.push(ReportError::run(dir, "is not a folder"));
        }
    }
    found.sort();
    found.dedup();
    for dir in found {
        match AnyRunInfo::read(&dir) {
            Ok(info) => rows.push(row(&dir, &info.summary())),
            Err(e) => errors.push(e.into()),
        }
    }
    let key = |v: Option<f64>, missing: f64| v.unwrap_or(missing);
    match sort {
        SortBy::ValAcc => rows.sort_by(|a, b| key(b.val_acc, -1.0).total_cmp(&key(a.val_acc, -1.0))),
        SortBy::LogLoss => rows.sort_by(|a, b| key(a.val_loss, f64::MAX).total_cmp(&key(b.val_loss, f64::MAX))),
        SortBy::Date => rows.sort_by(|a, b| b.date.cmp(&a.date)),
    }
    (rows, errors)
}

/// Folders with a `run.json`, at most 6 levels down.
fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    // anything named run.json marks a run folder (one that is no plain file is reported)
    if dir.join("run.json").symlink_metadata().is_ok() {
        found.push(dir.to_path_buf());
        return;
    }
    if depth >= 6 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&entry.path(), depth + 1, found);
        }
    }
}

fn row(dir: &Path, summary: &RunSummary) -> RunRow {
    let history = read_history(dir).unwrap_or_default();
    let fingerprints = summary
        .backbones
        .iter()
        .filter_map(|b| b.features.as_deref())
        .map(|file| fingerprint_of(file).map_or("missing".into(), |f| f.chars().take(12).collect()))
        .collect();
    RunRow {
        dir: dir.to_path_buf(),
        kind: summary.kind.into(),
        backbones: summary.backbones.iter().map(|b| b.name.clone()).collect(),
        head: summary.head.clone(),
        epochs: summary.epochs_run,
        seed: summary.seed,
        val_acc: summary.kept.as_ref().and_then(|k| k.val_acc),
        val_loss: summary.kept.as_ref().and_then(|k| k.val_loss),
        evaluated: Evaluated::read(dir),
        seconds: (!history.is_empty()).then(|| history.iter().map(|e| e.seconds).sum()),
        fingerprints,
        date: modified(&dir.join("run.json")).unwrap_or_default(),
    }
}

const COLUMNS: [&str; 16] = [
    "run",
    "kind",
    "backbones",
    "head",
    "epochs",
    "seed",
    "val_acc",
    "val_loss",
    "scored",
    "log_loss",
    "ece",
    "brier",
    "temperature",
    "seconds",
    "features",
    "date",
];

/// A number for a table cell: fixed digits, or scientific past a million (a 1e308 from a
/// hand-edited run.json is 9 characters, not 309).
fn number(v: f64, digits: usize) -> String {
    match v.is_finite() && v.abs() < 1e6 {
        true => format!("{v:.digits$}"),
        false => format!("{v:.3e}"),
    }
}

/// Text for one cell of a line-based table: control characters (a newline in a folder name)
/// shown escaped, so every row stays one line.
fn one_line(text: &str) -> String {
    text.chars().flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect()
}

fn cells(r: &RunRow) -> [String; 16] {
    let num = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| number(v, digits));
    let e = r.evaluated.as_ref();
    let list = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join("+") };
    [
        one_line(&r.dir.display().to_string()),
        r.kind.clone(),
        one_line(&list(&r.backbones)),
        one_line(&r.head),
        r.epochs.to_string(),
        r.seed.map_or("-".into(), |s| s.to_string()),
        num(r.val_acc, 4),
        num(r.val_loss, 4),
        e.map_or("-".into(), |e| one_line(&e.split)),
        num(e.map(|e| e.log_loss), 4),
        num(e.map(|e| e.ece), 4),
        num(e.map(|e| e.brier), 4),
        num(e.and_then(|e| e.temperature), 3),
        num(r.seconds, 1),
        one_line(&list(&r.fingerprints)),
        r.date.clone(),
    ]
}

/// A path as a URL path: every byte but unreserved characters and `/` percent-encoded, so no
/// folder name becomes a scheme (`javascript:`), a query or a fragment.
fn url_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The rows as an aligned plain-text table.
pub fn runs_table(rows: &[RunRow]) -> String {
    let all: Vec<[String; 16]> = rows.iter().map(cells).collect();
    let width = |i: usize| all.iter().map(|c| c[i].chars().count()).chain([COLUMNS[i].len()]).max().unwrap_or(0);
    let widths: Vec<usize> = (0..COLUMNS.len()).map(width).collect();
    let line = |c: &[String]| {
        let padded: Vec<String> = c.iter().zip(&widths).map(|(v, &w)| format!("{v:<w$}")).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let header: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    std::iter::once(line(&header)).chain(all.iter().map(|c| line(c))).collect()
}

/// The rows as CSV (RFC 4180 quoting), numbers unrounded.
pub fn runs_csv(rows: &[RunRow]) -> String {
    let quote = |v: &str| {
        if v.contains([',', '"', '\n', '\r']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_string() }
    };
    let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let mut out = COLUMNS.join(",") + "\n";
    for r in rows {
        let fields = [
            r.dir.display().to_string(),
            r.kind.clone(),
            r.backbones.join("+"),
            r.head.clone(),
            r.epochs.to_string(),
            r.seed.map_or(String::new(), |s| s.to_string()),
            num(r.val_acc),
            num(r.val_loss),
            r.evaluated.as_ref().map_or(String::new(), |e| e.split.clone()),
            num(r.evaluated.as_ref().map(|e| e.log_loss)),
            num(r.evaluated.as_ref().map(|e| e.ece)),
            num(r.evaluated.as_ref().map(|e| e.brier)),
            num(r.evaluated.as_ref().and_then(|e| e.temperature)),
            num(r.seconds),
            r.fingerprints.join("+"),
            r.date.clone(),
        ];
        out += &(fields.iter().map(|f| quote(f)).collect::<Vec<_>>().join(",") + "\n");
    }
    out
}

/// The rows as a self-contained HTML page; each run links to its `report.html` where one was
/// written (links relative to `base`, the page's folder, when they can be).
pub fn runs_html(rows: &[RunRow], base: &Path) -> String {
    let link = |r: &RunRow| {
        let report = r.dir.join("report.html");
        report.is_file().then(|| {
            let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            let (report, base) = (absolute(&report), absolute(base));
            match report.strip_prefix(&base) {
                Ok(relative) => url_path(relative),
                Err(_) => format!("file://{}", url_path(&report)),
            }
        })
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "imgclf runs" }
                style { (maud::PreEscaped("body{font:15px/1.45 system-ui,sans-serif;margin:16px 24px;color:#1d232b}table{border-collapse:collapse}td,th{padding:3px 9px;border:1px solid #d7dbe0;text-align:left}th{background:#f1f3f5}td.n{text-align:right;font-variant-numeric:tabular-nums}.mono{font-family:ui-monospace,monospace;font-size:13px}")) }
            }
            body {
                h1 { "Runs (" (rows.len()) ")" }
                p { "Equal feature fingerprints: the runs trained on the same cached features." }
                table #runs {
                    tr { @for c in COLUMNS { th { (c) } } }
                    @for r in rows {
                        @let c = cells(r);
                        tr {
                            td { @match link(r) { Some(href) => a href=(href) { (c[0]) }, None => (c[0]) } }
                            td { (c[1]) } td { (c[2]) } td { (c[3]) }
                            td.n { (c[4]) } td.n { (c[5]) } td.n { (c[6]) } td.n { (c[7]) } td { (c[8]) }
                            td.n { (c[9]) } td.n { (c[10]) } td.n { (c[11]) } td.n { (c[12]) } td.n { (c[13]) }
                            td.mono { (c[14]) } td { (c[15]) }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclf_heads::{
        Architecture, EpochStats, HeadConfig, Loss, RunHeader, RunInfo, Source, TrainConfig, Validation,
    };
    use imgclf_nets::{Arch, CnnConfig, CnnRunInfo, FineTuneConfig, FineTuneInfo};

    fn write_run(dir: &Path, run_json: String, seconds: &[f64]) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("run.json"), run_json).unwrap();
        let epochs: Vec<EpochStats> = seconds
            .iter()
            .enumerate()
            .map(|(i, &s)| EpochStats { epoch: i + 1, loss: 0.5, acc: 0.5, val_loss: None, val_acc: None, seconds: s })
            .collect();
        std::fs::write(dir.join("history.csv"), imgclf_heads::history_csv(&epochs)).unwrap();
    }

    fn header(format: &str) -> RunHeader {
        RunHeader { format: format.into(), created_by: "imgclf test".into(), command: Vec::new() }
    }

    fn source(backbone: &str) -> Source {
        Source {
            file: format!("/nowhere/gap_{backbone}.h5").into(),
            backbone: backbone.into(),
            model_sha256: format!("{backbone} sha"),
            model: PathBuf::new(),
            dim: 4,
            engine: String::new(),
        }
    }

    #[test]
    fn runs_of_every_kind_are_found_summarised_and_sorted() {
        let t = tempfile::tempdir().unwrap();
        let metrics = |acc: f64, loss: f64| EpochStats {
            epoch: 1,
            loss: 0.1,
            acc: 0.9,
            val_loss: Some(loss),
            val_acc: Some(acc),
            seconds: 1.0,
        };
        let classes = vec!["a".to_string(), "b".to_string()];
        let head = HeadConfig { architecture: Architecture::Mlp { hidden: 256 }, dropout: 0.5, l2: 0.0 };
        let head_run = RunInfo {
            header: header(imgclf_heads::RUN_FORMAT),
            config: TrainConfig { head, seed: 7, ..TrainConfig::tutorial() },
            classes: classes.clone(),
            sources: vec![source("Lite0"), source("Lite1")],
            loss: Loss::BinaryCrossentropy,
            validation: Validation::Split("validation".into()),
            best_epoch: 2,
            epochs_run: 2,
            metrics: metrics(0.9, 0.3),
            sweep: None,
        };
        write_run(&t.path().join("a/head"), serde_json::to_string(&head_run).unwrap(), &[1.0, 2.0]);
        let cnn = CnnRunInfo {
            header: header(imgclf_nets::CNN_RUN_FORMAT),
            config: CnnConfig { seed: 3, ..CnnConfig::tutorial(Arch::Lenet) },
            classes: classes.clone(),
            data: "/nowhere".into(),
            validation: Some("validation".into()),
            parameters: 1,
            epochs_run: 1,
            complete: true,
            metrics: Some(metrics(0.95, 0.2)),
        };
        write_run(&t.path().join("b/cnn"), serde_json::to_string(&cnn).unwrap(), &[4.5]);
        let tuned = FineTuneInfo {
            header: header(imgclf_nets::FINETUNE_RUN_FORMAT),
            config: FineTuneConfig { epochs: 2, batch_size: 8, learning_rate: 1e-4, momentum: 0.9, seed: 1 },
            classes,
            base_run: "/nowhere/head".into(),
            backbone: "Lite0".into(),
            model: "/nowhere/lite0.onnx".into(),
            model_sha256: "sha".into(),
            spec: String::new(),
            from: String::new(),
            to: String::new(),
            data: "/nowhere".into(),
            validation: Some("validation".into()),
            hidden: false,
            standardized: false,
            dropout: 0.5,
            before: None,
            history: vec![metrics(0.5, 0.9), metrics(0.8, 0.4)],
            engine: String::new(),
        };
        write_run(&t.path().join("b/tuned, \"x\""), serde_json::to_string(&tuned).unwrap(), &[1.0, 1.0]);
        std::fs::create_dir_all(t.path().join("b/.hidden.partial-1")).unwrap();
        std::fs::write(t.path().join("b/.hidden.partial-1/run.json"), "{}").unwrap();
        std::fs::create_dir_all(t.path().join("damaged")).unwrap();
        std::fs::write(t.path().join("damaged/run.json"), "{ not json").unwrap();

        let (rows, errors) = find_runs(&[t.path().to_path_buf(), t.path().join("typo")], SortBy::ValAcc);
        assert_eq!(errors.len(), 2);
        assert!(errors[0].to_string().ends_with("typo: is not a folder"), "{}", errors[0]);
        assert!(errors[1].to_string().contains("damaged/run.json: is damaged"), "{}", errors[1]);
        let names: Vec<String> = rows.iter().map(|r| r.dir.file_name().unwrap().to_string_lossy().into()).collect();
        assert_eq!(names, ["cnn", "head", "tuned, \"x\""], "best validation accuracy first");
        let (cnn, head, tuned) = (&rows[0], &rows[1], &rows[2]);
        assert_eq!(
            (cnn.kind.as_str(), cnn.head.as_str(), cnn.seed, cnn.seconds),
            ("train-cnn", "lenet", Some(3), Some(4.5))
        );
        assert_eq!((head.head.as_str(), head.epochs, head.backbones.join("+")), ("mlp-256", 2, "Lite0+Lite1".into()));
        assert_eq!(head.fingerprints, ["missing", "missing"]);
        assert_eq!(
            (tuned.val_acc, tuned.val_loss, tuned.head.as_str()),
            (Some(0.8), Some(0.4), "logistic (fine-tuned)")
        );

        let by_loss = find_runs(&[t.path().join("a"), t.path().join("b")], SortBy::LogLoss).0;
        assert_eq!(by_loss.iter().map(|r| r.val_loss.unwrap()).collect::<Vec<_>>(), [0.2, 0.3, 0.4]);
        // CSV quotes the folder with a comma and a quote; the table aligns its columns
        let csv = runs_csv(&rows);
        assert!(csv.contains("tuned, \"\"x\"\"\",fine-tune,Lite0,"), "{csv}");
        let table = runs_table(&rows);
        let at = |line: &str| line.find("train-").or(line.find("fine-")).unwrap();
        let starts: Vec<usize> = table.lines().skip(1).map(at).collect();
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "{table}");
        assert!(runs_html(&rows, t.path()).contains("<table id=\"runs\">"));
    }
}
