//! `imgclf`: one subcommand per stage. This binary parses arguments, reports progress and
//! calls the libraries; everything testable lives in the `imgclf-*` crates.

/// `println!` that keeps going when stdout is closed (`imgclf evaluate ... | head`): a run
/// must not die, or panic, because its reader went away.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// What `--data` takes, said once for every stage that reads photos.
const DATA_HELP: &str = "Where the photos are: a data root (train/<class>/*, validation/<class>/*, optionally test/, \
flat or per class); a manifest listing them (.csv, .tsv or .jsonl: a path column, optionally label and split; paths \
relative to it; `FILE?pattern=train/{id}.jpg&label=breed` builds paths from a column, such as Kaggle's ids, and \
`?path=`, `?label=`, `?split=` choose columns); or WebDataset tar shards (a folder of .tar files, or \
`shards/train-{000000..000099}.tar`; a tar's split from its name, train-, val- or test-; labels from .cls, .txt \
or .json members).";

mod augment;
mod budget;
mod calibrate;
mod cam;
mod engine;
mod extract;
mod features;
mod heads;
mod models;
mod nets;
mod output;
mod report;
mod runs;
mod show;
mod terms;
mod verify;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "imgclf",
    version,
    about = "Turn a folder of labelled images into a trained image classifier, one stage at a time."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Preview data augmentation with Keras ImageDataGenerator's parameters.
    Augment(augment::Args),
    /// Temperature scaling: fit one temperature on a labelled split so that any run's probabilities mean what they say.
    Calibrate(calibrate::Args),
    /// Class activation maps: where in each photo the head's evidence lies, as heat over the photo.
    Cam(cam::Args),
    /// Run pretrained ONNX backbones over every split and write one gap_<Backbone>.h5 per backbone.
    Extract(extract::Args),
    /// Shard files of extract --shard: merge them into one feature file, or see where they stand.
    Features(features::Args),
    /// The model cache: list, show and add ONNX backbones, then name them in --model.
    Models(models::Args),
    /// Train a dense head (logistic or mlp) on one or more feature files; writes a run folder.
    TrainHead(heads::TrainArgs),
    /// Train the tutorial's small CNN or LeNet from pixels, with augmentation and checkpoints; writes a run folder.
    TrainCnn(nets::TrainArgs),
    /// Fine-tune a backbone's last block together with a train-head run's head, at a low learning rate.
    FineTune(nets::FineTuneArgs),
    /// Score a run on a labelled split: accuracy, log loss, per-class scores, confusion matrix, top losses.
    Evaluate(runs::EvaluateArgs),
    /// Predict a split into a Kaggle-style CSV.
    Predict(runs::PredictArgs),
    /// One self-contained HTML page about a run: what was trained, curves, metrics, top losses with their maps.
    Report(report::ReportArgs),
    /// List run folders side by side (kind, backbones, head, validation scores, shared features); --html, --csv.
    Runs(report::RunsArgs),
    /// Decode every image of a dataset (in parallel) and list the unreadable ones; --quarantine moves them aside.
    Verify(verify::Args),
}

fn main() -> std::process::ExitCode {
    // SAFETY: first thing in main: no other thread runs yet.
    unsafe { imgclf_kernels::candle_on_one_thread() };
    let cli = match Cli::try_parse_from(negative_values(std::env::args_os())) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            eprintln!("{}", one_line(&e.render().to_string()));
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Augment(args) => augment::run(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Cam(args) => cam::run(args),
        Command::Extract(args) => extract::run(args),
        Command::Features(args) => features::run(args),
        Command::Models(args) => models::run(args),
        Command::TrainHead(args) => heads::train_head(args),
        Command::TrainCnn(args) => nets::train_cnn(args),
        Command::FineTune(args) => nets::fine_tune(args),
        Command::Evaluate(args) => runs::evaluate_run(args),
        Command::Predict(args) => runs::predict(args),
        Command::Report(args) => report::report_run(args),
        Command::Runs(args) => report::list_runs(args),
        Command::Verify(args) => verify::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", terms::for_users(&format!("{e:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--cval -1` as `--cval=-1`: a negative number (`-1`, `-1e-3`, `-inf`) after a long option
/// is that option's value, which clap would otherwise read as short flags. The value then
/// reaches the flag's parser: taken, or refused with the flag's range.
fn negative_values(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    let mut options = true;
    for arg in args {
        let negative = arg.to_str().is_some_and(|s| s.starts_with('-') && s[1..].parse::<f64>().is_ok());
        let after_option = out.last().and_then(|o| o.to_str()).is_some_and(|o| o.starts_with("--") && !o.contains('='));
        options &= arg != "--";
        match out.last_mut() {
            Some(option) if options && negative && after_option && option != "--" => {
                option.push("=");
                option.push(&arg);
            }
            _ => out.push(arg),
        }
    }
    out
}

/// A refused command line as one line, like every other error: clap's message and tips
/// joined, without its usage block (`--help` shows that), each quoted value abbreviated.
fn one_line(rendered: &str) -> String {
    let line = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    // clap quotes values in '...': a 309-digit value is echoed as its start and its length
    let parts: Vec<&str> = line.split('\'').collect();
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| if i % 2 == 1 { abbreviate(p) } else { p.to_string() })
        .collect::<Vec<_>>()
        .join("'")
}

/// Text a user typed, for a message: as it is up to 40 characters, else its first 24 and its length.
pub(crate) fn abbreviate(text: &str) -> String {
    let n = text.chars().count();
    match n <= 40 {
        true => text.to_string(),
        false => format!("{}... ({n} characters)", text.chars().take(24).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_numbers_after_an_option_become_its_value() {
        let join = |args: &[&str]| -> Vec<String> {
            let args = args.iter().map(std::ffi::OsString::from);
            negative_values(args).into_iter().map(|a| a.into_string().unwrap()).collect()
        };
        assert_eq!(
            join(&["imgclf", "x", "--lr", "-1e-3", "--cval", "-inf"]),
            ["imgclf", "x", "--lr=-1e-3", "--cval=-inf"]
        );
        // not after a value, an `=`, a short flag or `--`; words stay apart
        assert_eq!(
            join(&["x", "--lr=1", "-2", "-v", "-3", "--out", "-x"]),
            ["x", "--lr=1", "-2", "-v", "-3", "--out", "-x"]
        );
        assert_eq!(join(&["x", "--", "-1", "--a", "-1"]), ["x", "--", "-1", "--a", "-1"]);
    }
}
