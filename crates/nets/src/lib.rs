//! Convolutional networks trained from pixels, on candle: the tutorial's small cats-vs-dogs
//! CNN and LeNet ([`Arch`]), trained with on-the-fly augmentation and Keras' optimizers
//! ([`train`]), saved as run folders that resume from their last epoch ([`CnnRun`]).

mod arch;
mod conv;
mod data;
mod error;
mod pool;
mod run;
mod tail;
mod train;

pub use arch::{Arch, Conv, Dense, LayerSpec, LayerSummary, Net, output_units};
pub use conv::conv2d;
pub use data::{ImageSet, Input, batch_tensor, resize_to, validation_split};
pub use error::NetError;
pub use pool::pool_relu;
pub use run::{CNN_RUN_FORMAT, CnnRun, CnnRunInfo, Scored, init_net, is_cnn_run};
pub use tail::{Tail, last_block_input, prefix_model};
pub use train::{CnnConfig, Progress, Schedule, TrainEvent, loss, predict, score, train};

/// `use imgclf_nets::prelude::*` brings what a training script needs.
pub mod prelude {
    pub use crate::{Arch, CnnConfig, CnnRun, ImageSet, Input, Net, NetError, Progress, Schedule, TrainEvent, train};
}
