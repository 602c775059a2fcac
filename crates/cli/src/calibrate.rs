//! `calibrate`: temperature scaling for any run, fitted on a labelled split and kept in the
//! run folder (`temperature.json`), where evaluate, predict, cam, report and the Predictor
//! find it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use imgclf_heads::Temperature;
use imgclf_nets::{AnyRun, SplitSource};

use crate::budget::BudgetArgs;
use crate::engine::EngineArgs;

#[derive(clap::Args)]
#[command(after_help = "Example:\n  imgclf calibrate --run runs/exp1            # fit on validation\n  \
imgclf evaluate --run runs/exp1 --split test   # calibrated scores on a split it did not see\n\n\
Divides the run's logits by one temperature T, the one of lowest log loss on --split (Guo et al.\n\
2017): no prediction changes, only how sure they are. evaluate, predict, cam, report and the\n\
Predictor then apply it; evaluate --uncalibrated shows the run without it. Retraining the run\n\
drops it.")]
pub struct Args {
    /// Run folder (train-head, train-cnn or fine-tune).
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// Labelled split to fit the temperature on; not train (the run was fitted to it) and not
    /// test (the split reported as untouched).
    #[arg(long, default_value = "validation")]
    split: String,
    /// Remove the run's temperature instead.
    #[arg(long, conflicts_with = "split")]
    remove: bool,
    /// Head runs: feature files instead of the ones named in run.json (same backbones, same order).
    #[arg(long, value_name = "FILE.h5", num_args = 1..)]
    features: Vec<PathBuf>,
    /// CNN and fine-tuned runs: the data root (default: the one trained on).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Fine-tuned runs: where the frozen start of the backbone runs.
    #[command(flatten)]
    engine: EngineArgs,
    /// Head runs: feature rows held at once.
    #[command(flatten)]
    budget: BudgetArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut run = AnyRun::open(&args.run).context("--run")?;
    if args.remove {
        Temperature::remove(&args.run).context("--run")?;
        say!("{}: not calibrated", args.run.display());
        return Ok(());
    }
    match args.split.as_str() {
        "train" => bail!("--split train: the run was fitted to those rows; fit the temperature on validation"),
        "test" => bail!(
            "--split test: test is the split reported as untouched; fit the temperature on validation (or another \
             labelled split) and score test with it"
        ),
        _ => {}
    }
    run.set_temperature(None);
    let source =
        SplitSource { data: args.data.as_deref(), features: &args.features, memory_budget: args.budget.given() };
    let scored = run.score_split(source, Some(&args.split), &args.engine.config(None)?).context("--split")?;
    crate::show::warn_skipped(&scored.skipped);
    let Some(labels) = &scored.labels else {
        bail!("--split {}: unlabelled; a temperature is fitted on labelled rows", scored.split);
    };
    let t = Temperature::fit(scored.probs.view(), labels, &scored.split).context("--split")?;
    t.write(&args.run).context("--run")?;
    say!("{}: {t}", args.run.display());
    say!(
        "on `{}`: log loss {:.4} -> {:.4}, ECE {:.4} -> {:.4}, Brier {:.4} -> {:.4} (not held out: fitted there)",
        t.fitted_on,
        t.before.log_loss,
        t.after.log_loss,
        t.before.ece,
        t.after.ece,
        t.before.brier,
        t.after.brier
    );
    Ok(())
}
