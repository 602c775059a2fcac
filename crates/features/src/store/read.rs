//! Reading a feature file: its attributes at once, its rows a block at a time.

use std::ops::Range;
use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use ndarray::{Array2, s};

use super::*;
use crate::FeatureError;

/// Bytes of features read at a time where a whole split need not be in memory.
pub(crate) const BLOCK_BYTES: usize = 64 << 20;

/// A feature file opened for reading: its attributes at once, its rows a block at a time, so
/// that memory stays flat whatever the file's size (`merge` and `status` read shards so).
pub struct FeatureReader {
    path: PathBuf,
    file: hdf5::File,
    /// Everything the file holds but its rows: `info.splits` is empty.
    pub info: FeatureSet,
    /// Rows per split, in file order.
    pub rows: Vec<(String, usize)>,
    /// Feature width `D`.
    pub dim: usize,
    /// How the values are stored (read back as f32 either way).
    pub storage: Storage,
    members: Vec<String>,
    checksum: String,
}

impl FeatureReader {
    /// Opens a feature file and reads its attributes and the shape of each split, refusing a
    /// file that is not one of ours or whose row counts disagree; no rows are read.
    pub fn open(path: &Path) -> Result<FeatureReader, FeatureError> {
        let err = FeatureError::file;
        let file = open(path)?;
        let members = file.member_names().map_err(err(path))?;
        let length = |key: &str| -> Result<Option<usize>, FeatureError> {
            match members.iter().any(|m| m == key) {
                true => file.dataset(key).map(|d| Some(d.shape().first().copied().unwrap_or(0))).map_err(err(path)),
                false => Ok(None),
            }
        };
        let (mut rows, mut dim, mut storage) = (Vec::new(), 0, Storage::F32);
        for name in imgclf_dataset::SPLIT_NAMES.into_iter().filter(|n| members.iter().any(|m| m == n)) {
            let dataset = file.dataset(name).map_err(err(path))?;
            if dataset.dtype().map_err(err(path))?.size() == 2 {
                storage = Storage::F16;
            }
            let shape = dataset.shape();
            let n = shape.first().copied().unwrap_or(0);
            dim = shape.get(1).copied().unwrap_or(0);
            let others =
                [length(&format!("{name}_paths"))?, length(&label_key(name))?, length(&format!("{name}_photos"))?];
            if others[0].is_none() || others.iter().flatten().any(|&len| len != n) {
                return Err(FeatureError::FeatureFile {
                    path: path.to_path_buf(),
                    reason: format!("split `{name}`: row counts of features, labels, paths and photos disagree"),
                });
            }
            rows.push((name.to_string(), n));
        }
        let input_size = file.attr("input_size").and_then(|a| a.read_raw::<u32>()).map_err(err(path))?;
        let info = FeatureSet {
            backbone: text_attr(&file, "backbone", path)?,
            classes: file
                .attr("classes")
                .and_then(|a| a.read_raw::<VarLenUnicode>())
                .map_err(err(path))?
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            splits: Vec::new(),
            model_sha256: text_attr(&file, "model_sha256", path)?,
            model: text_attr(&file, "model", path)?,
            input_size: input_size.try_into().map_err(|_| FeatureError::FeatureFile {
                path: path.to_path_buf(),
                reason: "attribute input_size is not [height, width]".into(),
            })?,
            engine: text_attr(&file, "engine", path)?,
            fingerprint: text_attr(&file, "fingerprint", path)?,
            spec: text_attr(&file, "spec", path)?,
            shard: shard_attr(&file, path)?,
        };
        let checksum = text_attr(&file, "checksum", path)?;
        Ok(FeatureReader { path: path.to_path_buf(), file, info, rows, dim, storage, members, checksum })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows in split `name`; `None` when the file has no such split.
    pub fn split_rows(&self, name: &str) -> Option<usize> {
        self.rows.iter().find(|(n, _)| n == name).map(|(_, n)| *n)
    }

    /// Whether split `name` is in the file with a label per row.
    pub fn is_labelled(&self, name: &str) -> bool {
        self.split_rows(name).is_some() && self.members.iter().any(|m| *m == label_key(name))
    }

    /// Rows of this file that make about `bytes` of features: the block size for reading it.
    pub fn block_rows(&self, bytes: usize) -> usize {
        (bytes / (self.dim.max(1) * size_of::<f32>())).max(1)
    }

    /// Rows `range` of split `name`: features, labels, paths and photo digests.
    pub fn block(&self, name: &str, range: Range<usize>) -> Result<SplitFeatures, FeatureError> {
        Ok(SplitFeatures {
            name: name.to_string(),
            features: self.features(name, range.clone())?,
            labels: self.labels(name, range.clone())?,
            paths: self.paths(name, range.clone())?,
            photos: self.photos(name, range)?,
        })
    }

    /// The features of rows `range` of split `name`, `(rows, D)`, and nothing else: what a
    /// head reads a chunk at a time.
    pub fn features(&self, name: &str, range: Range<usize>) -> Result<Array2<f32>, FeatureError> {
        if range.is_empty() {
            return Ok(Array2::zeros((0, self.dim)));
        }
        let rows = self.file.dataset(name).and_then(|d| d.read_slice_2d(s![range, ..]));
        rows.map_err(FeatureError::file(&self.path))
    }

    /// The labels of rows `range` of split `name`; `None` for an unlabelled split.
    pub fn labels(&self, name: &str, range: Range<usize>) -> Result<Option<Vec<i64>>, FeatureError> {
        self.column::<i64>(&label_key(name), &range)
    }

    /// The photo digests of rows `range` of split `name`; `None` in files that do not record them.
    pub fn photos(&self, name: &str, range: Range<usize>) -> Result<Option<Vec<u64>>, FeatureError> {
        self.column::<u64>(&format!("{name}_photos"), &range)
    }

    /// The checksum attribute: it changes whenever the file's rows do, so a reader opened
    /// later can tell that the file was replaced in between.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }

    /// Split `name` in order, `block_rows` rows at a time (empty for a split the file lacks).
    pub fn blocks(&self, name: &str, block_rows: usize) -> impl Iterator<Item = Result<SplitFeatures, FeatureError>> {
        let rows = self.split_rows(name).unwrap_or(0);
        let step = block_rows.max(1);
        (0..rows).step_by(step).map(move |start| self.block(name, start..(start + step).min(rows)))
    }

    /// The image paths of rows `range` of split `name`, without their features.
    pub fn paths(&self, name: &str, range: Range<usize>) -> Result<Vec<String>, FeatureError> {
        let paths = self.column::<VarLenUnicode>(&format!("{name}_paths"), &range)?.unwrap_or_default();
        Ok(paths.iter().map(|p| p.as_str().to_string()).collect())
    }

    /// Rows `range` of the 1-D dataset `key`; `None` when the file has no such dataset.
    fn column<T: hdf5::H5Type + Clone>(&self, key: &str, range: &Range<usize>) -> Result<Option<Vec<T>>, FeatureError> {
        if !self.members.iter().any(|m| m == key) {
            return Ok(None);
        }
        if range.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let values = self.file.dataset(key).and_then(|d| d.read_slice_1d::<T, _>(s![range.clone()]));
        Ok(Some(values.map_err(FeatureError::file(&self.path))?.to_vec()))
    }

    /// A check of this file's rows against its stored checksum, fed as they are read.
    pub fn verifier(&self) -> Verifier {
        Verifier::new(&self.info.classes, &self.checksum, &self.path)
    }

    /// Reads every row once, `block_rows` at a time, and checks them against the checksum:
    /// a file that reads whole and undamaged, in flat memory.
    pub fn verify(&self, block_rows: usize) -> Result<(), FeatureError> {
        let mut check = self.verifier();
        for (name, _) in &self.rows {
            check.split(name);
            for block in self.blocks(name, block_rows) {
                check.rows(&block?);
            }
        }
        check.finish()
    }
}
