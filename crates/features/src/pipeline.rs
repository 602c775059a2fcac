//! The extraction pipeline: a decode stage (its own rayon pool: decode each image once,
//! resize it once per distinct input size, write it into the batch tensor of each backbone)
//! feeds the engines through a bounded queue, so decoding the next batches overlaps
//! inference on this one. Batch tensors are recycled between the stages, rows go to the
//! feature files as each batch finishes, and memory stays flat.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use image::RgbImage;
use imgclf_dataset::{Dataset, Resize, Sample};
use ndarray::ArrayView4;
use rayon::prelude::*;

use imgclf_runtime::{Backbone, Engine, Feed, ModelSpec, PixelBatch, fill_batch};

use crate::checkpoint::{Clock, Commit, Partial, Progressed};
use crate::{ExtractOptions, FeatureError, Progress, Rows, Skipped};

/// Batches after which a pass counts its steady rate: by then the engines have set up their
/// buffers and, on a GPU, cuDNN has picked each convolution's algorithm.
pub(crate) const WARMUP_BATCHES: usize = 3;

/// Decoded batches waiting for the engines: enough to hide a slow image, small enough to
/// keep memory flat.
const QUEUE: usize = 2;

/// One backbone's part of a pass: its engine and the parts its rows go to.
pub(crate) struct Job<'a> {
    pub backbone: &'a Backbone,
    pub engine: Engine,
    pub writer: Partial,
}

/// One job's input for a batch, in the form its engine takes (see [`Feed`]).
enum Input {
    Floats(Vec<f32>),
    Pixels(PixelBatch),
}

/// A batch ready for the engines: the samples that decoded, one input per job.
struct Ready<'a> {
    split: usize,
    kept: Vec<&'a Sample>,
    /// The [`photo_digest`](crate::photo_digest) of each kept sample's file.
    photos: Vec<u64>,
    skipped: Vec<Skipped>,
    inputs: Vec<Input>,
    size: usize,
}

/// What a pass did besides writing rows.
pub(crate) struct Pass {
    /// The images skipped as unreadable.
    pub skipped: Vec<Skipped>,
    /// Images decoded: each once, whatever the number of jobs.
    pub decoded: usize,
    /// Images per second after the first [`WARMUP_BATCHES`] batches, when there were more.
    pub steady: Option<f64>,
}

/// Runs every image of `dataset` after the batches `start` has done through every job,
/// committing the jobs' rows at each checkpoint, when stopped, and at the end.
pub(crate) fn run(
    dataset: &Dataset,
    jobs: &mut [Job<'_>],
    options: &ExtractOptions,
    start: &Progressed,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Pass, FeatureError> {
    // each distinct input size (size, fit, filter) is made once per image
    let mut sizes: Vec<Resize> = Vec::new();
    let size_of: Vec<usize> = jobs
        .iter()
        .map(|j| {
            let r = j.backbone.spec.resize;
            sizes.iter().position(|s| *s == r).unwrap_or_else(|| {
                sizes.push(r);
                sizes.len() - 1
            })
        })
        .collect();
    let specs: Vec<_> = jobs.iter().map(|j| &j.backbone.spec).collect();
    let batches: Vec<(usize, &[Sample])> = dataset
        .splits
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            crate::shard::batches(&s.samples, options.batch).into_iter().map(move |r| (i, &s.samples[r]))
        })
        .skip(start.batches)
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.decode_threads.max(1))
        .thread_name(|i| format!("imgclf-decode-{i}"))
        .build()
        .map_err(|e| FeatureError::io(&dataset.root)(std::io::Error::other(e)))?;

    let (spare_tx, spare_rx) = channel::<Vec<Input>>();
    for _ in 0..=QUEUE {
        let inputs = jobs
            .iter()
            .map(|j| match j.engine.feed() {
                Feed::Floats => Ok(Input::Floats(Vec::new())),
                Feed::Pixels => j.engine.pixel_batch(options.batch.max(1), &j.backbone.spec).map(Input::Pixels),
            })
            .collect::<Result<Vec<_>, imgclf_runtime::RuntimeError>>()?;
        spare_tx.send(inputs).expect("the receiver is alive");
    }
    let decoded = AtomicUsize::new(0);
    let (skipped, steady) = std::thread::scope(|scope| {
        let (ready_tx, ready_rx) = sync_channel::<Ready>(QUEUE);
        let stop = options.stop.clone();
        let decoded = &decoded;
        scope.spawn(move || {
            decode_stage(&batches, &sizes, &size_of, &specs, &pool, &spare_rx, &ready_tx, decoded, || {
                stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
            })
        });
        engine_stage(dataset, jobs, options, start, progress, ready_rx, spare_tx)
    })?;
    Ok(Pass { skipped, decoded: decoded.into_inner(), steady })
}

/// Decodes batch after batch into recycled tensors until the batches run out, the engine
/// stage hangs up (an error, or it stopped), or `stopped()`.
#[allow(clippy::too_many_arguments)]
fn decode_stage<'a>(
    batches: &[(usize, &'a [Sample])],
    sizes: &[Resize],
    size_of: &[usize],
    specs: &[&ModelSpec],
    pool: &rayon::ThreadPool,
    spare: &Receiver<Vec<Input>>,
    ready: &SyncSender<Ready<'a>>,
    decoded: &AtomicUsize,
    stopped: impl Fn() -> bool,
) {
    for &(split, chunk) in batches {
        let Ok(mut inputs) = spare.recv() else { return };
        if stopped() {
            return;
        }
        let (kept, photos, skipped) = pool.install(|| decode(chunk, sizes, size_of, specs, &mut inputs, decoded));
        if ready.send(Ready { split, kept, photos, skipped, inputs, size: chunk.len() }).is_err() {
            return;
        }
    }
}

/// One batch on the decode pool: each image decoded once and resized once per size, then
/// written into each job's input: normalised floats, or the pixels as they are.
fn decode<'a>(
    chunk: &'a [Sample],
    sizes: &[Resize],
    size_of: &[usize],
    specs: &[&ModelSpec],
    inputs: &mut [Input],
    decoded: &AtomicUsize,
) -> (Vec<&'a Sample>, Vec<u64>, Vec<Skipped>) {
    let images: Vec<Result<(u64, Vec<RgbImage>), String>> = chunk
        .par_iter()
        .map(|s| {
            decoded.fetch_add(1, Ordering::Relaxed);
            let bytes = s.read().map_err(|e| e.to_string())?;
            let image = imgclf_dataset::decode_rgb(&bytes, &s.path).map_err(|e| e.to_string())?;
            let resized = sizes.iter().map(|r| r.apply(&image, &s.path).map_err(|e| e.to_string()));
            Ok((crate::photo_digest(&bytes), resized.collect::<Result<Vec<_>, String>>()?))
        })
        .collect();
    let mut kept = Vec::with_capacity(chunk.len());
    let mut photos = Vec::with_capacity(chunk.len());
    let mut skipped = Vec::new();
    let mut good = Vec::with_capacity(chunk.len());
    for (sample, result) in chunk.iter().zip(images) {
        match result {
            Ok((photo, resized)) => {
                kept.push(sample);
                photos.push(photo);
                good.push(resized);
            }
            Err(reason) => skipped.push(Skipped { path: sample.rel.clone(), reason }),
        }
    }
    for ((input, spec), &size) in inputs.iter_mut().zip(specs).zip(size_of) {
        let images = good.par_iter().map(|images| &images[size]);
        match input {
            Input::Floats(tensor) => {
                // resized in place: the recycled allocation is reused
                tensor.resize(spec.input_shape(good.len()).iter().product(), 0.0);
                fill_batch(spec, images, tensor);
            }
            Input::Pixels(pixels) => {
                let slot = spec.input_shape(1).iter().product::<usize>();
                let used = &mut pixels.as_mut_slice()[..slot * good.len()];
                used.par_chunks_mut(slot).zip(images).for_each(|(slot, image)| slot.copy_from_slice(image.as_raw()));
            }
        }
    }
    (kept, photos, skipped)
}

/// Runs each ready batch through every engine and appends the rows to each job's parts,
/// committing them when the checkpoint clock says so, when stopped and at the end.
fn engine_stage(
    dataset: &Dataset,
    jobs: &mut [Job<'_>],
    options: &ExtractOptions,
    start: &Progressed,
    progress: &mut dyn FnMut(Progress<'_>),
    ready: Receiver<Ready<'_>>,
    spare: Sender<Vec<Input>>,
) -> Result<(Vec<Skipped>, Option<f64>), FeatureError> {
    let total: usize = dataset.splits.iter().map(|s| s.samples.len()).sum();
    let mut kept_per_split: Vec<usize> = dataset
        .splits
        .iter()
        .map(|s| start.rows.iter().find(|(name, _)| *name == s.name).map_or(0, |(_, n)| *n))
        .collect();
    let mut skipped = start.skipped.clone();
    let (mut done, mut batches) = (start.images, start.batches);
    let mut clock = Clock::new(options.checkpoints);
    // the skipped images of the batches since the last commit are the last `skipped_since`
    let mut skipped_since = 0;
    let commit = |jobs: &mut [Job<'_>], batches: usize, images: usize, new: &[Skipped]| {
        jobs.iter_mut().try_for_each(|job| job.writer.commit(Commit { batches, images, total }, new))
    };
    let mut warm = None;
    for (b, batch) in ready.into_iter().enumerate() {
        if options.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        batch.skipped.iter().for_each(|s| progress(Progress::Skipped(s)));
        let split = &dataset.splits[batch.split];
        let n = batch.kept.len();
        if n > 0 {
            let labels: Option<Vec<i64>> =
                split.is_labelled().then(|| batch.kept.iter().map(|s| s.label.unwrap_or(0) as i64).collect());
            let paths: Vec<String> = batch.kept.iter().map(|s| s.rel.clone()).collect();
            for (job, input) in jobs.iter_mut().zip(&batch.inputs) {
                let outputs = match input {
                    Input::Floats(tensor) => {
                        let shape = job.backbone.spec.input_shape(n);
                        job.engine.run(ArrayView4::from_shape(shape, tensor).expect("tensor sized for the batch"))?
                    }
                    Input::Pixels(pixels) => job.engine.run_pixels(pixels, n)?,
                };
                let rows = job.backbone.pool_output(&outputs[0], n)?;
                let block = Rows {
                    features: rows.view(),
                    labels: labels.as_deref(),
                    paths: &paths,
                    photos: Some(&batch.photos),
                };
                job.writer.append(&split.name, block)?;
            }
        }
        kept_per_split[batch.split] += n;
        done += batch.size;
        batches += 1;
        if b + 1 == WARMUP_BATCHES {
            warm = Some((std::time::Instant::now(), done));
        }
        progress(Progress::Advance(batch.size));
        skipped_since += batch.skipped.len();
        skipped.extend(batch.skipped);
        let _ = spare.send(batch.inputs);
        if clock.tick() {
            commit(jobs, batches, done, &skipped[skipped.len() - skipped_since..])?;
            skipped_since = 0;
        }
    }
    // the batches since the last commit, when there are: after a stop, what was done is kept
    if !clock.fresh() {
        commit(jobs, batches, done, &skipped[skipped.len() - skipped_since..])?;
    }
    if done < total {
        // stopped (the decode stage may have seen the flag first)
        let backbone = jobs.iter().map(|j| j.backbone.spec.name.as_str()).collect::<Vec<_>>().join(" + ");
        return Err(FeatureError::Interrupted { backbone, done, total, kept: !options.checkpoints.is_off() });
    }
    // a shard's part of a split may be empty or unreadable: `merge` checks the whole split
    let whole = options.shard.is_none();
    if let Some((split, _)) = dataset.splits.iter().zip(&kept_per_split).find(|(_, kept)| whole && **kept == 0) {
        return Err(FeatureError::NoImages {
            split: split.name.clone(),
            total: split.samples.len(),
            first: skipped.last().map(|s: &Skipped| format!("{}: {}", s.path, s.reason)).unwrap_or_default(),
        });
    }
    let steady = warm
        .filter(|&(_, warmed)| done > warmed)
        .map(|(since, warmed)| (done - warmed) as f64 / since.elapsed().as_secs_f64().max(1e-9));
    Ok((skipped, steady))
}
