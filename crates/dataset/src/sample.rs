//! One photo of a split, and where its bytes are: a file of its own, a tar member, or a row
//! of a Parquet file; [`Sample::read`] is the one place they are read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{DatasetError, Resize};

/// One image of a split: where it is, its path relative to the data root (the stable key
/// that aligns rows across feature files), and its class id when the split is labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The image file; for a tar member, the tar's path and the member's name (what errors name).
    pub path: PathBuf,
    /// Its identity: the path relative to the data root, `/`-separated (`train/cats/cat.1.jpg`),
    /// or for a tar member the tar's and the sample's key (`train-000.tar/0001`).
    pub rel: String,
    /// Its class id, in a labelled split.
    pub label: Option<usize>,
    /// Where its bytes are when they are not a file of their own: a tar member, a Parquet row.
    pub member: Option<Member>,
}

/// A photo inside a tar or a Parquet file: its bytes' place, or why the sample has no one
/// image to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    /// `len` bytes from `offset` of the tar `tar`.
    Bytes {
        /// The tar.
        tar: Arc<Path>,
        /// Where the image's bytes start.
        offset: u64,
        /// How many.
        len: u64,
    },
    /// Row `index` of row group `group` of a Parquet file whose `column` holds the images.
    Row {
        /// The Parquet file.
        file: Arc<Path>,
        /// The column of image bytes (or of structs with `bytes`).
        column: Arc<str>,
        /// The row group.
        group: usize,
        /// The row within it.
        index: usize,
    },
    /// A sample with no image, with two, or cut short: skipped, with this reason, when read.
    Fault {
        /// The tar.
        tar: Arc<Path>,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
}

impl Sample {
    /// A photo that is a file of its own.
    pub fn file(path: PathBuf, rel: String, label: Option<usize>) -> Sample {
        Sample { path, rel, label, member: None }
    }

    /// The file its bytes are in: the photo itself, or its tar.
    pub fn container(&self) -> &Path {
        match &self.member {
            Some(Member::Bytes { tar, .. } | Member::Fault { tar, .. } | Member::Row { file: tar, .. }) => tar,
            None => &self.path,
        }
    }

    /// Its bytes, for [`decode_rgb`](crate::decode_rgb) and a digest.
    pub fn read(&self) -> Result<Vec<u8>, DatasetError> {
        match &self.member {
            None => crate::read_photo(&self.path),
            Some(Member::Bytes { tar, offset, len }) => {
                let mut bytes = vec![0; *len as usize];
                let file = std::fs::File::open(tar).map_err(DatasetError::io(tar.as_ref()))?;
                std::os::unix::fs::FileExt::read_exact_at(&file, &mut bytes, *offset)
                    .map_err(DatasetError::io(&self.path))?;
                Ok(bytes)
            }
            Some(Member::Row { file, column, group, index }) => {
                crate::row_groups::image_bytes(file, column, *group, *index)
                    .map_err(|reason| DatasetError::Decode { path: self.path.clone(), reason })
            }
            Some(Member::Fault { reason, .. }) => {
                Err(DatasetError::Decode { path: self.path.clone(), reason: reason.clone() })
            }
        }
    }

    /// Its photo decoded to RGB ([`load_rgb`](crate::load_rgb) for any sample).
    pub fn load_rgb(&self) -> Result<image::RgbImage, DatasetError> {
        crate::decode_rgb(&self.read()?, &self.path)
    }

    /// Its photo decoded and resized ([`Resize::load`] for any sample).
    pub fn load_resized(&self, resize: &Resize) -> Result<image::RgbImage, DatasetError> {
        resize.apply(&self.load_rgb()?, &self.path)
    }
}
