//! Where a dataset's photos come from: split folders, or a manifest listing them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::{Dataset, DatasetError, Sample, is_manifest, is_tar_source};

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
            let chosen = crate::parquet::ImageColumns { image: None, label: None, split: None };
            crate::parquet::open_images(data, data.to_path_buf(), &files, chosen)
        } else {
            Dataset::open_folders(data)
        }
    }
}

/// Whether `data` is a source that lists or holds its photos (a manifest, WebDataset tar
/// shards, Parquet files of images) rather than a folder of photos: what stages given photos
/// open whole.
pub fn is_photo_collection(data: &Path) -> bool {
    is_manifest(data) || is_tar_source(data) || parquet_folder(data).is_some()
}

/// The `.parquet` files of a folder that has no split folder: a Hugging Face dataset's files.
fn parquet_folder(data: &Path) -> Option<Vec<PathBuf>> {
    if !data.is_dir() || crate::SPLIT_NAMES.iter().any(|s| data.join(s).is_dir()) {
        return None;
    }
    crate::containers::files_in(data, "parquet").ok().filter(|files| !files.is_empty())
}

/// Finds a row's photo by its identity (a feature file's `<split>_paths`): a file under the
/// photo root for folders and manifests (nothing is listed), or, for tar shards and Parquet
/// files of images, the sample the source lists under that identity.
pub struct Photos {
    /// The folder identities start from.
    pub root: PathBuf,
    members: HashMap<String, Sample>,
}

impl Photos {
    /// The photos of `data`, as `--data` names them.
    pub fn open(data: &Path) -> Result<Photos, DatasetError> {
        let parquet = data.to_str().and_then(|t| t.split('?').next()).is_some_and(|f| f.ends_with(".parquet"));
        if is_tar_source(data) || parquet_folder(data).is_some() || parquet {
            let dataset = Dataset::open(data)?;
            let samples = dataset.splits.into_iter().flat_map(|s| s.samples);
            let members = samples.filter(|s| s.member.is_some()).map(|s| (s.rel.clone(), s)).collect();
            return Ok(Photos { root: dataset.root, members });
        }
        Ok(Photos { root: crate::photo_root(data), members: HashMap::new() })
    }

    /// The photo of identity `rel`: a file of its own (its path), or a member of a tar or
    /// Parquet file.
    pub fn sample(&self, rel: &str) -> Sample {
        match self.members.get(rel) {
            Some(sample) => sample.clone(),
            None => Sample::file(self.root.join(rel), rel.to_string(), None),
        }
    }
}
