//! `imgclf augment preview`: see what an augmentation setting does before training with it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use imgclf_augment::prelude::*;
use imgclf_augment::{contact_sheet, variants};
use imgclf_dataset::limits::{CHANNEL_SHIFT, CVAL, ROTATION, SHEAR, SHIFT, VARIANTS};
use imgclf_dataset::load_rgb;

use crate::output::{PICTURE, save_image};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Write N augmented variants of one image (<prefix>_<i>.jpg, like Keras' save_to_dir) and a contact sheet.
    Preview(PreviewArgs),
}

#[derive(clap::Args)]
#[command(
    after_help = "Example (the tutorial's generator):\n  imgclf augment preview --image data/train/cats/cat.0.jpg --n 20 --out preview/ \\\n      \
--rotation 40 --width-shift 0.2 --height-shift 0.2 --shear 0.2 --zoom 0.2 --horizontal-flip --fill-mode nearest --seed 1\n\n\
Writes preview/aug_0.jpg ... aug_19.jpg and preview/aug_sheet.png (the original first, then the variants)."
)]
pub struct PreviewArgs {
    /// The image to augment.
    #[arg(long, value_name = "FILE")]
    image: PathBuf,
    /// How many variants.
    #[arg(long, default_value_t = 20, value_parser = VARIANTS.parser_usize())]
    n: usize,
    /// Folder for the variants and the sheet (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// File name prefix.
    #[arg(long, default_value = "aug")]
    prefix: String,
    /// Replace files of those names in --out that imgclf did not write.
    #[arg(long)]
    force: bool,
    /// Seed of the draws: variant i depends on the seed and i only.
    #[arg(long, default_value_t = 0, value_parser = imgclf_dataset::limits::SEED.parser_u64())]
    seed: u64,
    /// Images per row of the contact sheet.
    #[arg(long, default_value_t = 7, value_parser = VARIANTS.parser_usize())]
    columns: usize,
    #[command(flatten)]
    params: ParamArgs,
}

/// `ImageDataGenerator`'s arguments as flags, with Keras' meaning, or all of them in the
/// one-line syntax `train-cnn --augment` takes.
#[derive(clap::Args)]
pub struct ParamArgs {
    /// All parameters in one line, as train-cnn --augment takes them (instead of the flags
    /// below): e.g. rotation=40,shift=0.2,shear=0.2,zoom=0.2,hflip,fill=nearest.
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["rotation", "width_shift", "height_shift", "shear", "zoom",
        "horizontal_flip", "vertical_flip", "fill_mode", "cval", "brightness", "channel_shift"])]
    augment: Option<AugmentParams>,
    /// rotation_range: degrees, a rotation uniform in [-R, R].
    #[arg(long, value_name = "DEGREES", default_value_t = 0.0, value_parser = ROTATION.parser_f64())]
    rotation: f64,
    /// width_shift_range: a sideways shift uniform in [-R, R], a share of the width below 1, pixels from 1.
    #[arg(long, value_name = "R", default_value_t = 0.0, value_parser = SHIFT.parser_f64())]
    width_shift: f64,
    /// height_shift_range: the same vertically, with the height.
    #[arg(long, value_name = "R", default_value_t = 0.0, value_parser = SHIFT.parser_f64())]
    height_shift: f64,
    /// shear_range: degrees (as Keras 2), a shear angle uniform in [-R, R].
    #[arg(long, value_name = "DEGREES", default_value_t = 0.0, value_parser = SHEAR.parser_f64())]
    shear: f64,
    /// zoom_range: Z for [1-Z, 1+Z], or LO,HI; factors above 1 zoom out.
    #[arg(long, value_name = "Z|LO,HI", value_parser = parse_range, default_value = "0")]
    zoom: Range,
    /// horizontal_flip: mirror half of the images left-right.
    #[arg(long)]
    horizontal_flip: bool,
    /// vertical_flip: mirror half of the images upside down.
    #[arg(long)]
    vertical_flip: bool,
    /// fill_mode for points outside the image: nearest, constant (with --cval), reflect or wrap.
    #[arg(long, default_value = "nearest")]
    fill_mode: FillMode,
    /// cval: the value of fill_mode constant.
    #[arg(long, default_value_t = 0.0, value_parser = CVAL.parser_f32())]
    cval: f32,
    /// brightness_range: LO,HI brightness factors (1 leaves the image as it is).
    #[arg(long, value_name = "LO,HI", value_parser = parse_range)]
    brightness: Option<Range>,
    /// channel_shift_range: a value uniform in [-R, R] added to all channels.
    #[arg(long, value_name = "R", default_value_t = 0.0, value_parser = CHANNEL_SHIFT.parser_f64())]
    channel_shift: f64,
}

/// A `Z` (meaning `[1 - Z, 1 + Z]`) or an explicit `LO,HI`.
#[derive(Clone, Copy)]
struct Range([f64; 2], bool);

fn parse_range(s: &str) -> Result<Range, String> {
    let numbers: Vec<f64> = s
        .split(',')
        .map(|v| v.trim().parse::<f64>().map_err(|_| format!("`{v}` is not a number")))
        .collect::<Result<_, _>>()?;
    match numbers[..] {
        [z] => Ok(Range([1.0 - z, 1.0 + z], false)),
        [lo, hi] => Ok(Range([lo, hi], true)),
        _ => Err(format!("`{s}`: expected one number or LO,HI")),
    }
}

impl ParamArgs {
    pub fn params(&self) -> anyhow::Result<AugmentParams> {
        if let Some(p) = &self.augment {
            return Ok(p.clone());
        }
        let brightness_range = match self.brightness {
            Some(Range(r, true)) => Some(r),
            Some(Range(..)) => bail!("--brightness: give LO,HI (e.g. 0.5,1.5)"),
            None => None,
        };
        Ok(AugmentParams {
            rotation_range: self.rotation,
            width_shift_range: self.width_shift,
            height_shift_range: self.height_shift,
            shear_range: self.shear,
            zoom_range: self.zoom.0,
            horizontal_flip: self.horizontal_flip,
            vertical_flip: self.vertical_flip,
            fill_mode: self.fill_mode,
            cval: self.cval,
            brightness_range,
            channel_shift_range: self.channel_shift,
            rescale: None,
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Command::Preview(args) = args.command;
    let augmenter = Augmenter::new(args.params.params()?)?;
    let image = load_rgb(&args.image).context("--image")?;
    let paths: Vec<PathBuf> = (0..args.n).map(|i| args.out.join(format!("{}_{i}.jpg", args.prefix))).collect();
    let sheet_path = args.out.join(format!("{}_sheet.png", args.prefix));
    PICTURE.check_in("--out", &args.out, &[&paths[..], std::slice::from_ref(&sheet_path)].concat(), args.force)?;
    let images = variants(&augmenter, &image, args.n, args.seed);
    std::fs::create_dir_all(&args.out).with_context(|| format!("--out {}", args.out.display()))?;
    for (img, path) in images.iter().zip(&paths) {
        save_image(img, path).with_context(|| format!("writing {}", path.display()))?;
    }
    let all: Vec<_> = std::iter::once(image).chain(images).collect();
    save_image(&contact_sheet(&all, args.columns), &sheet_path)
        .with_context(|| format!("writing {}", sheet_path.display()))?;
    say!(
        "{} variants of {} in {}; contact sheet {}",
        args.n,
        args.image.display(),
        args.out.display(),
        sheet_path.display()
    );
    Ok(())
}
