//! Where a dataset's photos come from: split folders, or a manifest listing them.

use std::path::Path;

use crate::{Dataset, DatasetError, is_manifest, is_tar_source};

impl Dataset {
    /// The photos under `data`: its split folders (`train/<class>/*.jpg`, ...); when `data` is
    /// a manifest (`.csv`, `.tsv`, `.jsonl`: a path column, optionally label and split), the
    /// photos it lists, rooted at its folder, in a folder's order; when it names WebDataset tar
    /// shards (a folder of `.tar` files, or `train-{000..099}.tar`), their samples in tar order;
    /// when it is a Parquet file of images (or a folder of them, Hugging Face's layout), its rows
    /// in file order.
    pub fn open(data: impl AsRef<Path>) -> Result<Dataset, DatasetError> {
        let data = data.as_ref();
        if is_manifest(data) {
            crate::manifest::open(data)
        } else if is_tar_source(data) {
            crate::tars::open(data)
        } else if let Some(files) = parquet_folder(data) {
            crate::parquet::open_images(
                data,
                &files,
                crate::parquet::ImageColumns { image: None, label: None, split: None },
            )
        } else {
            Dataset::open_folders(data)
        }
    }
}

/// The `.parquet` files of a folder that has no split folder: a Hugging Face dataset's files.
fn parquet_folder(data: &Path) -> Option<Vec<std::path::PathBuf>> {
    let splits = crate::SPLIT_NAMES.iter().any(|s| data.join(s).is_dir());
    let files = crate::parquet::files_in(data);
    (data.is_dir() && !splits && !files.is_empty()).then_some(files)
}
