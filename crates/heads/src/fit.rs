//! The one way in: a plan's head fitted by its solver, mini-batches (Keras-style
//! epochs in `train.rs`) or the L-BFGS probe (`probe.rs`).

use crate::HeadError;
use crate::config::{Solver, TrainConfig};
use crate::data::HeadInputs;
use crate::plan::ChunkPlan;
use crate::train::{TrainEvent, Trained};

/// Trains a head on the `train` split: [`ChunkPlan::new`], then [`ChunkPlan::train`]. The
/// same inputs, config and seed give the same weights and numbers.
pub fn train(
    inputs: &HeadInputs,
    config: &TrainConfig,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<Trained, HeadError> {
    ChunkPlan::new(inputs, config)?.train(inputs, on_event)
}

impl ChunkPlan {
    /// Fits a head on the plan's rows of `inputs` (the features it was made from) with the
    /// config's solver: epochs of shuffled mini-batches, or L-BFGS to the penalised minimum.
    pub fn train(&self, inputs: &HeadInputs, on_event: &mut dyn FnMut(TrainEvent)) -> Result<Trained, HeadError> {
        match self.config.solver {
            Solver::Sgd => self.sgd(inputs, on_event),
            Solver::Lbfgs(lbfgs) => self.fit_lbfgs(inputs, lbfgs, on_event),
        }
    }
}
