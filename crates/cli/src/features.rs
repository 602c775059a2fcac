//! `imgclf features merge` and `imgclf features status`: the shard files that
//! `extract --shard` writes, joined into one feature file and watched while an array runs;
//! `imgclf features export`: a feature file as a Parquet table.

use std::path::PathBuf;

use anyhow::{Context, bail};
use imgclf_features::{
    FeatureReader, export_parquet_file, merge, merge_in_blocks, partials_in, shard_status, sharded_backbones,
};

use crate::output::PARQUET_EXPORT;

#[derive(clap::Args)]
#[command(after_help = "Example (3 shards, then the merge):\n  \
for k in 0 1 2; do imgclf extract --data DATA --model M.onnx --out features --shard $k/3; done\n  \
imgclf features status features\n  imgclf features merge features\n\n\
deploy/slurm/extract.sbatch runs the shards as a Slurm array and the merge after them.")]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Join each backbone's shards (gap_<Backbone>.shard-K-of-N.h5) into gap_<Backbone>.h5, the
    /// file an unsharded extract writes; refuses missing, damaged or mismatched shards.
    Merge {
        /// The folder extract --out wrote the shards into.
        #[arg(default_value = "features")]
        dir: PathBuf,
        /// Merge only this backbone (repeat for several; default: every sharded backbone there).
        #[arg(long, value_name = "NAME")]
        backbone: Vec<String>,
        /// The shard count to merge, when shards of several counts are in the folder.
        #[arg(long, value_name = "N", value_parser = imgclf_dataset::limits::SHARDS.parser_usize())]
        shards: Option<usize>,
        /// Write the merged file again even when it already holds these shards, and replace a
        /// gap_<Backbone>.h5 there that did not come from them (refused without it).
        #[arg(long)]
        force: bool,
        /// Bytes of feature rows copied at a time, e.g. 16MiB (default 64MiB, at least one
        /// row): what the merge holds in memory, whatever the number of rows. Not train-head's
        /// --memory-budget (rows held for training), hence its own name; the old spelling
        /// `--memory-budget` is still accepted here.
        #[arg(long, alias = "memory-budget", value_name = "SIZE", value_parser = crate::budget::parse_size)]
        copy_buffer: Option<usize>,
    },
    /// Writes a feature file as a Parquet table for pandas, polars, DuckDB or faiss: one row per
    /// photo (split, path, label, class, photo digest, features as a fixed-size list of float32,
    /// or float16 for a --store f16 file), a block of rows at a time (memory stays flat).
    Export {
        /// The feature file (gap_<Backbone>.h5).
        file: PathBuf,
        /// The format to write: parquet.
        #[arg(long, value_name = "FORMAT", default_value = "parquet", value_parser = ["parquet"])]
        to: String,
        /// Where to write (default: the feature file's name with .parquet).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace a file there that an earlier export did not write.
        #[arg(long)]
        force: bool,
    },
    /// Per backbone, the shards done, being written (or killed while writing: a temporary file is
    /// there), missing or damaged, and whether they are merged. Runs merge's checks on a complete
    /// set; fails while any shard is not done, or where merge would refuse the set.
    Status {
        /// The folder extract --out writes the shards into.
        #[arg(default_value = "features")]
        dir: PathBuf,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Merge { dir, backbone, shards, force, copy_buffer } => {
            let backbones = if backbone.is_empty() {
                sharded_backbones(&dir).context(dir.display().to_string())?
            } else {
                backbone
            };
            if backbones.is_empty() {
                bail!("{}: no shard files (gap_<Backbone>.shard-K-of-N.h5) to merge", dir.display());
            }
            for name in backbones {
                let r = match copy_buffer {
                    Some(bytes) => merge_in_blocks(&dir, &name, shards, force, bytes),
                    None => merge(&dir, &name, shards, force),
                }
                .with_context(|| format!("merging the shards of {name}"))?;
                let rows: Vec<String> = r.rows.iter().map(|(s, n)| format!("{s} {n}")).collect();
                let what = if r.reused { "already merged, kept" } else { "merged" };
                say!(
                    "{}: {} shards {what} in {:.2} s -> {} ({})",
                    r.backbone,
                    r.shards,
                    r.seconds,
                    r.output.display(),
                    rows.join(", ")
                );
            }
            Ok(())
        }
        Command::Export { file, to: _, out, force } => {
            let out = out.unwrap_or_else(|| file.with_extension("parquet"));
            PARQUET_EXPORT.check("--out", std::slice::from_ref(&out), force)?;
            let reader = FeatureReader::open(&file)?;
            let start = std::time::Instant::now();
            let exported = export_parquet_file(&reader, &out, PARQUET_EXPORT.tag)?;
            let rows: Vec<String> = exported.rows.iter().map(|(s, n)| format!("{s} {n}")).collect();
            say!(
                "{}: {} ({} features) in {:.2} s -> {}",
                file.display(),
                rows.join(", "),
                reader.dim,
                start.elapsed().as_secs_f64(),
                out.display()
            );
            Ok(())
        }
        Command::Status { dir } => {
            let all = shard_status(&dir).context(dir.display().to_string())?;
            let partials = partials_in(&dir);
            for p in &partials {
                let rows: Vec<String> = p.rows.iter().map(|(s, n)| format!("{s} {n}")).collect();
                let rows =
                    if rows.is_empty() { "no rows yet".to_string() } else { format!("rows {}", rows.join(", ")) };
                match p.writer {
                    Some(pid) if p.total == 0 => {
                        say!("{}: being written by process {pid}, no checkpoint yet", p.output.display())
                    }
                    Some(pid) => say!(
                        "{}: being written by process {pid}, {} of {} images committed ({rows})",
                        p.output.display(),
                        p.images,
                        p.total
                    ),
                    None => say!(
                        "{}: partial, {} of {} images ({rows}): the same extract command continues it",
                        p.output.display(),
                        p.images,
                        p.total
                    ),
                }
            }
            if all.is_empty() && partials.is_empty() {
                bail!(
                    "{}: no shard files (gap_<Backbone>.shard-K-of-N.h5) and no unfinished extraction",
                    dir.display()
                );
            }
            let list = |v: &[usize]| match v.len() {
                0 => "-".to_string(),
                n if n > 20 => {
                    format!("{n} ({}, ...)", v[..10].iter().map(usize::to_string).collect::<Vec<_>>().join(","))
                }
                _ => v.iter().map(usize::to_string).collect::<Vec<_>>().join(","),
            };
            let mut unfinished = 0;
            let mut refused = 0;
            for s in &all {
                let damaged: Vec<usize> = s.damaged.iter().map(|(k, _)| *k).collect();
                say!(
                    "{} ({} shards): done {} | writing {} | missing {} | damaged {}{}",
                    s.backbone,
                    s.count,
                    list(&s.done),
                    list(&s.writing),
                    list(&s.missing),
                    list(&damaged),
                    if s.merged { " | merged" } else { "" }
                );
                for (k, why) in &s.damaged {
                    say!("  shard {k}: {why}");
                }
                if let Some(why) = &s.refused {
                    say!("  merge would refuse them: {why}");
                    refused += 1;
                }
                unfinished += s.count - s.done.len();
            }
            if !partials.is_empty() {
                bail!("{} extraction(s) not finished (see above)", partials.len());
            }
            match (unfinished, refused) {
                (0, 0) => Ok(()),
                (0, _) => bail!("{refused} set(s) of finished shards that merge would refuse (see above)"),
                _ => bail!("{unfinished} shard(s) not done yet"),
            }
        }
    }
}
