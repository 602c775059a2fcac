//! The `checksum` attribute: a running sha256 over a file's rows as they are written or read.

use std::path::{Path, PathBuf};

use ndarray::ArrayView1;
use sha2::{Digest, Sha256};

use super::*;
use crate::FeatureError;

/// The first 8 bytes of the sha256 of an image file's bytes, as a little-endian number: a
/// row's record of which photo it came from.
pub fn photo_digest(bytes: &[u8]) -> u64 {
    let digest = Sha256::digest(bytes);
    u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
}

/// A file's checksum recomputed from its rows as they are read: every split in file order
/// (`split`), each split's rows in order (`rows`), then `finish`.
pub struct Verifier {
    sum: Checksum,
    expected: String,
    path: PathBuf,
}

impl Verifier {
    /// A check of a file with `classes` against its stored `checksum`.
    pub(super) fn new(classes: &[String], checksum: &str, path: &Path) -> Verifier {
        Verifier { sum: Checksum::new(classes), expected: checksum.to_string(), path: path.to_path_buf() }
    }

    /// The next split begins.
    pub fn split(&mut self, name: &str) {
        self.sum.split(name);
    }

    /// The next rows of the current split.
    pub fn rows(&mut self, block: &SplitFeatures) {
        for (i, row) in block.features.rows().into_iter().enumerate() {
            let (label, photo) = (block.labels.as_ref().map(|l| l[i]), block.photos.as_ref().map(|p| p[i]));
            self.sum.row(&block.paths[i], row, label, photo);
        }
    }

    /// Whether the rows fed were the file's, undamaged.
    pub fn finish(self) -> Result<(), FeatureError> {
        match self.sum.hex() == self.expected {
            true => Ok(()),
            false => Err(damaged(&self.path)),
        }
    }
}

/// A file whose rows no longer match the checksum written with them.
pub(super) fn damaged(path: &Path) -> FeatureError {
    FeatureError::FeatureFile {
        path: path.to_path_buf(),
        reason: "damaged: its rows no longer match the checksum written with them; extract again".into(),
    }
}

/// The running sha256 behind the `checksum` attribute; lengths go before contents so that
/// different contents never hash the same stream.
#[derive(Clone)]
pub(super) struct Checksum(Sha256);

impl Checksum {
    pub(super) fn new(classes: &[String]) -> Checksum {
        let mut sum = Checksum(Sha256::new());
        classes.iter().for_each(|c| sum.text(c));
        sum
    }

    pub(super) fn text(&mut self, t: &str) {
        self.0.update((t.len() as u64).to_le_bytes());
        self.0.update(t.as_bytes());
    }

    pub(super) fn split(&mut self, name: &str) {
        self.text(name);
    }

    /// A row: its path, values, label and photo digest (files without digests hash as before).
    pub(super) fn row(&mut self, path: &str, values: ArrayView1<'_, f32>, label: Option<i64>, photo: Option<u64>) {
        self.text(path);
        self.0.update((values.len() as u64).to_le_bytes());
        values.iter().for_each(|v| self.0.update(v.to_le_bytes()));
        if let Some(l) = label {
            self.0.update(l.to_le_bytes());
        }
        if let Some(p) = photo {
            self.0.update(p.to_le_bytes());
        }
    }

    pub(super) fn hex(self) -> String {
        format!("{:x}", self.0.finalize())
    }
}
