//! `imgclf cam`: class activation maps of a run's predictions, one picture per image or a grid.

use std::path::PathBuf;

use anyhow::{Context, bail};
use imgclf_cam::{label_photo, titled_grid};
use imgclf_dataset::Rng;
use imgclf_heads::{Predictor, Run, argmax, image_samples};
use imgclf_report::cam_overlay;

use crate::output::{PICTURE, save_image};

#[derive(clap::Args)]
#[command(
    after_help = "Example (the tutorial's 4x4 picture):\n  imgclf cam --run runs/exp1 --images data/test --sample 16 --seed 3 --grid 4x4 --out cam.png\n\n\
Each map is the backbone's last feature map weighted by the head's weights toward the predicted\n\
class (Zhou et al. 2016), normalised, upsampled, JET-coloured and blended over the photo. It needs\n\
a logistic head (a single Dense layer) and a backbone spec that names its `features` map."
)]
pub struct Args {
    /// Run folder written by train-head (with a logistic head).
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// Image files, folders of images, or a manifest, tar shards or Parquet file of images.
    #[arg(long, value_name = "PATH", num_args = 1.., required = true)]
    images: Vec<PathBuf>,
    /// Draw maps for N images picked at random (seeded) instead of all.
    #[arg(long, value_name = "N", value_parser = imgclf_dataset::limits::LISTED.parser_usize())]
    sample: Option<usize>,
    /// Seed of --sample.
    #[arg(long, default_value_t = 0, value_parser = imgclf_dataset::limits::SEED.parser_u64())]
    seed: u64,
    /// One picture in a COLUMNSxROWS grid (e.g. 4x4) at --out, instead of one file per image in the --out folder.
    #[arg(long, value_name = "CxR", value_parser = parse_grid)]
    grid: Option<(usize, usize)>,
    /// The grid's PNG file, or the folder for one PNG per image.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Which backbone's map, by name (default: the first of the run).
    #[arg(long, value_name = "NAME")]
    backbone: Option<String>,
    /// Width in pixels of each drawn photo.
    #[arg(long, default_value_t = 256, value_parser = imgclf_dataset::limits::WIDTH.parser_usize())]
    width: usize,
    /// Replace files at --out that imgclf did not write (never a run's own files).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    engine: crate::engine::EngineArgs,
}

/// The most photos a side of a CAM grid holds.
const GRID_SIDE: usize = 64;

fn parse_grid(s: &str) -> Result<(usize, usize), String> {
    let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|n| (1..=GRID_SIDE).contains(n));
    match s.split_once(['x', 'X']).map(|(c, r)| (parse(c), parse(r))) {
        Some((Some(c), Some(r))) => Ok((c, r)),
        _ => Err(format!("expected COLUMNSxROWS, e.g. 4x4, each from 1 to {GRID_SIDE}")),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let run = Run::load(&args.run).context("--run")?;
    if run.head.hidden.is_some() {
        bail!(
            "--run {}: CAM needs a linear head (--head logistic): with a hidden layer the class score is no longer a weighted sum of the feature map",
            args.run.display()
        );
    }
    let index = match &args.backbone {
        None => 0,
        Some(name) => run.info.sources.iter().position(|s| &s.backbone == name).with_context(|| {
            let names: Vec<_> = run.info.sources.iter().map(|s| s.backbone.as_str()).collect();
            format!("--backbone {name}: the run's backbones are {}", names.join(", "))
        })?,
    };
    let mut photos = image_samples(&args.images)?;
    if photos.is_empty() {
        bail!("--images: no image files there");
    }
    if let Some(n) = args.sample.or(args.grid.map(|(c, r)| c * r))
        && n < photos.len()
    {
        Rng::new(args.seed).shuffle(&mut photos);
        photos.truncate(n);
    }
    // every file --out will hold, checked before any is written
    match args.grid {
        Some(_) => PICTURE.check("--out", std::slice::from_ref(&args.out), args.force)?,
        None => {
            let names = photos.iter().filter_map(|f| Some(format!("{}.png", f.path.file_stem()?.to_string_lossy())));
            let outs: Vec<PathBuf> = names.map(|name| args.out.join(name)).collect();
            PICTURE.check_in("--out", &args.out, &outs, args.force)?;
        }
    }
    let mut predictor = Predictor::load(run, &args.engine.config(None)?, true).context("--run")?;
    let predictions = predictor.predict(&photos, 16)?;
    if let (true, Some(first)) = (predictions.samples.is_empty(), predictions.skipped.first()) {
        bail!("none of the {} images could be read; the first: {first}", photos.len());
    }
    for e in &predictions.skipped {
        eprintln!("warning: skipped {e}");
    }
    let classes = &predictor.run.info.classes;
    let mut cells = Vec::new();
    for (i, sample) in predictions.samples.iter().enumerate() {
        let p = predictions.probs.row(i);
        let class = argmax(p);
        let picture = cam_overlay(&predictor, &predictions, i, index, class, args.width as u32)?;
        cells.push((picture, format!("{} {:.1}%", classes[class], 100.0 * p[class]), &sample.path, p[class]));
    }
    match args.grid {
        Some((columns, _)) => {
            let titled: Vec<_> = cells.into_iter().map(|(img, title, _, _)| (img, title)).collect();
            let grid = titled_grid(&titled, columns);
            save_image(&grid, &args.out).with_context(|| format!("--out {}", args.out.display()))?;
            say!("{} maps in a grid -> {}", titled.len(), args.out.display());
        }
        None => {
            std::fs::create_dir_all(&args.out).with_context(|| format!("--out {}", args.out.display()))?;
            for (img, title, path, p) in &cells {
                let name = path.file_stem().context("an image file has a name")?.to_string_lossy();
                let out = args.out.join(format!("{name}.png"));
                save_image(&label_photo(img, title, imgclf_cam::label_colour(*p), img.width()), &out)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            say!("{} maps -> {}", cells.len(), args.out.display());
        }
    }
    Ok(())
}
