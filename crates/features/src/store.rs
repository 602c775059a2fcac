//! The feature file `gap_<Backbone>.h5`, laid out so that h5py reads it the way the tutorial
//! does (`h['train']`, `h['label']`, `h['test']`) and written atomically.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use ndarray::{Array1, Array2};
use sha2::{Digest, Sha256};

use crate::FeatureError;

/// Format tag stored in every file; a reader refuses files with another one. Version 2 added
/// the `model` attribute (the model file, for predicting new images); version 3 the
/// `checksum` attribute, so a file damaged after it was written is never silently used.
pub const FORMAT: &str = "imgclf-features/3";

/// The feature rows of one split, with the image path of each row.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitFeatures {
    pub name: String,
    /// `(rows, D)` pooled features.
    pub features: Array2<f32>,
    /// Class id per row, for labelled splits.
    pub labels: Option<Vec<i64>>,
    /// Image path relative to the data root, per row: the key that aligns files.
    pub paths: Vec<String>,
}

/// The part of a feature file that says whether it is still valid, and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureHeader {
    pub fingerprint: String,
    pub engine: String,
    /// Rows per split, in file order.
    pub rows: Vec<(String, usize)>,
    /// Feature width `D`.
    pub dim: usize,
}

/// Everything in one feature file: the rows of each split and what produced them.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    pub backbone: String,
    pub classes: Vec<String>,
    pub splits: Vec<SplitFeatures>,
    pub model_sha256: String,
    /// The model file the rows came from, as an absolute path when known (empty otherwise):
    /// what later stages run on new images.
    pub model: String,
    /// Input `[height, width]`.
    pub input_size: [u32; 2],
    pub engine: String,
    /// Hash of the images, model and spec that produced the file (see `fingerprint`).
    pub fingerprint: String,
    /// The model spec JSON as read.
    pub spec: String,
}

impl FeatureSet {
    pub fn split(&self, name: &str) -> Option<&SplitFeatures> {
        self.splits.iter().find(|s| s.name == name)
    }

    /// Feature width `D`.
    pub fn dim(&self) -> usize {
        self.splits.first().map_or(0, |s| s.features.ncols())
    }

    /// The file name the tutorial uses: `gap_<Backbone>.h5`.
    pub fn file_name(backbone: &str) -> String {
        format!("gap_{backbone}.h5")
    }

    /// sha256 over the classes and every split's name, rows, labels and paths: stored as the
    /// `checksum` attribute and checked by [`read`](Self::read).
    pub fn checksum(&self) -> String {
        let mut h = Sha256::new();
        let text = |h: &mut Sha256, t: &str| {
            h.update((t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        };
        self.classes.iter().for_each(|c| text(&mut h, c));
        for split in &self.splits {
            text(&mut h, &split.name);
            split.paths.iter().for_each(|p| text(&mut h, p));
            let (rows, cols) = split.features.dim();
            h.update([rows as u64, cols as u64].map(u64::to_le_bytes).concat());
            split.features.iter().for_each(|v| h.update(v.to_le_bytes()));
            split.labels.iter().flatten().for_each(|l| h.update(l.to_le_bytes()));
        }
        format!("{:x}", h.finalize())
    }

    /// Writes the file under a temporary name in the same folder and renames it into place,
    /// so `path` holds either the previous complete file or the new complete file.
    pub fn write(&self, path: &Path) -> Result<(), FeatureError> {
        let tmp = TempFile::beside(path);
        // a full disk or a file size limit: the system's reason, against the final name
        // (the temporary file is removed when `tmp` drops)
        self.write_to(&tmp.0).map_err(|e| match os_error(&e.to_string()) {
            Some(error) => FeatureError::Io { path: path.to_path_buf(), error },
            None => e,
        })?;
        std::fs::rename(&tmp.0, path).map_err(FeatureError::io(path))?;
        std::mem::forget(tmp);
        Ok(())
    }

    fn write_to(&self, path: &Path) -> Result<(), FeatureError> {
        let err = FeatureError::file;
        let file = hdf5::File::create(path).map_err(err(path))?;
        for split in &self.splits {
            file.new_dataset_builder().with_data(&split.features).create(split.name.as_str()).map_err(err(path))?;
            if let Some(labels) = &split.labels {
                file.new_dataset_builder()
                    .with_data(&Array1::from(labels.clone()))
                    .create(label_key(&split.name).as_str())
                    .map_err(err(path))?;
            }
            let paths = strings(&split.paths, path)?;
            file.new_dataset_builder()
                .with_data(&paths)
                .create(format!("{}_paths", split.name).as_str())
                .map_err(err(path))?;
        }
        let checksum = self.checksum();
        let text_attrs = [
            ("format", FORMAT),
            ("checksum", &checksum),
            ("backbone", &self.backbone),
            ("model_sha256", &self.model_sha256),
            ("model", &self.model),
            ("engine", &self.engine),
            ("fingerprint", &self.fingerprint),
            ("spec", &self.spec),
            ("created_by", concat!("imgclf ", env!("CARGO_PKG_VERSION"))),
        ];
        for (name, value) in text_attrs {
            let value = to_vlen(value, path)?;
            file.new_attr::<VarLenUnicode>()
                .shape(())
                .create(name)
                .and_then(|a| a.write_scalar(&value))
                .map_err(err(path))?;
        }
        file.new_attr_builder().with_data(&strings(&self.classes, path)?).create("classes").map_err(err(path))?;
        file.new_attr_builder()
            .with_data(&Array1::from(self.input_size.to_vec()))
            .create("input_size")
            .map_err(err(path))?;
        file.close().map_err(err(path))
    }

    /// Reads a whole feature file written by `write`.
    pub fn read(path: &Path) -> Result<FeatureSet, FeatureError> {
        let err = FeatureError::file;
        let file = open(path)?;
        let members = file.member_names().map_err(err(path))?;
        let mut splits = Vec::new();
        for name in imgclf_dataset::SPLIT_NAMES {
            if !members.iter().any(|m| m == name) {
                continue;
            }
            let features = file.dataset(name).and_then(|d| d.read_2d::<f32>()).map_err(err(path))?;
            let key = label_key(name);
            let labels = if members.contains(&key) {
                Some(file.dataset(&key).and_then(|d| d.read_raw::<i64>()).map_err(err(path))?)
            } else {
                None
            };
            let paths: Vec<String> = file
                .dataset(&format!("{name}_paths"))
                .and_then(|d| d.read_raw::<VarLenUnicode>())
                .map_err(err(path))?
                .iter()
                .map(|s| s.as_str().to_string())
                .collect();
            if paths.len() != features.nrows() || labels.as_ref().is_some_and(|l| l.len() != features.nrows()) {
                return Err(FeatureError::FeatureFile {
                    path: path.to_path_buf(),
                    reason: format!("split `{name}`: row counts of features, labels and paths disagree"),
                });
            }
            splits.push(SplitFeatures { name: name.to_string(), features, labels, paths });
        }
        let input_size = file.attr("input_size").and_then(|a| a.read_raw::<u32>()).map_err(err(path))?;
        let set = FeatureSet {
            backbone: text_attr(&file, "backbone", path)?,
            classes: file
                .attr("classes")
                .and_then(|a| a.read_raw::<VarLenUnicode>())
                .map_err(err(path))?
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            splits,
            model_sha256: text_attr(&file, "model_sha256", path)?,
            model: text_attr(&file, "model", path)?,
            input_size: input_size.try_into().map_err(|_| FeatureError::FeatureFile {
                path: path.to_path_buf(),
                reason: "attribute input_size is not [height, width]".into(),
            })?,
            engine: text_attr(&file, "engine", path)?,
            fingerprint: text_attr(&file, "fingerprint", path)?,
            spec: text_attr(&file, "spec", path)?,
        };
        let stored = text_attr(&file, "checksum", path)?;
        if set.checksum() != stored {
            return Err(FeatureError::FeatureFile {
                path: path.to_path_buf(),
                reason: "damaged: its rows no longer match the checksum written with them; extract again".into(),
            });
        }
        Ok(set)
    }

    /// What a cache check needs (fingerprint, engine, rows per split, width), read from the
    /// attributes and dataset shapes without loading any rows.
    pub fn read_header(path: &Path) -> Result<FeatureHeader, FeatureError> {
        let file = open(path)?;
        let members = file.member_names().map_err(FeatureError::file(path))?;
        let mut rows = Vec::new();
        let mut dim = 0;
        for name in imgclf_dataset::SPLIT_NAMES.into_iter().filter(|n| members.iter().any(|m| m == n)) {
            let shape = file.dataset(name).map_err(FeatureError::file(path))?.shape();
            rows.push((name.to_string(), shape.first().copied().unwrap_or(0)));
            dim = shape.get(1).copied().unwrap_or(0);
        }
        Ok(FeatureHeader {
            fingerprint: text_attr(&file, "fingerprint", path)?,
            engine: text_attr(&file, "engine", path)?,
            rows,
            dim,
        })
    }
}

/// Opens a feature file, refusing anything that is not one of ours (or of another version).
fn open(path: &Path) -> Result<hdf5::File, FeatureError> {
    let file = hdf5::File::open(path).map_err(|e| FeatureError::FeatureFile {
        path: path.to_path_buf(),
        reason: format!("not a readable HDF5 file ({e})"),
    })?;
    match text_attr(&file, "format", path) {
        Ok(f) if f == FORMAT => Ok(file),
        Ok(f) => Err(FeatureError::FeatureFile {
            path: path.to_path_buf(),
            reason: format!("format `{f}`, this imgclf reads `{FORMAT}`: extract again"),
        }),
        Err(_) => Err(FeatureError::FeatureFile {
            path: path.to_path_buf(),
            reason: "not an imgclf feature file (no `format` attribute)".into(),
        }),
    }
}

/// The operating-system error inside an HDF5 message (`errno = 28`), when there is one.
fn os_error(message: &str) -> Option<std::io::Error> {
    let after = message.split("errno = ").nth(1)?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().map(std::io::Error::from_raw_os_error)
}

/// `label` for train (the tutorial's name), `<split>_label` for the others.
fn label_key(split: &str) -> String {
    if split == "train" { "label".into() } else { format!("{split}_label") }
}

fn text_attr(file: &hdf5::File, name: &str, path: &Path) -> Result<String, FeatureError> {
    let value = file.attr(name).and_then(|a| a.read_scalar::<VarLenUnicode>()).map_err(FeatureError::file(path))?;
    Ok(value.as_str().to_string())
}

fn to_vlen(s: &str, path: &Path) -> Result<VarLenUnicode, FeatureError> {
    s.parse().map_err(|e| FeatureError::FeatureFile {
        path: path.to_path_buf(),
        reason: format!("cannot store text `{s}`: {e}"),
    })
}

fn strings(items: &[String], path: &Path) -> Result<Array1<VarLenUnicode>, FeatureError> {
    items.iter().map(|s| to_vlen(s, path)).collect::<Result<Vec<_>, _>>().map(Array1::from)
}

/// A temporary file beside the target, removed on drop unless renamed into place.
struct TempFile(PathBuf);

impl TempFile {
    /// `.<name>.tmp-<pid>` beside `target`. Temporary files that a killed run (SIGKILL, power
    /// loss) left for the same target are removed first: their process no longer exists.
    fn beside(target: &Path) -> TempFile {
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let prefix = format!(".{name}.tmp-");
        let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let pid = file.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        TempFile(target.with_file_name(format!("{prefix}{}", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_set() -> FeatureSet {
        FeatureSet {
            backbone: "Net".into(),
            classes: vec!["cats".into(), "dogs".into()],
            splits: vec![
                SplitFeatures {
                    name: "train".into(),
                    features: Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f32 * 0.5),
                    labels: Some(vec![0, 1, 1]),
                    paths: vec!["train/cats/1.jpg".into(), "train/dogs/1.jpg".into(), "train/dogs/é.jpg".into()],
                },
                SplitFeatures {
                    name: "test".into(),
                    features: Array2::from_elem((1, 4), -1.0),
                    labels: None,
                    paths: vec!["test/1.jpg".into()],
                },
            ],
            model_sha256: "ab".repeat(32),
            model: "/models/net.onnx".into(),
            input_size: [224, 224],
            engine: "tract".into(),
            fingerprint: "f00d".into(),
            spec: "{\"name\": \"Net\"}".into(),
        }
    }

    #[test]
    fn write_then_read_gives_the_same_set() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("gap_Net.h5");
        let set = sample_set();
        set.write(&p).unwrap();
        assert_eq!(FeatureSet::read(&p).unwrap(), set);
        let header = FeatureSet::read_header(&p).unwrap();
        assert_eq!(header.fingerprint, "f00d");
        assert_eq!((header.rows, header.dim), (vec![("train".into(), 3), ("test".into(), 1)], 4));
        // nothing but the final file is left in the folder
        let names: Vec<_> = std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["gap_Net.h5"]);
    }

    #[test]
    fn failed_write_keeps_the_previous_file_and_leaves_no_temp() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("gap_Net.h5");
        let old = sample_set();
        old.write(&p).unwrap();
        let mut bad = sample_set();
        bad.fingerprint = "new".into();
        bad.classes = vec!["nul\0byte".into()]; // cannot be stored: the write fails midway
        assert!(bad.write(&p).is_err());
        assert_eq!(FeatureSet::read(&p).unwrap(), old);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }

    #[test]
    fn non_feature_files_are_refused_with_the_reason() {
        let t = tempfile::tempdir().unwrap();
        let junk = t.path().join("junk.h5");
        std::fs::write(&junk, b"not hdf5 at all").unwrap();
        let e = FeatureSet::read(&junk).unwrap_err().to_string();
        assert!(e.contains("junk.h5") && e.contains("not a readable HDF5"), "{e}");

        let other = t.path().join("other.h5");
        hdf5::File::create(&other).unwrap();
        let e = FeatureSet::read_header(&other).unwrap_err().to_string();
        assert!(e.contains("not an imgclf feature file"), "{e}");
    }
}
