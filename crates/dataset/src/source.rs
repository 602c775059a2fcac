//! Where a dataset's photos come from: split folders, or a manifest listing them.

use std::path::Path;

use crate::{Dataset, DatasetError, is_manifest, is_tar_source};

impl Dataset {
    /// The photos under `data`: its split folders (`train/<class>/*.jpg`, ...); when `data` is
    /// a manifest (`.csv`, `.tsv`, `.jsonl`: a path column, optionally label and split), the
    /// photos it lists, rooted at its folder, in a folder's order; when it names WebDataset tar
    /// shards (a folder of `.tar` files, or `train-{000..099}.tar`), their samples in tar order.
    pub fn open(data: impl AsRef<Path>) -> Result<Dataset, DatasetError> {
        let data = data.as_ref();
        if is_manifest(data) {
            crate::manifest::open(data)
        } else if is_tar_source(data) {
            crate::tars::open(data)
        } else {
            Dataset::open_folders(data)
        }
    }
}
