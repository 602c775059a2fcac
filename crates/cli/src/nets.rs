//! `train-cnn`: the tutorial's small CNN and LeNet trained from pixels, with checkpoints.

use std::path::PathBuf;

use anyhow::{Context, bail};
use imgclf_dataset::limits::{BATCH, DECAY, DROPOUT, EPOCHS, LABEL_SMOOTHING, LEARNING_RATE, MOMENTUM};
use imgclf_dataset::{Dataset, Filter};
use imgclf_heads::{OptimizerConfig, RunDir};
use imgclf_nets::prelude::*;
use imgclf_nets::{FineTuneConfig, FineTuning};
use indicatif::ProgressBar;

use crate::engine::EngineArgs;
use crate::show::{bar, epoch_line, warn_skipped};

/// Where `train-cnn` and `fine-tune` train: candle is built for the CPU here.
const TRAIN_ON: imgclf_nets::Device = imgclf_nets::Device::Cpu;

#[derive(clap::Args)]
#[command(after_help = "Examples (the tutorial's recipes):\n  \
imgclf train-cnn --arch small --data ../shared/data/cats_dogs --out runs/cnn --epochs 30\n  \
imgclf train-cnn --arch lenet --data ../shared/data/traffic_signs --out runs/lenet --epochs 35\n  \
imgclf train-cnn --out runs/lenet --resume                # continue after an interruption\n\n\
Images are decoded and resized once, kept in memory, and augmented afresh every epoch. After each\n\
epoch the run folder gets weights.safetensors, checkpoint.safetensors (weights and optimizer\n\
state), run.json, history.csv and curves.png; Ctrl-C stops between batches, and --resume\n\
continues from the last whole epoch with the same result as an uninterrupted run.\n\n\
--augment takes `default` (small: shear 0.2, zoom 0.2, horizontal flip; lenet: rotation 30,\n\
shifts 0.1, shear 0.2, zoom 0.2), `none`, or a list such as `rotation=30,shift=0.1,shear=0.2,zoom=0.2,hflip,brightness=0.7:1.3,fill=nearest`\n\
(also wshift=, hshift=, vflip, zoom=LO:HI, channel_shift=, cval=; shear in degrees as Keras 2),\n\
the syntax `imgclf augment preview --augment` takes too. hflip and vflip alone mean yes, or take\n\
=true/false, 1/0, yes/no, on/off; each key once; no rescale= (the tutorial's /255 is --input unit).")]
pub struct TrainArgs {
    /// Network to train: small (3 × Conv 3×3 → ReLU → MaxPool, Dense(64), Dropout(0.5); 150 px,
    /// RMSprop) or lenet (Conv 5×5 20 → Conv 5×5 50 → Dense(500); 32 px, Adam with decay).
    #[arg(long, value_name = "small|lenet", required_unless_present = "resume")]
    arch: Option<Arch>,
    #[arg(long, value_name = "DATA", required_unless_present = "resume", help = crate::DATA_HELP)]
    data: Option<PathBuf>,
    /// Run folder to write (refused if it exists, unless --force or --resume).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint (its settings come from its run.json;
    /// --epochs may raise the total; every other setting is refused with it).
    #[arg(long, conflicts_with_all = RESUME_REFUSES)]
    resume: bool,
    /// Input size, `N` or `HxW` (default: 150 for small, 32 for lenet).
    #[arg(long, value_parser = parse_size)]
    size: Option<[usize; 2]>,
    /// Epochs in all (default: 30 for small, 35 for lenet).
    #[arg(long, value_parser = EPOCHS.parser_usize())]
    epochs: Option<usize>,
    /// Images per gradient step.
    #[arg(long, default_value_t = 32, value_parser = BATCH.parser_usize())]
    batch: usize,
    /// sgd, rmsprop, adam or adadelta with Keras' defaults (default: rmsprop for small, adam for lenet).
    #[arg(long)]
    optimizer: Option<OptimizerConfig>,
    /// Learning rate (default: the optimizer's Keras default, 0.001 for rmsprop and adam).
    #[arg(long, value_parser = LEARNING_RATE.parser_f32())]
    lr: Option<f32>,
    /// Inverse-time decay per step, lr / (1 + decay · step) (default: lr / epochs for lenet, as
    /// the tutorial; 0 for small).
    #[arg(long, value_parser = DECAY.parser_f32())]
    decay: Option<f32>,
    /// SGD momentum.
    #[arg(long, value_parser = MOMENTUM.parser_f32())]
    momentum: Option<f32>,
    /// Augmentation of training images: default (the network's tutorial setting), none, or
    /// key=value,... (see below).
    #[arg(long, value_name = "default|none|SPEC", default_value = "default")]
    augment: String,
    /// Pixel scaling: unit (x / 255, the tutorial's), standardize (each image to zero mean, unit
    /// variance) or equalize (histogram equalisation, then standardize).
    #[arg(long, default_value = "unit")]
    input: Input,
    /// How photos are resized to --size: nearest, bilinear, bicubic or lanczos3 (default:
    /// nearest for small, as the tutorial's flow_from_directory; bilinear for lenet).
    #[arg(long, value_name = "FILTER")]
    interpolation: Option<Filter>,
    /// Learning rate across epochs: constant or cosine (to 0 at the last epoch).
    #[arg(long, default_value = "constant")]
    schedule: Schedule,
    /// Batch normalisation after every convolution (not in the tutorial's networks).
    #[arg(long)]
    batch_norm: bool,
    /// Dropout rate before the output layer (small: replaces its 0.5; lenet: adds one).
    #[arg(long, value_parser = DROPOUT.parser_f32())]
    dropout: Option<f32>,
    /// Label smoothing of the targets (0 = none).
    #[arg(long, default_value_t = 0.0, value_parser = LABEL_SMOOTHING.parser_f32())]
    label_smoothing: f32,
    /// Seed of initialisation, shuffling, augmentation and dropout: same seed, same run.
    #[arg(long, default_value_t = 0, value_parser = imgclf_dataset::limits::SEED.parser_u64())]
    seed: u64,
    /// Labelled split scored after each epoch (default: validation, else test).
    #[arg(long, value_name = "SPLIT")]
    validation: Option<String>,
    /// Replace --out if it holds an earlier run.
    #[arg(long)]
    force: bool,
}

/// The flags `--resume` cannot honour (the run's settings come from its run.json): every
/// flag but --out, --epochs and --resume itself, as a test checks.
const RESUME_REFUSES: [&str; 18] = [
    "arch",
    "data",
    "size",
    "batch",
    "optimizer",
    "lr",
    "decay",
    "momentum",
    "augment",
    "input",
    "interpolation",
    "schedule",
    "batch_norm",
    "dropout",
    "label_smoothing",
    "seed",
    "validation",
    "force",
];

fn parse_size(s: &str) -> Result<[usize; 2], String> {
    let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| (8..=1024).contains(&n));
    let size = match s.split_once(['x', 'X']) {
        Some((h, w)) => parse(h).zip(parse(w)).map(|(h, w)| [h, w]),
        None => parse(s).map(|n| [n, n]),
    };
    size.ok_or_else(|| format!("`{s}`: expected N or HxW, each from 8 to 1024"))
}

/// The settings from the flags, over the architecture's tutorial recipe.
fn config(args: &TrainArgs, arch: Arch) -> anyhow::Result<CnnConfig> {
    let mut c = CnnConfig::tutorial(arch);
    c.epochs = args.epochs.unwrap_or(c.epochs);
    c.optimizer = args.optimizer.unwrap_or(c.optimizer);
    c.optimizer.learning_rate = args.lr.unwrap_or(c.optimizer.learning_rate);
    c.optimizer.decay = args.decay.unwrap_or(arch.tutorial_decay(c.optimizer.learning_rate, c.epochs));
    if let Some(m) = args.momentum {
        c.optimizer.set_momentum(m, false).context("--momentum")?;
    }
    c.variant = Variant { batch_norm: args.batch_norm, dropout: args.dropout };
    c.size = args.size.unwrap_or(c.size);
    c.batch_size = args.batch;
    c.schedule = args.schedule;
    c.input = args.input;
    if let Some(filter) = args.interpolation {
        c.interpolation = filter;
    }
    c.augment = arch.augment(&args.augment).map_err(|e| anyhow::anyhow!("--augment {e}"))?;
    c.label_smoothing = args.label_smoothing;
    c.seed = args.seed;
    c.check()?;
    Ok(c)
}

pub fn train_cnn(args: TrainArgs) -> anyhow::Result<()> {
    imgclf_kernels::keep_freed_memory();
    let out = &args.out;
    let (training, dataset) = if args.resume {
        let training = CnnTraining::resume(out, args.epochs, &TRAIN_ON).context("--resume")?;
        let (done, epochs) = (training.epochs_done(), training.info.config.epochs);
        eprintln!("resuming {} after epoch {done} of {epochs}", out.display());
        let dataset = Dataset::open(&training.info.data).with_context(|| format!("the data of {}", out.display()))?;
        (training, dataset)
    } else {
        let config = config(&args, args.arch.expect("clap requires --arch without --resume"))?;
        let data = args.data.as_ref().expect("clap requires --data without --resume");
        RunDir::check(out, args.force).context("--out")?;
        let dataset = Dataset::open(data).with_context(|| format!("--data {}", data.display()))?;
        let validation = imgclf_nets::validation_split(&dataset, args.validation.as_deref()).context("--validation")?;
        let training = CnnTraining::create(out, args.force, config, &dataset, validation, &TRAIN_ON)?;
        (training, dataset)
    };
    let load = |name: &str| {
        with_bar(split_len(&dataset, name), &format!("loading {name}"), |bar| {
            Ok(training.load(&dataset, name, || bar.inc(1))?)
        })
    };
    let train_set = load("train")?;
    let validation = training.info.validation.clone().map(|name| load(&name)).transpose()?;
    let info = &training.info;
    eprintln!(
        "{:?}, {} parameters, {}x{} px; train {} images{}",
        info.config.arch,
        info.parameters,
        info.config.size[0],
        info.config.size[1],
        train_set.len(),
        match (&info.validation, &validation) {
            (Some(name), Some(v)) => format!(", validation `{name}` {} images", v.len()),
            _ => ", no validation split".into(),
        }
    );
    let stop = crate::extract::stop_on_signals()?;
    let progress = report(info.config.epochs, info.config.batch_size);
    // everything is checked and loaded: only now does the run folder start (hidden until its
    // first checkpoint, so a failure or a kill before it leaves no run behind)
    match training.train(&train_set, validation.as_ref(), Some(&stop), progress) {
        Ok(_) => {
            say!("saved {}", out.display());
            Ok(())
        }
        Err(e @ imgclf_nets::NetError::Interrupted { saved, .. }) if saved > 0 => {
            bail!("{e}: {}; continue with `imgclf train-cnn --out {} --resume`", out.display(), out.display())
        }
        Err(e @ imgclf_nets::NetError::Interrupted { .. }) => {
            bail!("{e} before the first epoch ended: {} was not written", out.display())
        }
        Err(e) => Err(e).with_context(|| format!("training {}", out.display())),
    }
}

/// Training's event handler: a bar per epoch, Keras' line after it (the epoch is saved by then).
fn report(epochs: usize, batch: usize) -> impl FnMut(FitEvent) -> Result<(), imgclf_nets::NetError> {
    let mut epoch_bar = ProgressBar::hidden();
    move |event| {
        match event {
            FitEvent::Batch { epoch, done, total } => {
                if done <= batch {
                    epoch_bar = bar(total as u64, &format!("Epoch {epoch}/{epochs}"), "images");
                }
                epoch_bar.set_position(done as u64);
            }
            FitEvent::Epoch { stats, .. } => {
                epoch_bar.finish_and_clear();
                say!("{}", epoch_line(stats, epochs));
            }
        }
        Ok(())
    }
}

/// Photos in split `name` of `dataset` (0 when it has none: the library names the split).
fn split_len(dataset: &Dataset, name: &str) -> u64 {
    dataset.split(name).map_or(0, |s| s.samples.len() as u64)
}

/// Runs `work` behind a progress bar of `total` photos, then warns of the photos it skipped.
fn with_bar<T>(
    total: u64,
    label: &str,
    work: impl FnOnce(&ProgressBar) -> anyhow::Result<(T, Vec<imgclf_dataset::DatasetError>)>,
) -> anyhow::Result<T> {
    let bar = bar(total, label, "images");
    let (out, skipped) = work(&bar)?;
    bar.finish_and_clear();
    warn_skipped(&skipped);
    Ok(out)
}

#[derive(clap::Args)]
#[command(after_help = "Example (the tutorial's fine-tuning of the last conv block):\n  \
imgclf train-head --features features/gap_EfficientNet-Lite0.h5 --out runs/exp1\n  \
imgclf fine-tune --run runs/exp1 --data ../shared/data/cats_dogs --out runs/exp1-ft --block last --epochs 5 --lr 1e-4\n\n\
The backbone of the head's run (one backbone) is cut at the input of its last residual block:\n\
the start runs once over every image (frozen, its outputs kept in memory), and the last block,\n\
rebuilt from the ONNX weights, trains together with the head with SGD (momentum 0.9). The\n\
run folder gets frozen.onnx, weights.safetensors, run.json (with the validation numbers before\n\
fine-tuning), history.csv and curves.png; evaluate and predict take it like any run.\n\
Works for NCHW backbones whose last block is Conv (stride 1, full or depthwise), Clip, Relu,\n\
Add and Pad: EfficientNet-Lite0 from `models pull` or ../shared/models (both tested); other\n\
PyTorch exports with such blocks (ResNets) should work but are untested. Keras exports (NHWC,\n\
transposes) are refused with the reason.")]
pub struct FineTuneArgs {
    /// A train-head run on one backbone.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// The photos the head's features came from: the data root, manifest or tar shards given to extract.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Run folder to write (refused if it exists, unless --force).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Which blocks train: `last` (the last residual block and everything after it).
    #[arg(long, default_value = "last", value_parser = ["last"])]
    block: String,
    /// Start the trained tail at this tensor of the ONNX graph instead of the last block's input.
    #[arg(long, value_name = "TENSOR")]
    from: Option<String>,
    #[arg(long, default_value_t = 5, value_parser = EPOCHS.parser_usize())]
    epochs: usize,
    /// SGD learning rate.
    #[arg(long, default_value_t = 1e-4, value_parser = LEARNING_RATE.parser_f32())]
    lr: f32,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9, value_parser = MOMENTUM.parser_f32())]
    momentum: f32,
    /// Images per gradient step.
    #[arg(long, default_value_t = 32, value_parser = BATCH.parser_usize())]
    batch: usize,
    /// Seed of shuffling and dropout.
    #[arg(long, default_value_t = 0, value_parser = imgclf_dataset::limits::SEED.parser_u64())]
    seed: u64,
    /// Where the frozen start runs.
    #[command(flatten)]
    engine: EngineArgs,
    /// Replace --out if it holds an earlier run.
    #[arg(long)]
    force: bool,
}

pub fn fine_tune(args: FineTuneArgs) -> anyhow::Result<()> {
    imgclf_kernels::keep_freed_memory();
    let base = imgclf_heads::Run::load(&args.run).context("--run")?;
    let config = FineTuneConfig {
        epochs: args.epochs,
        batch_size: args.batch,
        learning_rate: args.lr,
        momentum: args.momentum,
        seed: args.seed,
    };
    // the engine and device first: a GPU that cannot start leaves nothing behind
    let engine = args.engine.config(None)?;
    let out = RunDir::begin(&args.out, args.force).context("--out")?;
    let mut tuning = FineTuning::create(out, &base, &args.data, args.from.as_deref(), config, &engine, &TRAIN_ON)
        .with_context(|| format!("fine-tuning {}", args.run.display()))?;
    let info = &tuning.run.info;
    let tensors = tuning.run.model.tail.params().len();
    eprintln!(
        "{}: training from `{}` to `{}` ({tensors} tensors) and the head; the rest is frozen",
        info.backbone, info.from, info.to
    );
    let (epochs, batch, validation) = (info.config.epochs, info.config.batch_size, info.validation.clone());
    let mut cache = |name: &str| {
        with_bar(split_len(&tuning.dataset, name), &format!("frozen start over {name}"), |bar| {
            Ok(tuning.cache(name, |n| bar.inc(n as u64))?)
        })
    };
    let train_set = cache("train")?;
    let validation = validation.map(|name| cache(&name)).transpose()?;
    if let Some(v) = &validation {
        let before = tuning.score_before(v)?;
        say!("before fine-tuning: val_loss: {:.4} - val_acc: {:.4}", before.loss, before.acc);
    }
    let stop = crate::extract::stop_on_signals()?;
    tuning
        .train(&train_set, validation.as_ref(), Some(&stop), report(epochs, batch))
        .with_context(|| format!("fine-tuning into {} (nothing written)", args.out.display()))?;
    say!("saved {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Args as _;

    use super::*;

    /// `--resume` takes its settings from run.json: every other flag but --out and --epochs is
    /// in the one list it refuses, so a flag added later cannot be ignored without a word.
    #[test]
    fn resume_refuses_every_setting() {
        let command = TrainArgs::augment_args(clap::Command::new("train-cnn"));
        let mut settings: Vec<&str> = command
            .get_arguments()
            .map(|a| a.get_id().as_str())
            .filter(|id| !["out", "epochs", "resume"].contains(id))
            .collect();
        settings.sort();
        let mut refused = RESUME_REFUSES.to_vec();
        refused.sort();
        assert_eq!(settings, refused);
    }
}
