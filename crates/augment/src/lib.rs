//! Data augmentation the way Keras' `ImageDataGenerator` does it, with its parameter names and
//! meaning: a random rotation, shift, shear, zoom and flips composed into one affine map and
//! applied in one bilinear resampling pass (scipy `ndimage` conventions for every fill mode),
//! then channel shift, brightness and rescale. Seeded per image, so results do not depend on
//! the number of threads.

mod augmenter;
mod loader;
mod preview;
mod syntax;
mod warp;

pub use augmenter::{AugmentError, AugmentParams, Augmenter, Transform};
pub use loader::{Batch, BatchLoader, LoaderOptions};
pub use preview::{contact_sheet, to_rgb8, variants};
pub use warp::{Affine, FillMode, warp};

/// `use imgclf_augment::prelude::*` brings what a training loop needs.
pub mod prelude {
    pub use crate::{AugmentParams, Augmenter, BatchLoader, FillMode, LoaderOptions, Transform};
}
