//! Feature files of any size, for the scale benchmark (`tools/bench_scale.sh`): the rows of a
//! real feature file repeated with small seeded noise (uniform, ±5% of the feature's spread),
//! so that a head still learns them, into COPIES files that join by path as COPIES different
//! backbones. `train` gets ROWS rows (from the source's train), `validation` a tenth as many
//! (from its validation, else its train). Written a block at a time: memory stays flat.
//!
//!     cargo run --release -p imgclf-features --example scale_features -- SOURCE.h5 ROWS OUT [COPIES=3]

use std::path::PathBuf;

use imgclf_dataset::Rng;
use imgclf_features::{FeatureSet, FeatureWriter, Origin, Rows};
use ndarray::{Array2, Axis};

const BLOCK: usize = 4096;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, rows, out, rest @ ..] = args.as_slice() else {
        return Err("usage: scale_features SOURCE.h5 ROWS OUT [COPIES=3]".into());
    };
    let (rows, copies): (usize, u64) = (rows.parse()?, rest.first().map_or(Ok(3), |c| c.parse())?);
    let set = FeatureSet::read(&PathBuf::from(source))?;
    let train = set.split("train").ok_or("the source has no train split")?;
    let validation = set.split("validation").unwrap_or(train);
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    for copy in 0..copies {
        let backbone = format!("{}-copy{copy}", set.backbone);
        let path = out.join(FeatureSet::file_name(&backbone));
        let mut writer = FeatureWriter::create(&path, &set.classes)?;
        for (name, from, n) in [("train", train, rows), ("validation", validation, rows.div_ceil(10))] {
            let spread = from.features.std_axis(Axis(0), 0.0);
            let labels = from.labels.as_ref().ok_or("the source split is unlabelled")?;
            for start in (0..n).step_by(BLOCK) {
                let end = (start + BLOCK).min(n);
                let mut rng = Rng::stream(copy, name.len() as u64, start as u64);
                let mut block = Array2::<f32>::zeros((end - start, set.dim()));
                for (i, mut row) in block.outer_iter_mut().enumerate() {
                    let source_row = from.features.row((start + i) % from.features.nrows());
                    for ((v, &x), &s) in row.iter_mut().zip(source_row).zip(&spread) {
                        *v = x + 0.05 * s * (2.0 * rng.next_f32() - 1.0);
                    }
                }
                let ids = start..end;
                let label: Vec<i64> = ids.clone().map(|i| labels[i % labels.len()]).collect();
                let paths: Vec<String> = ids
                    .clone()
                    .map(|i| format!("{name}/{}/synth{i:08}.jpg", set.classes[label[i - start] as usize]))
                    .collect();
                let photos: Vec<u64> = ids.map(|i| (i as u64) << 1 | u64::from(name == "train")).collect();
                let block = Rows { features: block.view(), labels: Some(&label), paths: &paths, photos: Some(&photos) };
                writer.append(name, block)?;
            }
        }
        let sha = format!("{:064x}", u128::from(copy) + 1);
        writer.finish(&Origin {
            backbone: &backbone,
            model_sha256: &sha,
            model: "",
            input_size: set.input_size,
            engine: "synthetic",
            fingerprint: "synthetic",
            spec: "{}",
            shard: None,
        })?;
        println!("{}: train {rows}, validation {} rows x {}", path.display(), rows.div_ceil(10), set.dim());
    }
    Ok(())
}
