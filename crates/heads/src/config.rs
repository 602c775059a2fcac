//! What decides a training run (`TrainConfig`, stored in `run.json`), checked against the
//! limits, and where its validation comes from.

use serde::{Deserialize, Serialize};

use crate::HeadError;
use crate::head::{Architecture, HeadConfig};
use crate::optim::OptimizerConfig;
use imgclf_dataset::limits::{self, BATCH, EPOCHS, HIDDEN, INVERSE_L2, L2, MAX_ITER, PATIENCE, TOL, VAL_SPLIT};

/// Everything that decides a training run; stored in `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The head's architecture and regularisation.
    pub head: HeadConfig,
    /// The optimizer with its rates.
    pub optimizer: OptimizerConfig,
    /// Epochs to train.
    pub epochs: usize,
    /// Rows per gradient step.
    pub batch_size: usize,
    /// Seed of initialisation, shuffling, dropout and the held-out rows.
    pub seed: u64,
    /// Standardise each feature with the training rows' mean and standard deviation.
    pub standardize: bool,
    /// Share of train held out (seeded, stratified) for validation when the features have no
    /// `validation` split.
    pub val_split: Option<f32>,
    /// Stop after this many epochs without a lower validation loss, keeping the best weights.
    pub patience: Option<usize>,
    /// Loss weight per class.
    pub class_weight: ClassWeight,
    /// Mini-batches (the optimizer's) or the L-BFGS probe; runs from before it was chosen are SGD's.
    #[serde(default)]
    pub solver: Solver,
}

impl TrainConfig {
    /// The tutorial's head, what `imgclf train-head` does without flags: Dropout(0.5) → Dense
    /// (logistic), Adadelta (learning rate 1.0), 8 epochs of batches of 128, seed 0.
    pub fn tutorial() -> TrainConfig {
        TrainConfig {
            head: HeadConfig { architecture: Architecture::Logistic, dropout: 0.5, l2: 0.0 },
            optimizer: OptimizerConfig::keras_default("adadelta").expect("a Keras optimizer"),
            epochs: 8,
            batch_size: 128,
            seed: 0,
            standardize: false,
            val_split: None,
            patience: None,
            class_weight: ClassWeight::None,
            solver: Solver::Sgd,
        }
    }
}

/// How a head's weights are fitted.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Solver {
    /// Mini-batches and an optimizer, epoch after epoch, as Keras' `fit`.
    #[default]
    Sgd,
    /// Full passes and L-BFGS to the minimum of the penalised log loss (a logistic head).
    Lbfgs(Lbfgs),
}

/// The probe's settings, named as scikit-learn names them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lbfgs {
    /// Inverse L2 strength: the objective is the (class-weighted) mean log loss plus
    /// `‖W‖² / (2·C·n)`, `n` the train rows (their summed weights), as scikit-learn's `C`.
    pub c: f64,
    /// Converged when no gradient entry exceeds this (scikit-learn's `tol`).
    pub tol: f64,
    /// Iterations at most (each about one pass over the rows).
    pub max_iter: usize,
}

impl Default for Lbfgs {
    /// scikit-learn's `C` and `tol`; more iterations than its 100, which wide features need.
    fn default() -> Lbfgs {
        Lbfgs { c: 1.0, tol: 1e-4, max_iter: 1000 }
    }
}

impl Lbfgs {
    /// Refuses settings outside their limits.
    pub(crate) fn check(&self) -> Result<(), String> {
        INVERSE_L2.check(self.c)?;
        TOL.check(self.tol)?;
        MAX_ITER.check_usize(self.max_iter)?;
        Ok(())
    }
}

/// Per-class loss weights, as Keras' `class_weight`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeight {
    /// Every class weighs the same.
    None,
    /// `rows / (classes · rows of the class)`, as scikit-learn's `"balanced"`.
    Balanced,
    /// One weight per class, in class-id order.
    Manual(Vec<f32>),
}

impl std::str::FromStr for ClassWeight {
    type Err = String;

    /// `none`, `balanced`, or one number per class, comma-separated.
    fn from_str(s: &str) -> Result<ClassWeight, String> {
        match s {
            "none" => return Ok(ClassWeight::None),
            "balanced" => return Ok(ClassWeight::Balanced),
            _ => {}
        }
        let weights = s
            .split(',')
            .map(|w| {
                w.trim().parse::<f32>().map_err(|_| format!("`{w}` is not a number (expected `balanced` or W,W,...)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(format!("`{s}`: class weights must be numbers >= 0"));
        }
        Ok(ClassWeight::Manual(weights))
    }
}

/// Where the validation rows came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validation {
    /// The features' own split of that name.
    Split(String),
    /// Rows held out of train.
    Holdout {
        /// The share of train held out.
        fraction: f32,
        /// Rows held out.
        rows: usize,
    },
    /// No validation.
    None,
}

/// Refuses a config the limits or the class count rule out.
pub(crate) fn check(config: &TrainConfig, classes: usize) -> Result<(), HeadError> {
    let fail = |m: String| Err(HeadError::Config(m));
    let h = &config.head;
    if classes < 2 {
        return fail(format!("a classifier needs at least 2 classes, the features have {classes}"));
    }
    let limited = || -> Result<(), String> {
        EPOCHS.check_usize(config.epochs)?;
        BATCH.check_usize(config.batch_size)?;
        limits::DROPOUT.check_f32(h.dropout)?;
        L2.check_f32(h.l2)?;
        if let Architecture::Mlp { hidden } = h.architecture {
            HIDDEN.check_usize(hidden)?;
        }
        config.val_split.map(|f| VAL_SPLIT.check_f32(f)).transpose()?;
        config.patience.map(|p| PATIENCE.check_usize(p)).transpose()?;
        Ok(())
    };
    limited().map_err(HeadError::Config)?;
    if let Solver::Lbfgs(lbfgs) = &config.solver {
        lbfgs.check().map_err(HeadError::Config)?;
        if h.architecture != Architecture::Logistic {
            return fail("the L-BFGS probe fits a logistic head (no hidden layer)".into());
        }
        if config.patience.is_some() {
            return fail("the L-BFGS probe stops on its gradient, not on validation: drop `patience`".into());
        }
    }
    config.optimizer.check()?;
    if let ClassWeight::Manual(w) = &config.class_weight
        && (w.len() != classes || w.iter().any(|&v| v.is_nan() || v <= 0.0))
    {
        return fail(format!("`class_weight` needs {classes} positive weights (one per class), got {w:?}"));
    }
    Ok(())
}
