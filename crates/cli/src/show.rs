//! How the CLI shows work going on: Keras' epoch lines, progress bars, skipped images.

use imgclf_heads::EpochStats;
use indicatif::{ProgressBar, ProgressStyle};

/// `Epoch 3/8 - 0.4s - loss: 0.0231 - acc: 0.9929 - val_loss: 0.0166 - val_acc: 0.9946`, as Keras prints.
pub fn epoch_line(stats: &EpochStats, epochs: usize) -> String {
    format!("Epoch {}/{epochs} - {:.1}s - {}", stats.epoch, stats.seconds, metrics(stats))
}

pub fn metrics(stats: &EpochStats) -> String {
    let mut s = format!("loss: {:.4} - acc: {:.4}", stats.loss, stats.acc);
    if let (Some(l), Some(a)) = (stats.val_loss, stats.val_acc) {
        s += &format!(" - val_loss: {l:.4} - val_acc: {a:.4}");
    }
    s
}

pub fn warn_skipped(skipped: &[imgclf_dataset::DatasetError]) {
    for e in skipped {
        eprintln!("warning: skipped {e}");
    }
}

/// A progress bar on a terminal (hidden otherwise, as indicatif does).
pub fn bar(len: u64, prefix: &str, unit: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(&format!("{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{elapsed}}"))
        .expect("the template is valid")
        .progress_chars("=> ");
    ProgressBar::new(len).with_style(style).with_prefix(prefix.to_string())
}

/// A spinner with a message, for work of unknown length (drawn only on a terminal).
pub fn spinner(prefix: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{prefix} {spinner} {msg} {elapsed}").expect("the template is valid");
    let bar = ProgressBar::new_spinner().with_style(style).with_prefix(prefix.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Warns of feature files joined by image path alone (written before imgclf recorded photos).
pub fn warn_unverified(inputs: &imgclf_heads::HeadInputs) {
    for file in &inputs.unverified {
        eprintln!(
            "warning: {}: records no photo digests (an older imgclf wrote it), so its rows are matched to the other \
             files by path alone; `imgclf extract --force` records them",
            file.display()
        );
    }
}
