//! Folder-per-class image datasets, the Keras `flow_from_directory` way.
//!
//! A data root holds `train/`, `validation/` and `test/` splits. A labelled split has one
//! folder per class; class ids are the sorted folder names of the first labelled split
//! (`cats`=0, `dogs`=1). `test/` may instead be flat and unlabelled. Images decode to RGB8
//! whatever their colour type and resize with `fast_image_resize`.

#![warn(missing_docs)]

mod containers;
mod error;
mod files;
mod folder;
mod image_io;
pub mod limits;
mod manifest;
mod names;
mod natural;
mod parquet;
mod rng;
mod row_groups;
mod sample;
mod source;
mod tars;
mod verify;

pub use error::{DatasetError, IoError};
pub use files::{
    Held, IMAGE_MARK, OutputLock, TEXT_FILE_LIMIT, TempFile, check_output, encode_marked, read_text, staged_output,
    staging_path, write_atomic, write_output,
};
pub use folder::{ClassIndex, Dataset, SPLIT_NAMES, Split, is_image_file};
pub use image_io::{Filter, Fit, Resize, decode_rgb, load_rgb, read_photo};
pub use manifest::{is_manifest, photo_root};
pub use names::one_of;
pub use natural::natural_cmp;
pub use rng::Rng;
pub use sample::{Member, Sample};
pub use source::{Photos, is_photo_collection};
pub use tars::is_tar_source;
pub use verify::{Unreadable, quarantine, verify};

/// DejaVu Sans (Bitstream Vera licence, see `assets/`), the font every stage draws text on
/// pictures with (plots, labelled photos, CAM grids), so labels render on any machine.
pub static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// `use imgclf_dataset::prelude::*` brings the types every stage uses.
pub mod prelude {
    pub use crate::{ClassIndex, Dataset, DatasetError, Filter, Fit, Resize, Sample, Split, load_rgb};
}
