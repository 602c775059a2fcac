//! Images → backbone → pooled features → `gap_<Backbone>.h5`, reusing the file when the
//! images, the model and its spec have not changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use imgclf_dataset::{Dataset, Member};
use imgclf_runtime::{Backbone, Engine, Precision};
use sha2::{Digest, Sha256};

use crate::checkpoint::Partial;
use crate::pipeline::Job;
use crate::store::{BLOCK_BYTES, lock};
use crate::{ExtractOptions, FORMAT, FeatureError, FeatureReader, FeatureSet, Progress, ShardInfo, Skipped, Storage};

/// What one backbone's extraction did.
#[derive(Debug, Clone)]
pub struct ExtractReport {
    /// The backbone's name.
    pub backbone: String,
    /// The feature file written (or reused).
    pub output: PathBuf,
    /// The cached file was still valid and was kept.
    pub reused: bool,
    /// Why a file already at `output` was damaged and so recomputed (without `--force`).
    pub replaced: Option<String>,
    /// The engine that computed the features (for a reused file: the one that made it).
    pub engine: String,
    /// Why `--engine auto` used tract, when it did.
    pub fallback_reason: Option<String>,
    /// Rows written per split.
    pub rows: Vec<(String, usize)>,
    /// The images without a row, with why.
    pub skipped: Vec<Skipped>,
    /// Images this call decoded: each once, shared by every backbone it computed (0 when
    /// the file was reused).
    pub decoded: usize,
    /// Images an earlier, stopped or killed run had done, continued from its checkpoint.
    pub resumed: usize,
    /// Feature width `D`.
    pub dim: usize,
    /// Seconds since the call started.
    pub seconds: f64,
    /// Images per second after the first batches (the engine set up; on a GPU, cuDNN's
    /// algorithm search done): the rate a long run keeps. None for a reused file, or a pass
    /// of no more than those batches.
    pub steady: Option<f64>,
}

/// Extracts `backbone`'s pooled features for every split of `dataset` into
/// `out_dir/gap_<Backbone>.h5`, or keeps that file when its fingerprint still matches.
/// Unreadable images are skipped and reported; a split with no readable image is an error.
pub fn extract(
    dataset: &Dataset,
    backbone: &Backbone,
    out_dir: &Path,
    options: &ExtractOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<ExtractReport, FeatureError> {
    let mut reports = extract_all(dataset, std::slice::from_ref(backbone), out_dir, options, progress)?;
    Ok(reports.remove(0))
}

/// [`extract`] for several backbones in one pass over the images: each image is decoded
/// once, resized once per distinct input size and fed to every backbone whose file needs
/// computing. Reports come back in `backbones` order. With `options.shard`, only that part
/// of every split is computed, into each backbone's shard file, fingerprinted on the part.
pub fn extract_all(
    dataset: &Dataset,
    backbones: &[Backbone],
    out_dir: &Path,
    options: &ExtractOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<ExtractReport>, FeatureError> {
    let started = Instant::now();
    options.check()?;
    if let Some(shard) = options.shard {
        shard.check(dataset, options.batch)?;
    }
    let whole = dataset;
    let part = options.shard.map(|shard| crate::shard::slice(dataset, shard, options.batch));
    let dataset = part.as_ref().map_or(dataset, |(part, _)| part);
    let mut reports: Vec<Option<ExtractReport>> = vec![None; backbones.len()];
    let mut todo = Vec::new();
    let stamps = ImageStamps::read(whole);
    let keys: Vec<Keys> = backbones.iter().map(|b| self::keys(whole, &stamps, b, options)).collect();
    let outputs: Vec<PathBuf> = backbones.iter().map(|b| output_path(out_dir, b, options)).collect();
    // one writer per output: a second extract of it is refused before it reads or removes
    // anything (a folder not there yet holds no output: locked once it is made, below)
    let mut locks = Vec::new();
    for (i, backbone) in backbones.iter().enumerate() {
        if out_dir.is_dir() {
            locks.push(lock(&outputs[i])?);
        }
        match cached(outputs[i].clone(), keys[i].file.clone(), backbone, options) {
            Cached::Reuse(mut report) => {
                // parts of a run stopped after the file was made (`--force`) are of no use now
                crate::checkpoint::discard(&report.output)?;
                if options.shard.is_some() {
                    record_dataset(&report.output, &keys[i].dataset)?;
                }
                report.seconds = started.elapsed().as_secs_f64();
                reports[i] = Some(report);
            }
            Cached::Compute { fingerprint, replaced } => todo.push((i, backbone, fingerprint, replaced)),
        }
    }
    if todo.is_empty() {
        return Ok(reports.into_iter().flatten().collect());
    }
    // every engine loads before anything is written: a device or model that cannot run
    // leaves the output folder as it was
    let engines = todo
        .iter()
        .map(|(_, b, ..)| Engine::load(&b.model, &b.spec, &[b.spec.feature_output()], &options.engine))
        .collect::<Result<Vec<_>, imgclf_runtime::RuntimeError>>()?;
    if !out_dir.is_dir() {
        std::fs::create_dir_all(out_dir).map_err(FeatureError::io(out_dir))?;
        for (i, ..) in &todo {
            locks.push(lock(&outputs[*i])?);
        }
    }
    let mut jobs = todo
        .iter()
        .zip(engines)
        .map(|((i, backbone, fingerprint, _), engine)| {
            let stamp = stamp(dataset, backbone, &engine.describe(), fingerprint);
            let writer = Partial::open(&outputs[*i], stamp, dataset, options)?;
            Ok(Job { backbone, engine, writer })
        })
        .collect::<Result<Vec<_>, FeatureError>>()?;
    // every file continues from the last commit all of them reached (a kill between two
    // files' commits leaves one a part ahead)
    let mut common = jobs[0].writer.boundaries();
    for job in &jobs[1..] {
        let theirs = job.writer.boundaries();
        common.retain(|b| theirs.contains(b));
    }
    let resume = common.into_iter().max().unwrap_or(0);
    for job in &mut jobs {
        job.writer.truncate(resume)?;
    }
    let start = jobs[0].writer.done();
    let names = jobs.iter().map(|j| j.backbone.spec.name.as_str()).collect::<Vec<_>>().join(" + ");
    let images = dataset.splits.iter().map(|s| s.samples.len()).sum();
    let engine = jobs[0].engine.describe();
    progress(Progress::Start { backbone: &names, engine: &engine, images });
    if start.images > 0 {
        progress(Progress::Resumed { images: start.images });
        progress(Progress::Advance(start.images));
    }
    let pass = crate::pipeline::run(dataset, &mut jobs, options, &start, progress)?;
    for (job, (i, backbone, fingerprint, replaced)) in jobs.into_iter().zip(todo) {
        let spec = &backbone.spec;
        let output = outputs[i].clone();
        let shard = part.as_ref().zip(options.shard).map(|((_, slices), shard)| ShardInfo {
            index: shard.index,
            count: shard.count,
            batch: options.batch,
            dataset_fingerprint: keys[i].dataset.clone(),
            slices: slices.clone(),
        });
        let engine = job.engine.describe();
        let rows = job.writer.rows();
        let dim = job.writer.finish(
            &output,
            dataset,
            &FeatureSet { shard, ..stamp(dataset, backbone, &engine, &fingerprint) }.origin(),
        )?;
        reports[i] = Some(ExtractReport {
            backbone: spec.name.clone(),
            output,
            reused: false,
            replaced,
            engine,
            fallback_reason: job.engine.fallback_reason,
            rows,
            skipped: pass.skipped.clone(),
            decoded: pass.decoded,
            resumed: start.images,
            dim,
            seconds: started.elapsed().as_secs_f64(),
            steady: pass.steady,
        });
    }
    drop(locks);
    Ok(reports.into_iter().flatten().collect())
}

/// What a feature file of `backbone` over `dataset` records besides its rows (no splits, no
/// shard): the attributes its parts and the file are written with.
fn stamp(dataset: &Dataset, backbone: &Backbone, engine: &str, fingerprint: &str) -> FeatureSet {
    let spec = &backbone.spec;
    let model = std::path::absolute(&backbone.model).unwrap_or_else(|_| backbone.model.clone());
    FeatureSet {
        backbone: spec.name.clone(),
        classes: dataset.classes.names().to_vec(),
        splits: Vec::new(),
        model_sha256: backbone.sha256.clone(),
        model: model.to_string_lossy().into_owned(),
        input_size: [spec.resize.height, spec.resize.width],
        engine: engine.to_string(),
        fingerprint: fingerprint.to_string(),
        spec: spec.source_json.clone(),
        shard: None,
    }
}

/// A reused shard records the whole dataset as it is now (`dataset_fingerprint`), so that
/// shards reused after an image of another part changed still merge with the recomputed one.
fn record_dataset(shard_file: &Path, dataset_fingerprint: &str) -> Result<(), FeatureError> {
    let mut set = FeatureSet::read(shard_file)?;
    match set.shard.as_mut() {
        Some(info) if info.dataset_fingerprint != dataset_fingerprint => {
            info.dataset_fingerprint = dataset_fingerprint.to_string();
            set.write(shard_file)
        }
        _ => Ok(()),
    }
}

/// `gap_<Backbone>.h5`, or the shard's file.
fn output_path(out_dir: &Path, backbone: &Backbone, options: &ExtractOptions) -> PathBuf {
    let name = &backbone.spec.name;
    out_dir.join(options.shard.map_or_else(|| FeatureSet::file_name(name), |s| s.file_name(name)))
}

/// Whether a backbone's file can be reused, and if not why.
enum Cached {
    Reuse(ExtractReport),
    Compute { fingerprint: String, replaced: Option<String> },
}

/// The cache rule: the file's fingerprint equal to `fingerprint` (its [`Keys::file`]) and
/// every row passing its checksum means reuse; a file that is there but damaged is recomputed,
/// and the report says why.
fn cached(output: PathBuf, fingerprint: String, backbone: &Backbone, options: &ExtractOptions) -> Cached {
    let mut replaced = None;
    if !options.force && output.exists() {
        match FeatureReader::open(&output) {
            // the storage is in the key; a file from before it was (merged f16 shards carried
            // the f32 key) is told apart by its `dtype`
            Ok(cached) if cached.info.fingerprint == fingerprint && cached.storage == options.storage => {
                match cached.verify(cached.block_rows(BLOCK_BYTES)) {
                    Ok(()) => {
                        return Cached::Reuse(ExtractReport {
                            backbone: backbone.spec.name.clone(),
                            rows: cached.rows.clone(),
                            dim: cached.dim,
                            engine: cached.info.engine.clone(),
                            output,
                            reused: true,
                            replaced: None,
                            fallback_reason: None,
                            skipped: Vec::new(),
                            decoded: 0,
                            resumed: 0,
                            seconds: 0.0,
                            steady: None,
                        });
                    }
                    Err(e) => replaced = Some(e.to_string()),
                }
            }
            Ok(_) => {}
            Err(e) => replaced = Some(e.to_string()),
        }
    }
    Cached::Compute { fingerprint, replaced }
}

/// What decides reuse, computed in one place for every caller (extract, shards, merge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The whole dataset's key: what an unsharded file carries as its fingerprint, and what
    /// each shard records as `dataset_fingerprint` (so merged shards carry it too).
    pub dataset: String,
    /// The fingerprint of the file this call writes: `dataset`, or for a shard the key of its
    /// part, its place and the batch size (another batch size cuts other parts).
    pub file: String,
}

/// Each image file's size and modification time (a tar member's: its tar's, read once for all
/// its members), read once per pass over a dataset: what every backbone's fingerprint hashes,
/// so a run of several backbones reads the metadata once.
pub struct ImageStamps<'a>(HashMap<&'a Path, (u64, u128)>);

impl ImageStamps<'_> {
    /// Reads every image's metadata (keyed by the dataset's own paths, not copies).
    pub fn read(dataset: &Dataset) -> ImageStamps<'_> {
        let samples = dataset.splits.iter().flat_map(|s| &s.samples);
        ImageStamps(samples.map(|s| (s.container(), file_stamp(s.container()))).collect())
    }

    /// The stamp of `path` (read now if the pass did not see it).
    fn of(&self, path: &Path) -> (u64, u128) {
        self.0.get(path).copied().unwrap_or_else(|| file_stamp(path))
    }
}

/// A file's size and modification time in nanoseconds; a file whose metadata cannot be read
/// (a symlink loop) is stamped as such: decoding skips and reports it, so it must not stop the
/// run here.
fn file_stamp(path: &Path) -> (u64, u128) {
    match std::fs::metadata(path) {
        Ok(meta) => (
            meta.len(),
            meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos()),
        ),
        Err(_) => (u64::MAX, 0),
    }
}

/// The keys of a feature file of `backbone` over `dataset` as `options` ask for it: the
/// images (`stamps`, read once for every backbone), model, spec and precision
/// ([`fingerprint`]) and the storage (f16 rows are rounded: an f32 file is never a cache hit
/// for f16, nor the other way; f32 adds nothing, so files from before storage existed stay
/// valid); a shard's file key covers only its part's images.
pub fn keys(dataset: &Dataset, stamps: &ImageStamps<'_>, backbone: &Backbone, options: &ExtractOptions) -> Keys {
    let stored = |fingerprint: String| match options.storage {
        Storage::F32 => fingerprint,
        Storage::F16 => format!("{:x}", Sha256::digest(format!("{fingerprint} store float16"))),
    };
    let whole = stored(stamped_fingerprint(dataset, stamps, backbone, options.engine.precision));
    let file = match options.shard {
        None => whole.clone(),
        Some(shard) => {
            let (part, _) = crate::shard::slice(dataset, shard, options.batch);
            let part = stored(stamped_fingerprint(&part, stamps, backbone, options.engine.precision));
            format!("{:x}", Sha256::digest(format!("{part} shard {shard} batch {}", options.batch)))
        }
    };
    Keys { dataset: whole, file }
}

/// A hash of everything that decides a feature file's content: the file format, the model
/// bytes, the spec, the classes, and per image its relative path, label, size and
/// modification time; and TF32 when asked for, whose features differ from fp32's by about
/// 1e-3 (engines and devices at fp32 agree to 1e-5, and share a cache). Any change gives a
/// new fingerprint, and the cache is recomputed.
pub fn fingerprint(dataset: &Dataset, backbone: &Backbone, precision: Precision) -> String {
    stamped_fingerprint(dataset, &ImageStamps::read(dataset), backbone, precision)
}

/// [`fingerprint`] with the images' metadata already read.
fn stamped_fingerprint(
    dataset: &Dataset,
    stamps: &ImageStamps<'_>,
    backbone: &Backbone,
    precision: Precision,
) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(FORMAT.as_bytes());
    field(backbone.sha256.as_bytes());
    field(backbone.spec.source_json.as_bytes());
    field(format!("{:?}", backbone.spec.resize).as_bytes());
    field(dataset.classes.names().join("\n").as_bytes());
    if precision != Precision::Fp32 {
        field(precision.to_string().as_bytes());
    }
    for split in &dataset.splits {
        field(split.name.as_bytes());
        for s in &split.samples {
            let (len, mtime) = stamps.of(s.container());
            field(s.rel.as_bytes());
            field(&s.label.map_or(-1, |l| l as i64).to_le_bytes());
            field(&len.to_le_bytes());
            field(&mtime.to_le_bytes());
            // a tar member or Parquet row: its place in its file too (a photo file adds nothing, so older keys hold)
            match &s.member {
                Some(Member::Bytes { offset, len, .. }) => field(&[offset.to_le_bytes(), len.to_le_bytes()].concat()),
                Some(Member::Row { group, index, .. }) => {
                    field(&[*group as u64, *index as u64].map(u64::to_le_bytes).concat())
                }
                Some(Member::Fault { reason, .. }) => field(reason.as_bytes()),
                None => {}
            }
        }
    }
    format!("{:x}", h.finalize())
}
