//! Parquet as a source. A Parquet manifest (a path column of text) is read like a CSV; a
//! Parquet file that holds the images' bytes (Hugging Face's layout: `image` a struct
//! `{bytes, path}`, `label` an integer whose class names are in the schema's `huggingface`
//! metadata) gives its rows in file order, each photo read from its row group when a stage
//! needs it (the last few row groups decoded are kept, so a pass in file order decodes each
//! once).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_schema::DataType;
use arrow_schema::{Fields, Schema};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::ParquetMetaData;

use crate::containers::{class_index, class_name, split_of, unlabelled_among_labelled};
use crate::row_groups::{builder, unreadable};
use crate::{ClassIndex, Dataset, DatasetError, Member, Sample, Split};

/// The columns `wanted` (by position) of every row, as text, read a batch at a time.
fn read_columns(
    builder: ParquetRecordBatchReaderBuilder<File>,
    wanted: &[usize],
) -> Result<Vec<Vec<Option<String>>>, String> {
    let names: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted.iter().copied());
    let reader = builder.with_projection(mask).with_batch_size(65_536).build().map_err(|e| e.to_string())?;
    let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); wanted.len()];
    for batch in reader {
        let batch = batch.map_err(|e| unreadable(&e.to_string()))?;
        for (i, column) in columns.iter_mut().enumerate() {
            column.extend(texts(batch.column(i).as_ref()).map_err(|e| format!("column `{}` {e}", names[wanted[i]]))?);
        }
    }
    Ok(columns)
}

/// A column's values as text: strings as they are, integers in decimal.
fn texts(array: &dyn Array) -> Result<Vec<Option<String>>, String> {
    Ok(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().map(|v| v.map(str::to_string)).collect(),
        DataType::Utf8View => array.as_string_view().iter().map(|v| v.map(str::to_string)).collect(),
        DataType::Int64 => array.as_primitive::<Int64Type>().iter().map(|v| v.map(|v| v.to_string())).collect(),
        DataType::Int32 => array.as_primitive::<Int32Type>().iter().map(|v| v.map(|v| v.to_string())).collect(),
        other => return Err(format!("holds {other}, not text or integers")),
    })
}

/// A Parquet manifest's rows as text: `pick` chooses the columns to read from the header and
/// their types (or refuses them); the others are left empty.
pub(crate) fn table(
    file: &Path,
    pick: impl FnOnce(&[String], &[DataType]) -> Result<Vec<usize>, String>,
) -> Result<Vec<Vec<Option<String>>>, String> {
    let builder = builder(file)?;
    let header: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let types: Vec<DataType> = builder.schema().fields().iter().map(|f| f.data_type().clone()).collect();
    let wanted = pick(&header, &types)?;
    let columns = read_columns(builder, &wanted)?;
    let n = columns.first().map_or(0, Vec::len);
    let mut rows = vec![vec![None; header.len()]; n];
    for (&at, column) in wanted.iter().zip(columns) {
        for (row, value) in rows.iter_mut().zip(column) {
            row[at] = value;
        }
    }
    Ok(rows)
}

/// Whether a column of this type holds images (bytes, or a struct with `bytes`), not paths.
pub(crate) fn holds_bytes(data_type: &DataType) -> bool {
    match data_type {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => true,
        DataType::Struct(fields) => fields.iter().any(|f| f.name() == "bytes" && holds_bytes(f.data_type())),
        _ => false,
    }
}

/// The image column among a file's `fields`: `chosen`, else the first of `usual` there.
fn image_column(fields: &Fields, chosen: Option<&str>, usual: &[&str]) -> Option<(usize, DataType)> {
    let found = match chosen {
        Some(name) => fields.iter().position(|f| f.name() == name),
        None => usual.iter().find_map(|u| fields.iter().position(|f| f.name().eq_ignore_ascii_case(u))),
    };
    found.map(|i| (i, fields[i].data_type().clone()))
}

/// Whether the Parquet file `file` holds its images (its path column, `chosen` or the usual
/// one, is bytes).
pub(crate) fn holds_images(file: &Path, chosen: Option<&str>, usual: &[&str]) -> bool {
    let builder = builder(file);
    matches!(builder.map(|b| image_column(b.schema().fields(), chosen, usual)), Ok(Some((_, t))) if holds_bytes(&t))
}

/// Where each row of a file is: its row group and its index there.
fn row_places(metadata: &ParquetMetaData) -> Vec<(usize, usize)> {
    let groups = metadata.row_groups();
    groups.iter().enumerate().flat_map(|(g, rg)| (0..rg.num_rows() as usize).map(move |i| (g, i))).collect()
}

/// Class names a Hugging Face file gives its integer label column: `info.features.<label>.names`
/// of the schema's `huggingface` metadata.
fn hugging_face_names(schema: &Schema, label: &str) -> Result<Option<Vec<String>>, String> {
    let Some(meta) = schema.metadata().get("huggingface") else { return Ok(None) };
    let json: serde_json::Value =
        serde_json::from_str(meta).map_err(|e| format!("its `huggingface` metadata is not JSON ({e})"))?;
    let names = json.pointer(&format!("/info/features/{label}/names")).and_then(|n| n.as_array());
    Ok(names.map(|names| names.iter().map(|n| n.as_str().map_or(n.to_string(), str::to_string)).collect()))
}

/// The choices a Parquet file of images is read with: its image, label and split columns.
pub(crate) struct ImageColumns<'a> {
    pub(crate) image: Option<&'a str>,
    pub(crate) label: Option<&'a str>,
    pub(crate) split: Option<&'a str>,
}

/// Opens Parquet files that hold their images (`files`: `data` itself, or the `.parquet` files
/// of the folder `data`), identities starting from `root`. Rows stay in file order; a row's identity is `<file>/<row>`. The split is
/// the split column's, else the file name's (`train-…`, `validation-…`/`val-…`, `test-…`).
/// Class names: the `huggingface` metadata's for an integer label, else the sorted labels.
pub(crate) fn open_images(
    data: &Path,
    root: PathBuf,
    files: &[PathBuf],
    chosen: ImageColumns<'_>,
) -> Result<Dataset, DatasetError> {
    let mut listed = Vec::new();
    let mut numbered_names: Option<Vec<String>> = None;
    for file in files {
        let fail = |reason: String| DatasetError::Manifest { path: file.clone(), reason };
        // the footer is read once: schema, metadata and row groups come from this builder
        let builder = builder(file).map_err(fail)?;
        let schema = builder.schema().clone();
        let (image, image_type) = image_column(schema.fields(), chosen.image, &["image", "img", "jpg", "png"])
            .ok_or_else(|| fail("has no image column (`image`); choose one with `?path=COLUMN`".into()))?;
        let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        if !holds_bytes(&image_type) {
            return Err(fail(format!(
                "column `{}` holds {image_type}: an image column holds bytes (binary, or a struct with `bytes`)",
                header[image]
            )));
        }
        let find = |choice: Option<&str>, usual: &[&str]| -> Result<Option<usize>, DatasetError> {
            match choice {
                Some(name) => header
                    .iter()
                    .position(|h| h == name)
                    .map(Some)
                    .ok_or_else(|| fail(format!("no column `{name}` (it has {})", header.join(", ")))),
                None => Ok(usual.iter().find_map(|u| header.iter().position(|h| h.eq_ignore_ascii_case(u)))),
            }
        };
        let label = find(chosen.label, &["label", "labels", "class"])?;
        let split = find(chosen.split, &["split"])?;
        let wanted: Vec<usize> = [label, split].into_iter().flatten().collect();
        let places = row_places(builder.metadata());
        if let Some(name) = label.map(|l| &header[l])
            && let Some(names) = hugging_face_names(&schema, name).map_err(fail)?
        {
            numbered_names = Some(names);
        }
        let mut columns = read_columns(builder, &wanted).map_err(fail)?.into_iter();
        let (labels, splits) = (label.and_then(|_| columns.next()), split.and_then(|_| columns.next()));
        let shared_file: Arc<Path> = Arc::from(file.as_path());
        let column_name: Arc<str> = Arc::from(header[image].as_str());
        let rel_file = file.strip_prefix(&root).unwrap_or(file).to_string_lossy().replace('\\', "/");
        for (row, &(group, index)) in places.iter().enumerate() {
            let split = match &splits {
                Some(s) => s[row].clone().unwrap_or_else(|| "train".into()),
                None => split_of(file).to_string(),
            };
            let label = labels.as_ref().and_then(|l| l[row].clone());
            let member = Member::Row { file: shared_file.clone(), column: column_name.clone(), group, index };
            let sample = Sample {
                path: file.join(row.to_string()),
                rel: format!("{rel_file}/{row}"),
                label: None,
                member: Some(member),
            };
            listed.push((split, row, label, sample));
        }
    }
    if let Some((split, ..)) = listed.iter().find(|(s, ..)| !crate::SPLIT_NAMES.contains(&s.as_str())) {
        let known = crate::SPLIT_NAMES.join(", ");
        return Err(DatasetError::Manifest {
            path: data.to_path_buf(),
            reason: format!("unknown split `{split}` (one of {known})"),
        });
    }
    let texts: Vec<String> = listed.iter().filter_map(|(_, _, l, _)| l.clone()).collect();
    let classes = match &numbered_names {
        Some(names) => ClassIndex::new(names.clone()),
        None => class_index(texts),
    };
    let mut splits = Vec::new();
    for name in crate::SPLIT_NAMES {
        let mut samples = Vec::new();
        let (this_split, others): (Vec<_>, Vec<_>) = listed.into_iter().partition(|(s, ..)| s == name);
        listed = others;
        for (_, row, label, sample) in this_split {
            let fail = |reason: String| DatasetError::Manifest { path: sample.container().to_path_buf(), reason };
            let label = match (label.as_deref(), &numbered_names) {
                (None, _) => None,
                (Some(l), Some(names)) => {
                    let id: usize = l.parse().map_err(|_| fail(format!("row {row}: label `{l}` is not a class id")))?;
                    let name = names.get(id).ok_or_else(|| {
                        fail(format!("row {row}: label {id} is not a class (the metadata names {})", names.len()))
                    })?;
                    classes.id(name)
                }
                (Some(l), None) => classes.id(&class_name(l, &classes)),
            };
            samples.push(Sample { label, ..sample });
        }
        if let Some(odd) = unlabelled_among_labelled(&samples) {
            return Err(DatasetError::Manifest {
                path: odd.container().to_path_buf(),
                reason: format!("row {} has no label where others of split `{name}` have one", odd.path.display()),
            });
        }
        if !samples.is_empty() {
            splits.push(Split { name: name.to_string(), samples });
        }
    }
    if splits.is_empty() {
        return Err(DatasetError::Manifest { path: data.to_path_buf(), reason: "holds no rows".into() });
    }
    Ok(Dataset { root, source: data.to_path_buf(), classes, splits })
}
