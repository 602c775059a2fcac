//! Where a dataset's photos come from: split folders, or a manifest listing them.

use std::path::Path;

use crate::{Dataset, DatasetError, is_manifest};

impl Dataset {
    /// The photos under `data`: its split folders (`train/<class>/*.jpg`, ...), or, when `data`
    /// is a manifest (`.csv`, `.tsv`, `.jsonl`: a path column, optionally label and split), the
    /// photos it lists, rooted at its folder. Both give the same rows for the same photos.
    pub fn open(data: impl AsRef<Path>) -> Result<Dataset, DatasetError> {
        let data = data.as_ref();
        match is_manifest(data) {
            true => crate::manifest::open(data),
            false => Dataset::open_folders(data),
        }
    }
}
