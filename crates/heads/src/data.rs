//! Feature files joined column-wise into one matrix per split, rows aligned by image path.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use imgclf_features::FeatureReader;
use ndarray::{Array2, Axis, CowArray, Ix2, s};
use serde::{Deserialize, Serialize};

use crate::HeadError;

/// One backbone's block of columns in the joined matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The feature file.
    pub file: PathBuf,
    /// Its backbone.
    pub backbone: String,
    /// sha256 of the backbone's model file.
    pub model_sha256: String,
    /// The ONNX model the features came from (empty for files that do not name it).
    #[serde(default)]
    pub model: PathBuf,
    /// Its feature width.
    pub dim: usize,
    /// Where the features were computed (`ort`, `tract`, `ort cuda:0`).
    #[serde(default)]
    pub engine: String,
}

/// One split's rows: every source's features side by side, with labels and image paths.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitData {
    /// The split's name.
    pub name: String,
    /// `(rows, Σ dims)` when the split is held in memory; `None` when it is read from the
    /// files a chunk at a time ([`HeadInputs::open`] under a budget it does not fit).
    pub x: Option<Array2<f32>>,
    /// Class id per row, for labelled splits.
    pub labels: Option<Vec<usize>>,
    /// Image path relative to the data root, per row.
    pub paths: Vec<String>,
    /// The first 8 bytes of each row's image file's sha256 (`photo_digest`), when the first
    /// file records them: how a later reader tells a replaced photo.
    pub photos: Option<Vec<u64>>,
    /// Per source, the row of its file that holds each row; `None` where the file's rows are
    /// in this order (files of one dataset usually are).
    order: Vec<Option<Vec<usize>>>,
}

impl SplitData {
    /// Rows in the split.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether the split has no rows.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// The input of a head: one or more feature files of the same dataset, concatenated the way
/// the tutorial does with `np.concatenate(..., axis=1)`, but aligned by path, not position.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadInputs {
    /// Class names in id order (the same in every file).
    pub classes: Vec<String>,
    /// The files, in column order.
    pub sources: Vec<Source>,
    /// The splits every file has, in the first file's order.
    pub splits: Vec<SplitData>,
    /// Files joined to others by path alone: they do not record their photos (written before
    /// imgclf did), so a different photo at the same path would go unnoticed. Extract them
    /// again to have them checked.
    pub unverified: Vec<PathBuf>,
    /// Bytes of feature rows held at once (see [`HeadInputs::open`]).
    pub memory_budget: usize,
    /// Each source file's checksum when opened: a file replaced since is refused, not read.
    checksums: Vec<String>,
}

/// A budget's share kept for reading a file a block at a time; the rest holds rows.
const READ_SHARE: usize = 8;
/// The most bytes of one file read at once.
const MAX_READ_BYTES: usize = 64 << 20;
/// Rows between two wanted rows that are read through rather than skipped by a second read:
/// the rows of a feature file's HDF5 chunk, which HDF5 reads whole anyway.
const MERGE_GAP: usize = 64;

impl HeadInputs {
    /// A `train` split of `rows` random rows × `dim` features in two classes (alternating),
    /// each row's every 7th feature raised by a tenth for class 1: learnable, for benchmarks
    /// that time training without a feature file.
    pub fn synthetic(rows: usize, dim: usize, seed: u64) -> HeadInputs {
        let mut rng = imgclf_dataset::Rng::new(seed);
        let labels: Vec<usize> = (0..rows).map(|i| i % 2).collect();
        let x = Array2::from_shape_fn((rows, dim), |(r, c)| {
            rng.next_f32() + if c % 7 == 0 { 0.1 * labels[r] as f32 } else { 0.0 }
        });
        let source = Source {
            file: "synthetic".into(),
            backbone: "synthetic".into(),
            model_sha256: String::new(),
            model: PathBuf::new(),
            dim,
            engine: String::new(),
        };
        let paths = (0..rows).map(|i| i.to_string()).collect();
        HeadInputs {
            classes: vec!["a".into(), "b".into()],
            sources: vec![source],
            splits: vec![SplitData {
                name: "train".into(),
                x: Some(x),
                labels: Some(labels),
                paths,
                photos: None,
                order: vec![None],
            }],
            unverified: Vec::new(),
            memory_budget: usize::MAX,
            checksums: vec![String::new()],
        }
    }

    /// Reads and joins feature files, holding every split; the first file's row order is
    /// kept. Each source records its file's absolute path, so a run trained on them works
    /// from any folder.
    pub fn load(files: &[PathBuf]) -> Result<HeadInputs, HeadError> {
        HeadInputs::load_splits(files, &imgclf_dataset::SPLIT_NAMES)
    }

    /// [`HeadInputs::load`] holding only the splits in `names` (every file is still checked
    /// whole, a block at a time): training does not hold `test`, scoring `validation` does
    /// not hold `train`.
    pub fn load_splits(files: &[PathBuf], names: &[&str]) -> Result<HeadInputs, HeadError> {
        HeadInputs::open(files, names, usize::MAX)
    }

    /// Opens and joins feature files for the splits in `names`, keeping at most
    /// `memory_budget` bytes of feature rows in memory (`None`: [`default_memory_budget`], the
    /// one place the default is chosen). Each file is checked against its
    /// checksum (read a block at a time) and the files' paths, labels and photos are joined
    /// here; the features are held when the named splits fit in the budget less its read
    /// share (an eighth, at most 64 MiB), and otherwise read from the files a chunk at a
    /// time by [`HeadInputs::reader`].
    pub fn open(
        files: &[PathBuf],
        names: &[&str],
        memory_budget: impl Into<Option<usize>>,
    ) -> Result<HeadInputs, HeadError> {
        let memory_budget = memory_budget.into().unwrap_or_else(default_memory_budget);
        let readers = files
            .iter()
            .map(|f| {
                let reader = FeatureReader::open(&feature_file(f)?)?;
                if let Some(shard) = &reader.info.shard {
                    let f = reader.path();
                    let reason = format!(
                        "shard {}/{} of {}, a part of the dataset: join the shards in {} first (`merge`)",
                        shard.index,
                        shard.count,
                        reader.info.backbone,
                        f.parent().map_or(".".into(), |d| d.display().to_string())
                    );
                    return Err(HeadError::Input { path: f.to_path_buf(), reason });
                }
                Ok(reader)
            })
            .collect::<Result<Vec<_>, HeadError>>()?;
        let Some(first) = readers.first() else {
            return Err(HeadError::Config("no feature files given".into()));
        };
        let mismatch = |other: &Path, reason: String| HeadError::Mismatch {
            a: first.path().to_path_buf(),
            b: other.to_path_buf(),
            reason,
        };
        let named = |r: &FeatureReader| -> Vec<String> {
            r.rows.iter().map(|(n, _)| n.clone()).filter(|n| names.contains(&n.as_str())).collect()
        };
        let mut sources: Vec<Source> = Vec::new();
        for reader in &readers {
            let (file, info) = (reader.path(), &reader.info);
            if info.classes != first.info.classes {
                return Err(mismatch(
                    file,
                    format!("class lists differ ({:?} vs {:?})", first.info.classes, info.classes),
                ));
            }
            if named(reader) != named(first) {
                return Err(mismatch(file, format!("splits differ ({:?} vs {:?})", named(first), named(reader))));
            }
            if let Some(dup) = sources.iter().find(|s| s.model_sha256 == info.model_sha256) {
                return Err(HeadError::Mismatch {
                    a: dup.file.clone(),
                    b: file.to_path_buf(),
                    reason: format!("both hold features of the same model ({})", info.backbone),
                });
            }
            sources.push(Source {
                file: file.to_path_buf(),
                backbone: info.backbone.clone(),
                model_sha256: info.model_sha256.clone(),
                model: PathBuf::from(&info.model),
                dim: reader.dim,
                engine: info.engine.clone(),
            });
        }
        for reader in &readers {
            reader.verify(read_rows(reader.dim, read_bytes(memory_budget)))?;
        }
        let mut splits = Vec::new();
        for name in named(first) {
            let rows = first.split_rows(&name).unwrap_or(0);
            let (paths, photos) = (first.paths(&name, 0..rows)?, first.photos(&name, 0..rows)?);
            let raw_labels = first.labels(&name, 0..rows)?;
            let labels = raw_labels.as_ref().map(|l| class_ids(l, first.info.classes.len(), first.path(), &name));
            let mut order = Vec::new();
            for reader in &readers {
                let rows = reader.split_rows(&name).unwrap_or(0);
                let file = reader.path();
                let (other_paths, other_photos) = (reader.paths(&name, 0..rows)?, reader.photos(&name, 0..rows)?);
                let map = align(&name, (&paths, photos.as_deref()), (&other_paths, other_photos.as_deref()))
                    .map_err(|reason| mismatch(file, reason))?;
                if let (Some(a), Some(b)) = (&raw_labels, reader.labels(&name, 0..rows)?)
                    && map.iter().enumerate().any(|(i, &j)| a[i] != b[j])
                {
                    return Err(mismatch(file, format!("labels of split `{name}` differ for the same images")));
                }
                let identity = map.iter().enumerate().all(|(i, &j)| i == j);
                order.push((!identity).then_some(map));
            }
            splits.push(SplitData { name, x: None, labels: labels.transpose()?, paths, photos, order });
        }
        let unrecorded = |r: &FeatureReader| r.rows.iter().any(|(n, _)| r.photos(n, 0..0).ok().flatten().is_none());
        let unverified = match readers.len() {
            1 => Vec::new(),
            _ => readers.iter().filter(|r| unrecorded(r)).map(|r| r.path().to_path_buf()).collect(),
        };
        let checksums = readers.iter().map(|r| r.checksum().to_string()).collect();
        let mut inputs =
            HeadInputs { classes: first.info.classes.clone(), sources, splits, unverified, memory_budget, checksums };
        drop(readers);
        let total: usize = inputs.splits.iter().map(|s| s.len()).sum();
        if total.saturating_mul(inputs.dim() * size_of::<f32>()) <= inputs.row_bytes() {
            for i in 0..inputs.splits.len() {
                let rows: Vec<usize> = (0..inputs.splits[i].len()).collect();
                let x = inputs.reader(&inputs.splits[i].name)?.gather(&rows)?;
                inputs.splits[i].x = Some(x);
            }
        }
        Ok(inputs)
    }

    /// The splits a feature file holds, in file order, each with whether it is labelled; read
    /// from its attributes and shapes, no rows.
    pub fn splits_of(file: &Path) -> Result<Vec<(String, bool)>, HeadError> {
        let reader = FeatureReader::open(&feature_file(file)?)?;
        Ok(reader.rows.iter().map(|(name, _)| (name.clone(), reader.is_labelled(name))).collect())
    }

    /// The split named `name`, if the files have it.
    pub fn split(&self, name: &str) -> Option<&SplitData> {
        self.splits.iter().find(|s| s.name == name)
    }

    /// The labelled `validation` split, when the files have one: what training validates on
    /// (an unlabelled one is predicted, never scored).
    pub fn validation(&self) -> Option<&SplitData> {
        self.split("validation").filter(|s| s.labels.is_some())
    }

    /// Width of the joined feature vector.
    pub fn dim(&self) -> usize {
        self.sources.iter().map(|s| s.dim).sum()
    }

    /// Bytes of the budget that hold rows: all of it less the read share.
    fn row_bytes(&self) -> usize {
        self.memory_budget - read_bytes(self.memory_budget)
    }

    /// Rows of the joined matrix held at once when a split is read in chunks: the budget's
    /// row share over the row width (at least one).
    pub fn chunk_rows(&self) -> usize {
        (self.row_bytes() / (self.dim().max(1) * size_of::<f32>())).max(1)
    }

    /// Reads the rows of split `name`: from memory when held, else from the files (opened
    /// here, and refused if replaced since [`HeadInputs::open`]).
    pub fn reader(&self, name: &str) -> Result<RowReader<'_>, HeadError> {
        let split = self.split(name).ok_or_else(|| HeadError::Config(format!("no split `{name}` in the features")))?;
        let mut files = Vec::new();
        if split.x.is_none() {
            for (source, checksum) in self.sources.iter().zip(&self.checksums) {
                let reader = FeatureReader::open(&source.file)?;
                if reader.checksum() != checksum || reader.dim != source.dim {
                    return Err(HeadError::Input {
                        path: source.file.clone(),
                        reason: "replaced while in use (extracted again?): run the command again".into(),
                    });
                }
                files.push(reader);
            }
        }
        Ok(RowReader { split, files, read_bytes: read_bytes(self.memory_budget), width: self.dim() })
    }
}

/// Rows of one split, by row number, from memory or from the feature files.
pub struct RowReader<'a> {
    split: &'a SplitData,
    /// The source files, in column order (empty when the split is held).
    files: Vec<FeatureReader>,
    read_bytes: usize,
    width: usize,
}

impl RowReader<'_> {
    /// Rows `range` of the joined matrix: a view when the split is held, else read.
    pub fn range(&self, range: Range<usize>) -> Result<CowArray<'_, f32, Ix2>, HeadError> {
        match &self.split.x {
            Some(x) => Ok(CowArray::from(x.slice(s![range, ..]))),
            None => Ok(CowArray::from(self.gather(&range.collect::<Vec<_>>())?)),
        }
    }

    /// The joined rows `rows` (any order, repeats allowed), in that order. From the files,
    /// each file's rows are read in ascending order, runs of rows at a time: a run spans rows
    /// not asked for only across gaps of at most 64 rows (one HDF5 chunk).
    pub fn gather(&self, rows: &[usize]) -> Result<Array2<f32>, HeadError> {
        if let Some(x) = &self.split.x {
            return Ok(x.select(Axis(0), rows));
        }
        let mut out = Array2::<f32>::zeros((rows.len(), self.width));
        let mut col = 0;
        for (reader, order) in self.files.iter().zip(&self.split.order) {
            let at = |r: usize| order.as_ref().map_or(r, |o| o[r]);
            let mut wanted: Vec<(usize, usize)> = rows.iter().enumerate().map(|(i, &r)| (at(r), i)).collect();
            wanted.sort_unstable();
            let span = read_rows(reader.dim, self.read_bytes);
            let mut start = 0;
            while start < wanted.len() {
                let first = wanted[start].0;
                let mut end = start + 1;
                while end < wanted.len()
                    && wanted[end].0 - wanted[end - 1].0 <= MERGE_GAP
                    && wanted[end].0 < first + span
                {
                    end += 1;
                }
                let block = reader.features(&self.split.name, first..wanted[end - 1].0 + 1)?;
                for &(r, i) in &wanted[start..end] {
                    out.slice_mut(s![i, col..col + reader.dim]).assign(&block.row(r - first));
                }
                start = end;
            }
            col += reader.dim;
        }
        Ok(out)
    }
}

/// The budget's read share: an eighth, at most [`MAX_READ_BYTES`].
fn read_bytes(memory_budget: usize) -> usize {
    (memory_budget / READ_SHARE).min(MAX_READ_BYTES)
}

/// Rows of a `dim`-wide file that make `read_bytes` (at least one).
fn read_rows(dim: usize, read_bytes: usize) -> usize {
    (read_bytes / (dim.max(1) * size_of::<f32>())).max(1)
}

/// The memory budget when none is given: a quarter of the memory available when the command
/// starts (`MemAvailable` in `/proc/meminfo`), at most 1.5 GiB, 1 GiB where that cannot be read.
pub fn default_memory_budget() -> usize {
    const CAP: usize = 3 << 29;
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
        line.split_whitespace().nth(1)?.parse::<usize>().ok().map(|kib| kib * 1024)
    });
    available.map_or(1 << 30, |bytes| (bytes / 4).min(CAP))
}

/// `file` as an absolute path, refused when there is no such file.
fn feature_file(file: &Path) -> Result<PathBuf, HeadError> {
    let path = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    if path.is_file() {
        return Ok(path);
    }
    let reason = match imgclf_features::partial_status(&path) {
        Some(p) => format!(
            "not written yet: an extraction stopped at {} of {} images (partial); run the same `extract` again to \
             finish it",
            p.images, p.total
        ),
        None => "no such feature file (`extract` writes them)".into(),
    };
    Err(HeadError::Input { path, reason })
}

/// For each row of `reference` (paths, photos), the row of `other` with the same image path;
/// refused where both files record the photos and a path's photos differ.
fn align(
    split: &str,
    reference: (&[String], Option<&[u64]>),
    other: (&[String], Option<&[u64]>),
) -> Result<Vec<usize>, String> {
    let ((paths, photos), (other_paths, other_photos)) = (reference, other);
    if paths.len() != other_paths.len() {
        return Err(format!(
            "split `{split}` has {} rows in the first and {} in the second (different datasets?)",
            paths.len(),
            other_paths.len()
        ));
    }
    // a path twice in a file would let its rows stand for another's: refused here, for every
    // file (the first is aligned against itself), so `A B` and `B A` accept or refuse alike
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(other_paths.len());
    for (i, p) in other_paths.iter().enumerate() {
        if let Some(j) = index.insert(p.as_str(), i) {
            return Err(format!(
                "image `{p}` of split `{split}` is in the second file twice (rows {j} and {i}): extract it again"
            ));
        }
    }
    let order = paths
        .iter()
        .map(|p| {
            index.get(p.as_str()).copied().ok_or_else(|| {
                format!("image `{p}` of split `{split}` is in the first file only (different datasets?)")
            })
        })
        .collect::<Result<Vec<usize>, String>>()?;
    if let (Some(a), Some(b)) = (photos, other_photos)
        && let Some(i) = (0..order.len()).find(|&i| a[i] != b[order[i]])
    {
        return Err(format!(
            "image `{}` of split `{split}` is a different photo in each file (same path, other contents: two \
             copies of a dataset, one edited?)",
            paths[i]
        ));
    }
    Ok(order)
}

fn class_ids(labels: &[i64], classes: usize, file: &Path, split: &str) -> Result<Vec<usize>, HeadError> {
    labels
        .iter()
        .map(|&l| {
            usize::try_from(l).ok().filter(|&c| c < classes).ok_or_else(|| HeadError::Input {
                path: file.to_path_buf(),
                reason: format!("split `{split}` has label {l}, outside the {classes} classes"),
            })
        })
        .collect()
}
