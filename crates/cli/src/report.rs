//! `imgclf report`: one self-contained HTML page per run; `imgclf runs`: one table across runs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use imgclf_dataset::limits::TOP;
use imgclf_report::{ReportOptions, SortBy, find_runs, report, runs_csv, runs_html, runs_table};

use crate::output::{REPORT_PAGE, RUNS_TABLE};

use crate::budget::BudgetArgs;
use crate::engine::EngineArgs;

#[derive(clap::Args)]
#[command(after_help = "Example:\n  imgclf report runs/exp1 --data ../shared/data/cats_dogs\n\n\
The page holds what was trained (backbones with sha256, feature files with their fingerprints,\n\
settings, seed, engine, dates), the training curves, the metrics on the split (per-class\n\
precision/recall/F1, the confusion matrix, ROC and precision-recall for two classes), the most\n\
confidently wrong photos beside their class activation maps (logistic head runs) and correct\n\
photos per class. Styles, charts (SVG) and photos (JPEG data: URIs) are inside the file: it\n\
opens from disk or as an e-mail attachment, with no network.")]
pub struct ReportArgs {
    /// Run folder written by train-head, train-cnn or fine-tune.
    #[arg(value_name = "RUN")]
    run: PathBuf,
    /// Labelled split to score (default: validation, else a labelled test split).
    #[arg(long)]
    split: Option<String>,
    /// Where the photos are: for a train-head run, what extract read (a data root, a manifest,
    /// tar shards or Parquet files; its feature files hold the rows' identities, not the
    /// photos: without it the page has none), or other photos for train-cnn and fine-tune runs
    /// (default: the ones trained on).
    #[arg(long, value_name = "DATA")]
    data: Option<PathBuf>,
    /// Head runs: feature files to use instead of the ones named in run.json.
    #[arg(long, value_name = "FILE.h5", num_args = 1..)]
    features: Vec<PathBuf>,
    /// The page to write (default: RUN/report.html). An earlier page is replaced; any other
    /// file only with --force, and never a run's own files or a feature file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace a file at --out that is not an earlier report page.
    #[arg(long)]
    force: bool,
    /// How many of the most confidently wrong photos to show.
    #[arg(long, default_value_t = 16, value_parser = TOP.parser_usize())]
    top: usize,
    /// Correct photos shown per class, for contrast.
    #[arg(long, default_value_t = 3, value_parser = TOP.parser_usize())]
    examples: usize,
    /// Where backbones run (maps of head runs, fine-tuned runs' frozen start).
    #[command(flatten)]
    engine: EngineArgs,
    /// Head runs: feature rows held at once.
    #[command(flatten)]
    budget: BudgetArgs,
}

pub fn report_run(args: ReportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let out = args.out.clone().unwrap_or_else(|| args.run.join("report.html"));
    REPORT_PAGE.check("--out", std::slice::from_ref(&out), args.force)?;
    let options = ReportOptions {
        split: args.split.as_deref(),
        data: args.data.as_deref(),
        features: &args.features,
        memory_budget: args.budget.given(),
        top: args.top,
        examples: args.examples,
        engine: args.engine.config(None)?,
    };
    let page = report(&args.run, &options).with_context(|| format!("report on {}", args.run.display()))?;
    let html = page.html();
    REPORT_PAGE.write(&out, html.as_bytes()).with_context(|| format!("--out {}", out.display()))?;
    imgclf_heads::Evaluated::new(&page.evaluation, &page.split, page.temperature).write(&args.run).context("--run")?;
    for note in page.notes.iter().chain(&page.cam_note) {
        eprintln!("note: {note}");
    }
    say!(
        "{} on `{}`: accuracy {:.4}, log loss {:.4} ({} images, {} KB page in {:.1} s) -> {}",
        args.run.display(),
        page.split,
        page.evaluation.accuracy,
        page.evaluation.log_loss,
        page.evaluation.rows,
        html.len() / 1024,
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Sort {
    /// Highest validation accuracy first.
    ValAcc,
    /// Lowest validation log loss first.
    LogLoss,
    /// Newest first.
    Date,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  imgclf runs runs/                      # an aligned table, best first\n  \
imgclf runs runs/ --csv > runs.csv\n  imgclf runs runs/ --html runs.html      # links to each run's report.html\n\n\
`features` shows the first 12 characters of each feature file's fingerprint: runs that show the\n\
same trained on the same cached features.")]
pub struct RunsArgs {
    /// Folders to look in (run folders at any depth up to 6; default: runs).
    #[arg(value_name = "DIR", default_value = "runs")]
    dirs: Vec<PathBuf>,
    /// Order of the rows.
    #[arg(long, value_enum, default_value = "val-acc")]
    sort: Sort,
    /// Write the table as an HTML page here too, each run linking to its report.html (an
    /// earlier table is replaced; any other file only with --force).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Replace a file at --html that is not an earlier table.
    #[arg(long)]
    force: bool,
    /// Print CSV instead of the aligned table.
    #[arg(long)]
    csv: bool,
}

pub fn list_runs(args: RunsArgs) -> anyhow::Result<()> {
    let sort = match args.sort {
        Sort::ValAcc => SortBy::ValAcc,
        Sort::LogLoss => SortBy::LogLoss,
        Sort::Date => SortBy::Date,
    };
    if let Some(path) = &args.html {
        RUNS_TABLE.check("--html", std::slice::from_ref(path), args.force)?;
    }
    let (rows, errors) = find_runs(&args.dirs, sort);
    for e in &errors {
        eprintln!("warning: skipped {e}");
    }
    if rows.is_empty() {
        let dirs: Vec<String> = args.dirs.iter().map(|d| d.display().to_string()).collect();
        bail!("no run folders (a folder with a run.json) under {}", dirs.join(", "));
    }
    if args.csv {
        say!("{}", runs_csv(&rows).trim_end());
    } else {
        say!("{}", runs_table(&rows).trim_end());
    }
    if let Some(path) = &args.html {
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        RUNS_TABLE
            .write(path, runs_html(&rows, base).as_bytes())
            .with_context(|| format!("--html {}", path.display()))?;
        eprintln!("{} runs -> {}", rows.len(), path.display());
    }
    Ok(())
}
