//! `imgclf report`: a run folder scored on a split, gathered into a [`Page`] and rendered as
//! one self-contained HTML file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use imgclf_dataset::{Photos, Sample};
use imgclf_heads::{
    Calibration, Evaluation, LineChart, Predictor, RunSummary, argmax, charts_svg, curve_charts, evaluate,
    read_history, sweep_charts,
};
use imgclf_nets::{AnyRun, SplitSource};
use imgclf_runtime::EngineConfig;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use ndarray::Array2;
use rayon::prelude::*;

use crate::binary::{BinaryCurves, binary_curves};
use crate::maps::cam_overlay;
use crate::photos::{THUMB, data_uri, thumbnail};
use crate::{ReportError, fingerprint_of, modified};

/// What to score and show.
#[derive(Debug, Clone)]
pub struct ReportOptions<'a> {
    /// The labelled split to score (default: validation, else a labelled test split).
    pub split: Option<&'a str>,
    /// Where the photos are: a head run's data root (its feature files hold paths relative to
    /// it; without it the page shows no photos), or another root for CNN and fine-tuned runs
    /// (default: the one trained on).
    pub data: Option<&'a Path>,
    /// Feature files to score a head run on instead of those in `run.json`.
    pub features: &'a [PathBuf],
    /// Bytes of feature rows a head run holds at once (default: the machine's).
    pub memory_budget: Option<usize>,
    /// How many of the most confidently wrong photos to show.
    pub top: usize,
    /// Correct photos shown per class.
    pub examples: usize,
    /// Where backbones run (CAM maps; fine-tuned runs' frozen start).
    pub engine: EngineConfig,
}

/// One backbone a run stands on.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    /// Its name.
    pub backbone: String,
    /// sha256 of its ONNX model.
    pub model_sha256: String,
    /// Feature width.
    pub width: Option<usize>,
    /// The feature file (head runs) or the model file.
    pub file: String,
    /// The feature file's cache fingerprint (`-` where there is none, or the file is gone).
    pub fingerprint: String,
}

/// A photo on the page.
#[derive(Debug, Clone, PartialEq)]
pub struct Shot {
    /// Its path relative to the data root.
    pub path: String,
    /// True class.
    pub truth: String,
    /// Predicted class.
    pub predicted: String,
    /// Probability of the predicted class.
    pub p_predicted: f32,
    /// Probability of the true class.
    pub p_true: f32,
    /// The photo as a data URI, or why it is not shown.
    pub photo: Result<String, String>,
    /// Its class activation map toward the predicted class, as a data URI, where made.
    pub cam: Option<String>,
}

/// Everything a report page shows, gathered; [`Page::html`] renders it.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The run folder's name.
    pub title: String,
    /// `train-head`, `train-cnn` or `fine-tune`.
    pub kind: String,
    /// What was trained, as label and value.
    pub facts: Vec<(String, String)>,
    /// The backbones with their models and feature files.
    pub sources: Vec<SourceRow>,
    /// The training settings, flattened (`head.dropout` = `0.5`).
    pub config: Vec<(String, String)>,
    /// Loss and accuracy per epoch as an SVG document.
    pub curves: Option<String>,
    /// The probe's sweep for `C` (validation log loss and accuracy against C), as SVG.
    pub sweep: Option<String>,
    /// The split scored.
    pub split: String,
    /// The temperature its probabilities were calibrated with, if any.
    pub temperature: Option<f64>,
    /// Its scores.
    pub evaluation: Evaluation,
    /// Two classes: ROC and precision-recall, with their chart as SVG.
    pub binary: Option<(BinaryCurves, String)>,
    /// The reliability diagram (accuracy against confidence per bin) as SVG.
    pub reliability: String,
    /// The most confidently wrong photos, worst first.
    pub top_losses: Vec<Shot>,
    /// Per class, correct photos (the most confident first).
    pub correct: Vec<(String, Vec<Shot>)>,
    /// Why maps are not shown beside the top losses, when they are not.
    pub cam_note: Option<String>,
    /// What is missing from the run folder or could not be shown.
    pub notes: Vec<String>,
}

/// Scores the run in `dir` on a split and gathers its page. Fails (one line, naming the file)
/// for a folder that is no run, a damaged `run.json`, or a split that cannot be scored; what is
/// merely missing (history, photos, maps) becomes a note on the page.
pub fn report(dir: &Path, options: &ReportOptions) -> Result<Page, ReportError> {
    let run = AnyRun::open(dir)?;
    let summary = run.summary();
    let kind = summary.kind;
    let mut notes = Vec::new();
    let history = read_history(dir).unwrap_or_else(|why| {
        notes.push(why);
        Vec::new()
    });

    let head_run = matches!(run, AnyRun::Head(_));
    let source = SplitSource {
        data: options.data.filter(|_| !head_run),
        features: options.features,
        memory_budget: options.memory_budget,
    };
    let scored = run.score_split(source, options.split, &options.engine)?;
    notes.extend(scored.skipped.iter().map(|e| format!("skipped while scoring: {e}")));
    let Some(labels) = &scored.labels else {
        return Err(ReportError::run(
            dir,
            format!("split `{}` is unlabelled: nothing to score (choose a labelled --split)", scored.split),
        ));
    };
    let evaluation = evaluate(&scored.classes, scored.probs.view(), labels, &scored.paths, options.top);
    // photos sit under the data root, beside the manifest that lists them, or in tars or Parquet files
    let photos = match options.data.map(Path::to_path_buf).or_else(|| summary.data.clone()) {
        Some(data) => match Photos::open(&data) {
            Ok(photos) => Some(photos),
            Err(e) => {
                notes.push(format!("no photos: {e}"));
                None
            }
        },
        None => {
            notes.push("no photos: a head run's feature files do not record the data root; pass --data DIR".into());
            None
        }
    };
    let digest = |row: usize| scored.photos.as_ref().map(|p| p[row]);
    if let (true, Some(photos), Some(_)) = (head_run, &photos, &scored.photos) {
        same_photos(photos, &scored.paths, digest)?;
    }

    let (wrong, right) = pick_rows(&evaluation, &scored.paths, &scored.probs, labels, options.examples);
    let shot = |row: usize| {
        let p = scored.probs.row(row);
        let predicted = argmax(p);
        Shot {
            path: scored.paths[row].clone(),
            truth: scored.classes[labels[row]].clone(),
            predicted: scored.classes[predicted].clone(),
            p_predicted: p[predicted],
            p_true: p[labels[row]],
            photo: match &photos {
                Some(photos) => thumbnail(&photos.sample(&scored.paths[row]), digest(row)),
                None => Err("no data root".into()),
            },
            cam: None,
        }
    };
    let mut top_losses: Vec<Shot> = wrong.par_iter().map(|&row| shot(row)).collect();
    let correct = right
        .iter()
        .enumerate()
        .map(|(class, rows)| (scored.classes[class].clone(), rows.par_iter().map(|&row| shot(row)).collect()))
        .collect();
    let cam_note = match (&run, &photos) {
        (AnyRun::Head(run), Some(photos)) if run.head.hidden.is_none() => {
            let shown: Vec<Sample> = top_losses.iter().map(|s| photos.sample(&s.path)).collect();
            add_maps(run, &shown, &options.engine, &mut top_losses).err()
        }
        (AnyRun::Head(run), _) if run.head.hidden.is_some() => {
            Some("no maps: CAM needs a logistic head; this head has a hidden layer".into())
        }
        (AnyRun::Head(_), _) => Some("no maps: no photos (pass --data)".into()),
        _ => Some(format!("no maps: CAM is drawn for train-head runs with a logistic head, not {kind} runs")),
    };

    let best = summary.best_epoch.or((!history.is_empty()).then_some(history.len()));
    let curves = (!history.is_empty()).then(|| charts_svg(&curve_charts(&history, best), (1100, 420))).transpose()?;
    let binary = match scored.classes.len() {
        2 => {
            let scores: Vec<f32> = scored.probs.column(1).to_vec();
            let positive: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
            binary_curves(&scores, &positive).map(binary_chart).transpose()?
        }
        _ => None,
    };
    let reliability = reliability_chart(&evaluation.calibration)?;
    let sweep = match &run {
        AnyRun::Head(run) => run.info.sweep.as_ref().map(|s| charts_svg(&sweep_charts(s), (1100, 420))).transpose()?,
        _ => None,
    };
    Ok(Page {
        title: dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned()),
        kind: kind.into(),
        facts: facts(dir, &summary, &run, photos.as_ref().map(|p| p.root.as_path()), history.len(), &scored.split),
        sources: sources(&summary),
        config: summary.settings.clone(),
        curves,
        sweep,
        temperature: run.temperature().map(|t| t.temperature),
        split: scored.split.clone(),
        evaluation,
        binary,
        reliability,
        top_losses,
        correct,
        cam_note,
        notes,
    })
}

/// Photos checked against a head run's feature files before a page shows any of them.
const PHOTOS_CHECKED: usize = 32;

/// Refuses a data root that is not the one the features were made from: none of the first
/// [`PHOTOS_CHECKED`] rows' photos is there as it was (missing, or another digest). Where some
/// are, each shown photo is still checked, and a changed one is shown as such.
fn same_photos(photos: &Photos, paths: &[String], digest: impl Fn(usize) -> Option<u64>) -> Result<(), ReportError> {
    let checked = paths.len().min(PHOTOS_CHECKED);
    let results: Vec<Result<(), String>> = (0..checked)
        .map(|row| crate::photos::recorded_photo(&photos.sample(&paths[row]), digest(row)).map(drop))
        .collect();
    if checked == 0 || results.iter().any(Result::is_ok) {
        return Ok(());
    }
    let missing = results.iter().filter(|r| r.as_ref().is_err_and(|e| e == "missing")).count();
    Err(ReportError::run(
        &photos.root,
        format!(
            "not the photos these features were made from: of the split's first {checked} photos, {missing} are \
             missing there and {} differ (pass the data root `extract` read, as --data)",
            checked - missing
        ),
    ))
}

/// The rows of `evaluation`'s top losses (worst first, as `evaluate` ranks them) and, per
/// class, the most confident correct rows (at most `examples`).
fn pick_rows(
    evaluation: &Evaluation,
    paths: &[String],
    probs: &Array2<f32>,
    labels: &[usize],
    examples: usize,
) -> (Vec<usize>, Vec<Vec<usize>>) {
    let row_of: HashMap<&str, usize> = paths.iter().enumerate().map(|(i, p)| (p.as_str(), i)).collect();
    let wrong = evaluation.top_losses.iter().map(|t| row_of[t.path.as_str()]).collect();
    let mut right = vec![Vec::new(); probs.ncols()];
    for i in (0..labels.len()).filter(|&i| argmax(probs.row(i)) == labels[i]) {
        right[labels[i]].push(i);
    }
    for rows in &mut right {
        rows.sort_by(|&a, &b| probs[[b, labels[b]]].total_cmp(&probs[[a, labels[a]]]).then(a.cmp(&b)));
        rows.truncate(examples);
    }
    (wrong, right)
}

/// Each shot's map toward its predicted class from the run's first backbone, or why none.
fn add_maps(
    run: &imgclf_heads::Run,
    samples: &[Sample],
    engine: &EngineConfig,
    shots: &mut [Shot],
) -> Result<(), String> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut predictor = Predictor::load(run.clone(), engine, true).map_err(|e| format!("no maps: {e}"))?;
    let predictions = predictor.predict(samples, 16).map_err(|e| format!("no maps: {e}"))?;
    for (row, sample) in predictions.samples.iter().enumerate() {
        let shot = samples.iter().position(|s| s.rel == sample.rel).expect("predictions name the photos given");
        let class = argmax(predictions.probs.row(row));
        let picture =
            cam_overlay(&predictor, &predictions, row, 0, class, THUMB).map_err(|e| format!("no maps: {e}"))?;
        shots[shot].cam = Some(data_uri(&picture));
    }
    Ok(())
}

/// The reliability diagram: each non-empty bin's accuracy at its mean confidence, against the
/// diagonal a calibrated model follows, as SVG.
fn reliability_chart(c: &Calibration) -> Result<String, ReportError> {
    let points = c.bins.iter().filter(|b| b.rows > 0).map(|b| (b.confidence, b.accuracy)).collect();
    let chart = LineChart {
        caption: format!("reliability ({} bins, ECE {:.4})", c.bins.len(), c.ece),
        x_desc: "confidence (top probability)".into(),
        y_desc: "accuracy".into(),
        x: 0.0..1.0,
        y: 0.0..1.02,
        series: vec![("this run".into(), points), ("calibrated".into(), vec![(0.0, 0.0), (1.0, 1.0)])],
        mark: None,
    };
    charts_svg(&[chart], (520, 420)).map_err(ReportError::Head)
}

/// ROC and precision-recall side by side, as SVG.
fn binary_chart(c: BinaryCurves) -> Result<(BinaryCurves, String), ReportError> {
    let chart = |caption: String, x: &str, y: &str, points: Vec<(f64, f64)>, chance: Vec<(f64, f64)>| LineChart {
        caption,
        x_desc: x.into(),
        y_desc: y.into(),
        x: 0.0..1.0,
        y: 0.0..1.02,
        series: vec![("this run".into(), points), ("chance".into(), chance)],
        mark: None,
    };
    // chance: the share of positives, the precision once every row is called positive
    let base = c.pr.last().map_or(0.0, |p| p.1);
    let charts = [
        chart(
            format!("ROC (AUC {:.4})", c.roc_auc),
            "false positive rate",
            "true positive rate",
            c.roc.clone(),
            vec![(0.0, 0.0), (1.0, 1.0)],
        ),
        chart(
            format!("precision-recall (AP {:.4})", c.average_precision),
            "recall",
            "precision",
            c.pr.clone(),
            vec![(0.0, base), (1.0, base)],
        ),
    ];
    let svg = charts_svg(&charts, (1000, 420)).map_err(ReportError::Head)?;
    Ok((c, svg))
}

/// What was trained, as label and value.
fn facts(
    dir: &Path,
    summary: &RunSummary,
    run: &AnyRun,
    root: Option<&Path>,
    epochs: usize,
    split: &str,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: String| out.push((k.into(), v));
    add("run folder", dir.display().to_string());
    add("kind", summary.kind.into());
    if let Some(date) = modified(&dir.join("run.json")) {
        add("written", date);
    }
    add("written by", summary.header.created_by.clone());
    if !summary.header.command.is_empty() {
        add("command", summary.header.command.join(" "));
    }
    let absolute = |r: &Path| std::path::absolute(r).unwrap_or_else(|_| r.to_path_buf()).display().to_string();
    add("data root", root.map_or("not recorded (pass --data)".into(), absolute));
    let classes = run.classes();
    add("classes", format!("{}: {}", classes.len(), classes.join(", ")));
    if let Some(seed) = summary.seed {
        add("seed", seed.to_string());
    }
    add("engine", summary.engine.clone().unwrap_or_else(|| "not recorded".into()));
    add("epochs run", epochs.to_string());
    if let Some(best) = summary.best_epoch {
        add("best epoch (weights kept)", best.to_string());
    }
    if let Some(validation) = &summary.validation {
        add("validated on", validation.clone());
    }
    if let Some(base) = &summary.base_run {
        add("fine-tuned from", base.display().to_string());
    }
    add("probabilities", imgclf_heads::calibration_note(run.temperature(), split));
    out
}

/// The backbones of a run: its feature files (head runs) or its model (fine-tuned runs).
fn sources(summary: &RunSummary) -> Vec<SourceRow> {
    summary
        .backbones
        .iter()
        .map(|b| SourceRow {
            backbone: b.name.clone(),
            model_sha256: b.model_sha256.clone(),
            width: b.width,
            file: b.features.as_ref().unwrap_or(&b.model).display().to_string(),
            fingerprint: match &b.features {
                Some(file) => fingerprint_of(file).unwrap_or_else(|| "- (file missing or unreadable)".into()),
                None => "-".into(),
            },
        })
        .collect()
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1180px;padding:16px 24px;color:#1d232b}
h1{font-size:26px;margin:8px 0}h2{font-size:20px;margin:28px 0 8px;border-bottom:1px solid #d7dbe0;padding-bottom:4px}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 9px;border:1px solid #d7dbe0;text-align:left;vertical-align:top}
th{background:#f1f3f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.kv td:first-child{color:#56606b;white-space:nowrap}.mono{font-family:ui-monospace,monospace;font-size:13px;word-break:break-all}
.metrics{display:flex;gap:28px;font-size:18px}.metrics b{font-size:26px;display:block}
.conf td{text-align:center;min-width:52px}.conf small{display:block;color:inherit;opacity:.8}
.shots{display:flex;flex-wrap:wrap;gap:12px}.shot{width:330px;border:1px solid #d7dbe0;border-radius:6px;padding:6px;font-size:13px}
.shot.ok{width:170px}.pics{display:flex;gap:6px}.pics img{width:160px;border-radius:3px}
.missing{width:160px;height:110px;display:flex;align-items:center;justify-content:center;background:#eceff2;color:#8a4b08;text-align:center;font-size:12px}
.bad{color:#b3261e}.good{color:#1b7f3b}.note{background:#fff6e0;border:1px solid #f0d9a0;padding:6px 10px;border-radius:4px;margin:6px 0}
svg{max-width:100%;height:auto}.path{color:#56606b;word-break:break-all}
";

impl Page {
    /// The page as one HTML document: styles inline, charts as inline SVG, photos as data URIs.
    pub fn html(&self) -> String {
        let e = &self.evaluation;
        let markup = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { "imgclf report: " (self.title) }
                    style { (PreEscaped(STYLE)) }
                }
                body {
                    h1 { (self.title) " " small { "(" (self.kind) ", " (e.rows) " images of `" (self.split) "`)" } }
                    @for note in &self.notes { div.note { (note) } }
                    section #trained {
                        h2 { "What was trained" }
                        table.kv { @for (k, v) in &self.facts { tr { td { (k) } td { (v) } } } }
                        @if !self.sources.is_empty() {
                            table #sources {
                                tr { th { "backbone" } th { "model sha256" } th { "width" } th { "file" } th { "feature fingerprint" } }
                                @for s in &self.sources {
                                    tr {
                                        td { (s.backbone) }
                                        td.mono title=(s.model_sha256) { (s.model_sha256.get(..16).unwrap_or(&s.model_sha256)) "…" }
                                        td.n { @if let Some(w) = s.width { (w) } @else { "-" } }
                                        td.mono { (s.file) }
                                        td.mono { (s.fingerprint) }
                                    }
                                }
                            }
                        }
                        details { summary { "settings (" (self.config.len()) ")" }
                            table.kv { @for (k, v) in &self.config { tr { td { (k) } td.mono { (v) } } } }
                        }
                    }
                    section #curves {
                        h2 { "Training curves" }
                        @match &self.curves {
                            Some(svg) => { figure { (PreEscaped(svg)) } }
                            None => { p { "No epochs recorded." } }
                        }
                        @if let Some(svg) = &self.sweep {
                            figure #sweep { (PreEscaped(svg)) }
                        }
                    }
                    section #metrics {
                        h2 { "Metrics on `" (self.split) "`" }
                        div.metrics {
                            div { "accuracy" b { (format!("{:.4}", e.accuracy)) } }
                            div { "log loss" b { (format!("{:.4}", e.log_loss)) } }
                            div { "ECE" b { (format!("{:.4}", e.calibration.ece)) } }
                            div { "Brier" b { (format!("{:.4}", e.calibration.brier)) } }
                            div { "images" b { (e.rows) } }
                            @if let Some((c, _)) = &self.binary {
                                div { "ROC AUC" b { (format!("{:.4}", c.roc_auc)) } }
                                div { "average precision" b { (format!("{:.4}", c.average_precision)) } }
                            }
                        }
                        table #per-class {
                            tr { th { "class" } th { "precision" } th { "recall" } th { "F1" } th { "support" } }
                            @for c in &e.classes {
                                tr { td { (c.name) } td.n { (format!("{:.4}", c.precision)) } td.n { (format!("{:.4}", c.recall)) }
                                     td.n { (format!("{:.4}", c.f1)) } td.n { (c.support) } }
                            }
                        }
                        h2 { "Confusion matrix" }
                        p { "Rows: true class; columns: predicted. Each cell: the count, and below it the share of its row." }
                        (self.confusion())
                        @if let Some((_, svg)) = &self.binary {
                            h2 { "ROC and precision-recall" }
                            p { "Positive class: " b { (e.classes[1].name) } " (the probability of the second class, thresholds at every distinct value)." }
                            figure #binary { (PreEscaped(svg)) }
                        }
                        h2 { "Reliability" }
                        p { "Photos binned by their top probability (" (e.calibration.bins.len()) " equal-width bins): each point is a bin's accuracy at its mean confidence; a calibrated model's points lie on the diagonal. ECE weighs each bin's gap by its photos (Guo et al. 2017)." }
                        figure #reliability { (PreEscaped(&self.reliability)) }
                        table #bins {
                            tr { th { "confidence" } th { "photos" } th { "mean confidence" } th { "accuracy" } }
                            @for b in e.calibration.bins.iter().filter(|b| b.rows > 0) {
                                tr { td { (format!("({:.3}, {:.3}]", b.lo, b.hi)) } td.n { (b.rows) }
                                     td.n { (format!("{:.4}", b.confidence)) } td.n { (format!("{:.4}", b.accuracy)) } }
                            }
                        }
                    }
                    section #top-losses {
                        h2 { "Top losses (most confidently wrong first)" }
                        @if let Some(note) = &self.cam_note { div.note { (note) } }
                        @if self.top_losses.is_empty() { p { "No photo of this split is misclassified." } }
                        div.shots { @for s in &self.top_losses { (shot(s, false)) } }
                    }
                    section #correct {
                        h2 { "Correct, for contrast (most confident first)" }
                        @for (class, shots) in &self.correct {
                            h3 { (class) }
                            @if shots.is_empty() { p { "none correct" } }
                            div.shots { @for s in shots { (shot(s, true)) } }
                        }
                    }
                }
            }
        };
        markup.into_string()
    }

    fn confusion(&self) -> Markup {
        let e = &self.evaluation;
        html! {
            table.conf #confusion {
                tr { th { "true \\ predicted" } @for c in &e.classes { th { (c.name) } } }
                @for (t, row) in e.confusion.iter().enumerate() {
                    @let total = row.iter().sum::<usize>().max(1) as f64;
                    tr {
                        th { (e.classes[t].name) }
                        @for (p, &count) in row.iter().enumerate() {
                            @let share = count as f64 / total;
                            @let (bg, fg) = cell_colours(share, t == p);
                            td style=(format!("background:{bg};color:{fg}")) data-true=(t) data-predicted=(p) {
                                span.count { (count) } small { (format!("{:.1}%", 100.0 * share)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A cell's background and text colour: blue for the diagonal, red off it, by row share.
fn cell_colours(share: f64, diagonal: bool) -> (String, &'static str) {
    let (r, g, b) = if diagonal { (31.0, 94.0, 180.0) } else { (190.0, 40.0, 40.0) };
    let mix = |c: f64| (255.0 + (c - 255.0) * share.sqrt()).round() as u8;
    (format!("rgb({},{},{})", mix(r), mix(g), mix(b)), if share > 0.45 { "#fff" } else { "#1d232b" })
}

fn shot(s: &Shot, correct: bool) -> Markup {
    let picture = |uri: &Result<String, String>, alt: &str| match uri {
        Ok(uri) => html! { img src=(uri) alt=(alt); },
        Err(why) => html! { div.missing { "photo " (why) } },
    };
    html! {
        div.shot.ok[correct] {
            div.pics {
                (picture(&s.photo, &s.path))
                @if let Some(cam) = &s.cam { img src=(cam) alt=(format!("class activation map of {}", s.path)); }
            }
            div.path { (s.path) }
            @if correct {
                div.good { (s.truth) " " (format!("{:.1}%", 100.0 * s.p_true)) }
            } @else {
                div { "true " b { (s.truth) } " (" (format!("{:.1}%", 100.0 * s.p_true)) ")" }
                div.bad { "predicted " b { (s.predicted) } " (" (format!("{:.1}%", 100.0 * s.p_predicted)) ")" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclf_heads::evaluate;
    use ndarray::array;

    /// A page as `report` gathers it, with a hostile file name and class name.
    fn page() -> Page {
        let classes = ["cats".to_string(), "<b>dogs</b>".to_string()];
        let probs = array![[0.9f32, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]];
        let paths: Vec<String> =
            ["cats/1.jpg", "dogs/2.jpg", "cats/<script>alert(1)<\\script>.jpg", "dogs/4.jpg"].map(String::from).into();
        let labels = [0, 1, 0, 1];
        let evaluation = evaluate(&classes, probs.view(), &labels, &paths, 0);
        let history = vec![
            imgclf_heads::EpochStats {
                epoch: 1,
                loss: 0.6,
                acc: 0.7,
                val_loss: Some(0.5),
                val_acc: Some(0.75),
                seconds: 1.0,
            },
            imgclf_heads::EpochStats {
                epoch: 2,
                loss: 0.4,
                acc: 0.8,
                val_loss: Some(0.45),
                val_acc: Some(0.75),
                seconds: 1.0,
            },
        ];
        let curves = charts_svg(&curve_charts(&history, Some(2)), (1100, 420)).unwrap();
        let sweep = imgclf_heads::Sweep {
            chosen: 10f64.powf(-0.5),
            points: [(-6.0, 0.69, 0.5), (-0.5, 0.02, 0.99), (6.0, 0.05, 0.98)]
                .map(|(c, val_loss, val_acc)| imgclf_heads::SweepPoint {
                    c: 10f64.powf(c),
                    val_loss,
                    val_acc,
                    iterations: 3,
                })
                .to_vec(),
        };
        let scores: Vec<f32> = probs.column(1).to_vec();
        let binary = binary_curves(&scores, &labels.map(|l| l == 1)).map(binary_chart).transpose().unwrap();
        let photo = Ok(data_uri(&image::RgbImage::from_pixel(THUMB, 100, image::Rgb([10, 120, 200]))));
        let wrong = |row: usize, photo: Result<String, String>| Shot {
            path: paths[row].clone(),
            truth: classes[labels[row]].clone(),
            predicted: classes[1 - labels[row]].clone(),
            p_predicted: probs[[row, 1 - labels[row]]],
            p_true: probs[[row, labels[row]]],
            photo,
            cam: None,
        };
        Page {
            title: "<i>run</i>".into(),
            kind: "train-head".into(),
            facts: vec![("command".into(), "imgclf train-head --out '<run>'".into())],
            sources: vec![SourceRow {
                backbone: "EfficientNet-Lite0".into(),
                model_sha256: "ab".repeat(32),
                width: Some(1280),
                file: "features/gap_EfficientNet-Lite0.h5".into(),
                fingerprint: "cd".repeat(32),
            }],
            config: imgclf_heads::settings(&serde_json::json!({"head": {"dropout": 0.5}, "seed": 0})),
            curves: Some(curves),
            sweep: Some(charts_svg(&sweep_charts(&sweep), (1100, 420)).unwrap()),
            split: "validation".into(),
            temperature: None,
            reliability: reliability_chart(&evaluation.calibration).unwrap(),
            evaluation,
            binary,
            top_losses: vec![wrong(2, photo.clone()), wrong(3, Err("missing".into()))],
            correct: vec![
                (classes[0].clone(), vec![Shot { cam: None, ..wrong(0, photo) }]),
                (classes[1].clone(), vec![]),
            ],
            cam_note: Some("no maps: CAM needs a logistic head".into()),
            notes: vec!["no history.csv".into()],
        }
    }

    #[test]
    fn the_page_has_every_section_and_escapes_names_from_files_and_config() {
        let html = page().html();
        for id in [
            "trained",
            "sources",
            "curves",
            "sweep",
            "metrics",
            "per-class",
            "confusion",
            "binary",
            "reliability",
            "bins",
            "top-losses",
            "correct",
        ] {
            assert!(html.contains(&format!("id=\"{id}\"")), "no #{id}");
        }
        assert!(!html.contains("<script") && !html.contains("<b>dogs") && !html.contains("<i>run"), "unescaped markup");
        assert!(html.contains("cats/&lt;script&gt;alert(1)&lt;\\script&gt;.jpg"), "the hostile name shows as text");
        assert!(html.contains("&lt;b&gt;dogs&lt;/b&gt;") && html.contains("&lt;i&gt;run&lt;/i&gt;"));
        assert!(html.contains("photo missing") && html.contains("no maps: CAM needs a logistic head"));
        assert!(html.contains("head.dropout") && html.contains("best epoch (2)"));
        assert!(html.contains("chosen C = 3.162e-1"), "the sweep's choice is marked");
        // the confusion table's cells are evaluate's counts: row cats [1, 1], row dogs [1, 1]
        let counts: Vec<&str> =
            html.split("<span class=\"count\">").skip(1).map(|c| &c[..c.find('<').unwrap()]).collect();
        assert_eq!(counts, ["1", "1", "1", "1"]);
    }

    #[test]
    fn the_page_is_self_contained_and_small() {
        let html = page().html();
        // nothing fetched: no scheme-relative, absolute-path or http(s) references anywhere,
        // and photos are data: URIs (the SVG namespace is a name, not a request)
        let outside = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for bad in ["http:", "https:", "src=\"/", "href=\"/", "src=\"//", "url(", "<link", "<script", "@import"] {
            assert!(!outside.contains(bad), "the page refers outside itself: {bad}");
        }
        assert!(html.matches("src=\"data:image/jpeg;base64,").count() == 2, "two photos inline");
        // two SVG charts, a table of 2 classes and 3 thumbnails: the page stays under 200 KB
        // (a 2-class, 800-photo report is about 300 KB with 16 top losses, their maps and 6 examples)
        assert!(html.len() < 200_000, "{} bytes", html.len());
    }

    #[test]
    fn top_losses_are_the_most_confidently_wrong_and_examples_the_most_confident_right() {
        let probs = array![[0.9f32, 0.1], [0.4, 0.6], [0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.55, 0.45]];
        let labels = [0, 0, 0, 1, 1, 1];
        let (classes, paths) = (["a", "b"].map(String::from), (0..6).map(|i| format!("{i}.jpg")).collect::<Vec<_>>());
        let picks = |top: usize, examples: usize| {
            let evaluation = evaluate(&classes, probs.view(), &labels, &paths, top);
            pick_rows(&evaluation, &paths, &probs, &labels, examples)
        };
        let (wrong, right) = picks(2, 1);
        assert_eq!(wrong, vec![2, 3], "p_true 0.1 then 0.2; row 1 (0.4) and 5 (0.45) left out");
        assert_eq!(right, vec![vec![0], vec![4]]);
        assert_eq!(picks(0, 0), (vec![], vec![vec![], vec![]]));
    }
}
