//! Resumable extraction. Rows go to numbered part files in a folder beside the output
//! (`gap_<Backbone>.h5.partial/`): each part is a complete feature file, renamed into place
//! whole, then committed by its record (`part-N.json`, also renamed into place). A rerun of
//! the same extraction (same fingerprint and batch size) keeps the committed parts whose rows
//! still match their checksum and continues after the last; anything else in the folder is
//! removed. At the end the output is assembled from the parts, the same rows in the same order
//! as an uninterrupted run, and the folder is removed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::FeatureError;
use crate::options::{Checkpoints, Skipped};
use crate::store::{BLOCK_BYTES, FeatureReader, FeatureSet, FeatureWriter, Rows, Storage, partial_dir};

/// Record format tag: a record of another format is not ours to resume from.
const RECORD_FORMAT: &str = "imgclf-part/1";

/// What a committed part holds: where the pass stood after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    format: String,
    /// The extraction's fingerprint: another one (an image, the model or the spec changed)
    /// means the parts are not this extraction's.
    fingerprint: String,
    /// Images per batch: batches are the unit a rerun skips.
    batch: usize,
    /// Batches done after this part, counted over every split.
    batches: usize,
    /// Images handled (rows or skipped) after this part.
    images: usize,
    /// Images in the whole pass.
    total: usize,
    /// Rows per split after this part, in file order.
    rows: Vec<(String, usize)>,
    /// Images of this part that could not be read.
    skipped: Vec<(String, String)>,
}

/// Where a pass stands: batches and images done, rows per split and the images skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Progressed {
    pub batches: usize,
    pub images: usize,
    pub rows: Vec<(String, usize)>,
    pub skipped: Vec<Skipped>,
}

/// Where a pass stands at a commit: batches and images done, images in all.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Commit {
    pub batches: usize,
    pub images: usize,
    pub total: usize,
}

/// One output's folder of parts, and the part being written.
pub(crate) struct Partial {
    dir: PathBuf,
    /// The attributes (and classes) every part is written with; no rows.
    stamp: FeatureSet,
    storage: Storage,
    batch: usize,
    parts: Vec<Record>,
    writer: Option<FeatureWriter>,
    /// Rows per split of the part being written.
    pending: Vec<(String, usize)>,
}

/// An extraction stopped or killed before it finished, as its committed parts leave it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialStatus {
    /// The feature file it will write.
    pub output: PathBuf,
    /// Images handled (rows or skipped) by the committed parts.
    pub images: usize,
    /// Images in the whole pass (0 before the first commit).
    pub total: usize,
    /// Rows per split in the committed parts.
    pub rows: Vec<(String, usize)>,
}

/// Where an unfinished extraction into `output` stands (`None` when it has no parts folder),
/// read from the parts' records.
pub fn partial_status(output: &Path) -> Option<PartialStatus> {
    let dir = partial_dir(output);
    if !dir.is_dir() {
        return None;
    }
    let last = records(&dir).last().cloned();
    let (images, total, rows) = last.map_or((0, 0, Vec::new()), |r| (r.images, r.total, r.rows));
    Some(PartialStatus { output: output.to_path_buf(), images, total, rows })
}

/// The unfinished extractions in `dir`, by file name.
pub fn partials_in(dir: &Path) -> Vec<PartialStatus> {
    let mut found: Vec<PartialStatus> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            partial_status(&dir.join(name.strip_suffix(".partial")?))
        })
        .collect();
    found.sort_by(|a, b| a.output.cmp(&b.output));
    found
}

/// The records in `dir`, in order, up to the first missing or unreadable one.
fn records(dir: &Path) -> Vec<Record> {
    (0..)
        .map_while(|i| {
            let text = std::fs::read_to_string(dir.join(format!("part-{i:05}.json"))).ok()?;
            serde_json::from_str::<Record>(&text).ok().filter(|r| r.format == RECORD_FORMAT)
        })
        .collect()
}

impl Partial {
    /// Opens `output`'s parts folder: the committed parts of this extraction (same
    /// fingerprint and batch size, rows matching their checksum) are kept, up to the first
    /// that is not; everything else in the folder is removed. `fresh` (`--force`) keeps none.
    pub(crate) fn open(
        output: &Path,
        stamp: FeatureSet,
        storage: Storage,
        batch: usize,
        fresh: bool,
    ) -> Result<Partial, FeatureError> {
        let dir = partial_dir(output);
        let mut parts = Vec::new();
        if !fresh {
            for (i, record) in records(&dir).into_iter().enumerate() {
                let ours = record.fingerprint == stamp.fingerprint && record.batch == batch;
                let file = dir.join(format!("part-{i:05}.h5"));
                let whole = || -> Result<(), FeatureError> {
                    let reader = FeatureReader::open(&file)?;
                    reader.verify(reader.block_rows(BLOCK_BYTES))
                };
                if !ours || whole().is_err() {
                    break;
                }
                parts.push(record);
            }
        }
        let mut partial = Partial { dir, stamp, storage, batch, parts, writer: None, pending: Vec::new() };
        partial.truncate(partial.done().batches)?;
        Ok(partial)
    }

    /// Batch counts at which this folder's parts end (0 first).
    pub(crate) fn boundaries(&self) -> Vec<usize> {
        std::iter::once(0).chain(self.parts.iter().map(|r| r.batches)).collect()
    }

    /// Keeps the parts that end at or before `batches` batches and removes every other file
    /// in the folder.
    pub(crate) fn truncate(&mut self, batches: usize) -> Result<(), FeatureError> {
        self.parts.retain(|r| r.batches <= batches);
        let keep: Vec<String> =
            (0..self.parts.len()).flat_map(|i| [format!("part-{i:05}.h5"), format!("part-{i:05}.json")]).collect();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if !keep.contains(&entry.file_name().to_string_lossy().into_owned()) {
                let path = entry.path();
                let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                removed.map_err(FeatureError::io(&path))?;
            }
        }
        Ok(())
    }

    /// Where the committed parts leave the pass.
    pub(crate) fn done(&self) -> Progressed {
        let Some(last) = self.parts.last() else { return Progressed::default() };
        let skipped = self.parts.iter().flat_map(|r| &r.skipped);
        Progressed {
            batches: last.batches,
            images: last.images,
            rows: last.rows.clone(),
            skipped: skipped.map(|(path, reason)| Skipped { path: path.clone(), reason: reason.clone() }).collect(),
        }
    }

    /// Appends rows of split `split` to the part being written (started here if none is).
    pub(crate) fn append(&mut self, split: &str, block: Rows<'_>) -> Result<(), FeatureError> {
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => self.writer.insert(self.start_part()?),
        };
        writer.append(split, block)?;
        match self.pending.last_mut() {
            Some((name, n)) if name == split => *n += block.features.nrows(),
            _ => self.pending.push((split.to_string(), block.features.nrows())),
        }
        Ok(())
    }

    fn start_part(&self) -> Result<FeatureWriter, FeatureError> {
        std::fs::create_dir_all(&self.dir).map_err(FeatureError::io(&self.dir))?;
        let part = self.dir.join(format!("part-{:05}.h5", self.parts.len()));
        Ok(FeatureWriter::create(&part, &self.stamp.classes)?.with_storage(self.storage))
    }

    /// Commits the rows appended since the last commit: the part is renamed into place
    /// whole, then its record, so a kill at any moment leaves the last commit intact.
    pub(crate) fn commit(&mut self, at: Commit, skipped: &[Skipped]) -> Result<(), FeatureError> {
        let writer = match self.writer.take() {
            Some(writer) => writer,
            None => self.start_part()?,
        };
        writer.finish(&self.stamp.origin())?;
        let mut rows = self.done().rows;
        for (split, n) in self.pending.drain(..) {
            match rows.iter_mut().find(|(name, _)| *name == split) {
                Some((_, total)) => *total += n,
                None => rows.push((split, n)),
            }
        }
        let record = Record {
            format: RECORD_FORMAT.into(),
            fingerprint: self.stamp.fingerprint.clone(),
            batch: self.batch,
            batches: at.batches,
            images: at.images,
            total: at.total,
            rows,
            skipped: skipped.iter().map(|s| (s.path.clone(), s.reason.clone())).collect(),
        };
        let path = self.dir.join(format!("part-{:05}.json", self.parts.len()));
        let json = serde_json::to_string(&record).expect("a record serialises");
        imgclf_dataset::write_atomic(&path, json.as_bytes()).map_err(FeatureError::io(&path))?;
        self.parts.push(record);
        Ok(())
    }

    /// Copies every committed part's rows, in order, into `writer`, a block at a time;
    /// returns the feature width.
    pub(crate) fn assemble_into(&self, writer: &mut FeatureWriter) -> Result<usize, FeatureError> {
        let mut dim = 0;
        for i in 0..self.parts.len() {
            let reader = FeatureReader::open(&self.dir.join(format!("part-{i:05}.h5")))?;
            for (name, _) in &reader.rows {
                dim = reader.dim;
                for block in reader.blocks(name, reader.block_rows(BLOCK_BYTES)) {
                    writer.append(name, block?.rows())?;
                }
            }
        }
        Ok(dim)
    }

    /// Removes the folder: the output it was assembled into is in place.
    pub(crate) fn remove(mut self) -> Result<(), FeatureError> {
        drop(self.writer.take());
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FeatureError::io(&self.dir)(e)),
            _ => Ok(()),
        }
    }
}

impl Drop for Partial {
    /// A run that ends before its first commit (an error, a stop) leaves no empty folder.
    fn drop(&mut self) {
        drop(self.writer.take());
        if self.parts.is_empty() {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// Decides when a pass commits, from the time and the batches since the last commit.
pub(crate) struct Clock {
    every: Checkpoints,
    since: Instant,
    batches: usize,
}

impl Clock {
    pub(crate) fn new(every: Checkpoints) -> Clock {
        Clock { every, since: Instant::now(), batches: 0 }
    }

    /// Whether no batch was done since the last commit (or the start).
    pub(crate) fn fresh(&self) -> bool {
        self.batches == 0
    }

    /// One more batch done: whether it is time to commit (and if so, the clock restarts).
    pub(crate) fn tick(&mut self) -> bool {
        self.batches += 1;
        let due = self.batches >= self.every.batches || self.since.elapsed().as_secs_f64() >= self.every.seconds;
        if due {
            (self.since, self.batches) = (Instant::now(), 0);
        }
        due
    }
}
