//! Convolutional networks trained from pixels, on candle: the tutorial's small cats-vs-dogs
//! CNN and LeNet ([`Arch`]), trained with on-the-fly augmentation and Keras' optimizers
//! ([`train`]), saved as run folders that resume from their last epoch ([`CnnRun`]).
//!
//! Training the tutorial's LeNet (the core of `examples/lenet_epoch.rs`):
//!
//! ```
//! use imgclf_dataset::Dataset;
//! use imgclf_nets::prelude::*;
//!
//! let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
//! let dataset = Dataset::open(fixtures.join("tiny_data"))?;
//! let config = CnnConfig { epochs: 1, ..CnnConfig::tutorial(Arch::Lenet) };
//! let (photos, _unreadable) = ImageSet::load(&dataset.split("train").unwrap().samples, config.resize(), || {});
//! let net = imgclf_nets::init_net(&config, dataset.classes.len(), &imgclf_nets::Device::Cpu)?;
//! let state = train(&net, TrainState::start(&net, config.optimizer), &config, &photos, None, None, |_| Ok(()))?;
//! assert_eq!(state.epochs_done(), 1);
//! # Ok::<(), NetError>(())
//! ```

#![warn(missing_docs)]

mod any_run;
mod arch;
mod data;
mod error;
mod finetune;
mod run;
mod tail;
mod train;

pub use any_run::{AnyRun, AnyRunInfo, SplitSource};
pub use arch::{Arch, BatchNorm, Conv, Dense, LayerSpec, LayerSummary, Net, Variant, output_units};
/// Where networks train: candle's device, passed to every constructor (the CPU in this build;
/// a GPU where candle is built for one, `imgclf_kernels` then taking candle's own ops there).
pub use candle_core::Device;
pub use data::{ImageSet, Input, batch_tensor, resize_to, validation_split};
pub use error::NetError;
pub use finetune::{
    Activations, FINETUNE_RUN_FORMAT, FineTuneConfig, FineTuneInfo, FineTuneRun, FineTuned, FineTuning, Frozen,
    HeadLayers, Score,
};
pub use run::{CNN_RUN_FORMAT, CnnRun, CnnRunInfo, CnnTraining, Scored, init_net};
pub use tail::{Tail, last_block_input, prefix_model};
pub use train::{
    Batches, CnnConfig, FitEvent, FitSettings, Schedule, TrainState, Trainable, fit, loss, predict, predict_batches,
    probabilities, score, score_batches, train,
};

/// `use imgclf_nets::prelude::*` brings what a training script needs.
pub mod prelude {
    pub use crate::{
        Arch, CnnConfig, CnnRun, CnnTraining, FitEvent, ImageSet, Input, Net, NetError, Schedule, TrainState, Variant,
        train,
    };
}
