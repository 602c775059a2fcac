//! `imgclf`: one subcommand per stage. This binary parses arguments, reports progress and
//! calls the libraries; everything testable lives in the `imgclf-*` crates.

mod extract;

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
    /// Run pretrained ONNX backbones over every split and write one gap_<Backbone>.h5 per backbone.
    Extract(extract::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Extract(args) => extract::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
