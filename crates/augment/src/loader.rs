//! Augmented batches streamed from disk for training: decoded, resized and augmented on a
//! background thread (in parallel within a batch) while the consumer works on the previous
//! batch. Only `prefetch` batches are ever held, never the dataset.

use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use imgclf_dataset::{DatasetError, Resize, Rng, Sample};
use ndarray::{Array3, Array4, Axis};
use rayon::prelude::*;

use crate::Augmenter;

/// How a [`BatchLoader`] walks its samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoaderOptions {
    /// Images per batch.
    pub batch_size: usize,
    /// Seed of the shuffle and of every image's draw.
    pub seed: u64,
    /// Epochs see other orders and other augmentations of the same images.
    pub epoch: u64,
    /// Shuffle the samples (per epoch, from the seed) instead of keeping their order.
    pub shuffle: bool,
    /// Batches prepared ahead of the consumer.
    pub prefetch: usize,
}

/// One batch: `(n, height, width, 3)` values, the samples they came from (same order), and the
/// images of this batch that could not be read (left out, not fatal).
#[derive(Debug)]
pub struct Batch {
    /// `(n, height, width, 3)` augmented pixels, 0..255 unless rescaled.
    pub images: Array4<f32>,
    /// The samples the rows are, in order.
    pub samples: Vec<Sample>,
    /// Samples that could not be read, with why.
    pub skipped: Vec<DatasetError>,
}

/// An iterator of augmented batches over `samples`, filled by a background thread.
pub struct BatchLoader {
    batches: Receiver<Batch>,
    worker: Option<JoinHandle<()>>,
}

const SHUFFLE: u64 = 0x5A;

impl BatchLoader {
    /// Starts preparing batches. Sample `i` of epoch `e` is augmented with stream index
    /// `e · len + i`, so its pixels depend on the seed, the epoch and the sample only.
    pub fn start(samples: Vec<Sample>, resize: Resize, augmenter: Augmenter, options: LoaderOptions) -> BatchLoader {
        let (sender, batches) = sync_channel(options.prefetch.max(1));
        let worker = std::thread::spawn(move || {
            let mut order: Vec<usize> = (0..samples.len()).collect();
            if options.shuffle {
                Rng::stream(options.seed, SHUFFLE, options.epoch).shuffle(&mut order);
            }
            let first = options.epoch * samples.len() as u64;
            for chunk in order.chunks(options.batch_size.max(1)) {
                let results: Vec<(usize, Result<Array3<f32>, DatasetError>)> = chunk
                    .par_iter()
                    .map(|&i| {
                        let image = samples[i].load_resized(&resize);
                        (i, image.map(|img| augmenter.augment(&img, options.seed, first + i as u64)))
                    })
                    .collect();
                let (mut kept, mut skipped) = (Vec::new(), Vec::new());
                for (i, result) in results {
                    match result {
                        Ok(x) => kept.push((i, x)),
                        Err(e) => skipped.push(e),
                    }
                }
                let shape = (kept.len(), resize.height as usize, resize.width as usize, 3);
                let mut images = Array4::zeros(shape);
                for (mut dst, (_, x)) in images.axis_iter_mut(Axis(0)).zip(&kept) {
                    dst.assign(x);
                }
                let samples = kept.iter().map(|(i, _)| samples[*i].clone()).collect();
                if sender.send(Batch { images, samples, skipped }).is_err() {
                    return; // the consumer stopped listening
                }
            }
        });
        BatchLoader { batches, worker: Some(worker) }
    }
}

impl Iterator for BatchLoader {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let batch = self.batches.recv().ok();
        if batch.is_none()
            && let Some(worker) = self.worker.take()
            && let Err(panic) = worker.join()
        {
            std::panic::resume_unwind(panic); // a bug in the worker must not look like the end
        }
        batch
    }
}
