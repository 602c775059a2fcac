//! Dense classifier heads on cached backbone features: the second half of the tutorial's
//! recipe. Join `gap_<Backbone>.h5` files by image path ([`HeadInputs`]), train a
//! [`Head`] with Keras' optimizers ([`train`]), score it ([`evaluate`]), write Kaggle CSVs
//! ([`prediction_csv`]) and keep everything in a run folder others can read ([`Run`]).
//!
//! Training and scoring a head on a feature file (the core of `examples/train_head.rs`,
//! which makes its feature file from the fixture photos first):
//!
//! ```no_run
//! use imgclf_heads::prelude::*;
//!
//! // hold at most 1 GiB of feature rows: a bigger split is read from the file in chunks
//! let inputs = HeadInputs::open(&["features/gap_EfficientNet-Lite0.h5".into()], &["train", "validation"], 1 << 30)?;
//! let trained = train(&inputs, &TrainConfig::tutorial(), &mut |_| {})?;
//! let probs = predict_split(&trained.head, &inputs, "validation")?;
//! let validation = inputs.split("validation").unwrap();
//! let labels = validation.labels.as_ref().unwrap();
//! println!("{}", evaluate(&inputs.classes, probs.view(), labels, &validation.paths, 5));
//! # Ok::<(), HeadError>(())
//! ```

#![warn(missing_docs)]

mod config;
mod data;
mod error;
mod fit;
#[cfg(test)]
mod gradcheck;
mod head;
mod layers;
mod lbfgs;
mod loss;
mod metrics;
mod optim;
mod options;
mod plan;
mod plot;
mod predictor;
mod probe;
mod run;
mod run_folder;
mod submission;
mod sweep;
mod temperature;
mod train;

pub use config::{ClassWeight, InverseL2, Lbfgs, Solver, TrainConfig, Validation};
pub use data::{HeadInputs, RowReader, Source, SplitData, default_memory_budget};
pub use error::HeadError;
pub use fit::train;
pub use head::{Architecture, BatchGrads, Head, HeadConfig, Moments, Standardizer};
pub use imgclf_dataset::Rng;
pub use layers::{Dense, Dropout, relu, relu_backward};
pub use lbfgs::Stop;
pub use loss::Loss;
pub use metrics::{
    Bin, CALIBRATION_BINS, Calibration, ClassScores, EVALUATED_FILE, Evaluated, Evaluation, TopLoss, calibration,
    evaluate,
};
pub use optim::{Optimizer, OptimizerConfig, Rule, StepRates};
pub use options::{HeadKind, Resolved, SolverKind, TrainOptions};
pub use plan::ChunkPlan;
pub use plot::{LineChart, charts_svg, confusion_png, curve_charts, curves_png, sweep_charts};
pub use predictor::{Predictions, Predictor, image_samples};
pub use run::{RUN_FORMAT, Run, RunInfo};
pub use run_folder::{
    BackboneSummary, NamedTensor, RunDir, RunHeader, RunSummary, f32_safetensors, f32_tensor, format_of, history_csv,
    parse_run_json, read_history, run_json_text, settings,
};
pub use submission::{CsvStyle, prediction_csv};
pub use sweep::{Sweep, SweepPoint, sweep_grid};
pub use temperature::{Scores, TEMPERATURE_FILE, Temperature, calibration_note};
pub use train::{EpochStats, TrainEvent, Trained, argmax, predict_split};

/// `use imgclf_heads::prelude::*` brings what training and scoring a head needs.
pub mod prelude {
    pub use crate::{
        Architecture, ChunkPlan, ClassWeight, CsvStyle, Head, HeadConfig, HeadError, HeadInputs, InverseL2, Lbfgs,
        OptimizerConfig, Run, Solver, TrainConfig, TrainEvent, evaluate, predict_split, prediction_csv, train,
    };
}
