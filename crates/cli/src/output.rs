//! What an output flag may write over, and writing pictures and text whole. A command writes
//! where nothing is, over its own earlier output (recognised by the mark it carries), or, with
//! `--force`, over another plain file; never over a folder, a feature file or a run's own files.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use imgclf_dataset::{IMAGE_MARK, check_output};

/// Checks every path `flag` of command `tag` will write before anything is written: refused in
/// one line naming the flag and the first path that may not be replaced.
pub(crate) fn may_write(
    tag: &str,
    flag: &str,
    paths: &[PathBuf],
    mark: Option<&[u8]>,
    force: bool,
) -> anyhow::Result<()> {
    for path in paths {
        if let Err(why) = check_output(path, tag, mark, force) {
            bail!("{flag} {}: {why}", path.display());
        }
    }
    Ok(())
}

/// The command every picture an output flag writes is marked as (`cam`, `predict --annotate`
/// and `augment preview` may replace each other's pictures, never anyone else's).
const PICTURES: &str = "picture";

/// [`may_write`] for pictures, which carry [`IMAGE_MARK`].
pub(crate) fn may_write_images(flag: &str, paths: &[PathBuf], force: bool) -> anyhow::Result<()> {
    may_write(PICTURES, flag, paths, Some(IMAGE_MARK), force)
}

/// Encodes an image in the format its file name says, with imgclf's mark where the format
/// has room for one, and writes it with [`write_output`].
pub(crate) fn save_image(image: &image::RgbImage, path: &Path) -> anyhow::Result<()> {
    let format = image::ImageFormat::from_path(path)?;
    write_output(path, &imgclf_dataset::encode_marked(image, format)?, PICTURES)
}

/// [`imgclf_dataset::write_output`] with the file's name in the error.
pub(crate) fn write_output(path: &Path, bytes: &[u8], tag: &str) -> anyhow::Result<()> {
    imgclf_dataset::write_output(path, bytes, tag).with_context(|| path.display().to_string())
}
