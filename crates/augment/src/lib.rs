//! Data augmentation the way Keras' `ImageDataGenerator` does it, with its parameter names and
//! meaning: a random rotation, shift, shear, zoom and flips composed into one affine map and
//! applied in one bilinear resampling pass (scipy `ndimage` conventions for every fill mode),
//! then channel shift, brightness and rescale. Seeded per image, so results do not depend on
//! the number of threads.
//!
//! Augmenting a batch (the core of `examples/augment_batch.rs`):
//!
//! ```
//! use imgclf_augment::prelude::*;
//!
//! let photos = vec![image::RgbImage::from_pixel(32, 24, image::Rgb([200, 120, 40])); 3];
//! let augmenter = Augmenter::new("rotation=40,shift=0.2,zoom=0.2,hflip".parse()?)?;
//! let batch = augmenter.augment_batch(&photos, 7, 0)?; // seed 7, images 0.. of the epoch
//! assert_eq!(batch.shape(), [3, 24, 32, 3]);
//! // the same seed and indices give the same batch, on any number of threads
//! assert_eq!(batch, augmenter.augment_batch(&photos, 7, 0)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

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
