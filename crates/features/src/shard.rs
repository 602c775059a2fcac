//! Sharded extraction: part `K` of `N` of every split, as a complete file of its own
//! (`gap_<Backbone>.shard-K-of-N.h5`), and the merge that joins the parts into the file an
//! unsharded `extract` writes. Parts are contiguous runs of whole pieces: single batches,
//! or whole tars for WebDataset samples (a shard reads only its own tars), and batches never
//! cross a piece, so the shards together compute exactly the unsharded batches, row for row.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use imgclf_dataset::limits::SHARDS;
use imgclf_dataset::{Dataset, Member, SPLIT_NAMES, Sample, Split};

use sha2::{Digest, Sha256};

use crate::store::BLOCK_BYTES;
use crate::{FeatureError, FeatureReader, FeatureSet, FeatureWriter, Origin, ShardInfo, SplitSlice, Storage, Verifier};

/// Part `index` (from 0) of `count` of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This part, from 0.
    pub index: usize,
    /// How many parts in all.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    /// `K/N` with `0 <= K < N` and `N` within [`SHARDS`].
    fn from_str(s: &str) -> Result<Shard, String> {
        let parse = |v: &str| v.trim().parse::<usize>().ok();
        match s.split_once('/').map(|(k, n)| (parse(k), parse(n))) {
            Some((Some(index), Some(count))) => Shard::new(index, count).map_err(|e| format!("`{s}`: {e}")),
            _ => Err(format!("`{s}`: expected K/N, e.g. 0/4, or auto")),
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Part `index` of `count`, refusing `index >= count` and counts outside [`SHARDS`].
    pub fn new(index: usize, count: usize) -> Result<Shard, String> {
        let count = SHARDS.check_usize(count)?;
        if index >= count {
            return Err(format!("K must be below N (shards are numbered from 0), got {index}/{count}"));
        }
        Ok(Shard { index, count })
    }

    /// Refuses a count above the pieces (whole tars, else batches) of `dataset`'s largest
    /// split: with more, some shard would compute nothing.
    pub fn check(&self, dataset: &Dataset, batch: usize) -> Result<(), FeatureError> {
        let largest = dataset.splits.iter().max_by_key(|s| s.samples.len());
        let (name, pieces) = largest.map_or(("", 0), |s| (s.name.as_str(), pieces(&s.samples, batch).len()));
        let most = pieces.clamp(1, SHARDS.most());
        if self.count <= most {
            return Ok(());
        }
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let tars = largest.and_then(|s| s.samples.first()).is_some_and(|s| tar_of(s).is_some());
        let has = match tars {
            true => plural(pieces, "tar", "tars"),
            false => format!("{} of {batch}", plural(pieces, "batch", "batches")),
        };
        Err(FeatureError::Shard {
            shard: self.to_string(),
            reason: format!(
                "the data splits into at most {} (its largest split, `{name}`, has {has}): use at most {}",
                plural(most, "part", "parts"),
                plural(most, "shard", "shards"),
            ),
        })
    }

    /// This task's shard from the scheduler's variables (read through `var`): a Slurm array
    /// task (`SLURM_ARRAY_TASK_ID` with `SLURM_ARRAY_TASK_COUNT`, or `..._MIN`/`..._MAX`), or
    /// a Kubernetes Indexed Job pod (`JOB_COMPLETION_INDEX`, with `shards` = its completions).
    pub fn from_scheduler(var: impl Fn(&str) -> Option<String>, shards: Option<usize>) -> Result<Shard, String> {
        let number = |name: &str| -> Result<Option<usize>, String> {
            var(name).map(|v| v.trim().parse().map_err(|_| format!("{name}={v} is not a number"))).transpose()
        };
        let shard = if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let count = match (number("SLURM_ARRAY_TASK_COUNT")?, number("SLURM_ARRAY_TASK_MAX")?) {
                (Some(count), _) => count,
                (None, Some(max)) => max + 1 - min.min(max),
                (None, None) => {
                    shards.ok_or("SLURM_ARRAY_TASK_ID is set but not the array's size: give the count (`shards`)")?
                }
            };
            if shards.is_some_and(|n| n != count) {
                return Err(format!(
                    "a count of {} (`shards`) disagrees with the Slurm array's {count} tasks",
                    shards.unwrap_or(0)
                ));
            }
            Shard { index: id.checked_sub(min).ok_or("SLURM_ARRAY_TASK_ID is below SLURM_ARRAY_TASK_MIN")?, count }
        } else if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let count = shards.ok_or(
                "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job): give the Job's completions as the count (`shards`)",
            )?;
            Shard { index, count }
        } else {
            return Err("neither SLURM_ARRAY_TASK_ID (a Slurm array task) nor JOB_COMPLETION_INDEX (a Kubernetes \
                        Indexed Job) is set: run it as an array task, or name the part"
                .into());
        };
        if shard.index >= shard.count {
            return Err(format!(
                "task {} of an array of {} (an array with a step or gaps?): number the tasks 0..N-1",
                shard.index, shard.count
            ));
        }
        Shard::new(shard.index, shard.count)
    }

    /// The samples of a split this shard computes: pieces `⌊K·P/N⌋ .. ⌊(K+1)·P/N⌋` of the
    /// split's `P` pieces (whole tars for WebDataset samples, else batches).
    pub fn range(&self, samples: &[Sample], batch: usize) -> Range<usize> {
        let pieces = pieces(samples, batch);
        let first = self.index * pieces.len() / self.count;
        let end = (self.index + 1) * pieces.len() / self.count;
        match first < end {
            true => pieces[first].start..pieces[end - 1].end,
            false => {
                let at = pieces.get(first).map_or(samples.len(), |p| p.start);
                at..at
            }
        }
    }

    /// `gap_<Backbone>.shard-K-of-N.h5`.
    pub fn file_name(&self, backbone: &str) -> String {
        format!("gap_{backbone}.shard-{}-of-{}.h5", self.index, self.count)
    }

    /// The shard a file name stands for, with its backbone: the inverse of [`Shard::file_name`].
    /// `None` for other names; `Some(Err)` for a shard name no extract writes (`0-of-4000000000`).
    pub fn parse_file_name(name: &str) -> Option<Result<(String, Shard), String>> {
        let stem = name.strip_prefix("gap_")?.strip_suffix(".h5")?;
        let (backbone, part) = stem.rsplit_once(".shard-")?;
        let (k, n) = part.split_once("-of-")?;
        let (index, count) = (k.parse().ok()?, n.parse().ok()?);
        if backbone.is_empty() {
            return None;
        }
        Some(Shard::new(index, count).map(|shard| (backbone.to_string(), shard)))
    }
}

/// The tar a WebDataset sample is read from; `None` for other samples.
fn tar_of(sample: &Sample) -> Option<&Path> {
    matches!(sample.member, Some(Member::Bytes { .. } | Member::Fault { .. })).then(|| sample.container())
}

/// What shards share out of a split: a whole tar's samples for WebDataset samples, else
/// `batch` samples at a time.
pub(crate) fn pieces(samples: &[Sample], batch: usize) -> Vec<Range<usize>> {
    let batch = batch.max(1);
    let mut pieces = Vec::with_capacity(samples.len().div_ceil(batch));
    let mut start = 0;
    while let Some(first) = samples.get(start) {
        let rest = samples[start..].iter();
        let len = match tar_of(first) {
            Some(tar) => rest.take_while(|s| tar_of(s) == Some(tar)).count(),
            None => rest.take(batch).take_while(|s| tar_of(s).is_none()).count(),
        };
        pieces.push(start..start + len);
        start += len;
    }
    pieces
}

/// A split's batches: each piece's samples `batch` at a time, so no batch crosses a tar and
/// a shard of whole pieces computes the unsharded run's batches.
pub(crate) fn batches(samples: &[Sample], batch: usize) -> Vec<Range<usize>> {
    let batch = batch.max(1);
    let mut batches = Vec::with_capacity(samples.len().div_ceil(batch));
    for piece in pieces(samples, batch) {
        batches.extend(piece.clone().step_by(batch).map(|start| start..(start + batch).min(piece.end)));
    }
    batches
}

/// The part of `dataset` that `shard` computes, with the slices it records.
pub(crate) fn slice(dataset: &Dataset, shard: Shard, batch: usize) -> (Dataset, Vec<SplitSlice>) {
    let mut slices = Vec::new();
    let splits = dataset
        .splits
        .iter()
        .map(|split| {
            let range = shard.range(&split.samples, batch);
            slices.push(SplitSlice {
                split: split.name.clone(),
                start: range.start,
                end: range.end,
                total: split.samples.len(),
            });
            Split { name: split.name.clone(), samples: split.samples[range].to_vec() }
        })
        .collect();
    (
        Dataset {
            root: dataset.root.clone(),
            source: dataset.source.clone(),
            classes: dataset.classes.clone(),
            splits,
        },
        slices,
    )
}

/// What `merge` did for one backbone.
#[derive(Debug, Clone)]
pub struct MergeReport {
    /// The backbone.
    pub backbone: String,
    /// The merged file.
    pub output: PathBuf,
    /// How many shards went into it.
    pub shards: usize,
    /// Rows per split in the merged file.
    pub rows: Vec<(String, usize)>,
    /// The merged file was already there, complete and of these shards: kept.
    pub reused: bool,
    /// Seconds the merge took.
    pub seconds: f64,
}

/// The shard files of each backbone in `dir`: backbone → (shard, path), in shard order. A
/// file named as a shard of a count no extract writes is refused by name.
fn shard_files(dir: &Path) -> Result<HashMap<String, Vec<(Shard, PathBuf)>>, FeatureError> {
    let mut found: HashMap<String, Vec<(Shard, PathBuf)>> = HashMap::new();
    for entry in std::fs::read_dir(dir).map_err(FeatureError::io(dir))?.flatten() {
        match Shard::parse_file_name(&entry.file_name().to_string_lossy()) {
            Some(Ok((backbone, shard))) => found.entry(backbone).or_default().push((shard, entry.path())),
            Some(Err(reason)) => {
                let reason = format!("named as a shard, but {reason}: not a file extract writes (remove or rename it)");
                return Err(FeatureError::FeatureFile { path: entry.path(), reason });
            }
            None => {}
        }
    }
    found.values_mut().for_each(|v| v.sort_by_key(|(s, _)| (s.count, s.index)));
    Ok(found)
}

/// The backbones with shard files in `dir`, sorted.
pub fn sharded_backbones(dir: &Path) -> Result<Vec<String>, FeatureError> {
    let mut names: Vec<String> = shard_files(dir)?.into_keys().collect();
    names.sort();
    Ok(names)
}

/// A list of names for a message: the first few, then how many more.
fn some_of(names: &[String]) -> String {
    const SHOWN: usize = 5;
    match names.len() {
        n if n <= SHOWN => names.join(", "),
        n => format!("{} and {} more", names[..SHOWN].join(", "), n - SHOWN),
    }
}

/// One shard file opened: its path, its reader (rows not read yet) and its record.
type ReadShard = (PathBuf, FeatureReader, ShardInfo);

/// Paths read at a time by the duplicate check.
const PATH_BLOCK: usize = 1 << 16;

/// One backbone's complete set of shards, read and checked against each other.
struct Checked {
    /// The file the merge writes.
    output: PathBuf,
    /// The shard count.
    count: usize,
    /// Each shard, in shard order.
    shards: Vec<ReadShard>,
    /// Rows per split of the merged file.
    rows: Vec<(String, usize)>,
}

/// Opens the shards of `backbone` in `dir` (of `count` parts, or the one count there), every
/// part there and readable, and checks them with [`consistent`]: what `merge` needs before
/// writing (their rows are checked as `merge` copies them).
fn check(dir: &Path, backbone: &str, count: Option<usize>) -> Result<Checked, FeatureError> {
    let refuse = |path: &Path, reason: String| FeatureError::FeatureFile { path: path.to_path_buf(), reason };
    let files = shard_files(dir)?.remove(backbone).unwrap_or_default();
    let mut counts: Vec<usize> = files.iter().map(|(s, _)| s.count).collect();
    counts.dedup();
    let output = dir.join(FeatureSet::file_name(backbone));
    let n = match (count, counts.as_slice()) {
        (_, []) => return Err(refuse(&output, format!("no shard files of {backbone} in {}", dir.display()))),
        (Some(n), _) => n,
        (None, [n]) => *n,
        (None, several) => {
            let several: Vec<String> = several.iter().map(usize::to_string).collect();
            return Err(refuse(
                &output,
                format!(
                    "shards of {} runs with {} parts are here: say which count (`shards`)",
                    backbone,
                    several.join(" and ")
                ),
            ));
        }
    };
    let files: Vec<(Shard, PathBuf)> = files.into_iter().filter(|(s, _)| s.count == n).collect();
    let missing: Vec<String> = (0..n)
        .filter(|k| !files.iter().any(|(s, _)| s.index == *k))
        .map(|k| Shard { index: k, count: n }.file_name(backbone))
        .collect();
    if !missing.is_empty() {
        return Err(refuse(
            &output,
            format!(
                "{} of {n} shards missing: {} (rerun the array: finished shards are kept)",
                missing.len(),
                some_of(&missing)
            ),
        ));
    }

    let shards = files.into_iter().map(|(shard, path)| read_shard(shard, path)).collect::<Result<Vec<_>, _>>()?;
    consistent(output, shards)
}

/// Opens a shard file, refusing one whose contents are not the shard its name says.
fn read_shard(shard: Shard, path: PathBuf) -> Result<ReadShard, FeatureError> {
    let refuse = |reason: String| FeatureError::FeatureFile { path: path.clone(), reason };
    let reader = FeatureReader::open(&path)?;
    let info = reader.info.shard.clone().ok_or_else(|| refuse("has no `shard` attribute: not a shard file".into()))?;
    if (info.index, info.count) != (shard.index, shard.count) {
        return Err(refuse(format!("its name says shard {shard}, its contents {}/{}", info.index, info.count)));
    }
    Ok((path, reader, info))
}

/// Checks that every shard of a set (all there, in shard order) makes one dataset: of one
/// model, spec, class list, dataset and batch, tiling every split without overlap or
/// duplicate, no split empty; what `merge` writes into `output` and `status` reports. Reads
/// the shards' paths (a block at a time), not their rows.
fn consistent(output: PathBuf, shards: Vec<ReadShard>) -> Result<Checked, FeatureError> {
    let refuse = |path: &Path, reason: String| FeatureError::FeatureFile { path: path.to_path_buf(), reason };
    let n = shards.len();
    let (first_path, first, first_info) = &shards[0];
    let first = &first.info;
    for (path, reader, info) in &shards[1..] {
        let set = &reader.info;
        let differs = [
            // before the dataset: the storage is part of its key
            ("storage (`extract --store`)", reader.storage != shards[0].1.storage),
            ("model", set.model_sha256 != first.model_sha256),
            ("spec", set.spec != first.spec),
            ("class list", set.classes != first.classes),
            (
                "dataset (images, paths or modification times changed between the shards' runs: rerun every shard, \
                 finished parts are reused)",
                info.dataset_fingerprint != first_info.dataset_fingerprint,
            ),
            ("batch size", info.batch != first_info.batch),
        ];
        if let Some((what, _)) = differs.iter().find(|(_, d)| *d) {
            return Err(refuse(
                path,
                format!("another {what} than {}: shards of different runs", first_path.display()),
            ));
        }
    }
    // each split's parts must follow one another from its first row to its last
    let mut next = vec![0; first_info.slices.len()];
    for (path, _, info) in &shards {
        if info.slices.len() != first_info.slices.len() {
            return Err(refuse(path, format!("its splits differ from {}'s", first_path.display())));
        }
        for ((slice, reference), next) in info.slices.iter().zip(&first_info.slices).zip(&mut next) {
            if slice.split != reference.split || slice.total != reference.total {
                return Err(refuse(path, format!("its splits differ from {}'s", first_path.display())));
            }
            if slice.start != *next || slice.end < slice.start {
                return Err(refuse(
                    path,
                    format!(
                        "split `{}`: rows {}..{} overlap or leave a gap with the other shards",
                        slice.split, slice.start, slice.end
                    ),
                ));
            }
            *next = slice.end;
        }
    }
    if let Some((path, _, info)) = shards.last()
        && let Some(slice) = info.slices.iter().zip(&next).find(|(s, n)| **n != s.total).map(|(s, _)| s)
    {
        return Err(refuse(
            path,
            format!("split `{}`: the shards hold rows up to {} of {}", slice.split, slice.end, slice.total),
        ));
    }
    // each path as a 128-bit digest: 16 bytes a row, whatever the paths' length
    let mut seen: HashMap<u128, &Path> = HashMap::new();
    for (path, reader, _) in &shards {
        for (name, rows) in &reader.rows {
            for start in (0..*rows).step_by(PATH_BLOCK) {
                for p in reader.paths(name, start..(start + PATH_BLOCK).min(*rows))? {
                    if let Some(other) = seen.insert(path_digest(&p), path) {
                        return Err(refuse(path, format!("row `{p}` is also in {}: duplicated rows", other.display())));
                    }
                }
            }
        }
    }
    for slice in &first_info.slices {
        if !shards.iter().any(|(_, reader, _)| reader.split_rows(&slice.split).is_some_and(|n| n > 0)) {
            let reason =
                format!("split `{}`: none of its {} images could be read, in any shard", slice.split, slice.total);
            return Err(refuse(&output, reason));
        }
    }
    let rows: Vec<(String, usize)> = SPLIT_NAMES
        .iter()
        .filter_map(|name| {
            let n: usize = shards.iter().filter_map(|(_, reader, _)| reader.split_rows(name)).sum();
            (n > 0).then(|| (name.to_string(), n))
        })
        .collect();
    Ok(Checked { output, count: n, shards, rows })
}

/// Whether the feature file at `output` is these shards merged (or an unsharded extract of
/// the same images, model and spec, which is the same file): `Ok(true)` when it is, `Ok(false)`
/// when there is none, and why not when another file is there.
fn holds(output: &Path, fingerprint: &str, storage: Storage, rows: &[(String, usize)]) -> Result<bool, String> {
    if output.symlink_metadata().is_err() {
        return Ok(false);
    }
    let reader = FeatureReader::open(output).map_err(|e| format!("unreadable ({e})"))?;
    if reader.info.fingerprint != fingerprint {
        return Err("made from other images, another model or spec".into());
    }
    if reader.storage != storage {
        return Err(format!("stored as {}, the shards as {}", reader.storage.name(), storage.name()));
    }
    if reader.rows != rows {
        return Err(format!("its rows {:?} are not the shards' {rows:?}", reader.rows));
    }
    reader.verify(reader.block_rows(BLOCK_BYTES)).map(|()| true).map_err(|e| e.to_string())
}

/// The first 16 bytes of a path's sha256: what the duplicate check keeps of each row.
fn path_digest(path: &str) -> u128 {
    u128::from_le_bytes(Sha256::digest(path.as_bytes())[..16].try_into().expect("sha256 has 32 bytes"))
}

/// Joins the shards of `backbone` in `dir` into `dir/gap_<backbone>.h5`, equal to what an
/// unsharded `extract` writes (rows, labels, paths, photos, checksum, fingerprint). Refuses,
/// naming the files, missing or damaged shards, shards of another model, spec, class list,
/// dataset, batch or shard count, and overlapping or duplicated rows; writes nothing then.
/// `count` picks the shard count when shards of several counts are there. A merged file that
/// already holds these shards is kept unless `force`; a feature file there that did not come
/// from them (another dataset, a fresher extract, a damaged file) is replaced only with `force`.
/// Rows are copied a block of about 64 MiB at a time, each shard's checked against its
/// checksum on the way: memory stays flat whatever the number of rows.
pub fn merge(dir: &Path, backbone: &str, count: Option<usize>, force: bool) -> Result<MergeReport, FeatureError> {
    merge_in_blocks(dir, backbone, count, force, BLOCK_BYTES)
}

/// [`merge`], reading about `block_bytes` of features at a time (at least one row): the
/// memory a merge holds, whatever the number of rows.
pub fn merge_in_blocks(
    dir: &Path,
    backbone: &str,
    count: Option<usize>,
    force: bool,
    block_bytes: usize,
) -> Result<MergeReport, FeatureError> {
    let started = Instant::now();
    let Checked { output, count: n, shards, rows } = check(dir, backbone, count)?;
    let (_, first, first_info) = &shards[0];
    let report = |reused| MergeReport {
        backbone: backbone.into(),
        output: output.clone(),
        shards: n,
        rows: rows.clone(),
        reused,
        seconds: started.elapsed().as_secs_f64(),
    };
    let _lock = crate::store::lock(&output)?;
    match holds(&output, &first_info.dataset_fingerprint, first.storage, &rows) {
        Ok(true) if !force => return Ok(report(true)),
        Err(why) if !force => {
            return Err(FeatureError::FeatureFile {
                path: output.clone(),
                reason: format!("exists and is not these shards merged ({why}); it is replaced only with `force`"),
            });
        }
        _ => {}
    }

    let mut engines: Vec<&str> = Vec::new();
    for (_, reader, _) in &shards {
        if !engines.contains(&reader.info.engine.as_str()) {
            engines.push(&reader.info.engine);
        }
    }
    let storage = first.storage;
    let first = &first.info;
    let mut writer = FeatureWriter::create(&output, &first.classes)?.with_storage(storage);
    // split by split, shard by shard, a block at a time; a damaged shard is found as it is
    // copied, and the unfinished file is dropped then (nothing is written)
    let block_rows = shards[0].1.block_rows(block_bytes);
    let mut checks: Vec<Verifier> = shards.iter().map(|(_, reader, _)| reader.verifier()).collect();
    for name in SPLIT_NAMES {
        for ((_, reader, _), check) in shards.iter().zip(&mut checks) {
            if reader.split_rows(name).is_none() {
                continue;
            }
            check.split(name);
            for block in reader.blocks(name, block_rows) {
                let block = block?;
                check.rows(&block);
                writer.append(name, block.rows())?;
            }
        }
    }
    checks.into_iter().try_for_each(Verifier::finish)?;
    writer.finish(&Origin {
        backbone: &first.backbone,
        model_sha256: &first.model_sha256,
        model: &first.model,
        input_size: first.input_size,
        engine: &engines.join(" + "),
        fingerprint: &first_info.dataset_fingerprint,
        spec: &first.spec,
        shard: None,
    })?;
    Ok(report(false))
}

/// Where one backbone's shards stand in a folder: what a user looks at while the array runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardStatus {
    /// The backbone.
    pub backbone: String,
    /// The shard count of these files.
    pub count: usize,
    /// Finished shards (complete, their checksums verified).
    pub done: Vec<usize>,
    /// Shards with no file yet; those being written (or killed while writing: a rerun
    /// continues them) are in `writing`.
    pub missing: Vec<usize>,
    /// Shards with a temporary file or a parts folder (`NAME.partial`) and no finished file.
    pub writing: Vec<usize>,
    /// Shards whose file cannot be used, with why (they are recomputed on rerun).
    pub damaged: Vec<(usize, String)>,
    /// Every shard is done but [`merge`] would refuse them together: why.
    pub refused: Option<String>,
    /// `gap_<backbone>.h5` holds these shards merged.
    pub merged: bool,
}

/// The state of every sharded backbone in `dir`, one entry per backbone and shard count. Each
/// shard is read once; a set whose shards are all done is checked as [`merge`] checks it.
pub fn shard_status(dir: &Path) -> Result<Vec<ShardStatus>, FeatureError> {
    let files = shard_files(dir)?;
    let temporary: Vec<String> = std::fs::read_dir(dir)
        .map_err(FeatureError::io(dir))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.contains(".h5.tmp-"))
        .collect();
    let mut names: Vec<&String> = files.keys().collect();
    names.sort();
    let mut out = Vec::new();
    for backbone in names {
        let mut counts: Vec<usize> = files[backbone].iter().map(|(s, _)| s.count).collect();
        counts.dedup();
        for count in counts {
            let mut status = ShardStatus {
                backbone: backbone.clone(),
                count,
                done: Vec::new(),
                missing: Vec::new(),
                writing: Vec::new(),
                damaged: Vec::new(),
                refused: None,
                merged: false,
            };
            let mut read = Vec::new();
            for index in 0..count {
                let shard = Shard { index, count };
                let name = shard.file_name(backbone);
                match files[backbone].iter().find(|(s, _)| *s == shard) {
                    None if temporary.iter().any(|t| t.starts_with(&format!(".{name}.tmp-")))
                        || crate::store::partial_dir(&dir.join(&name)).is_dir() =>
                    {
                        status.writing.push(index)
                    }
                    None => status.missing.push(index),
                    Some((_, path)) => match read_shard(shard, path.clone())
                        .and_then(|s| s.1.verify(s.1.block_rows(BLOCK_BYTES)).map(|()| s))
                    {
                        Ok(shard) => {
                            status.done.push(index);
                            read.push(shard);
                        }
                        Err(e) => status.damaged.push((index, e.to_string())),
                    },
                }
            }
            if status.done.len() == count {
                match consistent(dir.join(FeatureSet::file_name(backbone)), read) {
                    Ok(checked) => {
                        let fingerprint = &checked.shards[0].2.dataset_fingerprint;
                        let storage = checked.shards[0].1.storage;
                        status.merged = holds(&checked.output, fingerprint, storage, &checked.rows) == Ok(true);
                    }
                    Err(e) => status.refused = Some(e.to_string()),
                }
            }
            out.push(status);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplitFeatures;
    use ndarray::Array2;
    use std::sync::Arc;

    /// One split of `n` rows of width 3 with its paths, labels and photo digests.
    fn split(name: &str, n: usize, labelled: bool) -> SplitFeatures {
        SplitFeatures {
            name: name.into(),
            features: Array2::from_shape_fn((n, 3), |(i, j)| (i * 3 + j) as f32 * 0.25 - 1.0),
            labels: labelled.then(|| (0..n as i64).map(|i| i % 2).collect()),
            paths: (0..n).map(|i| format!("{name}/{i}.jpg")).collect(),
            photos: Some((0..n as u64).map(|i| i * 7919).collect()),
        }
    }

    /// The rows `range` of a split.
    fn part(s: &SplitFeatures, range: Range<usize>) -> SplitFeatures {
        SplitFeatures {
            name: s.name.clone(),
            features: s.features.slice(ndarray::s![range.clone(), ..]).to_owned(),
            labels: s.labels.as_ref().map(|l| l[range.clone()].to_vec()),
            paths: s.paths[range.clone()].to_vec(),
            photos: s.photos.as_ref().map(|p| p[range].to_vec()),
        }
    }

    #[test]
    fn merging_a_row_at_a_time_gives_the_unsharded_file() {
        let t = tempfile::tempdir().unwrap();
        let whole = FeatureSet {
            backbone: "Net".into(),
            classes: vec!["cats".into(), "dogs".into()],
            splits: vec![split("train", 11, true), split("test", 5, false)],
            model_sha256: "ab".repeat(32),
            model: "/models/net.onnx".into(),
            input_size: [8, 8],
            engine: "tract".into(),
            fingerprint: "dataset".into(),
            spec: "{}".into(),
            shard: None,
        };
        let (count, batch) = (3, 2);
        for index in 0..count {
            let shard = Shard { index, count };
            let ranges: Vec<Range<usize>> =
                whole.splits.iter().map(|s| shard.range(&files(s.paths.len()), batch)).collect();
            let slices = whole.splits.iter().zip(&ranges);
            let info = ShardInfo {
                index,
                count,
                batch,
                dataset_fingerprint: "dataset".into(),
                slices: slices
                    .clone()
                    .map(|(s, r)| SplitSlice {
                        split: s.name.clone(),
                        start: r.start,
                        end: r.end,
                        total: s.paths.len(),
                    })
                    .collect(),
            };
            let set = FeatureSet {
                splits: slices.map(|(s, r)| part(s, r.clone())).collect(),
                fingerprint: format!("shard {index}"),
                shard: Some(info),
                ..whole.clone()
            };
            set.write(&t.path().join(shard.file_name("Net"))).unwrap();
        }
        let report = merge_in_blocks(t.path(), "Net", None, false, 1).unwrap();
        assert_eq!(report.rows, vec![("train".to_string(), 11), ("test".to_string(), 5)]);
        assert_eq!(FeatureSet::read(&report.output).unwrap(), whole, "rows, labels, paths, photos, checksum");
        let status = &shard_status(t.path()).unwrap()[0];
        assert_eq!((status.done.len(), status.merged), (3, true));
    }

    /// `n` photos that are files of their own.
    fn files(n: usize) -> Vec<Sample> {
        (0..n).map(|i| Sample::file(format!("{i}.jpg").into(), format!("{i}.jpg"), None)).collect()
    }

    /// WebDataset samples: `sizes[t]` of them in tar `t`.
    fn tars(sizes: &[usize]) -> Vec<Sample> {
        let mut samples = Vec::new();
        for (t, &n) in sizes.iter().enumerate() {
            let tar: Arc<Path> = Arc::from(Path::new(&format!("{t}.tar")));
            for k in 0..n {
                let member = Member::Bytes { tar: tar.clone(), offset: 512 * k as u64, len: 512 };
                samples.push(Sample {
                    path: tar.join(format!("{k}.jpg")),
                    rel: format!("{t}.tar/{k}"),
                    label: None,
                    member: Some(member),
                });
            }
        }
        samples
    }

    #[test]
    fn shards_cut_whole_batches_and_tile_the_split() {
        for (len, batch, count) in [(5160, 32, 7), (100, 32, 3), (2, 32, 3), (0, 8, 2), (97, 1, 4), (64, 32, 1)] {
            let samples = files(len);
            let mut next = 0;
            for index in 0..count {
                let r = Shard { index, count }.range(&samples, batch);
                assert_eq!(r.start, next, "{len} {batch} {count}");
                assert!(r.start.is_multiple_of(batch) || r.start == len, "starts on a batch boundary");
                next = r.end;
            }
            assert_eq!(next, len, "{len} {batch} {count}");
        }
        // 5160 images in 162 batches of 32: 7 parts of 23 or 24 batches
        assert_eq!(Shard { index: 0, count: 7 }.range(&files(5160), 32), 0..23 * 32);
        assert_eq!(Shard { index: 6, count: 7 }.range(&files(5160), 32), 138 * 32..5160);
    }

    #[test]
    fn shards_of_tar_samples_take_whole_tars_and_batches_restart_at_each_tar() {
        let samples = tars(&[5, 3, 4]);
        assert_eq!(pieces(&samples, 2), vec![0..5, 5..8, 8..12]);
        assert_eq!(batches(&samples, 2), vec![0..2, 2..4, 4..5, 5..7, 7..8, 8..10, 10..12]);
        assert_eq!(Shard { index: 0, count: 2 }.range(&samples, 2), 0..5);
        assert_eq!(Shard { index: 1, count: 2 }.range(&samples, 2), 5..12);
        // every batch of a shard is a batch of the whole split
        for index in 0..3 {
            let r = Shard { index, count: 3 }.range(&samples, 2);
            let part = batches(&samples[r.clone()], 2).into_iter().map(|b| b.start + r.start..b.end + r.start);
            assert!(part.clone().all(|b| batches(&samples, 2).contains(&b)), "{:?}", part.collect::<Vec<_>>());
        }
        let dataset = Dataset {
            root: "/data".into(),
            source: "/data".into(),
            classes: Default::default(),
            splits: vec![Split { name: "train".into(), samples }],
        };
        let many = Shard { index: 0, count: 4 }.check(&dataset, 2).unwrap_err().to_string();
        assert!(many.contains("at most 3 parts") && many.contains("has 3 tars"), "{many}");
        // photos of their own are cut in batches as before
        assert_eq!(batches(&files(5), 2), vec![0..2, 2..4, 4..5]);
    }

    #[test]
    fn names_parse_and_print_alike() {
        assert_eq!("2/7".parse::<Shard>().unwrap(), Shard { index: 2, count: 7 });
        assert_eq!(Shard { index: 2, count: 7 }.to_string(), "2/7");
        assert!("7/7".parse::<Shard>().unwrap_err().contains("below N"));
        assert!("x".parse::<Shard>().unwrap_err().contains("expected K/N"));
        let name = Shard { index: 3, count: 10 }.file_name("ResNet50.v2");
        assert_eq!(name, "gap_ResNet50.v2.shard-3-of-10.h5");
        assert_eq!(Shard::parse_file_name(&name), Some(Ok(("ResNet50.v2".into(), Shard { index: 3, count: 10 }))));
        assert_eq!(Shard::parse_file_name("gap_ResNet50.h5"), None);
        assert!(Shard::parse_file_name("gap_X.shard-4-of-4.h5").unwrap().unwrap_err().contains("below N"));
        let absurd = Shard::parse_file_name("gap_X.shard-0-of-4000000000.h5").unwrap().unwrap_err();
        assert!(absurd.contains("[1, 10000]"), "{absurd}");
        assert!("0/4294967296".parse::<Shard>().unwrap_err().contains("shards must be a whole number in [1, 10000]"));
    }

    #[test]
    fn the_scheduler_names_the_shard() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let slurm = env(&[("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "3")]);
        assert_eq!(Shard::from_scheduler(slurm, None).unwrap(), Shard { index: 2, count: 3 });
        let min_max =
            env(&[("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_MIN", "4"), ("SLURM_ARRAY_TASK_MAX", "6")]);
        assert_eq!(Shard::from_scheduler(min_max, None).unwrap(), Shard { index: 1, count: 3 });
        let k8s = env(&[("JOB_COMPLETION_INDEX", "0")]);
        assert_eq!(Shard::from_scheduler(k8s, Some(4)).unwrap(), Shard { index: 0, count: 4 });
        assert!(Shard::from_scheduler(k8s, None).unwrap_err().contains("(`shards`)"));
        assert!(Shard::from_scheduler(env(&[]), None).unwrap_err().contains("neither SLURM_ARRAY_TASK_ID"));
        let clash = env(&[("SLURM_ARRAY_TASK_ID", "0"), ("SLURM_ARRAY_TASK_COUNT", "3")]);
        assert!(Shard::from_scheduler(clash, Some(4)).unwrap_err().contains("disagrees"));
        let step = env(&[("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_COUNT", "3")]);
        assert!(Shard::from_scheduler(step, None).unwrap_err().contains("0..N-1"));
    }
}
