//! Seconds and peak memory of `merge` on synthetic shards many blocks long: rows are copied a
//! block at a time, so the peak stays flat whatever the number of rows.
//!
//!     cargo bench -p imgclf-features --bench merge [-- ROWS DIM DIR]
//!
//! writes 3 shards of ROWS rows in all (default 120,000) × DIM features (default 1,280) into
//! DIR (default a temporary folder; kept when given, so `imgclf features merge DIR --force` can
//! be timed on the same files), merges them, and prints the seconds and the process's peak
//! resident memory (VmHWM; the shards are written a block at a time too).

use std::path::Path;
use std::time::Instant;

use imgclf_dataset::Sample;
use imgclf_features::{FeatureWriter, Origin, Rows, Shard, ShardInfo, SplitSlice, merge};
use ndarray::Array2;

const BACKBONE: &str = "Synthetic";
const BATCH: usize = 256;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let number = |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (rows, dim) = (number(0, 120_000), number(1, 1_280));
    let temporary = tempfile::tempdir().expect("a temporary folder");
    let dir = args.get(2).map_or(temporary.path(), Path::new);
    std::fs::create_dir_all(dir).expect("the shard folder");

    let started = Instant::now();
    for index in 0..3 {
        write_shard(dir, Shard::new(index, 3).expect("3 shards"), rows, dim);
    }
    let written = started.elapsed().as_secs_f64();
    let gigabytes = (rows * dim * 4) as f64 / 1e9;
    println!(
        "3 shards of {rows} rows x {dim} features ({gigabytes:.2} GB of f32) written in {written:.1} s, peak RSS {} MB",
        peak_mb()
    );

    let started = Instant::now();
    let report = merge(dir, BACKBONE, None, true).expect("the shards merge");
    println!(
        "merge: {:.1} s, peak RSS {} MB -> {}",
        started.elapsed().as_secs_f64(),
        peak_mb(),
        report.output.display()
    );
}

/// Shard `shard` of a `rows`-row train split, written 1,024 rows at a time.
fn write_shard(dir: &Path, shard: Shard, rows: usize, dim: usize) {
    // photos of their own: the shard's whole batches
    let photos = vec![Sample::file(Default::default(), String::new(), None); rows];
    let range = shard.range(&photos, BATCH);
    let classes = ["a".to_string(), "b".to_string()];
    let mut writer = FeatureWriter::create(&dir.join(shard.file_name(BACKBONE)), &classes).expect("a shard file");
    for start in range.clone().step_by(1024) {
        let end = (start + 1024).min(range.end);
        let features = Array2::from_shape_fn((end - start, dim), |(i, j)| ((start + i) * 31 + j) as f32 % 97.0);
        let labels: Vec<i64> = (start..end).map(|i| (i % 2) as i64).collect();
        let paths: Vec<String> = (start..end).map(|i| format!("train/{}/{i:08}.jpg", classes[i % 2])).collect();
        let block = Rows { features: features.view(), labels: Some(&labels), paths: &paths, photos: None };
        writer.append("train", block).expect("rows appended");
    }
    let info = ShardInfo {
        index: shard.index,
        count: shard.count,
        batch: BATCH,
        dataset_fingerprint: "synthetic".into(),
        slices: vec![SplitSlice { split: "train".into(), start: range.start, end: range.end, total: rows }],
    };
    let origin = Origin {
        backbone: BACKBONE,
        model_sha256: "00",
        model: "",
        input_size: [224, 224],
        engine: "synthetic",
        fingerprint: "synthetic shard",
        spec: "{}",
        shard: Some(&info),
    };
    writer.finish(&origin).expect("the shard finished");
}

/// The process's peak resident memory in MB (Linux).
fn peak_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse().ok());
    kb.unwrap_or(0) / 1000
}
