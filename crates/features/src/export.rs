//! A feature file as a Parquet table, for pandas, polars, DuckDB and faiss: one row per photo
//! (split, path, label, class name, photo digest, features as a fixed-size list of float32, or
//! float16 for a `--store f16` file), written a block of rows at a time so memory stays flat.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float16Builder, Float32Builder};
use arrow_array::{ArrayRef, FixedSizeListArray, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::store::BLOCK_BYTES;
use crate::{FeatureError, FeatureReader, Storage};

/// What an export wrote: rows per split.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// Rows per split, in file order.
    pub rows: Vec<(String, usize)>,
}

/// The table's columns for features `dim` wide, stored as `storage`.
fn schema(dim: usize, storage: Storage) -> Schema {
    let value = match storage {
        Storage::F32 => DataType::Float32,
        Storage::F16 => DataType::Float16,
    };
    Schema::new(vec![
        Field::new("split", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("label", DataType::Int64, true),
        Field::new("class", DataType::Utf8, true),
        Field::new("photo", DataType::UInt64, true),
        Field::new("features", DataType::FixedSizeList(Arc::new(Field::new("item", value, false)), dim as i32), false),
    ])
}

/// Writes every row of `reader`'s file to `out` as Parquet, `block_bytes` of features at a time
/// (each block a row group); `None` takes 64 MiB.
pub fn export_parquet(
    reader: &FeatureReader,
    out: impl Write + Send,
    block_bytes: Option<usize>,
) -> Result<Exported, FeatureError> {
    let fail = |e: parquet::errors::ParquetError| FeatureError::FeatureFile {
        path: reader.path().to_path_buf(),
        reason: format!("cannot be written as Parquet: {e}"),
    };
    let schema = Arc::new(schema(reader.dim, reader.storage));
    let block_rows = reader.block_rows(block_bytes.unwrap_or(BLOCK_BYTES));
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(block_rows))
        .build();
    let mut writer = ArrowWriter::try_new(out, schema.clone(), Some(properties)).map_err(fail)?;
    let item = match schema.field(5).data_type() {
        DataType::FixedSizeList(item, _) => item.clone(),
        _ => unreachable!("the schema's sixth column is the features"),
    };
    let classes = &reader.info.classes;
    for (split, _) in &reader.rows {
        for block in reader.blocks(split, block_rows) {
            let block = block?;
            let n = block.paths.len();
            let features = block.features.as_standard_layout();
            let values: ArrayRef = match reader.storage {
                Storage::F32 => {
                    let mut b = Float32Builder::with_capacity(features.len());
                    b.append_slice(features.as_slice().expect("standard layout"));
                    Arc::new(b.finish())
                }
                // f16 values were widened when read: narrowing them back is exact
                Storage::F16 => {
                    let mut b = Float16Builder::with_capacity(features.len());
                    features.iter().for_each(|&v| b.append_value(half::f16::from_f32(v)));
                    Arc::new(b.finish())
                }
            };
            let list = FixedSizeListArray::try_new(item.clone(), reader.dim as i32, values, None)
                .map_err(|e| fail(parquet::errors::ParquetError::ArrowError(e.to_string())))?;
            let labels = block.labels.as_ref();
            let class = |l: &i64| usize::try_from(*l).ok().and_then(|l| classes.get(l)).map(String::as_str);
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(vec![split.as_str(); n])),
                Arc::new(StringArray::from_iter_values(&block.paths)),
                Arc::new(Int64Array::from_iter((0..n).map(|i| labels.map(|l| l[i])))),
                Arc::new(StringArray::from_iter((0..n).map(|i| labels.and_then(|l| class(&l[i]))))),
                Arc::new(UInt64Array::from_iter((0..n).map(|i| block.photos.as_ref().map(|p| p[i])))),
                Arc::new(list),
            ];
            let batch = RecordBatch::try_new(schema.clone(), columns)
                .map_err(|e| fail(parquet::errors::ParquetError::ArrowError(e.to_string())))?;
            writer.write(&batch).map_err(fail)?;
        }
    }
    writer.close().map_err(fail)?;
    Ok(Exported { rows: reader.rows.clone() })
}

/// [`export_parquet`] into the file `target`, written beside it and renamed into place once
/// whole (an interrupted or failed export leaves no half table), tagged as `tag`'s output.
pub fn export_parquet_file(reader: &FeatureReader, target: &Path, tag: &str) -> Result<Exported, FeatureError> {
    let (tmp, file) = imgclf_dataset::staged_output(target, tag).map_err(FeatureError::io(target))?;
    let exported = export_parquet(reader, std::io::BufWriter::new(file), None)?;
    tmp.persist().map_err(FeatureError::io(target))?;
    Ok(exported)
}
