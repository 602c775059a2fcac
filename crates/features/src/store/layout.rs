//! How a feature file is laid out in HDF5: dataset names, chunking, attributes, and opening one.

use std::path::Path;

use hdf5::types::VarLenUnicode;
use ndarray::Array1;

use super::*;
use crate::FeatureError;

/// Rows per HDF5 chunk: small enough to append batch by batch, large enough to read fast.
pub(super) const CHUNK_ROWS: usize = 64;

/// A split's growable datasets: rows, labels (when labelled), paths and photo digests (when given).
pub(super) fn open_split(
    file: &hdf5::File,
    name: &str,
    dim: usize,
    labelled: bool,
    photos: bool,
    storage: Storage,
    chunk_rows: usize,
) -> hdf5::Result<OpenSplit> {
    let features = match storage {
        Storage::F32 => file.new_dataset::<f32>(),
        Storage::F16 => file.new_dataset::<half::f16>(),
    };
    let features = features.chunk((chunk_rows, dim.max(1))).shape((0.., dim)).create(name)?;
    let labels = match labelled {
        true => Some(file.new_dataset::<i64>().chunk(chunk_rows).shape(0..).create(label_key(name).as_str())?),
        false => None,
    };
    let paths =
        file.new_dataset::<VarLenUnicode>().chunk(chunk_rows).shape(0..).create(format!("{name}_paths").as_str())?;
    let photos = match photos {
        true => Some(file.new_dataset::<u64>().chunk(chunk_rows).shape(0..).create(format!("{name}_photos").as_str())?),
        false => None,
    };
    Ok(OpenSplit { name: name.to_string(), features, labels, paths, photos, rows: 0 })
}

/// Opens a feature file, refusing anything that is not one of ours (or of another version).
pub(super) fn open(path: &Path) -> Result<hdf5::File, FeatureError> {
    let file = hdf5::File::open(path).map_err(|e| {
        let reason = match e.to_string().contains("truncated file") {
            true => format!(
                "truncated: cut short at {} bytes (an interrupted copy or a full disk); copy it again or extract again",
                std::fs::metadata(path).map_or(0, |m| m.len())
            ),
            false => format!("not a readable HDF5 file ({e})"),
        };
        FeatureError::FeatureFile { path: path.to_path_buf(), reason }
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

/// `label` for train (the tutorial's name), `<split>_label` for the others.
pub(super) fn label_key(split: &str) -> String {
    if split == "train" { "label".into() } else { format!("{split}_label") }
}

pub(super) fn text_attr(file: &hdf5::File, name: &str, path: &Path) -> Result<String, FeatureError> {
    let value = file.attr(name).and_then(|a| a.read_scalar::<VarLenUnicode>()).map_err(FeatureError::file(path))?;
    Ok(value.as_str().to_string())
}

/// The `shard` attribute of a shard file, `None` in a whole-dataset file.
pub(super) fn shard_attr(file: &hdf5::File, path: &Path) -> Result<Option<ShardInfo>, FeatureError> {
    if !file.attr_names().map_err(FeatureError::file(path))?.iter().any(|n| n == "shard") {
        return Ok(None);
    }
    let text = text_attr(file, "shard", path)?;
    serde_json::from_str(&text).map(Some).map_err(|e| FeatureError::FeatureFile {
        path: path.to_path_buf(),
        reason: format!("attribute `shard` is not a shard record ({e})"),
    })
}

pub(super) fn to_vlen(s: &str, path: &Path) -> Result<VarLenUnicode, FeatureError> {
    s.parse().map_err(|e| FeatureError::FeatureFile {
        path: path.to_path_buf(),
        reason: format!("cannot store text `{s}`: {e}"),
    })
}

pub(super) fn strings(items: &[String], path: &Path) -> Result<Array1<VarLenUnicode>, FeatureError> {
    items.iter().map(|s| to_vlen(s, path)).collect::<Result<Vec<_>, _>>().map(Array1::from)
}

/// The datasets of the split being appended to.
pub(super) struct OpenSplit {
    pub(super) name: String,
    pub(super) features: hdf5::Dataset,
    pub(super) labels: Option<hdf5::Dataset>,
    pub(super) paths: hdf5::Dataset,
    pub(super) photos: Option<hdf5::Dataset>,
    pub(super) rows: usize,
}
