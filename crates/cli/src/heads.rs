//! `train-head`: a dense head on cached feature files.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use imgclf_dataset::limits::{
    BATCH, DECAY, DROPOUT, EPOCHS, HIDDEN, L2, LEARNING_RATE, MAX_ITER, MOMENTUM, PATIENCE, TOL, VAL_SPLIT,
};
use imgclf_heads::Validation;
use imgclf_heads::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use crate::budget::BudgetArgs;
use crate::show::{epoch_line, metrics};

#[derive(Clone, Copy, ValueEnum)]
enum HeadKind {
    /// Dropout → Dense(classes): sigmoid for two classes, softmax for more.
    Logistic,
    /// Dense(--hidden, relu) → Dropout → Dense(classes).
    Mlp,
}

#[derive(Clone, Copy, ValueEnum)]
enum SolverKind {
    /// Mini-batches with --optimizer, --epochs and --batch, as Keras' fit.
    Sgd,
    /// The linear probe: L-BFGS over full passes to the minimum of the log loss penalised by
    /// --c, on standardised features, without dropout (scikit-learn's LogisticRegression).
    Lbfgs,
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
    #[arg(long, default_value_t = 256, value_parser = HIDDEN.parser_usize())]
    hidden: usize,
    /// Dropout rate (before the output layer).
    #[arg(long, default_value_t = 0.5, value_parser = DROPOUT.parser_f32())]
    dropout: f32,
    /// L2 weight decay on the kernels: adds l2·Σw² to the loss, as Keras' l2(l2).
    #[arg(long, default_value_t = 0.0, value_parser = L2.parser_f32())]
    l2: f32,
    /// sgd, rmsprop, adam or adadelta, with Keras' defaults (adadelta's learning rate is 1.0, as
    /// in the Keras of the tutorial; TF-Keras 2.x uses 0.001).
    #[arg(long, default_value = "adadelta")]
    optimizer: OptimizerConfig,
    /// Learning rate (default: the optimizer's Keras default).
    #[arg(long, value_parser = LEARNING_RATE.parser_f32())]
    lr: Option<f32>,
    /// Inverse-time learning-rate decay, lr / (1 + decay · step), as Keras' `decay`.
    #[arg(long, default_value_t = 0.0, value_parser = DECAY.parser_f32())]
    decay: f32,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0, value_parser = MOMENTUM.parser_f32())]
    momentum: f32,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    nesterov: bool,
    #[arg(long, default_value_t = 8, value_parser = EPOCHS.parser_usize())]
    epochs: usize,
    /// Rows per gradient step.
    #[arg(long, default_value_t = 128, value_parser = BATCH.parser_usize())]
    batch: usize,
    /// Seed of initialisation, shuffling, dropout and --val-split: same seed, same run.
    #[arg(long, default_value_t = 0, value_parser = imgclf_dataset::limits::SEED.parser_u64())]
    seed: u64,
    /// Standardise each feature with train's mean and standard deviation.
    #[arg(long)]
    standardize: bool,
    /// Hold out this share of train (stratified, seeded) for validation when there is no validation split.
    #[arg(long, value_name = "FRACTION", value_parser = VAL_SPLIT.parser_f32())]
    val_split: Option<f32>,
    /// Stop after N epochs without a lower val_loss and keep the best epoch's weights.
    #[arg(long, value_name = "N", value_parser = PATIENCE.parser_usize())]
    patience: Option<usize>,
    /// Loss weight per class: `balanced` (rows / (classes · class rows)) or one number per class, comma-separated.
    #[arg(long, value_name = "balanced|W,W,...")]
    class_weight: Option<ClassWeight>,
    /// How the weights are fitted (lbfgs: a logistic head, standardised, no dropout, no --l2).
    #[arg(long, value_enum, default_value = "sgd")]
    solver: SolverKind,
    /// lbfgs: inverse L2 strength, as scikit-learn's C: the penalty is ‖W‖² / (2·C·rows fitted).
    /// `auto` chooses it on validation as the CLIP paper does: the lowest validation log loss
    /// over 10^-6..10^6, eight values a decade, found in 15 warm-started fits (each printed;
    /// the curve goes into run.json and the report).
    #[arg(long = "c", value_name = "C|auto", default_value_t = Lbfgs::default().c)]
    c: InverseL2,
    /// lbfgs: fit the kept head on train and validation rows together, at --c (or the C that
    /// auto chose on validation first). Validation scores are then of rows it was fitted to.
    #[arg(long)]
    refit: bool,
    /// lbfgs: converged when no entry of the objective's gradient exceeds this (scikit-learn's tol).
    #[arg(long, default_value_t = Lbfgs::default().tol, value_parser = TOL.parser_f64())]
    tol: f64,
    /// lbfgs: iterations at most, each about one pass over the train rows.
    #[arg(long, value_name = "N", default_value_t = Lbfgs::default().max_iter, value_parser = MAX_ITER.parser_usize())]
    max_iter: usize,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    budget: BudgetArgs,
}

pub fn train_head(args: TrainArgs) -> anyhow::Result<()> {
    imgclf_heads::RunDir::check(&args.out, args.force).context("--out")?;
    let mut optimizer = args.optimizer;
    if let Some(lr) = args.lr {
        optimizer.learning_rate = lr;
    }
    optimizer.decay = args.decay;
    if args.momentum != 0.0 || args.nesterov {
        optimizer.set_momentum(args.momentum, args.nesterov).context("--momentum/--nesterov need --optimizer sgd")?;
    }
    let architecture = match args.head {
        HeadKind::Logistic => Architecture::Logistic,
        HeadKind::Mlp => Architecture::Mlp { hidden: args.hidden },
    };
    let solver = match args.solver {
        SolverKind::Sgd if args.refit => anyhow::bail!("--refit refits the lbfgs probe: add --solver lbfgs"),
        SolverKind::Sgd => Solver::Sgd,
        SolverKind::Lbfgs => {
            if args.l2 != 0.0 {
                anyhow::bail!("--l2 is the SGD heads' penalty; the lbfgs probe's is --c (scikit-learn's C)");
            }
            Solver::Lbfgs(Lbfgs { c: args.c, tol: args.tol, max_iter: args.max_iter, refit: args.refit })
        }
    };
    let lbfgs = matches!(solver, Solver::Lbfgs(_));
    let config = TrainConfig {
        head: HeadConfig { architecture, dropout: if lbfgs { 0.0 } else { args.dropout }, l2: args.l2 },
        optimizer,
        epochs: args.epochs,
        batch_size: args.batch,
        seed: args.seed,
        standardize: args.standardize || lbfgs,
        val_split: args.val_split,
        patience: args.patience,
        class_weight: args.class_weight.unwrap_or(ClassWeight::None),
        solver,
    };
    // training reads train and validation; a test split is checked but not held
    let inputs =
        HeadInputs::open(&args.features, &["train", "validation"], args.budget.given()).context("--features")?;
    crate::show::warn_unverified(&inputs);
    eprintln!(
        "{} classes, {} features ({})",
        inputs.classes.len(),
        inputs.dim(),
        inputs.sources.iter().map(|s| format!("{} {}", s.backbone, s.dim)).collect::<Vec<_>>().join(" + ")
    );
    let plan = ChunkPlan::new(&inputs, &config).context("train-head")?;
    eprintln!("{plan}");

    // A bar per epoch; indicatif draws it only when stderr is a terminal.
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} batches {elapsed}")
        .expect("the template is valid")
        .progress_chars("=> ");
    let mut bar = ProgressBar::hidden();
    let trained = plan
        .train(&inputs, &mut |event| match event {
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
            TrainEvent::Step { iteration, objective, gradient } => {
                if iteration == 1 {
                    bar = crate::show::spinner("L-BFGS");
                }
                bar.set_message(format!("iteration {iteration}: objective {objective:.6}, gradient {gradient:.1e}"));
            }
            TrainEvent::Swept(point) => say!(
                "C {:<9.3e} val_loss {:.4} - val_acc {:.4} ({} iterations)",
                point.c,
                point.val_loss,
                point.val_acc,
                point.iterations
            ),
            TrainEvent::Solved { iterations, gradient, stop } => {
                bar.finish_and_clear();
                say!("L-BFGS: {stop} after {iterations} iterations (largest gradient entry {gradient:.2e})");
            }
        })
        .context("train-head")?;
    match &trained.validation {
        Validation::None => eprintln!("no validation (the features have no validation split; see --val-split)"),
        validation => eprintln!("validated on {}", crate::terms::for_users(&validation.to_string())),
    }
    if let Some(sweep) = &trained.sweep {
        let kept = sweep.points.iter().find(|p| p.c == sweep.chosen).expect("the chosen C was fitted");
        say!(
            "chose C = {} (lowest val_loss {:.4} of {} fitted; the same fit again: --c {})",
            sweep.chosen,
            kept.val_loss,
            sweep.points.len(),
            sweep.chosen
        );
    }
    let history = trained.history.clone();
    let run = Run::new(&args.out, &inputs, &config, trained);
    run.save(&history, args.force).with_context(|| format!("--out {}", args.out.display()))?;
    let kept = if lbfgs { "iteration" } else { "weights of epoch" };
    say!("saved {} ({kept} {}: {})", args.out.display(), run.info.best_epoch, metrics(&run.info.metrics));
    Ok(())
}
