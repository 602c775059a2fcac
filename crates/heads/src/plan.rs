//! Which rows `train` fits and validates on, and the chunks it reads them in: one value built
//! from the features, the budget and the config, which `train` iterates and the CLI prints.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::ops::Range;

use crate::HeadError;
use crate::config::{InverseL2, Lbfgs, Solver, TrainConfig, Validation};
use crate::data::HeadInputs;
use imgclf_dataset::Rng;

const HOLDOUT: u64 = 4;
const CHUNKS: u64 = 5;

/// The rows of a training run and the order an epoch visits them in.
///
/// A held `train` split is one chunk. A split read from the files comes in chunks of at most
/// [`HeadInputs::chunk_rows`] rows made of short blocks of neighbouring rows (at most 64, one
/// HDF5 chunk; fewer so that a chunk holds 64 blocks or more), a block never spanning two
/// classes. A file's rows sit in folder order, class by class, so a chunk of neighbouring
/// blocks would hold a handful of classes. Instead each epoch deals the blocks out like cards,
/// class after class, each class's blocks shuffled and each dealt to the chunk with the fewest
/// rows so far (ties in a seeded order): every chunk holds about its share of every class, no
/// chunk more than a block over the mean (so the chunks are counted with a block of room), and
/// the chunks are visited in a seeded order. A split that fits one chunk trains exactly as
/// when held.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkPlan {
    /// The config the plan was made for.
    pub config: TrainConfig,
    /// Rows of `train` trained on, ascending.
    pub rows: Vec<usize>,
    /// Where validation comes from.
    pub validation: Validation,
    /// Rows of `train` held out for validation (`val_split`), ascending.
    pub held_out: Vec<usize>,
    /// Rows a chunk may hold (`usize::MAX` when the split is held in memory).
    pub chunk_rows: usize,
    /// Bytes of feature rows the plan was made under.
    pub memory_budget: usize,
    /// The blocks, as ranges of `rows`, in file order.
    blocks: Vec<Range<usize>>,
    /// Per class, its blocks (indices into `blocks`).
    by_class: Vec<Vec<usize>>,
    /// Chunks an epoch reads.
    chunks: usize,
}

impl ChunkPlan {
    /// Checks `config` against the features and lays out the rows: the held-out share (seeded,
    /// stratified) and, for a split read from the files, the blocks and chunks.
    pub fn new(inputs: &HeadInputs, config: &TrainConfig) -> Result<ChunkPlan, HeadError> {
        crate::config::check(config, inputs.classes.len())?;
        let first_file = inputs.sources.first().map(|s| s.file.clone()).unwrap_or_default();
        let Some((train, labels)) = inputs.split("train").and_then(|s| s.labels.as_ref().map(|l| (s, l))) else {
            return Err(HeadError::Input { path: first_file, reason: "no labelled `train` split to train on".into() });
        };
        let held = train.x.is_some();
        let chunk_rows = if held { usize::MAX } else { inputs.chunk_rows() };
        if chunk_rows < config.batch_size {
            return Err(HeadError::Config(format!(
                "`memory_budget` of {} MiB holds {chunk_rows} rows of {} features, fewer than a batch of {}: raise it, \
                 or lower `batch_size`",
                inputs.memory_budget >> 20,
                inputs.dim(),
                config.batch_size
            )));
        }
        let validation_split = inputs.validation();
        let all: Vec<usize> = (0..labels.len()).collect();
        let (rows, held_out, validation) = match (validation_split, config.val_split) {
            (Some(_), Some(_)) => {
                return Err(HeadError::Config(
                    "`val_split` holds out part of train, but the features have a `validation` split; drop one".into(),
                ));
            }
            (Some(split), None) => (all, Vec::new(), Validation::Split(split.name.clone())),
            (None, Some(fraction)) => {
                let (keep, held_out) = stratified_holdout(labels, inputs.classes.len(), fraction, config.seed);
                let validation = Validation::Holdout { fraction, rows: held_out.len() };
                (keep, held_out, validation)
            }
            (None, None) => (all, Vec::new(), Validation::None),
        };
        if config.patience.is_some() && validation == Validation::None {
            return Err(HeadError::Config(
                "early stopping (`patience`) watches validation loss: give `val_split`, or features with a validation \
                 split"
                    .into(),
            ));
        }
        let classes = inputs.classes.len();
        if let Solver::Lbfgs(lbfgs) = &config.solver {
            check_probe(inputs, lbfgs, labels, &rows, &held_out, &validation)?;
        }
        let (chunks, block) = layout(rows.len(), classes, chunk_rows);
        let (blocks, by_class) = blocks(&rows, labels, classes, block);
        let memory_budget = inputs.memory_budget;
        Ok(ChunkPlan {
            config: config.clone(),
            rows,
            validation,
            held_out,
            chunk_rows,
            memory_budget,
            blocks,
            by_class,
            chunks,
        })
    }

    /// Whether the train rows are held in memory (one chunk, read once).
    pub fn is_held(&self) -> bool {
        self.chunk_rows == usize::MAX
    }

    /// Chunks an epoch reads (1 when held).
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// The rows of each chunk of `epoch` (1-based), each ascending, in the order they are
    /// visited: the blocks dealt out afresh each epoch (see [`ChunkPlan`]).
    pub fn epoch(&self, epoch: usize) -> Vec<Vec<usize>> {
        if self.chunks == 1 {
            return vec![self.rows.clone()];
        }
        let mut rng = Rng::stream(self.config.seed, CHUNKS, epoch as u64);
        let mut ties: Vec<usize> = (0..self.chunks).collect();
        rng.shuffle(&mut ties);
        // the least filled chunk first: (rows, tie order, chunk)
        let mut fill: BinaryHeap<Reverse<(usize, usize, usize)>> =
            ties.iter().enumerate().map(|(chunk, &tie)| Reverse((0, tie, chunk))).collect();
        let mut dealt: Vec<Vec<usize>> = vec![Vec::new(); self.chunks];
        for class in &self.by_class {
            let mut deck = class.clone();
            rng.shuffle(&mut deck);
            for block in deck {
                let Reverse((rows, tie, chunk)) = fill.pop().expect("one entry a chunk");
                let block = self.blocks[block].clone();
                fill.push(Reverse((rows + block.len(), tie, chunk)));
                dealt[chunk].extend_from_slice(&self.rows[block]);
            }
        }
        rng.shuffle(&mut dealt);
        dealt.iter_mut().for_each(|rows| rows.sort_unstable());
        dealt
    }

    /// The rows in ascending order, a chunk's worth at a time: one pass for the standardizer,
    /// whose sums then match a held split's bit for bit.
    pub fn ascending(&self) -> Vec<Vec<usize>> {
        self.rows.chunks(self.rows.len().div_ceil(self.chunks).max(1)).map(<[usize]>::to_vec).collect()
    }
}

impl fmt::Display for ChunkPlan {
    /// What the run does with the rows, in one line: `train 3870 rows held in memory`, or the
    /// budget, the chunks and their size.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let rows = self.rows.len();
        match self.is_held() {
            true => write!(f, "train {rows} rows held in memory")?,
            false => write!(
                f,
                "memory budget {}: train {rows} rows read from the files in {} chunks of about {} row{}, {}",
                bytes(self.memory_budget),
                self.chunks,
                rows.div_ceil(self.chunks),
                if rows.div_ceil(self.chunks) == 1 { "" } else { "s" },
                match self.config.solver {
                    Solver::Sgd => "dealt class by class, visited in a seeded order",
                    Solver::Lbfgs(_) => "each pass in file order",
                }
            )?,
        }
        match &self.validation {
            Validation::Holdout { rows, .. } => write!(f, " ({rows} more held out for validation)"),
            _ => Ok(()),
        }
    }
}

/// Refuses a probe that cannot be fitted or chosen: `C` chosen on (or a refit with) no
/// validation, and rows to fit or to choose on that hold a single class (a logistic fit then
/// drives the bias without bound, and one class's log loss favours the weakest penalty).
fn check_probe(
    inputs: &HeadInputs,
    lbfgs: &Lbfgs,
    labels: &[usize],
    rows: &[usize],
    held_out: &[usize],
    validation: &Validation,
) -> Result<(), HeadError> {
    let auto = lbfgs.c == InverseL2::Auto;
    if (auto || lbfgs.refit) && *validation == Validation::None {
        let what = if auto { "`c` auto chooses C on validation" } else { "a refit adds the validation rows" };
        return Err(HeadError::Config(format!(
            "{what}, but there is none: give `val_split`, or features with a validation split"
        )));
    }
    fn one_class(mut labels: impl Iterator<Item = usize>) -> Option<usize> {
        let first = labels.next();
        first.filter(|&f| labels.all(|l| l == f))
    }
    if let Some(class) = one_class(rows.iter().map(|&r| labels[r])) {
        return Err(HeadError::Config(format!(
            "the train rows are all of class `{}`: the probe needs two classes or more to fit",
            inputs.classes[class]
        )));
    }
    let validation_labels: Option<Vec<usize>> = match validation {
        Validation::Split(name) => inputs.split(name).and_then(|s| s.labels.clone()),
        Validation::Holdout { .. } => Some(held_out.iter().map(|&r| labels[r]).collect()),
        _ => None,
    };
    if let (true, Some(v)) = (auto, validation_labels)
        && let Some(class) = one_class(v.into_iter())
    {
        return Err(HeadError::Config(format!(
            "the validation rows are all of class `{}`: `c` auto needs two classes or more there to choose C",
            inputs.classes[class]
        )));
    }
    Ok(())
}

/// A byte count for a message: `4.0 MiB`, `5.8 KiB`, `300 B`.
fn bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / f64::from(1 << 10)),
        n => format!("{n} B"),
    }
}

/// Per class, a seeded shuffle and the first `round(fraction · n)` rows held out (at least
/// one and never all of a class with two or more rows). Returns (kept, held), each sorted.
fn stratified_holdout(labels: &[usize], classes: usize, fraction: f32, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let (mut keep, mut held) = (Vec::new(), Vec::new());
    // each class's rows, ascending, from one pass (not one pass per class)
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    labels.iter().enumerate().for_each(|(r, &l)| by_class[l].push(r));
    for (class, mut rows) in by_class.into_iter().enumerate() {
        Rng::stream(seed, HOLDOUT, class as u64).shuffle(&mut rows);
        let n = rows.len();
        let k = if n < 2 { 0 } else { ((fraction * n as f32).round() as usize).clamp(1, n - 1) };
        held.extend_from_slice(&rows[..k]);
        keep.extend_from_slice(&rows[k..]);
    }
    keep.sort_unstable();
    held.sort_unstable();
    (keep, held)
}

/// How many chunks `rows` rows of `classes` classes take at `chunk_rows` a chunk (one when
/// they fit), and the rows of the blocks they are dealt in: at most 64 (one HDF5 chunk of a
/// feature file, the cheapest unit to read), few enough that a chunk holds 64 blocks, and
/// short enough that a chunk holds an average class's rows from 8 places in the file. Rows
/// of a class sit together and neighbours are alike (frames of one sign, shots of one pet),
/// so a class met in one or two runs of rows is met in one or two scenes. Blocks shorter
/// than 64 rows cost reads: a chunk's blocks closer than 64 rows are read through, so each
/// chunk reads up to the whole split, which happens where the classes are small and the
/// chunks few.
fn layout(rows: usize, classes: usize, chunk_rows: usize) -> (usize, usize) {
    if rows <= chunk_rows {
        return (1, 64);
    }
    let first_guess = rows.div_ceil(chunk_rows);
    let block = (chunk_rows / 64).min(64).min(rows / classes.max(1) / (8 * first_guess)).max(1);
    // a chunk of one row (a budget of one row, batches of one) is a block alone
    (rows.div_ceil((chunk_rows - block).max(1)), block)
}

/// The rows of `index` (ascending) in blocks of at most `block_rows` neighbouring rows (a
/// new block at every multiple of `block_rows` and every change of class), as ranges of
/// `index`, and per class its blocks.
fn blocks(
    index: &[usize],
    labels: &[usize],
    classes: usize,
    block_rows: usize,
) -> (Vec<Range<usize>>, Vec<Vec<usize>>) {
    let (mut blocks, mut by_class): (Vec<Range<usize>>, Vec<Vec<usize>>) = (Vec::new(), vec![Vec::new(); classes]);
    let mut current = (usize::MAX, usize::MAX);
    for (at, &r) in index.iter().enumerate() {
        if (r / block_rows, labels[r]) != current {
            current = (r / block_rows, labels[r]);
            by_class[labels[r]].push(blocks.len());
            blocks.push(at..at);
        }
        blocks.last_mut().expect("pushed above").end = at + 1;
    }
    (blocks, by_class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_is_stratified_disjoint_and_seeded() {
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i % 4 == 0)).collect(); // 25 of class 1
        let (keep, held) = stratified_holdout(&labels, 2, 0.2, 5);
        assert_eq!(held.iter().filter(|&&r| labels[r] == 1).count(), 5);
        assert_eq!(held.iter().filter(|&&r| labels[r] == 0).count(), 15);
        assert_eq!(keep.len() + held.len(), 100);
        assert!(held.iter().all(|r| !keep.contains(r)));
        assert_eq!(stratified_holdout(&labels, 2, 0.2, 5).1, held);
        assert_ne!(stratified_holdout(&labels, 2, 0.2, 6).1, held);
    }

    /// A plan over 43 classes of 90 rows in folder order, `chunk_rows` a chunk.
    fn plan(chunk_rows: usize, seed: u64) -> ChunkPlan {
        let index: Vec<usize> = (0..43 * 90).collect();
        let labels: Vec<usize> = index.iter().map(|r| r / 90).collect();
        let (chunks, block) = layout(index.len(), 43, chunk_rows);
        let (blocks, by_class) = blocks(&index, &labels, 43, block);
        ChunkPlan {
            config: TrainConfig { seed, ..TrainConfig::tutorial() },
            rows: index,
            validation: Validation::None,
            held_out: Vec::new(),
            chunk_rows,
            memory_budget: 0,
            blocks,
            by_class,
            chunks,
        }
    }

    #[test]
    fn every_chunk_is_an_even_share_of_every_class_within_the_budget() {
        // 716-row chunks: a 4 MiB budget of Lite0 rows, traffic_signs' train split
        let (per_class, classes) = (90, 43);
        let p = plan(716, 3);
        assert_eq!((p.chunks(), layout(43 * 90, 43, 716)), (6, (6, 1)), "90 rows a class: rows, not blocks");
        for epoch in 1..=3 {
            let chunks = p.epoch(epoch);
            let mut seen: Vec<usize> = chunks.concat();
            seen.sort_unstable();
            assert_eq!(seen, p.rows, "epoch {epoch}: every row once");
            for rows in &chunks {
                assert!(rows.len() <= 716 && rows.is_sorted());
                let mut counts = vec![0usize; classes];
                rows.iter().for_each(|&r| counts[r / per_class] += 1);
                // a class's 90 rows over 6 chunks: 15 in each, one more or less where the
                // chunks even out (64-row blocks drawn at random left classes out of chunks)
                assert!(counts.iter().all(|&c| (14..=16).contains(&c)), "epoch {epoch}: {counts:?}");
            }
        }
        assert_ne!(p.epoch(1), p.epoch(2), "dealt afresh each epoch");
        assert_eq!(p.epoch(2), plan(716, 3).epoch(2), "seeded");
        assert_ne!(p.epoch(2), plan(716, 4).epoch(2));
        // big classes keep whole 64-row blocks, read without reading through
        assert_eq!(layout(120_000, 2, 22_000), (6, 64));
        assert_eq!(layout(1_300_000, 1000, 330_000), (4, 40), "ImageNet-sized: 1,300 rows a class");
        assert_eq!(layout(716, 43, 716), (1, 64), "fits: one chunk, as held");
        assert_eq!(layout(5, 2, 1), (5, 1), "one row a chunk");
        let ascending = p.ascending();
        assert!(ascending.len() == p.chunks() && ascending.concat() == p.rows);
        assert!(ascending.iter().all(|c| c.len() <= 716));
    }
}
