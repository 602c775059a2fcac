//! The feature file `gap_<Backbone>.h5`, laid out so that h5py reads it the way the tutorial
//! does (`h['train']`, `h['label']`, `h['test']`) and written atomically.

use std::ops::Range;
use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use imgclf_dataset::TempFile;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, s};
use sha2::{Digest, Sha256};

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

/// The first 8 bytes of the sha256 of an image file's bytes, as a little-endian number: a
/// row's record of which photo it came from.
pub fn photo_digest(bytes: &[u8]) -> u64 {
    let digest = Sha256::digest(bytes);
    u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
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
        Verifier { sum: Checksum::new(&self.info.classes), expected: self.checksum.clone(), path: self.path.clone() }
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

/// A file's checksum recomputed from its rows as they are read: every split in file order
/// (`split`), each split's rows in order (`rows`), then `finish`.
pub struct Verifier {
    sum: Checksum,
    expected: String,
    path: PathBuf,
}

impl Verifier {
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
fn damaged(path: &Path) -> FeatureError {
    FeatureError::FeatureFile {
        path: path.to_path_buf(),
        reason: "damaged: its rows no longer match the checksum written with them; extract again".into(),
    }
}

/// Where a feature file's rows came from: its attributes besides `classes`.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The backbone's name.
    pub backbone: &'a str,
    /// sha256 of the model file.
    pub model_sha256: &'a str,
    /// The model file's absolute path.
    pub model: &'a str,
    /// The model's input `[height, width]`.
    pub input_size: [u32; 2],
    /// Where the rows were computed.
    pub engine: &'a str,
    /// The cache key.
    pub fingerprint: &'a str,
    /// The model spec JSON.
    pub spec: &'a str,
    /// What part of the dataset a shard file holds; `None` for a whole dataset.
    pub shard: Option<&'a ShardInfo>,
}

/// Writes a feature file block by block as batches finish, so memory stays flat whatever
/// the dataset's size: each split's datasets are chunked and grow with every `append`.
/// Everything goes to a temporary file beside the target; `finish` adds the attributes (the
/// checksum included) and renames it into place. Dropped unfinished (an error, Ctrl-C), it
/// removes the temporary file, so the target keeps its previous complete content.
pub struct FeatureWriter {
    target: PathBuf,
    tmp: TempFile,
    file: hdf5::File,
    checksum: Checksum,
    split: Option<OpenSplit>,
    storage: Storage,
    chunk_rows: usize,
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

impl Storage {
    /// The `dtype` attribute's value, as numpy names it.
    pub fn name(self) -> &'static str {
        match self {
            Storage::F32 => "float32",
            Storage::F16 => "float16",
        }
    }
}

/// The datasets of the split being appended to.
struct OpenSplit {
    name: String,
    features: hdf5::Dataset,
    labels: Option<hdf5::Dataset>,
    paths: hdf5::Dataset,
    photos: Option<hdf5::Dataset>,
    rows: usize,
}

/// The lock of one output (`imgclf_dataset::OutputLock`), or the error naming the process
/// that holds it: taken by whatever writes a feature file (extract, merge).
pub(crate) fn lock(output: &Path) -> Result<imgclf_dataset::OutputLock, FeatureError> {
    match imgclf_dataset::OutputLock::take(output).map_err(FeatureError::io(output))? {
        Ok(lock) => Ok(lock),
        Err(held) => Err(FeatureError::Busy { path: output.to_path_buf(), held }),
    }
}

/// Rows per HDF5 chunk: small enough to append batch by batch, large enough to read fast.
const CHUNK_ROWS: usize = 64;

impl FeatureWriter {
    /// Starts `target` (written under a temporary name) with its class list.
    pub fn create(target: &Path, classes: &[String]) -> Result<FeatureWriter, FeatureError> {
        let tmp = TempFile::beside(target);
        let file = hdf5::File::create(tmp.path()).map_err(|e| write_error(target, e))?;
        let writer = FeatureWriter {
            target: target.to_path_buf(),
            checksum: Checksum::new(classes),
            tmp,
            file,
            split: None,
            storage: Storage::F32,
            chunk_rows: CHUNK_ROWS,
        };
        let classes = strings(classes, target)?;
        writer.check(writer.file.new_attr_builder().with_data(&classes).create("classes"))?;
        Ok(writer)
    }

    /// Stores the values as `storage` (f32 unless told); set before the first rows.
    pub fn with_storage(mut self, storage: Storage) -> FeatureWriter {
        self.storage = storage;
        self
    }

    /// Chunks of at most `rows` rows (64 unless told, the shape readers are tuned for): for
    /// files that hold few rows, such as an extraction's parts.
    pub fn with_chunk_rows(mut self, rows: usize) -> FeatureWriter {
        self.chunk_rows = rows.clamp(1, CHUNK_ROWS);
        self
    }

    /// The checksum of the rows appended so far: what [`FeatureWriter::finish`] records.
    pub fn checksum(&self) -> String {
        self.checksum.clone().hex()
    }

    /// The feature width of the rows appended (0 before any).
    pub fn dim(&self) -> usize {
        self.split.as_ref().and_then(|s| s.features.shape().get(1).copied()).unwrap_or(0)
    }

    /// Appends rows to split `split`. Splits are written one after another: a new name starts
    /// the next split. A labelled split gives labels with every block, and a split whose first
    /// block gives photo digests gives them with every block.
    pub fn append(&mut self, split: &str, block: Rows<'_>) -> Result<(), FeatureError> {
        let Rows { features, labels, paths, photos } = block;
        let n = features.nrows();
        assert_eq!(paths.len(), n, "one path per row");
        if self.split.as_ref().is_none_or(|s| s.name != split) {
            let (labelled, with_photos) = (labels.is_some(), photos.is_some());
            let opened =
                open_split(&self.file, split, features.ncols(), labelled, with_photos, self.storage, self.chunk_rows);
            self.split = Some(self.check(opened)?);
            self.checksum.split(split);
        }
        if self.split.as_ref().is_some_and(|s| s.photos.is_some() != photos.is_some()) {
            return Err(FeatureError::FeatureFile {
                path: self.target.clone(),
                reason: format!(
                    "split `{split}`: rows with and without photo digests (parts from an older imgclf?): extract again"
                ),
            });
        }
        // f16 rows are checksummed as readers will see them: rounded, back in f32
        let rows = match self.storage {
            Storage::F32 => features.as_standard_layout(),
            Storage::F16 => ndarray::CowArray::from(features.mapv(|v| half::f16::from_f32(v).to_f32())),
        };
        for (i, row) in rows.rows().into_iter().enumerate() {
            self.checksum.row(&paths[i], row, labels.map(|l| l[i]), photos.map(|p| p[i]));
        }
        let texts = strings(paths, &self.target)?;
        let storage = self.storage;
        let open = self.split.as_mut().expect("opened above");
        let (start, end) = (open.rows, open.rows + n);
        open.rows = end;
        let written = (|| -> hdf5::Result<()> {
            open.features.resize((end, rows.ncols()))?;
            match storage {
                Storage::F32 => open.features.write_slice(&rows, ndarray::s![start..end, ..])?,
                Storage::F16 => {
                    let half = rows.mapv(half::f16::from_f32);
                    open.features.write_slice(&half, ndarray::s![start..end, ..])?
                }
            }
            if let (Some(ds), Some(labels)) = (&open.labels, labels) {
                ds.resize(end)?;
                ds.write_slice(labels, ndarray::s![start..end])?;
            }
            if let (Some(ds), Some(photos)) = (&open.photos, photos) {
                ds.resize(end)?;
                ds.write_slice(photos, ndarray::s![start..end])?;
            }
            open.paths.resize(end)?;
            open.paths.write_slice(&texts, ndarray::s![start..end])
        })();
        self.check(written)
    }

    /// Writes the attributes and renames the file into place.
    pub fn finish(self, origin: &Origin<'_>) -> Result<(), FeatureError> {
        let checksum = self.checksum.clone().hex();
        let text_attrs = [
            ("format", FORMAT),
            ("checksum", &checksum),
            ("backbone", origin.backbone),
            ("model_sha256", origin.model_sha256),
            ("model", origin.model),
            ("engine", origin.engine),
            ("fingerprint", origin.fingerprint),
            ("spec", origin.spec),
            ("dtype", self.storage.name()),
            ("created_by", concat!("imgclf ", env!("CARGO_PKG_VERSION"))),
        ];
        for (name, value) in text_attrs {
            let value = to_vlen(value, &self.target)?;
            self.check(
                self.file.new_attr::<VarLenUnicode>().shape(()).create(name).and_then(|a| a.write_scalar(&value)),
            )?;
        }
        if let Some(shard) = origin.shard {
            let json = serde_json::to_string(shard).expect("a shard record serialises");
            let value = to_vlen(&json, &self.target)?;
            self.check(
                self.file.new_attr::<VarLenUnicode>().shape(()).create("shard").and_then(|a| a.write_scalar(&value)),
            )?;
        }
        let size = Array1::from(origin.input_size.to_vec());
        self.check(self.file.new_attr_builder().with_data(&size).create("input_size"))?;
        let FeatureWriter { target, tmp, file, split, .. } = self;
        drop(split);
        file.close().map_err(|e| write_error(&target, e))?;
        tmp.persist().map_err(FeatureError::io(&target))
    }

    fn check<T>(&self, result: hdf5::Result<T>) -> Result<T, FeatureError> {
        result.map_err(|e| write_error(&self.target, e))
    }
}

/// A split's growable datasets: rows, labels (when labelled), paths and photo digests (when given).
fn open_split(
    file: &hdf5::File,
    name: &str,
    dim: usize,
    labelled: bool,
    photos: bool,
    storage: Storage,
    chunk_rows: usize,
) -> hdf5::Result<OpenSplit> {
    let features = match storage {
        Storage::F32 => file.new_dataset::<f32>(),
        Storage::F16 => file.new_dataset::<half::f16>(),
    };
    let features = features.chunk((chunk_rows, dim.max(1))).shape((0.., dim)).create(name)?;
    let labels = match labelled {
        true => Some(file.new_dataset::<i64>().chunk(chunk_rows).shape(0..).create(label_key(name).as_str())?),
        false => None,
    };
    let paths =
        file.new_dataset::<VarLenUnicode>().chunk(chunk_rows).shape(0..).create(format!("{name}_paths").as_str())?;
    let photos = match photos {
        true => Some(file.new_dataset::<u64>().chunk(chunk_rows).shape(0..).create(format!("{name}_photos").as_str())?),
        false => None,
    };
    Ok(OpenSplit { name: name.to_string(), features, labels, paths, photos, rows: 0 })
}

/// A failed write against the final name: the system's reason when there is one (a full
/// disk, a file size limit), else HDF5's.
fn write_error(target: &Path, e: hdf5::Error) -> FeatureError {
    match os_error(&e.to_string()) {
        Some(error) => FeatureError::io(target)(error),
        None => FeatureError::file(target)(e),
    }
}

/// The running sha256 behind the `checksum` attribute; lengths go before contents so that
/// different contents never hash the same stream.
#[derive(Clone)]
struct Checksum(Sha256);

impl Checksum {
    fn new(classes: &[String]) -> Checksum {
        let mut sum = Checksum(Sha256::new());
        classes.iter().for_each(|c| sum.text(c));
        sum
    }

    fn text(&mut self, t: &str) {
        self.0.update((t.len() as u64).to_le_bytes());
        self.0.update(t.as_bytes());
    }

    fn split(&mut self, name: &str) {
        self.text(name);
    }

    /// A row: its path, values, label and photo digest (files without digests hash as before).
    fn row(&mut self, path: &str, values: ArrayView1<'_, f32>, label: Option<i64>, photo: Option<u64>) {
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

    fn hex(self) -> String {
        format!("{:x}", self.0.finalize())
    }
}

/// Opens a feature file, refusing anything that is not one of ours (or of another version).
fn open(path: &Path) -> Result<hdf5::File, FeatureError> {
    let file = hdf5::File::open(path).map_err(|e| {
        let reason = match e.to_string().contains("truncated file") {
            true => format!(
                "truncated: cut short at {} bytes (an interrupted copy or a full disk); copy it again or extract again",
                std::fs::metadata(path).map_or(0, |m| m.len())
            ),
            false => format!("not a readable HDF5 file ({e})"),
        };
        FeatureError::FeatureFile { path: path.to_path_buf(), reason }
    })?;
    match text_attr(&file, "format", path) {
        Ok(f) if f == FORMAT => Ok(file),
        Ok(f) => Err(FeatureError::FeatureFile {
            path: path.to_path_buf(),
            reason: format!("format `{f}`, this imgclf reads `{FORMAT}`: extract again"),
        }),
        Err(_) => Err(FeatureError::FeatureFile {
            path: path.to_path_buf(),
            reason: "not an imgclf feature file (no `format` attribute)".into(),
        }),
    }
}

/// The operating-system error inside an HDF5 message (`errno = 28`), when there is one.
fn os_error(message: &str) -> Option<std::io::Error> {
    let after = message.split("errno = ").nth(1)?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().map(std::io::Error::from_raw_os_error)
}

/// `label` for train (the tutorial's name), `<split>_label` for the others.
fn label_key(split: &str) -> String {
    if split == "train" { "label".into() } else { format!("{split}_label") }
}

fn text_attr(file: &hdf5::File, name: &str, path: &Path) -> Result<String, FeatureError> {
    let value = file.attr(name).and_then(|a| a.read_scalar::<VarLenUnicode>()).map_err(FeatureError::file(path))?;
    Ok(value.as_str().to_string())
}

/// The `shard` attribute of a shard file, `None` in a whole-dataset file.
fn shard_attr(file: &hdf5::File, path: &Path) -> Result<Option<ShardInfo>, FeatureError> {
    if !file.attr_names().map_err(FeatureError::file(path))?.iter().any(|n| n == "shard") {
        return Ok(None);
    }
    let text = text_attr(file, "shard", path)?;
    serde_json::from_str(&text).map(Some).map_err(|e| FeatureError::FeatureFile {
        path: path.to_path_buf(),
        reason: format!("attribute `shard` is not a shard record ({e})"),
    })
}

fn to_vlen(s: &str, path: &Path) -> Result<VarLenUnicode, FeatureError> {
    s.parse().map_err(|e| FeatureError::FeatureFile {
        path: path.to_path_buf(),
        reason: format!("cannot store text `{s}`: {e}"),
    })
}

fn strings(items: &[String], path: &Path) -> Result<Array1<VarLenUnicode>, FeatureError> {
    items.iter().map(|s| to_vlen(s, path)).collect::<Result<Vec<_>, _>>().map(Array1::from)
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
