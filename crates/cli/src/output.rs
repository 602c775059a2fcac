//! What an output flag may write over, and writing pictures and text whole. A command writes
//! where nothing is, over its own earlier output (recognised by the mark it carries), or, with
//! `--force`, over another plain file; never over a folder, a feature file or a run's own files.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use imgclf_dataset::{IMAGE_MARK, check_output};
use imgclf_report::{PAGE_MARK, RUNS_MARK};

/// A kind of file an output flag writes: the tag its files carry (`user.imgclf.output`) and
/// the mark in its bytes, when the format has room for one.
pub(crate) struct Output {
    pub(crate) tag: &'static str,
    mark: Option<&'static [u8]>,
}

/// `imgclf report`'s page.
pub(crate) const REPORT_PAGE: Output = Output { tag: "report", mark: Some(PAGE_MARK) };
/// `imgclf runs --html`'s table.
pub(crate) const RUNS_TABLE: Output = Output { tag: "runs", mark: Some(RUNS_MARK) };
/// `imgclf predict --csv`'s submission (no room for a mark: the tag alone tells it).
pub(crate) const PREDICTION_CSV: Output = Output { tag: "predict", mark: None };
/// `imgclf features export`'s Parquet table (every Parquet file starts `PAR1`: the tag alone
/// tells ours).
pub(crate) const PARQUET_EXPORT: Output = Output { tag: "export", mark: None };
/// Every picture (`cam`, `predict --annotate` and `augment preview` may replace each other's
/// pictures, never anyone else's).
pub(crate) const PICTURE: Output = Output { tag: "picture", mark: Some(IMAGE_MARK) };

impl Output {
    /// Checks every path `flag` will write before anything is written: refused in one line
    /// naming the flag and the first path that may not be replaced.
    pub(crate) fn check(&self, flag: &str, paths: &[PathBuf], force: bool) -> anyhow::Result<()> {
        for path in paths {
            if let Err(why) = check_output(path, self.tag, self.mark, force) {
                bail!("{flag} {}: {why}", path.display());
            }
        }
        Ok(())
    }

    /// [`Output::check`] for files that go into the folder `dir` (which must not be a file).
    pub(crate) fn check_in(&self, flag: &str, dir: &Path, paths: &[PathBuf], force: bool) -> anyhow::Result<()> {
        if dir.is_file() {
            bail!("{flag} {}: is a file, not a folder", dir.display());
        }
        self.check(flag, paths, force)
    }

    /// Writes `bytes` to `path` whole, tagged as this kind of output.
    pub(crate) fn write(&self, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        imgclf_dataset::write_output(path, bytes, self.tag).with_context(|| path.display().to_string())
    }
}

/// Encodes an image in the format its file name says, with imgclf's mark where the format
/// has room for one, and writes it as a [`PICTURE`].
pub(crate) fn save_image(image: &image::RgbImage, path: &Path) -> anyhow::Result<()> {
    let format = image::ImageFormat::from_path(path)?;
    PICTURE.write(path, &imgclf_dataset::encode_marked(image, format)?)
}
