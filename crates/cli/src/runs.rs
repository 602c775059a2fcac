//! `evaluate` and `predict`: any run folder (train-head, train-cnn, fine-tune) on a labelled
//! split, a split into a Kaggle CSV, or image files.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use imgclf_dataset::limits::{CLIP, INFERENCE_BATCH, LISTED, TOP};
use imgclf_heads::{CsvStyle, Evaluated, confusion_png, evaluate, prediction_csv};
use imgclf_nets::{AnyRun, Scored, SplitSource};

use crate::budget::BudgetArgs;
use crate::engine::EngineArgs;
use crate::output::{PICTURE, PREDICTION_CSV, save_image};
use crate::show::warn_skipped;

#[derive(clap::Args)]
#[command(after_help = "Example:\n  imgclf evaluate --run runs/exp1 --split validation\n\n\
Prints accuracy, log loss, per-class precision/recall/F1, the confusion matrix (also written as\n\
RUN/confusion.png) and the most confidently wrong images.")]
pub struct EvaluateArgs {
    /// Run folder written by train-head or train-cnn.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// Labelled split to score (default: validation, else a labelled test split).
    #[arg(long)]
    split: Option<String>,
    /// Feature files to use instead of the ones named in run.json (same backbones, same order).
    #[arg(long, value_name = "FILE.h5", num_args = 1..)]
    features: Vec<PathBuf>,
    /// CNN runs (train-cnn): the data root to score (default: the one trained on).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// How many of the most confidently wrong images to list.
    #[arg(long, default_value_t = 10, value_parser = TOP.parser_usize())]
    top: usize,
    /// Score without the run's temperature (see `imgclf calibrate`).
    #[arg(long)]
    uncalibrated: bool,
    /// Fine-tuned runs: where the frozen start of the backbone runs.
    #[command(flatten)]
    engine: EngineArgs,
    /// Head runs: feature rows held at once.
    #[command(flatten)]
    budget: BudgetArgs,
}

pub fn evaluate_run(args: EvaluateArgs) -> anyhow::Result<()> {
    let mut run = AnyRun::open(&args.run).context("--run")?;
    if args.uncalibrated {
        run.set_temperature(None);
    }
    let source =
        SplitSource { data: args.data.as_deref(), features: &args.features, memory_budget: args.budget.given() };
    let scored = scored(&run, source, args.split.as_deref(), &args.engine)?;
    let Some(labels) = &scored.labels else {
        bail!("--split {}: unlabelled, nothing to score (use `imgclf predict` for it)", scored.split);
    };
    let evaluation = evaluate(&scored.classes, scored.probs.view(), labels, &scored.paths, args.top);
    report(&args.run, &scored.split, &evaluation)?;
    say!("{}", calibration_line(&run, &scored.split));
    let temperature = run.temperature().map(|t| t.temperature);
    Evaluated::new(&evaluation, &scored.split, temperature).write(&args.run).context("--run")?;
    Ok(())
}

/// Whether the run's probabilities are calibrated, and whether the scored split is held out
/// from the temperature.
fn calibration_line(run: &AnyRun, split: &str) -> String {
    let note = imgclf_heads::calibration_note(run.temperature(), split);
    match run.temperature() {
        None => format!("{note} (`imgclf calibrate --run {}` fits a temperature)", run.dir().display()),
        Some(_) => note,
    }
}

/// A split through a run, with the flags that named its source in the error context.
fn scored(run: &AnyRun, source: SplitSource<'_>, split: Option<&str>, engine: &EngineArgs) -> anyhow::Result<Scored> {
    let context = match (source.data, source.features.is_empty(), run) {
        (Some(_), _, _) => "--data",
        (None, false, _) => "--features",
        (None, true, AnyRun::Head(_)) => "the feature files named in run.json (pass --features to use others)",
        (None, true, _) => "the data named in run.json (pass --data to use another)",
    };
    let scored = run.score_split(source, split, &engine.config(None)?).context(context)?;
    warn_skipped(&scored.skipped);
    Ok(scored)
}

/// Prints an evaluation and draws its confusion matrix into the run folder.
fn report(run: &Path, split: &str, evaluation: &imgclf_heads::Evaluation) -> anyhow::Result<()> {
    say!("{} on `{split}`", run.display());
    say!("{evaluation}");
    let png = run.join("confusion.png");
    confusion_png(evaluation, &format!("confusion matrix, `{split}` split"), &png)
        .with_context(|| format!("writing {}", png.display()))?;
    say!("\nconfusion matrix drawn in {}", png.display());
    Ok(())
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  imgclf predict --run runs/exp1 photo.jpg more/ --annotate out/     # image files: one line each\n  \
imgclf predict --run runs/exp1 --split test --csv submission.csv   # a cached split: a Kaggle CSV\n\n\
Image files go through every backbone of the run (model files checked against run.json's sha256),\n\
then the head. CSV rows are `id,label` in natural id order, the id being the file stem; with two\n\
classes the label is the probability of the second class, clipped to [--clip, 1 - --clip]; with\n\
more, the class name."
)]
pub struct PredictArgs {
    /// Run folder written by train-head or train-cnn.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// Image files or folders of images to predict (instead of a cached split).
    #[arg(value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// Images: print the K most likely classes of each.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = LISTED.parser_usize())]
    top: usize,
    /// Images: one JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Images: write a 400-px-wide copy of each, labelled, into DIR (same file names); a file
    /// there that imgclf did not write is replaced only with --force.
    #[arg(long, value_name = "DIR")]
    annotate: Option<PathBuf>,
    /// Images (and fine-tuned runs): where the backbone runs.
    #[command(flatten)]
    engine: EngineArgs,
    /// Head runs' --split: feature rows held at once.
    #[command(flatten)]
    budget: BudgetArgs,
    /// Images: images per inference call.
    #[arg(long, default_value_t = 32, value_parser = INFERENCE_BATCH.parser_usize())]
    batch: usize,
    /// Split to predict into --csv.
    #[arg(long, default_value = "test")]
    split: String,
    /// CSV file to write from the cached split (an existing file is replaced only with --force).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Replace an existing --csv file, or files in --annotate, that imgclf did not write (never
    /// a run's own files or a feature file).
    #[arg(long)]
    force: bool,
    /// Two classes: clip probabilities to [clip, 1 - clip], bounding the log loss of a confident mistake.
    #[arg(long, default_value_t = 0.005, value_parser = CLIP.parser_f32())]
    clip: f32,
    /// One probability column per class instead of a label column.
    #[arg(long)]
    proba: bool,
    /// Probabilities without the run's temperature (see `imgclf calibrate`).
    #[arg(long)]
    uncalibrated: bool,
    /// Feature files to use instead of the ones named in run.json (same backbones, same order).
    #[arg(long, value_name = "FILE.h5", num_args = 1..)]
    features: Vec<PathBuf>,
    /// CNN runs (train-cnn): the data root whose --split goes into --csv (default: the one trained on).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

pub fn predict(args: PredictArgs) -> anyhow::Result<()> {
    if !args.images.is_empty() {
        if args.csv.is_some() {
            bail!("--csv writes a cached split; image files are answered on stdout (drop one of them)");
        }
        return predict_images(&args);
    }
    let Some(csv_path) = &args.csv else {
        bail!("give image files to predict, or --csv FILE to predict the cached --split");
    };
    PREDICTION_CSV.check("--csv", std::slice::from_ref(csv_path), args.force)?;
    let mut run = AnyRun::open(&args.run).context("--run")?;
    if args.uncalibrated {
        run.set_temperature(None);
    }
    let source =
        SplitSource { data: args.data.as_deref(), features: &args.features, memory_budget: args.budget.given() };
    let Scored { classes, paths, probs, .. } = scored(&run, source, Some(&args.split), &args.engine)?;
    let style = match (args.proba, classes.len()) {
        (true, _) => CsvStyle::Proba,
        (false, 2) => CsvStyle::Probability { clip: args.clip },
        (false, _) => CsvStyle::Label,
    };
    let csv = prediction_csv(&classes, &paths, probs.view(), style);
    PREDICTION_CSV.write(csv_path, csv.as_bytes()).with_context(|| format!("--csv {}", csv_path.display()))?;
    say!("{} rows of `{}` -> {}", paths.len(), args.split, csv_path.display());
    Ok(())
}

fn predict_images(args: &PredictArgs) -> anyhow::Result<()> {
    let samples = imgclf_heads::image_samples(&args.images)?;
    if samples.is_empty() {
        bail!(
            "no image files in {}",
            args.images.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    if let Some(dir) = &args.annotate {
        let outs = samples.iter().filter_map(|s| Some(dir.join(s.path.file_name()?))).collect::<Vec<_>>();
        PICTURE.check_in("--annotate", dir, &outs, args.force)?;
    }
    let mut run = AnyRun::open(&args.run).context("--run")?;
    if args.uncalibrated {
        run.set_temperature(None);
    }
    let predictions = run.predict_samples(&samples, &args.engine.config(None)?, args.batch).context("--run")?;
    let classes = run.classes();
    if let (true, Some(first)) = (predictions.samples.is_empty(), predictions.skipped.first()) {
        bail!("none of the {} images could be read; the first: {first}", samples.len());
    }
    // the folder only once every prediction is made; each picture renamed into place whole
    if let Some(dir) = &args.annotate {
        std::fs::create_dir_all(dir).with_context(|| format!("--annotate {}", dir.display()))?;
    }
    for e in &predictions.skipped {
        eprintln!("warning: skipped {e}");
    }
    for (sample, p) in predictions.samples.iter().zip(predictions.probs.outer_iter()) {
        let path = &sample.path;
        let mut ranked: Vec<usize> = (0..p.len()).collect();
        ranked.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
        ranked.truncate(args.top);
        if args.json {
            let top: Vec<_> =
                ranked.iter().map(|&c| serde_json::json!({"class": classes[c], "probability": p[c]})).collect();
            say!("{}", serde_json::json!({"image": path.display().to_string(), "top": top}));
        } else {
            let cells: Vec<String> = ranked.iter().map(|&c| format!("{}  {:.2}%", classes[c], 100.0 * p[c])).collect();
            say!("{}  {}", path.display(), cells.join("  |  "));
        }
        if let Some(dir) = &args.annotate {
            let best = ranked[0];
            let colour = imgclf_cam::label_colour(p[best]);
            let photo = sample.load_rgb()?;
            let label = format!("{} {:.2}%", classes[best], 100.0 * p[best]);
            let out = dir.join(path.file_name().context("an image file has a name")?);
            save_image(&imgclf_cam::label_photo(&photo, &label, colour, 400), &out)
                .with_context(|| format!("writing {}", out.display()))?;
        }
    }
    Ok(())
}
