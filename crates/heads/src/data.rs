//! Feature files joined column-wise into one matrix per split, rows aligned by image path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use imgclf_features::{FeatureReader, FeatureSet, SplitFeatures};
use ndarray::{Array2, Axis, s};
use serde::{Deserialize, Serialize};

use crate::HeadError;

/// One backbone's block of columns in the joined matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The feature file.
    pub file: PathBuf,
    /// Its backbone.
    pub backbone: String,
    /// sha256 of the backbone's model file.
    pub model_sha256: String,
    /// The ONNX model the features came from (empty for files that do not name it).
    #[serde(default)]
    pub model: PathBuf,
    /// Its feature width.
    pub dim: usize,
    /// Where the features were computed (`ort`, `tract`, `ort cuda:0`).
    #[serde(default)]
    pub engine: String,
}

/// One split's rows: every source's features side by side, with labels and image paths.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitData {
    /// The split's name.
    pub name: String,
    /// `(rows, Σ dims)`.
    pub x: Array2<f32>,
    /// Class id per row, for labelled splits.
    pub labels: Option<Vec<usize>>,
    /// Image path relative to the data root, per row.
    pub paths: Vec<String>,
}

/// The input of a head: one or more feature files of the same dataset, concatenated the way
/// the tutorial does with `np.concatenate(..., axis=1)`, but aligned by path, not position.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadInputs {
    /// Class names in id order (the same in every file).
    pub classes: Vec<String>,
    /// The files, in column order.
    pub sources: Vec<Source>,
    /// The splits every file has, in the first file's order.
    pub splits: Vec<SplitData>,
    /// Files joined to others by path alone: they do not record their photos (written before
    /// imgclf did), so a different photo at the same path would go unnoticed. Extract them
    /// again to have them checked.
    pub unverified: Vec<PathBuf>,
}

impl HeadInputs {
    /// A `train` split of `rows` random rows × `dim` features in two classes (alternating),
    /// each row's every 7th feature raised by a tenth for class 1: learnable, for benchmarks
    /// that time training without a feature file.
    pub fn synthetic(rows: usize, dim: usize, seed: u64) -> HeadInputs {
        let mut rng = imgclf_dataset::Rng::new(seed);
        let labels: Vec<usize> = (0..rows).map(|i| i % 2).collect();
        let x = Array2::from_shape_fn((rows, dim), |(r, c)| {
            rng.next_f32() + if c % 7 == 0 { 0.1 * labels[r] as f32 } else { 0.0 }
        });
        let source = Source {
            file: "synthetic".into(),
            backbone: "synthetic".into(),
            model_sha256: String::new(),
            model: PathBuf::new(),
            dim,
            engine: String::new(),
        };
        let paths = (0..rows).map(|i| i.to_string()).collect();
        HeadInputs {
            classes: vec!["a".into(), "b".into()],
            sources: vec![source],
            splits: vec![SplitData { name: "train".into(), x, labels: Some(labels), paths }],
            unverified: Vec::new(),
        }
    }

    /// Reads and joins feature files; the first file's row order is kept. Each source records
    /// its file's absolute path, so a run trained on them works from any folder.
    pub fn load(files: &[PathBuf]) -> Result<HeadInputs, HeadError> {
        HeadInputs::load_splits(files, &imgclf_dataset::SPLIT_NAMES)
    }

    /// [`HeadInputs::load`] holding only the splits in `names` (every file is still checked
    /// whole, the other splits a block at a time): training does not hold `test`, scoring
    /// `validation` does not hold `train`.
    pub fn load_splits(files: &[PathBuf], names: &[&str]) -> Result<HeadInputs, HeadError> {
        let sets = files
            .iter()
            .map(|f| {
                let f = &feature_file(f)?;
                let set = FeatureSet::read_splits(f, names)?;
                if let Some(shard) = &set.shard {
                    let reason = format!(
                        "shard {}/{} of {}, a part of the dataset: join the shards in {} first (`merge`)",
                        shard.index,
                        shard.count,
                        set.backbone,
                        f.parent().map_or(".".into(), |d| d.display().to_string())
                    );
                    return Err(HeadError::Input { path: f.clone(), reason });
                }
                Ok((f.clone(), set))
            })
            .collect::<Result<Vec<_>, HeadError>>()?;
        HeadInputs::join(sets)
    }

    /// Joins feature sets (each with the file it came from, for messages). Sets from other
    /// datasets, class lists or splits, or whose rows share a path but not a photo, are
    /// refused naming both files.
    pub fn join(sets: Vec<(PathBuf, FeatureSet)>) -> Result<HeadInputs, HeadError> {
        let Some((first_file, first)) = sets.first() else {
            return Err(HeadError::Config("no feature files given".into()));
        };
        let mismatch = |other: &Path, reason: String| HeadError::Mismatch {
            a: first_file.clone(),
            b: other.to_path_buf(),
            reason,
        };
        let mut sources = Vec::new();
        for (file, set) in &sets {
            if set.classes != first.classes {
                return Err(mismatch(file, format!("class lists differ ({:?} vs {:?})", first.classes, set.classes)));
            }
            let names = |s: &FeatureSet| s.splits.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
            if names(set) != names(first) {
                return Err(mismatch(file, format!("splits differ ({:?} vs {:?})", names(first), names(set))));
            }
            if let Some(dup) = sources.iter().find(|s: &&Source| s.model_sha256 == set.model_sha256) {
                return Err(HeadError::Mismatch {
                    a: dup.file.clone(),
                    b: file.clone(),
                    reason: format!("both hold features of the same model ({})", set.backbone),
                });
            }
            sources.push(Source {
                file: file.clone(),
                backbone: set.backbone.clone(),
                model_sha256: set.model_sha256.clone(),
                model: PathBuf::from(&set.model),
                dim: set.dim(),
                engine: set.engine.clone(),
            });
        }
        let width: usize = sources.iter().map(|s| s.dim).sum();
        let mut splits = Vec::new();
        for reference in &first.splits {
            let labels =
                reference.labels.as_ref().map(|l| class_ids(l, first.classes.len(), first_file, &reference.name));
            let labels = labels.transpose()?;
            let mut x = Array2::<f32>::zeros((reference.paths.len(), width));
            let mut col = 0;
            for (file, set) in &sets {
                let split = set.split(&reference.name).expect("split names checked above");
                let order = align(reference, split).map_err(|reason| mismatch(file, reason))?;
                let block = split.features.select(Axis(0), &order);
                x.slice_mut(s![.., col..col + block.ncols()]).assign(&block);
                col += block.ncols();
                if let (Some(a), Some(b)) = (&reference.labels, &split.labels)
                    && order.iter().enumerate().any(|(i, &j)| a[i] != b[j])
                {
                    return Err(mismatch(
                        file,
                        format!("labels of split `{}` differ for the same images", reference.name),
                    ));
                }
            }
            splits.push(SplitData { name: reference.name.clone(), x, labels, paths: reference.paths.clone() });
        }
        let unrecorded = |set: &FeatureSet| set.splits.iter().any(|s| s.photos.is_none());
        let unverified = match sets.len() {
            1 => Vec::new(),
            _ => sets.iter().filter(|(_, set)| unrecorded(set)).map(|(file, _)| file.clone()).collect(),
        };
        Ok(HeadInputs { classes: first.classes.clone(), sources, splits, unverified })
    }

    /// The splits a feature file holds, in file order, each with whether it is labelled; read
    /// from its attributes and shapes, no rows.
    pub fn splits_of(file: &Path) -> Result<Vec<(String, bool)>, HeadError> {
        let reader = FeatureReader::open(&feature_file(file)?)?;
        Ok(reader.rows.iter().map(|(name, _)| (name.clone(), reader.is_labelled(name))).collect())
    }

    /// The split named `name`, if the files have it.
    pub fn split(&self, name: &str) -> Option<&SplitData> {
        self.splits.iter().find(|s| s.name == name)
    }

    /// Width of the joined feature vector.
    pub fn dim(&self) -> usize {
        self.sources.iter().map(|s| s.dim).sum()
    }
}

/// `file` as an absolute path, refused when there is no such file.
fn feature_file(file: &Path) -> Result<PathBuf, HeadError> {
    let path = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    match path.is_file() {
        true => Ok(path),
        false => Err(HeadError::Input { path, reason: "no such feature file (`extract` writes them)".into() }),
    }
}

/// For each row of `reference`, the row of `other` with the same image path; refused where
/// both files record the photos and a path's photos differ.
fn align(reference: &SplitFeatures, other: &SplitFeatures) -> Result<Vec<usize>, String> {
    let split = &reference.name;
    if reference.paths.len() != other.paths.len() {
        return Err(format!(
            "split `{split}` has {} rows in the first and {} in the second (different datasets?)",
            reference.paths.len(),
            other.paths.len()
        ));
    }
    let index: HashMap<&str, usize> = other.paths.iter().enumerate().map(|(i, p)| (p.as_str(), i)).collect();
    let order = reference
        .paths
        .iter()
        .map(|p| {
            index.get(p.as_str()).copied().ok_or_else(|| {
                format!("image `{p}` of split `{split}` is in the first file only (different datasets?)")
            })
        })
        .collect::<Result<Vec<usize>, String>>()?;
    if let (Some(a), Some(b)) = (&reference.photos, &other.photos)
        && let Some(i) = (0..order.len()).find(|&i| a[i] != b[order[i]])
    {
        return Err(format!(
            "image `{}` of split `{split}` is a different photo in each file (same path, other contents: two \
             copies of a dataset, one edited?)",
            reference.paths[i]
        ));
    }
    Ok(order)
}

fn class_ids(labels: &[i64], classes: usize, file: &Path, split: &str) -> Result<Vec<usize>, HeadError> {
    labels
        .iter()
        .map(|&l| {
            usize::try_from(l).ok().filter(|&c| c < classes).ok_or_else(|| HeadError::Input {
                path: file.to_path_buf(),
                reason: format!("split `{split}` has label {l}, outside the {classes} classes"),
            })
        })
        .collect()
}
