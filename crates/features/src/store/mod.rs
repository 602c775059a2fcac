//! The feature file `gap_<Backbone>.h5`, laid out so that h5py reads it the way the tutorial
//! does (`h['train']`, `h['label']`, `h['test']`) and written atomically. Here: what a file
//! holds (`FeatureSet`, `FeatureHeader`, `Storage`, `ShardInfo`); `layout` (dataset names,
//! chunks, attributes, opening), `read` (`FeatureReader`), `write` (`FeatureWriter`, the
//! output lock) and `checksum` (the `checksum` attribute, `photo_digest`) each own one concern.

mod checksum;
mod layout;
mod read;
mod write;

pub use checksum::{Verifier, photo_digest};
pub(crate) use read::BLOCK_BYTES;
pub use read::FeatureReader;
pub(crate) use write::lock;
pub use write::{FeatureWriter, Origin};

use checksum::Checksum;
use layout::{CHUNK_ROWS, OpenSplit, label_key, open, open_split, shard_attr, strings, text_attr, to_vlen};

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView2};

use serde::{Deserialize, Serialize};

use crate::FeatureError;

/// Format tag stored in every file; a reader refuses files with another one. Version 2 added
/// the `model` attribute (the model file, for predicting new images); version 3 the
/// `checksum` attribute, so a file damaged after it was written is never silently used.
pub const FORMAT: &str = "imgclf-features/3";

/// The feature rows of one split, with the image path of each row.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitFeatures {
    /// The split (`train`, `validation`, `test`).
    pub name: String,
    /// `(rows, D)` pooled features.
    pub features: Array2<f32>,
    /// Class id per row, for labelled splits.
    pub labels: Option<Vec<i64>>,
    /// Image path relative to the data root, per row: the key that aligns files.
    pub paths: Vec<String>,
    /// Per row, the [`photo_digest`] of its image file: what tells two photos at one path
    /// apart (two copies of a dataset, one edited). `None` in files written before imgclf
    /// recorded it.
    pub photos: Option<Vec<u64>>,
}

impl SplitFeatures {
    /// All of the split's rows, as [`FeatureWriter::append`] takes them.
    pub fn rows(&self) -> Rows<'_> {
        Rows {
            features: self.features.view(),
            labels: self.labels.as_deref(),
            paths: &self.paths,
            photos: self.photos.as_deref(),
        }
    }
}

/// A block of rows to append to a split: the features and, per row, the label (labelled
/// splits), the image path and the photo's digest.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    /// `(rows, D)` pooled features.
    pub features: ArrayView2<'a, f32>,
    /// Class id per row, for labelled splits.
    pub labels: Option<&'a [i64]>,
    /// Image path per row, relative to the data root.
    pub paths: &'a [String],
    /// [`photo_digest`] per row.
    pub photos: Option<&'a [u64]>,
}

/// The part of a feature file that says whether it is still valid, and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureHeader {
    /// The cache key the file was made under.
    pub fingerprint: String,
    /// Where it was computed (`ort`, `tract`, `ort cuda:0`).
    pub engine: String,
    /// Rows per split, in file order.
    pub rows: Vec<(String, usize)>,
    /// Feature width `D`.
    pub dim: usize,
}

/// Everything in one feature file: the rows of each split and what produced them.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    /// The backbone's name.
    pub backbone: String,
    /// Class names in id order.
    pub classes: Vec<String>,
    /// The splits, in file order.
    pub splits: Vec<SplitFeatures>,
    /// sha256 of the model file.
    pub model_sha256: String,
    /// The model file the rows came from, as an absolute path when known (empty otherwise):
    /// what later stages run on new images.
    pub model: String,
    /// Input `[height, width]`.
    pub input_size: [u32; 2],
    /// Where the rows were computed (`ort`, `tract`, `ort cuda:0`).
    pub engine: String,
    /// Hash of the images, model and spec that produced the file (see `fingerprint`).
    pub fingerprint: String,
    /// The model spec JSON as read.
    pub spec: String,
    /// For a shard file (`extract --shard`): which part of the dataset it holds.
    pub shard: Option<ShardInfo>,
}

impl FeatureSet {
    /// The split named `name`, if the file has it.
    pub fn split(&self, name: &str) -> Option<&SplitFeatures> {
        self.splits.iter().find(|s| s.name == name)
    }

    /// Feature width `D`.
    pub fn dim(&self) -> usize {
        self.splits.first().map_or(0, |s| s.features.ncols())
    }

    /// The file name the tutorial uses: `gap_<Backbone>.h5`.
    pub fn file_name(backbone: &str) -> String {
        format!("gap_{backbone}.h5")
    }

    /// sha256 over the classes and every split's name, then each row's path, values and
    /// label: stored as the `checksum` attribute and checked by [`read`](Self::read).
    pub fn checksum(&self) -> String {
        let mut sum = Checksum::new(&self.classes);
        for split in &self.splits {
            sum.split(&split.name);
            for (i, row) in split.features.rows().into_iter().enumerate() {
                sum.row(&split.paths[i], row, split.labels.as_ref().map(|l| l[i]), split.photos.as_ref().map(|p| p[i]));
            }
        }
        sum.hex()
    }

    /// Writes the file under a temporary name in the same folder and renames it into place,
    /// so `path` holds either the previous complete file or the new complete file.
    pub fn write(&self, path: &Path) -> Result<(), FeatureError> {
        let mut writer = FeatureWriter::create(path, &self.classes)?;
        for split in &self.splits {
            writer.append(&split.name, split.rows())?;
        }
        writer.finish(&self.origin())
    }

    /// Its attributes besides `classes`, as [`FeatureWriter::finish`] takes them.
    pub fn origin(&self) -> Origin<'_> {
        Origin {
            backbone: &self.backbone,
            model_sha256: &self.model_sha256,
            model: &self.model,
            input_size: self.input_size,
            engine: &self.engine,
            fingerprint: &self.fingerprint,
            spec: &self.spec,
            shard: self.shard.as_ref(),
        }
    }

    /// Reads a whole feature file written by `write`; [`FeatureReader`] reads one a block of
    /// rows at a time.
    pub fn read(path: &Path) -> Result<FeatureSet, FeatureError> {
        FeatureSet::read_splits(path, &imgclf_dataset::SPLIT_NAMES)
    }

    /// Reads the splits named in `names` that the file has, and checks the whole file against
    /// its checksum: the other splits are read a block at a time and dropped, so they cost
    /// reading, not memory (scoring `validation` does not hold `train`).
    pub fn read_splits(path: &Path, names: &[&str]) -> Result<FeatureSet, FeatureError> {
        let reader = FeatureReader::open(path)?;
        let mut check = reader.verifier();
        let mut splits = Vec::new();
        for (name, n) in &reader.rows {
            check.split(name);
            if names.contains(&name.as_str()) {
                let block = reader.block(name, 0..*n)?;
                check.rows(&block);
                splits.push(block);
            } else {
                for block in reader.blocks(name, reader.block_rows(BLOCK_BYTES)) {
                    check.rows(&block?);
                }
            }
        }
        check.finish()?;
        Ok(FeatureSet { splits, ..reader.info })
    }

    /// What a cache check needs (fingerprint, engine, rows per split, width), read from the
    /// attributes and dataset shapes without loading any rows.
    pub fn read_header(path: &Path) -> Result<FeatureHeader, FeatureError> {
        let file = open(path)?;
        let members = file.member_names().map_err(FeatureError::file(path))?;
        let mut rows = Vec::new();
        let mut dim = 0;
        for name in imgclf_dataset::SPLIT_NAMES.into_iter().filter(|n| members.iter().any(|m| m == n)) {
            let shape = file.dataset(name).map_err(FeatureError::file(path))?.shape();
            rows.push((name.to_string(), shape.first().copied().unwrap_or(0)));
            dim = shape.get(1).copied().unwrap_or(0);
        }
        Ok(FeatureHeader {
            fingerprint: text_attr(&file, "fingerprint", path)?,
            engine: text_attr(&file, "engine", path)?,
            rows,
            dim,
        })
    }
}

/// The folder of `output`'s parts: `NAME.partial` beside it.
pub fn partial_dir(output: &Path) -> PathBuf {
    let name = output.file_name().map_or("features".into(), |n| n.to_string_lossy().into_owned());
    output.with_file_name(format!("{name}.partial"))
}

/// How a feature file stores its values. `F16` halves the disk and the read bandwidth: rows
/// are rounded to half precision before they are checksummed and written, and every reader
/// gets them back as f32 (heads compute in f32). h5py reads the datasets as `float16`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Storage {
    /// 4 bytes a value (the default).
    #[default]
    F32,
    /// 2 bytes a value.
    F16,
}

// as `--store` and the wheel's `store=` name it
imgclf_dataset::named_enum!(Storage {
    Storage::F32 => "f32",
    Storage::F16 => "f16",
});

impl Storage {
    /// The `dtype` attribute's value, as numpy names it.
    pub fn name(self) -> &'static str {
        match self {
            Storage::F32 => "float32",
            Storage::F16 => "float16",
        }
    }
}

/// What a shard file records of its part (its `shard` attribute, as JSON), so that `merge`
/// can check the parts before joining them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// The part, from 0.
    pub index: usize,
    /// How many parts in all.
    pub count: usize,
    /// Images per batch: the parts are cut on batch boundaries.
    pub batch: usize,
    /// The fingerprint of the whole dataset: what every shard of one run shares, and the
    /// merged file's own fingerprint.
    pub dataset_fingerprint: String,
    /// This part of each split: samples `start..end` of `total`.
    pub slices: Vec<SplitSlice>,
}

/// One split's part in a shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitSlice {
    /// The split.
    pub split: String,
    /// The first sample of the part.
    pub start: usize,
    /// One past its last sample.
    pub end: usize,
    /// Samples in the whole split.
    pub total: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::s;

    pub(crate) fn sample_set() -> FeatureSet {
        FeatureSet {
            backbone: "Net".into(),
            classes: vec!["cats".into(), "dogs".into()],
            splits: vec![
                SplitFeatures {
                    name: "train".into(),
                    features: Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f32 * 0.5),
                    labels: Some(vec![0, 1, 1]),
                    paths: vec!["train/cats/1.jpg".into(), "train/dogs/1.jpg".into(), "train/dogs/é.jpg".into()],
                    photos: Some(vec![1, u64::MAX, 3]),
                },
                SplitFeatures {
                    name: "test".into(),
                    features: Array2::from_elem((1, 4), -1.0),
                    labels: None,
                    paths: vec!["test/1.jpg".into()],
                    photos: None,
                },
            ],
            model_sha256: "ab".repeat(32),
            model: "/models/net.onnx".into(),
            input_size: [224, 224],
            engine: "tract".into(),
            fingerprint: "f00d".into(),
            spec: "{\"name\": \"Net\"}".into(),
            shard: None,
        }
    }

    #[test]
    fn write_then_read_gives_the_same_set() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("gap_Net.h5");
        let set = sample_set();
        set.write(&p).unwrap();
        assert_eq!(FeatureSet::read(&p).unwrap(), set);
        let header = FeatureSet::read_header(&p).unwrap();
        assert_eq!(header.fingerprint, "f00d");
        assert_eq!((header.rows, header.dim), (vec![("train".into(), 3), ("test".into(), 1)], 4));
        // nothing but the final file is left in the folder
        let names: Vec<_> = std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["gap_Net.h5"]);
    }

    #[test]
    fn blocks_of_any_size_read_the_rows_and_verify() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("gap_Net.h5");
        let set = sample_set();
        set.write(&p).unwrap();
        let reader = FeatureReader::open(&p).unwrap();
        assert_eq!((reader.rows.clone(), reader.dim), (vec![("train".into(), 3), ("test".into(), 1)], 4));
        assert_eq!(reader.info, FeatureSet { splits: Vec::new(), ..set.clone() });
        for size in [1, 2, 3, 5] {
            reader.verify(size).unwrap();
            for split in &set.splits {
                let mut got = Vec::new();
                for start in (0..split.paths.len()).step_by(size) {
                    got.push(reader.block(&split.name, start..(start + size).min(split.paths.len())).unwrap());
                }
                let features: Vec<f32> = got.iter().flat_map(|b| b.features.iter().copied()).collect();
                assert_eq!(features, split.features.iter().copied().collect::<Vec<_>>(), "{} by {size}", split.name);
                assert_eq!(got.iter().flat_map(|b| b.paths.clone()).collect::<Vec<_>>(), split.paths);
                let labels: Option<Vec<i64>> =
                    got.iter().map(|b| b.labels.clone()).collect::<Option<Vec<_>>>().map(|l| l.concat());
                assert_eq!(labels, split.labels);
                let photos: Option<Vec<u64>> =
                    got.iter().map(|b| b.photos.clone()).collect::<Option<Vec<_>>>().map(|p| p.concat());
                assert_eq!(photos, split.photos);
            }
        }
        // rows fed in another order are not the file's
        let mut check = reader.verifier();
        check.split("train");
        check.rows(&reader.block("train", 1..3).unwrap());
        check.rows(&reader.block("train", 0..1).unwrap());
        check.split("test");
        check.rows(&reader.block("test", 0..1).unwrap());
        assert!(check.finish().unwrap_err().to_string().contains("damaged"));
    }

    #[test]
    fn read_splits_holds_the_named_splits_and_still_checks_the_others() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("gap_Net.h5");
        let set = sample_set();
        set.write(&p).unwrap();
        let test_only = FeatureSet::read_splits(&p, &["test", "validation"]).unwrap();
        assert_eq!(test_only, FeatureSet { splits: vec![set.splits[1].clone()], ..set.clone() });
        assert_eq!(FeatureSet::read_splits(&p, &["train", "test"]).unwrap(), set);
        // a damaged row of a split that is not held is still found
        let file = hdf5::File::open_rw(&p).unwrap();
        file.dataset("train").unwrap().write_slice(&Array2::from_elem((1, 4), 7.0f32), s![1..2, ..]).unwrap();
        drop(file);
        let e = FeatureSet::read_splits(&p, &["test"]).unwrap_err().to_string();
        assert!(e.contains("gap_Net.h5") && e.contains("damaged"), "{e}");
    }

    #[test]
    fn failed_write_keeps_the_previous_file_and_leaves_no_temp() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("gap_Net.h5");
        let old = sample_set();
        old.write(&p).unwrap();
        let mut bad = sample_set();
        bad.fingerprint = "new".into();
        bad.classes = vec!["nul\0byte".into()]; // cannot be stored: the write fails midway
        assert!(bad.write(&p).is_err());
        assert_eq!(FeatureSet::read(&p).unwrap(), old);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }

    #[test]
    fn non_feature_files_are_refused_with_the_reason() {
        let t = tempfile::tempdir().unwrap();
        let junk = t.path().join("junk.h5");
        std::fs::write(&junk, b"not hdf5 at all").unwrap();
        let e = FeatureSet::read(&junk).unwrap_err().to_string();
        assert!(e.contains("junk.h5") && e.contains("not a readable HDF5"), "{e}");

        let cut = t.path().join("gap_Net.h5");
        sample_set().write(&cut).unwrap();
        let size = std::fs::metadata(&cut).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&cut).unwrap().set_len(size / 2).unwrap();
        for e in [FeatureSet::read(&cut).unwrap_err(), FeatureReader::open(&cut).err().unwrap()] {
            let e = e.to_string();
            assert!(e.contains("gap_Net.h5") && e.contains("truncated") && e.contains("extract again"), "{e}");
        }

        let other = t.path().join("other.h5");
        hdf5::File::create(&other).unwrap();
        let e = FeatureSet::read_header(&other).unwrap_err().to_string();
        assert!(e.contains("not an imgclf feature file"), "{e}");
    }
}
