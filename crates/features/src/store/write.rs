//! Writing a feature file block by block into a temporary file, renamed into place when whole.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use imgclf_dataset::TempFile;
use ndarray::Array1;

use super::*;
use crate::FeatureError;

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

/// The lock of one output (`imgclf_dataset::OutputLock`), or the error naming the process
/// that holds it: taken by whatever writes a feature file (extract, merge).
pub(crate) fn lock(output: &Path) -> Result<imgclf_dataset::OutputLock, FeatureError> {
    match imgclf_dataset::OutputLock::take(output).map_err(FeatureError::io(output))? {
        Ok(lock) => Ok(lock),
        Err(held) => Err(FeatureError::Busy { path: output.to_path_buf(), held }),
    }
}

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

/// A failed write against the final name: the system's reason when there is one (a full
/// disk, a file size limit), else HDF5's.
fn write_error(target: &Path, e: hdf5::Error) -> FeatureError {
    match os_error(&e.to_string()) {
        Some(error) => FeatureError::io(target)(error),
        None => FeatureError::file(target)(e),
    }
}

/// The operating-system error inside an HDF5 message (`errno = 28`), when there is one.
fn os_error(message: &str) -> Option<std::io::Error> {
    let after = message.split("errno = ").nth(1)?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().map(std::io::Error::from_raw_os_error)
}
