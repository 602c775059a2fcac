//! Resumable extraction. Rows go to numbered part files in a folder beside the output
//! (`gap_<Backbone>.h5.partial/`): each part is a complete feature file, renamed into place
//! whole, then committed by its record (`part-N.json`, also renamed into place). A rerun of
//! the same extraction (same fingerprint and batch size) keeps the committed parts that are
//! what their records say (checksum, rows, the paths of their batches) and continues after the
//! last; the writer's other files there are removed, and nothing else is. At the end the output
//! is assembled from the parts, the same rows in the same order as an uninterrupted run, and
//! the parts removed. With checkpoints off the rows go straight to the output's temporary file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use imgclf_dataset::{Dataset, OutputLock, TEXT_FILE_LIMIT};

use crate::FeatureError;
use crate::options::{Checkpoints, ExtractOptions, Skipped};
use crate::store::{BLOCK_BYTES, FeatureReader, FeatureSet, FeatureWriter, Origin, Rows, Storage, partial_dir};

/// Record format tag: a record of another format is not ours to resume from. `/2` records
/// the part's checksum, so a part copied over another is told apart.
const RECORD_FORMAT: &str = "imgclf-part/2";

/// What a committed part holds: where the pass stood after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    format: String,
    /// The extraction's fingerprint: another one (an image, the model or the spec changed)
    /// means the parts are not this extraction's.
    fingerprint: String,
    /// The part file's checksum (its rows, labels, paths and photos): the part the record commits.
    checksum: String,
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

/// One output's rows on their way: a folder of committed parts and the part being written, or
/// (checkpoints off) the output itself, written under a temporary name.
pub(crate) struct Partial {
    dir: PathBuf,
    /// The attributes (and classes) every part is written with; no rows.
    stamp: FeatureSet,
    storage: Storage,
    batch: usize,
    parts: Vec<Record>,
    writer: Option<FeatureWriter>,
    /// Checkpoints off: rows go straight to the output's temporary file, nothing is committed.
    direct: Option<FeatureWriter>,
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
    /// The process writing it now (it holds the output's lock), if one is.
    pub writer: Option<u32>,
}

/// Where an unfinished extraction into `output` stands, read from the parts' records: `None`
/// when there is nothing to continue (no parts folder, or one with no commit and no process
/// writing it).
pub fn partial_status(output: &Path) -> Option<PartialStatus> {
    let dir = partial_dir(output);
    let writing = OutputLock::holder(output);
    if !dir.is_dir() && writing.is_none() {
        return None;
    }
    let last = records(&dir).last().cloned();
    if last.is_none() && writing.is_none() {
        return None;
    }
    let (images, total, rows) = last.map_or((0, 0, Vec::new()), |r| (r.images, r.total, r.rows));
    Some(PartialStatus { output: output.to_path_buf(), images, total, rows, writer: writing.and_then(|h| h.pid) })
}

/// The unfinished extractions in `dir`, by file name: those with a parts folder, and those a
/// process is writing now.
pub fn partials_in(dir: &Path) -> Vec<PartialStatus> {
    let mut outputs: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let output = name.strip_suffix(".partial").map(str::to_string);
            output.or_else(|| Some(name.strip_prefix('.')?.strip_suffix(".lock")?.to_string()))
        })
        .collect();
    outputs.sort();
    outputs.dedup();
    outputs.iter().filter_map(|name| partial_status(&dir.join(name))).collect()
}

/// The records in `dir`, in order, up to the first missing or unreadable one.
fn records(dir: &Path) -> Vec<Record> {
    (0..)
        .map_while(|i| {
            let text = imgclf_dataset::read_text(&dir.join(record_name(i)), TEXT_FILE_LIMIT).ok()?;
            serde_json::from_str::<Record>(&text).ok().filter(|r| r.format == RECORD_FORMAT)
        })
        .collect()
}

fn part_name(i: usize) -> String {
    format!("part-{i:05}.h5")
}

fn record_name(i: usize) -> String {
    format!("part-{i:05}.json")
}

/// Whether `name` is a file the parts folder's writer makes: a part, its record, or one of
/// their temporary files (`.part-00000.h5.tmp-PID`). Nothing else there is ever removed.
fn ours(name: &str) -> bool {
    let numbered = |n: &str| {
        let stem = n.strip_prefix("part-").and_then(|r| r.strip_suffix(".h5").or_else(|| r.strip_suffix(".json")));
        stem.is_some_and(|d| d.len() == 5 && d.bytes().all(|b| b.is_ascii_digit()))
    };
    match name.strip_prefix('.') {
        Some(rest) => rest.split_once(".tmp-").is_some_and(|(n, pid)| numbered(n) && pid.parse::<u32>().is_ok()),
        None => numbered(name),
    }
}

/// The parts folder of `output` as a folder of this output's own, refusing a link (to another
/// disk, say): imgclf removes files in it, and never follows a link out of the output folder.
fn own_dir(output: &Path) -> Result<PathBuf, FeatureError> {
    let dir = partial_dir(output);
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) if meta.file_type().is_symlink() || !meta.is_dir() => Err(FeatureError::FeatureFile {
            path: dir,
            reason: "is a link or not a folder: extract keeps its parts in a folder of its own there and removes \
                     them when done; remove it, or run with --no-checkpoints (no parts, no resume)"
                .into(),
        }),
        _ => Ok(dir),
    }
}

/// Removes the files the parts folder's writer made, other than `keep`; nothing at all when
/// `dir` is not a folder of its own (a link is never followed).
fn remove_ours(dir: &Path, keep: &[String]) -> Result<(), FeatureError> {
    if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let file = entry.file_type().is_ok_and(|t| t.is_file());
        if file && ours(&name) && !keep.contains(&name) {
            std::fs::remove_file(entry.path()).map_err(FeatureError::io(&entry.path()))?;
        }
    }
    Ok(())
}

/// Drops an output's parts folder, if it has one: its parts and records, then the folder when
/// nothing else is in it (what a user put there stays).
pub(crate) fn discard(output: &Path) -> Result<(), FeatureError> {
    // a link (or a file) of that name is not ours: left alone
    let dir = partial_dir(output);
    remove_ours(&dir, &[])?;
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}

/// The rows a part of batches `from..to` of the pass must hold, split by split: the paths of
/// those batches' samples in order, less the images its record says were skipped.
fn expected_rows(
    dataset: &Dataset,
    batch: usize,
    from: usize,
    to: usize,
    skipped: &[(String, String)],
) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut at = 0;
    for split in &dataset.splits {
        for batch in crate::shard::batches(&split.samples, batch) {
            let chunk = &split.samples[batch];
            if (from..to).contains(&at) {
                for s in chunk.iter().filter(|s| !skipped.iter().any(|(p, _)| *p == s.rel)) {
                    match out.last_mut() {
                        Some((name, paths)) if *name == split.name => paths.push(s.rel.clone()),
                        _ => out.push((split.name.clone(), vec![s.rel.clone()])),
                    }
                }
            }
            at += 1;
        }
    }
    out
}

impl Partial {
    /// Opens `output`'s parts folder for this extraction of `dataset`. A committed part is
    /// kept only when its record is this extraction's (fingerprint, batch size) and the part
    /// is what the record commits: its checksum, its rows matching it, and its paths exactly
    /// the images of its batches less those skipped; parts from the first that fails on are
    /// recomputed. Only files the writer makes are removed. `options.force` keeps no part;
    /// checkpoints off write the output directly.
    pub(crate) fn open(
        output: &Path,
        stamp: FeatureSet,
        dataset: &Dataset,
        options: &ExtractOptions,
    ) -> Result<Partial, FeatureError> {
        let (storage, batch) = (options.storage, options.batch);
        if options.checkpoints.is_off() {
            discard(output)?;
            let direct = FeatureWriter::create(output, &stamp.classes)?.with_storage(storage);
            let dir = partial_dir(output);
            let parts = Vec::new();
            return Ok(Partial {
                dir,
                stamp,
                storage,
                batch,
                parts,
                writer: None,
                direct: Some(direct),
                pending: Vec::new(),
            });
        }
        let dir = own_dir(output)?;
        let mut parts: Vec<Record> = Vec::new();
        if !options.force {
            for (i, record) in records(&dir).into_iter().enumerate() {
                let part = dir.join(part_name(i));
                let ours = record.fingerprint == stamp.fingerprint && record.batch == batch;
                if !(ours && part_matches(&part, &record, parts.last(), dataset, batch, &stamp.fingerprint)) {
                    break;
                }
                parts.push(record);
            }
        }
        let mut partial =
            Partial { dir, stamp, storage, batch, parts, writer: None, direct: None, pending: Vec::new() };
        partial.truncate(partial.done().batches)?;
        Ok(partial)
    }

    /// Batch counts at which this folder's parts end (0 first).
    pub(crate) fn boundaries(&self) -> Vec<usize> {
        std::iter::once(0).chain(self.parts.iter().map(|r| r.batches)).collect()
    }

    /// Keeps the parts that end at or before `batches` batches and removes every other part,
    /// record and temporary file of the writer's in the folder (nothing else).
    pub(crate) fn truncate(&mut self, batches: usize) -> Result<(), FeatureError> {
        self.parts.retain(|r| r.batches <= batches);
        let keep: Vec<String> = (0..self.parts.len()).flat_map(|i| [part_name(i), record_name(i)]).collect();
        remove_ours(&self.dir, &keep)
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

    /// Rows per split written so far: committed, and since the last commit.
    pub(crate) fn rows(&self) -> Vec<(String, usize)> {
        let mut rows = self.done().rows;
        for (split, n) in &self.pending {
            match rows.iter_mut().find(|(name, _)| name == split) {
                Some((_, total)) => *total += n,
                None => rows.push((split.clone(), *n)),
            }
        }
        rows
    }

    /// Appends rows of split `split` to the part being written (started here if none is).
    pub(crate) fn append(&mut self, split: &str, block: Rows<'_>) -> Result<(), FeatureError> {
        let writer = match (&mut self.direct, &mut self.writer) {
            (Some(direct), _) => direct,
            (None, Some(writer)) => writer,
            (None, None) => self.writer.insert(self.start_part()?),
        };
        writer.append(split, block)?;
        match self.pending.last_mut() {
            Some((name, n)) if name == split => *n += block.features.nrows(),
            _ => self.pending.push((split.to_string(), block.features.nrows())),
        }
        Ok(())
    }

    /// A new part, its chunks no taller than a batch: a part holds few rows, and 64-row chunks
    /// would make the folder many times the rows it holds.
    fn start_part(&self) -> Result<FeatureWriter, FeatureError> {
        std::fs::create_dir_all(&self.dir).map_err(FeatureError::io(&self.dir))?;
        let part = self.dir.join(part_name(self.parts.len()));
        Ok(FeatureWriter::create(&part, &self.stamp.classes)?.with_storage(self.storage).with_chunk_rows(self.batch))
    }

    /// Commits the rows appended since the last commit: the part is renamed into place
    /// whole, then its record, so a kill at any moment leaves the last commit intact. Nothing
    /// to do with checkpoints off.
    pub(crate) fn commit(&mut self, at: Commit, skipped: &[Skipped]) -> Result<(), FeatureError> {
        if self.direct.is_some() {
            return Ok(());
        }
        let writer = match self.writer.take() {
            Some(writer) => writer,
            None => self.start_part()?,
        };
        let checksum = writer.checksum();
        writer.finish(&self.stamp.origin())?;
        let rows = self.rows();
        self.pending.clear();
        let record = Record {
            format: RECORD_FORMAT.into(),
            fingerprint: self.stamp.fingerprint.clone(),
            checksum,
            batch: self.batch,
            batches: at.batches,
            images: at.images,
            total: at.total,
            rows,
            skipped: skipped.iter().map(|s| (s.path.clone(), s.reason.clone())).collect(),
        };
        let path = self.dir.join(record_name(self.parts.len()));
        let json = serde_json::to_string(&record).expect("a record serialises");
        imgclf_dataset::write_atomic(&path, json.as_bytes()).map_err(FeatureError::io(&path))?;
        self.parts.push(record);
        Ok(())
    }

    /// Writes the output: the committed parts' rows, in order, a block at a time, into a new
    /// feature file (or, checkpoints off, the rows written straight to it), with `origin`'s
    /// attributes; then removes the parts. Refuses parts that do not make the whole pass over
    /// `dataset` (the last commit short of its batches). Returns the feature width.
    pub(crate) fn finish(
        mut self,
        output: &Path,
        dataset: &Dataset,
        origin: &Origin<'_>,
    ) -> Result<usize, FeatureError> {
        if let Some(direct) = self.direct.take() {
            let dim = direct.dim();
            direct.finish(origin)?;
            return Ok(dim);
        }
        let batches: usize = dataset.splits.iter().map(|s| crate::shard::batches(&s.samples, self.batch).len()).sum();
        if self.done().batches != batches {
            return Err(FeatureError::FeatureFile {
                path: self.dir.clone(),
                reason: format!(
                    "its parts hold {} of {batches} batches: run the same command again",
                    self.done().batches
                ),
            });
        }
        let mut writer = FeatureWriter::create(output, &self.stamp.classes)?.with_storage(self.storage);
        let mut dim = 0;
        for i in 0..self.parts.len() {
            let reader = FeatureReader::open(&self.dir.join(part_name(i)))?;
            for (name, _) in &reader.rows {
                dim = reader.dim;
                for block in reader.blocks(name, reader.block_rows(BLOCK_BYTES)) {
                    writer.append(name, block?.rows())?;
                }
            }
        }
        writer.finish(origin)?;
        drop(self.writer.take());
        remove_ours(&self.dir, &[])?;
        let _ = std::fs::remove_dir(&self.dir);
        self.parts.clear();
        Ok(dim)
    }
}

/// Whether the part at `file` is what `record` commits after the `previous` commit: the
/// part's own fingerprint and checksum those of the record, its rows matching the checksum,
/// its rows exactly the images of its batches less those skipped, and the record's counts
/// (images, rows per split) the previous ones plus the part's.
fn part_matches(
    file: &Path,
    record: &Record,
    previous: Option<&Record>,
    dataset: &Dataset,
    batch: usize,
    fingerprint: &str,
) -> bool {
    let Ok(reader) = FeatureReader::open(file) else { return false };
    let (from, images_before) = previous.map_or((0, 0), |r| (r.batches, r.images));
    if reader.info.fingerprint != fingerprint || reader.checksum() != record.checksum || record.batches < from {
        return false;
    }
    let expected = expected_rows(dataset, batch, from, record.batches, &record.skipped);
    let images: usize = expected.iter().map(|(_, p)| p.len()).sum::<usize>() + record.skipped.len();
    let counts: Vec<(String, usize)> = expected.iter().map(|(n, p)| (n.clone(), p.len())).collect();
    let mut rows = previous.map_or_else(Vec::new, |r| r.rows.clone());
    for (split, n) in &counts {
        match rows.iter_mut().find(|(name, _)| name == split) {
            Some((_, total)) => *total += n,
            None => rows.push((split.clone(), *n)),
        }
    }
    if reader.rows != counts || images_before + images != record.images || rows != record.rows {
        return false;
    }
    let paths_match =
        expected.iter().all(|(name, paths)| reader.paths(name, 0..paths.len()).is_ok_and(|p| p == *paths));
    paths_match && reader.verify(reader.block_rows(BLOCK_BYTES)).is_ok()
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
