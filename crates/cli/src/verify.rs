//! `imgclf verify`: decode every image before a long run; report and optionally move aside
//! the unreadable ones.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use imgclf_dataset::{Dataset, Sample};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 when every image decodes (or the bad ones were moved with --quarantine), 1 otherwise.\n\
`extract` skips unreadable files anyway and lists them; verify finds them in seconds, before hours of extraction."
)]
pub struct Args {
    #[arg(long, value_name = "DATA", help = crate::DATA_HELP)]
    data: PathBuf,
    /// Move each unreadable file here, under its path relative to the data root (never deleted).
    #[arg(long, value_name = "DIR")]
    quarantine: Option<PathBuf>,
    /// Decoding threads (default: all cores).
    #[arg(long, value_parser = imgclf_dataset::limits::THREADS.parser_usize())]
    threads: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dataset = Dataset::open(&args.data).context("--data")?;
    let total: usize = dataset.splits.iter().map(|s| s.samples.len()).sum();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.threads.unwrap_or(0)).build()?;
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(total as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} images {per_sec} {eta}")?);
    let start = Instant::now();
    let bad = pool.install(|| imgclf_dataset::verify(&dataset, &|| bar.inc(1)));
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    say!(
        "{}: {total} images decoded in {seconds:.1} s ({:.0} images/s): {} unreadable",
        args.data.display(),
        total as f64 / seconds.max(1e-9),
        bad.len()
    );
    for b in &bad {
        say!("  {}: {}", b.sample.rel, reason(&b.error.to_string(), &b.sample));
    }
    if bad.is_empty() {
        return Ok(());
    }
    let Some(dest) = args.quarantine else {
        bail!(
            "{} unreadable image(s) in {} (extract skips them; --quarantine DIR moves them aside)",
            bad.len(),
            args.data.display()
        );
    };
    let samples: Vec<&Sample> = bad.iter().map(|b| &b.sample).collect();
    let moved = imgclf_dataset::quarantine(&dataset, &samples, &dest).context("--quarantine")?;
    say!("moved {} file(s) to {} (paths kept relative to the data root)", moved.len(), dest.display());
    Ok(())
}

/// The error without the absolute path it starts with (the line already names the file).
fn reason<'a>(message: &'a str, sample: &Sample) -> &'a str {
    let prefix = format!("{}: ", sample.path.display());
    message.strip_prefix(&prefix).unwrap_or(message)
}
