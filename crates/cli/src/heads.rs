//! `train-head`, `evaluate` and `predict`: dense heads on cached feature files.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::ValueEnum;
use imgclf_heads::prelude::*;
use imgclf_heads::{EpochStats, Validation, confusion_png};
use indicatif::{ProgressBar, ProgressStyle};

use crate::nets::RunKind;

#[derive(Clone, Copy, ValueEnum)]
enum HeadKind {
    /// Dropout → Dense(classes): sigmoid for two classes, softmax for more.
    Logistic,
    /// Dense(--hidden, relu) → Dropout → Dense(classes).
    Mlp,
}

#[derive(clap::Args)]
#[command(
    after_help = "Example (the tutorial's recipe):\n  imgclf train-head --features features/gap_ResNet50.h5 features/gap_Xception.h5 \\\n      \
--out runs/exp1 --head logistic --optimizer adadelta --epochs 8 --batch 128 --seed 7\n\n\
Feature files are joined column-wise, rows matched by image path. Validation uses the features'\n\
`validation` split, or --val-split of train. The run folder gets weights.safetensors, run.json,\n\
history.csv and curves.png."
)]
pub struct TrainArgs {
    /// gap_<Backbone>.h5 files of one dataset, joined in this order.
    #[arg(long, value_name = "FILE.h5", num_args = 1.., required = true)]
    features: Vec<PathBuf>,
    /// Run folder to write (refused if it exists, unless --force).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Head architecture.
    #[arg(long, value_enum, default_value = "logistic")]
    head: HeadKind,
    /// Units of the mlp head's hidden ReLU layer.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    hidden: u32,
    /// Dropout rate (before the output layer).
    #[arg(long, default_value_t = 0.5)]
    dropout: f32,
    /// L2 weight decay on the kernels: adds l2·Σw² to the loss, as Keras' l2(l2).
    #[arg(long, default_value_t = 0.0)]
    l2: f32,
    /// sgd, rmsprop, adam or adadelta, with Keras' defaults (adadelta's learning rate is 1.0, as
    /// in the Keras of the tutorial; TF-Keras 2.x uses 0.001).
    #[arg(long, default_value = "adadelta")]
    optimizer: OptimizerConfig,
    /// Learning rate (default: the optimizer's Keras default).
    #[arg(long)]
    lr: Option<f32>,
    /// Inverse-time learning-rate decay, lr / (1 + decay · step), as Keras' `decay`.
    #[arg(long, default_value_t = 0.0)]
    decay: f32,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0)]
    momentum: f32,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    nesterov: bool,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: u32,
    /// Rows per gradient step.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Seed of initialisation, shuffling, dropout and --val-split: same seed, same run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Standardise each feature with train's mean and standard deviation.
    #[arg(long)]
    standardize: bool,
    /// Hold out this share of train (stratified, seeded) for validation when there is no validation split.
    #[arg(long, value_name = "FRACTION")]
    val_split: Option<f32>,
    /// Stop after N epochs without a lower val_loss and keep the best epoch's weights.
    #[arg(long, value_name = "N")]
    patience: Option<usize>,
    /// Loss weight per class: `balanced` (rows / (classes · class rows)) or one number per class, comma-separated.
    #[arg(long, value_name = "balanced|W,W,...")]
    class_weight: Option<ClassWeight>,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
}

pub fn train_head(args: TrainArgs) -> anyhow::Result<()> {
    Run::check_out(&args.out, args.force).context("--out")?;
    let mut optimizer = args.optimizer;
    if let Some(lr) = args.lr {
        optimizer.learning_rate = lr;
    }
    optimizer.decay = args.decay;
    if args.momentum != 0.0 || args.nesterov {
        optimizer.set_momentum(args.momentum, args.nesterov).context("--momentum/--nesterov")?;
    }
    let architecture = match args.head {
        HeadKind::Logistic => Architecture::Logistic,
        HeadKind::Mlp => Architecture::Mlp { hidden: args.hidden as usize },
    };
    let config = TrainConfig {
        head: HeadConfig { architecture, dropout: args.dropout, l2: args.l2 },
        optimizer,
        epochs: args.epochs as usize,
        batch_size: args.batch as usize,
        seed: args.seed,
        standardize: args.standardize,
        val_split: args.val_split,
        patience: args.patience,
        class_weight: args.class_weight.unwrap_or(ClassWeight::None),
    };
    let inputs = load_features(&args.features)?;
    let train_rows = inputs.split("train").map_or(0, |s| s.paths.len());
    eprintln!(
        "{} classes, {} features ({}); train {train_rows} rows",
        inputs.classes.len(),
        inputs.dim(),
        inputs.sources.iter().map(|s| format!("{} {}", s.backbone, s.dim)).collect::<Vec<_>>().join(" + ")
    );

    // A bar per epoch; indicatif draws it only when stderr is a terminal.
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} batches {elapsed}")
        .expect("the template is valid")
        .progress_chars("=> ");
    let mut bar = ProgressBar::hidden();
    let trained = train(&inputs, &config, &mut |event| match event {
        TrainEvent::EpochStart { epoch, epochs, batches } => {
            bar = ProgressBar::new(batches as u64)
                .with_style(style.clone())
                .with_prefix(format!("Epoch {epoch}/{epochs}"));
        }
        TrainEvent::Batch => bar.inc(1),
        TrainEvent::EpochEnd(stats) => {
            bar.finish_and_clear();
            say!("{}", epoch_line(stats, config.epochs));
        }
        TrainEvent::Stopped { epoch, best_epoch } => {
            say!("Early stop after epoch {epoch}: no lower val_loss since epoch {best_epoch}; keeping its weights");
        }
    })
    .context("train-head")?;
    match &trained.validation {
        Validation::Holdout { fraction, rows } => {
            eprintln!("validated on {rows} rows held out of train (--val-split {fraction})")
        }
        Validation::Split(name) => eprintln!("validated on the `{name}` split"),
        Validation::None => eprintln!("no validation (the features have no validation split; see --val-split)"),
    }
    let history = trained.history.clone();
    let run = Run::new(&args.out, &inputs, &config, trained);
    run.save(&history, args.force).with_context(|| format!("--out {}", args.out.display()))?;
    say!("saved {} (weights of epoch {}: {})", args.out.display(), run.info.best_epoch, metrics(&run.info.metrics));
    Ok(())
}

/// `Epoch 3/8 - 0.4s - loss: 0.0231 - acc: 0.9929 - val_loss: 0.0166 - val_acc: 0.9946`, as Keras prints.
pub(crate) fn epoch_line(stats: &EpochStats, epochs: usize) -> String {
    format!("Epoch {}/{epochs} - {:.1}s - {}", stats.epoch, stats.seconds, metrics(stats))
}

fn metrics(stats: &EpochStats) -> String {
    let mut s = format!("loss: {:.4} - acc: {:.4}", stats.loss, stats.acc);
    if let (Some(l), Some(a)) = (stats.val_loss, stats.val_acc) {
        s += &format!(" - val_loss: {l:.4} - val_acc: {a:.4}");
    }
    s
}

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
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Fine-tuned runs: where the frozen start of the backbone runs.
    #[command(flatten)]
    engine: crate::engine::EngineArgs,
}

pub fn evaluate_run(args: EvaluateArgs) -> anyhow::Result<()> {
    if crate::nets::run_kind(&args.run) != RunKind::Head {
        if !args.features.is_empty() {
            bail!("--features: {} is a CNN or fine-tuning run, which reads images (use --data)", args.run.display());
        }
        let scored = crate::nets::score_split(&args.run, args.data.as_deref(), args.split.as_deref(), &args.engine)?;
        let Some(labels) = &scored.labels else {
            bail!("--split {}: unlabelled, nothing to score (use `imgclf predict` for it)", scored.split);
        };
        let evaluation = evaluate(&scored.classes, scored.probs.view(), labels, &scored.paths, args.top);
        return report(&args.run, &scored.split, &evaluation);
    }
    if args.data.is_some() {
        bail!("--data applies to CNN runs (train-cnn); {} reads feature files (use --features)", args.run.display());
    }
    let (run, inputs) = open_run(&args.run, &args.features)?;
    let labelled = |name: &str| inputs.split(name).is_some_and(|s| s.labels.is_some());
    let name = match args.split {
        Some(name) => name,
        None if labelled("validation") => "validation".into(),
        None if labelled("test") => "test".into(),
        None => bail!("no labelled validation or test split to score; name one with --split"),
    };
    let Some(split) = inputs.split(&name) else {
        bail!("--split {name}: not in the feature files (they have {})", split_names(&inputs));
    };
    let Some(labels) = &split.labels else {
        bail!("--split {name}: unlabelled, nothing to score (use `imgclf predict` for it)");
    };
    let probs = run.head.predict(split.x.view());
    let evaluation = evaluate(&inputs.classes, probs.view(), labels, &split.paths, args.top);
    report(&args.run, &name, &evaluation)
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
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    top: u32,
    /// Images: one JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Images: write a 400-px-wide copy of each, labelled, into DIR (same file names).
    #[arg(long, value_name = "DIR")]
    annotate: Option<PathBuf>,
    /// Images (and fine-tuned runs): where the backbone runs.
    #[command(flatten)]
    engine: crate::engine::EngineArgs,
    /// Images: images per inference call.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    batch: u32,
    /// Split to predict into --csv.
    #[arg(long, default_value = "test")]
    split: String,
    /// CSV file to write from the cached split.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Two classes: clip probabilities to [clip, 1 - clip], bounding the log loss of a confident mistake.
    #[arg(long, default_value_t = 0.005)]
    clip: f32,
    /// One probability column per class instead of a label column.
    #[arg(long)]
    proba: bool,
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
    if !(0.0..0.5).contains(&args.clip) {
        bail!("--clip must be in [0, 0.5), got {}", args.clip);
    }
    let (classes, paths, probs) = if crate::nets::run_kind(&args.run) != RunKind::Head {
        let scored = crate::nets::score_split(&args.run, args.data.as_deref(), Some(&args.split), &args.engine)?;
        (scored.classes, scored.paths, scored.probs)
    } else {
        let (run, inputs) = open_run(&args.run, &args.features)?;
        let Some(split) = inputs.split(&args.split) else {
            bail!("--split {}: not in the feature files (they have {})", args.split, split_names(&inputs));
        };
        (inputs.classes.clone(), split.paths.clone(), run.head.predict(split.x.view()))
    };
    let style = match (args.proba, classes.len()) {
        (true, _) => CsvStyle::Proba,
        (false, 2) => CsvStyle::Probability { clip: args.clip },
        (false, _) => CsvStyle::Label,
    };
    let csv = prediction_csv(&classes, &paths, probs.view(), style);
    write_atomic(csv_path, csv.as_bytes()).with_context(|| format!("--csv {}", csv_path.display()))?;
    say!("{} rows of `{}` -> {}", paths.len(), args.split, csv_path.display());
    Ok(())
}

fn predict_images(args: &PredictArgs) -> anyhow::Result<()> {
    let files = imgclf_heads::image_files(&args.images)?;
    if files.is_empty() {
        bail!(
            "no image files in {}",
            args.images.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    if let Some(dir) = &args.annotate {
        std::fs::create_dir_all(dir).with_context(|| format!("--annotate {}", dir.display()))?;
    }
    let (classes, predictions) = if crate::nets::run_kind(&args.run) != RunKind::Head {
        crate::nets::predict_files(&args.run, &files, &args.engine)?
    } else {
        let run = Run::load(&args.run).context("--run")?;
        let mut predictor = imgclf_heads::Predictor::load(run, &args.engine.config(None)?, false).context("--run")?;
        let predictions = predictor.predict(&files, args.batch as usize)?;
        (predictor.run.info.classes, predictions)
    };
    if let (true, Some(first)) = (predictions.paths.is_empty(), predictions.skipped.first()) {
        bail!("none of the {} images could be read; the first: {first}", files.len());
    }
    for e in &predictions.skipped {
        eprintln!("warning: skipped {e}");
    }
    let classes = &classes;
    for (path, p) in predictions.paths.iter().zip(predictions.probs.outer_iter()) {
        let mut ranked: Vec<usize> = (0..p.len()).collect();
        ranked.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
        ranked.truncate(args.top as usize);
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
            let photo = imgclf_dataset::load_rgb(path)?;
            let label = format!("{} {:.2}%", classes[best], 100.0 * p[best]);
            let out = dir.join(path.file_name().context("an image file has a name")?);
            imgclf_cam::label_photo(&photo, &label, colour, 400)
                .save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
        }
    }
    Ok(())
}

/// Loads a run and its features (from run.json, or `overrides`), checking they belong together.
fn open_run(dir: &Path, overrides: &[PathBuf]) -> anyhow::Result<(Run, HeadInputs)> {
    let run = Run::load(dir).context("--run")?;
    let files: Vec<PathBuf> = if overrides.is_empty() {
        run.info.sources.iter().map(|s| s.file.clone()).collect()
    } else {
        overrides.to_vec()
    };
    let inputs = load_features(&files).context(if overrides.is_empty() {
        "the feature files named in run.json (pass --features to use others)"
    } else {
        "--features"
    })?;
    run.check_inputs(&inputs)?;
    Ok((run, inputs))
}

/// Reads and joins feature files, recording absolute paths so the run works from any folder.
fn load_features(files: &[PathBuf]) -> anyhow::Result<HeadInputs> {
    let files = files
        .iter()
        .map(|f| std::path::absolute(f).with_context(|| format!("--features {}", f.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(HeadInputs::load(&files)?)
}

fn split_names(inputs: &HeadInputs) -> String {
    inputs.splits.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Writes to a temporary sibling and renames it into place: no half-written file on interruption.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().context("not a file path")?.to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
