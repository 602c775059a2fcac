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
    /// `‖W‖² / (2·C·n)`, `n` the rows fitted (their summed weights), as scikit-learn's `C`;
    /// or `auto`, chosen on validation by the sweep ([`crate::Sweep`]).
    pub c: InverseL2,
    /// Converged when no gradient entry exceeds this (scikit-learn's `tol`).
    pub tol: f64,
    /// Iterations at most (each about one pass over the rows).
    pub max_iter: usize,
    /// Fit the kept head on train and validation rows together (at the chosen `c`): its
    /// validation scores are then measured on rows it was fitted to. Runs from before it
    /// existed did not.
    #[serde(default)]
    pub refit: bool,
}

impl Default for Lbfgs {
    /// scikit-learn's `C` and `tol`; more iterations than its 100, which wide features need.
    fn default() -> Lbfgs {
        Lbfgs { c: InverseL2::Value(1.0), tol: 1e-4, max_iter: 1000, refit: false }
    }
}

impl Lbfgs {
    /// Refuses settings outside their limits.
    pub(crate) fn check(&self) -> Result<(), String> {
        if let InverseL2::Value(c) = self.c {
            INVERSE_L2.check(c)?;
        }
        TOL.check(self.tol)?;
        MAX_ITER.check_usize(self.max_iter)?;
        Ok(())
    }
}

/// The probe's `C`: a value, or `auto` (chosen on validation). In `run.json`, a number or
/// the string `"auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CText", into = "CText")]
pub enum InverseL2 {
    /// This `C`.
    Value(f64),
    /// The `C` of lowest validation log loss on the sweep's grid.
    Auto,
}

/// How [`InverseL2`] is written in `run.json`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum CText {
    Value(f64),
    Word(String),
}

impl TryFrom<CText> for InverseL2 {
    type Error = String;

    fn try_from(text: CText) -> Result<InverseL2, String> {
        match text {
            CText::Value(c) => Ok(InverseL2::Value(c)),
            CText::Word(w) => w.parse(),
        }
    }
}

impl From<InverseL2> for CText {
    fn from(c: InverseL2) -> CText {
        match c {
            InverseL2::Value(c) => CText::Value(c),
            InverseL2::Auto => CText::Word("auto".into()),
        }
    }
}

impl std::str::FromStr for InverseL2 {
    type Err = String;

    /// `auto`, or a number within [`INVERSE_L2`].
    fn from_str(s: &str) -> Result<InverseL2, String> {
        match s {
            "auto" => Ok(InverseL2::Auto),
            _ => {
                // the limit's own words: `c must be a number in (0, 1000000000000]`
                let c = INVERSE_L2.parser_f64()(s).map_err(|e| format!("`auto`, or a number: {e}"))?;
                Ok(InverseL2::Value(c))
            }
        }
    }
}

impl std::fmt::Display for InverseL2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InverseL2::Value(c) => write!(f, "{c}"),
            InverseL2::Auto => f.write_str("auto"),
        }
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
    /// These validation rows, which the kept head was then fitted to as well (a refit of the
    /// probe): what is measured on them is not held out.
    Refit(Box<Validation>),
}

impl std::fmt::Display for Validation {
    /// `split `validation``, `300 rows held out of train (val_split 0.2)`, `none`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Validation::Split(name) => write!(f, "split `{name}`"),
            Validation::Holdout { fraction, rows } => {
                write!(f, "{rows} rows held out of train (`val_split` {fraction})")
            }
            Validation::None => f.write_str("none"),
            Validation::Refit(rows) => write!(f, "{rows}, then fitted to as well (refit): not held out"),
        }
    }
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
