//! One page per experiment and one table across experiments. [`report`] scores a run folder
//! (any kind: `train-head`, `train-cnn`, `fine-tune`) on a labelled split and renders a
//! self-contained HTML [`Page`]: what was trained, the training curves as SVG, the metrics and
//! confusion matrix, ROC and precision-recall curves for two classes, the most confidently
//! wrong photos beside their class activation maps, and correct photos for contrast. Photos
//! are inline `data:` URIs, so the page opens from a file or an e-mail, with no network.
//! [`find_runs`] lists run folders as [`RunRow`]s, printed as a table, CSV or HTML.
//!
//! The page is rendered with maud, which escapes every string it interpolates: a photo named
//! `<script>.jpg` shows as text.

#![warn(missing_docs)]

mod binary;
mod maps;
mod page;
mod photos;
mod runs;

pub use binary::{BinaryCurves, binary_curves};
pub use maps::cam_overlay;
pub use page::{Page, ReportOptions, Shot, SourceRow, report};
pub use runs::{RunRow, SortBy, find_runs, runs_csv, runs_html, runs_table};

use std::path::{Path, PathBuf};

/// What every page [`Page::html`] renders carries in its head, this version's and earlier
/// ones': how `report --out` knows its own earlier page from a file it must not replace.
pub const PAGE_MARK: &[u8] = b"<title>imgclf report: ";

/// The same for the table [`runs_html`] renders (`runs --html`).
pub const RUNS_MARK: &[u8] = b"<title>imgclf runs</title>";

/// Why a page or a table could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A run folder that cannot be read as one.
    #[error("{}: {reason}", path.display())]
    Run {
        /// The folder or file at fault.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// Loading or scoring the run.
    #[error(transparent)]
    Net(#[from] imgclf_nets::NetError),
    /// Loading a head run's backbones.
    #[error(transparent)]
    Head(#[from] imgclf_heads::HeadError),
    /// A map that does not fit the head.
    #[error(transparent)]
    Cam(#[from] imgclf_cam::CamError),
    /// Reading a photo.
    #[error(transparent)]
    Dataset(#[from] imgclf_dataset::DatasetError),
}

impl ReportError {
    fn run(path: &Path, reason: impl Into<String>) -> ReportError {
        ReportError::Run { path: path.to_path_buf(), reason: reason.into() }
    }
}

/// The cache fingerprint of feature file `file` (its attributes only), `None` when it is gone
/// or unreadable.
fn fingerprint_of(file: &Path) -> Option<String> {
    imgclf_features::FeatureReader::open(file).ok().map(|r| r.info.fingerprint)
}

/// A file's modification time as `YYYY-MM-DD HH:MM UTC` (the date a run was written).
fn modified(path: &Path) -> Option<String> {
    let secs = path.metadata().ok()?.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // civil-from-days (H. Hinnant): days since 1970-01-01 to a Gregorian date
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some(format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rest / 3_600, rest % 3_600 / 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        let t = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(t.path().join("f")).unwrap();
        // 2024-02-29 23:59:00 UTC, a leap day
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_709_251_140)).unwrap();
        assert_eq!(modified(&t.path().join("f")).unwrap(), "2024-02-29 23:59 UTC");
    }
}
