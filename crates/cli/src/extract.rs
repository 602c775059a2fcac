use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use imgclf_dataset::Dataset;
use imgclf_dataset::limits::{CHECKPOINT_BATCHES, CHECKPOINT_SECS, INFERENCE_BATCH, SHARDS, THREADS};
use imgclf_features::prelude::*;
use imgclf_features::{Shard, extract_all, partial_dir, partials_in};
use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::EngineArgs;

#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  imgclf extract --data data/cats_dogs --model models/efficientnet_lite0.onnx --out features/\n\n\
Each ONNX model needs its spec beside it (model.onnx -> model.json): input name, layout, size, colour order,\n\
scaling and the feature output. A second identical run reuses the cached file."
)]
pub struct Args {
    #[arg(long, value_name = "DATA", help = crate::DATA_HELP)]
    data: PathBuf,
    /// ONNX backbone with its JSON spec beside it, or the name of a registered one (`imgclf models list`); repeat for several.
    #[arg(long = "model", value_name = "MODEL.onnx", required = true)]
    models: Vec<PathBuf>,
    /// Folder for the gap_<Backbone>.h5 files (created if missing).
    #[arg(long, value_name = "DIR", default_value = "features")]
    out: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
    /// Images per inference call (default: 32 on the CPU, 256 on a GPU).
    #[arg(long, value_parser = INFERENCE_BATCH.parser_usize())]
    batch: Option<usize>,
    /// Engine threads: ONNX Runtime's intra-op threads, or tract's parallel images (default:
    /// all cores up to 4; beyond, the cores the decode threads leave; 2 on a GPU).
    #[arg(long, value_parser = THREADS.parser_usize())]
    threads: Option<usize>,
    /// Threads that decode, resize and preprocess the next batches while the engine runs
    /// (default: all cores up to 4, where they fill the gaps the engine's threads leave; one core
    /// in 8, at least 2, beyond; every core on a GPU).
    #[arg(long, value_name = "N", value_parser = THREADS.parser_usize())]
    decode_threads: Option<usize>,
    /// Comma-separated splits to extract (default: every split present).
    #[arg(long, value_delimiter = ',', value_name = "SPLITS")]
    splits: Vec<String>,
    /// Recompute even if a cached feature file matches the images and the model.
    #[arg(long)]
    force: bool,
    /// Compute only part K of N of every split (whole batches, 0 <= K < N) into
    /// gap_<Backbone>.shard-K-of-N.h5; `auto` takes K and N from a Slurm array task
    /// (SLURM_ARRAY_TASK_ID/COUNT) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX with
    /// --shards). Finished shards are cache hits on rerun; `imgclf features merge` joins them.
    #[arg(long, value_name = "K/N|auto")]
    shard: Option<String>,
    /// With --shard auto: the number of shards (the Indexed Job's completions; checked against Slurm's array).
    #[arg(long, value_name = "N", value_parser = SHARDS.parser_usize())]
    shards: Option<usize>,
    /// Commit the rows done every SECS seconds into gap_<Backbone>.h5.partial/ beside the
    /// output; a run stopped or killed (Ctrl-C, SIGKILL, power loss) is continued from the last
    /// commit by the same command. The finished file is assembled from the parts (the same
    /// rows as an uninterrupted run) and the folder removed. The parts take about the finished
    /// file's size again until then (see --no-checkpoints).
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = CHECKPOINT_SECS.parser_f64())]
    checkpoint_secs: f64,
    /// How feature values are stored: f32, or f16 (half the disk and read bandwidth; values
    /// rounded to half precision, read back as f32; h5py sees float16). Part of the cache rule.
    #[arg(long, default_value = "f32", value_name = "STORE")]
    store: Storage,
    /// Also commit every N batches, whichever comes first (default: time alone).
    #[arg(long, value_name = "N", value_parser = CHECKPOINT_BATCHES.parser_usize())]
    checkpoint_batches: Option<usize>,
    /// No checkpoints: rows go straight to the output's temporary file, so no parts folder
    /// takes disk beside it; a run stopped or killed then starts over.
    #[arg(long, conflicts_with_all = ["checkpoint_secs", "checkpoint_batches"])]
    no_checkpoints: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut dataset = Dataset::open(&args.data).context("--data")?;
    if !args.splits.is_empty() {
        dataset.keep_splits(&args.splits).context("--splits")?;
    }
    if args.out.exists() && !args.out.is_dir() {
        bail!("--out {}: exists and is not a folder", args.out.display());
    }
    // open every backbone first: a bad spec or a missing model stops the run before any work
    let backbones = args
        .models
        .iter()
        .map(|m| {
            let path = crate::models::resolve(m).with_context(|| format!("--model {}", m.display()))?;
            Backbone::open(&path).with_context(|| format!("--model {}", m.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let threads = args.threads.unwrap_or_else(|| ExtractOptions::engine_threads(args.engine.device));
    let defaults = ExtractOptions::new(args.engine.config(Some(threads))?);
    let options = ExtractOptions {
        batch: args.batch.unwrap_or(defaults.batch),
        decode_threads: args.decode_threads.unwrap_or(defaults.decode_threads),
        force: args.force,
        stop: Some(stop_on_signals()?),
        shard: shard(&args)?,
        checkpoints: match args.no_checkpoints {
            true => Checkpoints::OFF,
            false => {
                Checkpoints { seconds: args.checkpoint_secs, batches: args.checkpoint_batches.unwrap_or(usize::MAX) }
            }
        },
        storage: args.store,
        ..defaults
    };
    if let Some(shard) = options.shard {
        shard.check(&dataset, options.batch).context("--shard")?;
    }
    let counts: Vec<String> = dataset
        .splits
        .iter()
        .map(|s| match options.shard {
            None => format!("{} {}", s.name, s.samples.len()),
            Some(shard) => {
                let part = shard.range(&s.samples, options.batch);
                format!("{} {}..{} of {}", s.name, part.start, part.end, s.samples.len())
            }
        })
        .collect();
    let part = options.shard.map_or(String::new(), |s| format!("shard {s}: "));
    eprintln!("{}: {} classes; {part}{}", args.data.display(), dataset.classes.len(), counts.join(", "));

    let bar = ProgressBar::hidden();
    let reports = extract_all(&dataset, &backbones, &args.out, &options, &mut |p| match p {
        Progress::Start { backbone, engine, images } => {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_length(images as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} images, {per_sec:.0}, eta {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{backbone} ({engine})"));
        }
        Progress::Advance(n) => bar.inc(n as u64),
        Progress::Resumed { images } => bar
            .suspend(|| eprintln!("continuing an interrupted extraction: {images} images were done by an earlier run")),
        Progress::Skipped(s) => bar.suspend(|| eprintln!("warning: skipped {}", s.reason)),
    })
    .map_err(|e| {
        // a failed write (a full disk) leaves the last commit: say where, and how to go on
        // (not when stopped, nor when another process holds the output: it is theirs)
        let stopped = matches!(e, FeatureError::Interrupted { .. } | FeatureError::Busy { .. });
        let kept: Vec<String> = partials_in(&args.out)
            .iter()
            .filter(|p| p.images > 0 && !stopped)
            .map(|p| format!("{} of {} images kept in {}", p.images, p.total, partial_dir(&p.output).display()))
            .collect();
        let context = match kept.is_empty() {
            true => format!("extracting {}", args.data.display()),
            false => format!(
                "extracting {} ({}; fix the cause and run the same command to continue)",
                args.data.display(),
                kept.join(", ")
            ),
        };
        anyhow::Error::new(e).context(context)
    })?;
    bar.finish_and_clear();
    reports.iter().for_each(print_report);
    let computed: Vec<&ExtractReport> = reports.iter().filter(|r| !r.reused).collect();
    if computed.len() > 1 {
        say!("{} images decoded once for the {} backbones computed", computed[0].decoded, computed.len());
    }
    let mut skipped: Vec<&str> = reports.iter().flat_map(|r| r.skipped.iter().map(|s| s.path.as_str())).collect();
    skipped.sort();
    skipped.dedup();
    if !skipped.is_empty() {
        eprintln!("{} unreadable image(s) skipped, with no row in the feature files:", skipped.len());
        skipped.iter().for_each(|p| eprintln!("  {p}"));
    }
    Ok(())
}

/// `--shard K/N`, or `--shard auto` from the scheduler's variables.
fn shard(args: &Args) -> anyhow::Result<Option<Shard>> {
    let shards = args.shards;
    match args.shard.as_deref() {
        None if shards.is_some() => bail!("--shards N goes with --shard auto"),
        None => Ok(None),
        Some("auto") => {
            let shard = Shard::from_scheduler(|name| std::env::var(name).ok(), shards);
            Ok(Some(shard.map_err(|e| anyhow::anyhow!("--shard auto: {e}"))?))
        }
        Some(text) => {
            let shard: Shard = text.parse().map_err(|e| anyhow::anyhow!("--shard {e}"))?;
            if shards.is_some_and(|n| n != shard.count) {
                bail!("--shards {} disagrees with --shard {text}", shards.unwrap_or(0));
            }
            Ok(Some(shard))
        }
    }
}

/// A flag that SIGINT and SIGTERM set, so that extraction stops between batches and says how
/// far it got; a second signal while it stops exits at once.
pub(crate) fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(stop)
}

fn print_report(r: &ExtractReport) {
    if let Some(reason) = &r.fallback_reason {
        eprintln!("note: using tract because {reason}");
    }
    if let Some(why) = &r.replaced {
        eprintln!("warning: recomputed {}: the file there was damaged ({why})", r.output.display());
    }
    let rows: Vec<String> = r.rows.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let size = file_size_mb(&r.output);
    if r.reused {
        say!(
            "{}: reused {} ({}; {} features, made with {}): images and model unchanged; --force recomputes",
            r.backbone,
            r.output.display(),
            rows.join(", "),
            r.dim,
            r.engine
        );
        return;
    }
    // the rate counts this run's images: an interrupted run's are in the file, not in the time
    let images: usize = r.rows.iter().map(|(_, n)| n).sum::<usize>() + r.skipped.len() - r.resumed;
    if r.rows.is_empty() {
        say!("{}: no rows ({} images skipped) -> {}", r.backbone, r.skipped.len(), r.output.display());
        return;
    }
    let mut steady = r.steady.map_or(String::new(), |s| format!("; {s:.1} steady after the first batches"));
    if r.resumed > 0 {
        steady.push_str(&format!("; {} images done by an earlier run", r.resumed));
    }
    say!(
        "{}: {} rows x {} features with {} in {:.1} s ({:.1} images/s{steady}) -> {} ({size:.1} MB)",
        r.backbone,
        rows.join(", "),
        r.dim,
        r.engine,
        r.seconds,
        images as f64 / r.seconds.max(1e-9),
        r.output.display(),
    );
}

fn file_size_mb(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e6)
}
