//! Image bytes out of a Parquet file's row groups: a group decoded when one of its rows is
//! asked for, the last few kept, so a pass in file order decodes each group once.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Opens `file` for reading with arrow, naming it in errors.
pub(crate) fn builder(file: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, String> {
    let f = File::open(file).map_err(|e| format!("cannot be read: {e}"))?;
    ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| format!("not a Parquet file we read: {e}"))
}

/// Why a Parquet file's data cannot be read, in words a user acts on: a codec left out of the
/// build is named with the fix.
pub(crate) fn unreadable(error: &str) -> String {
    match error.split("Disabled feature at compile time: ").nth(1) {
        Some(codec) => format!(
            "is compressed with {}, which imgclf does not read: write it with snappy (the default of pyarrow, \
             pandas, DuckDB and Hugging Face) or without compression",
            codec.trim()
        ),
        None => format!("cannot be read: {error}"),
    }
}

/// One row group's images: each row's bytes (none where the row has none).
type Images = Arc<Vec<Option<Vec<u8>>>>;

/// Row groups decoded lately (file, group, images), newest last: a pass in file order decodes
/// each group once.
static DECODED: Mutex<Vec<(Arc<Path>, usize, Images)>> = Mutex::new(Vec::new());
/// How many decoded row groups are kept (a row group of Hugging Face images holds 100).
const KEPT_GROUPS: usize = 4;

/// The image bytes of row `index` of row group `group` of `file`'s `column`.
pub(crate) fn image_bytes(file: &Arc<Path>, column: &str, group: usize, index: usize) -> Result<Vec<u8>, String> {
    let mut decoded = DECODED.lock().unwrap_or_else(|e| e.into_inner());
    let found = decoded.iter().position(|(f, g, _)| f == file && *g == group);
    let images = match found {
        Some(at) => decoded[at].2.clone(),
        None => {
            let images = Arc::new(decode_group(file, column, group)?);
            if decoded.len() == KEPT_GROUPS {
                decoded.remove(0);
            }
            decoded.push((file.clone(), group, images.clone()));
            images
        }
    };
    drop(decoded);
    images.get(index).cloned().flatten().ok_or_else(|| "no image bytes in this row".to_string())
}

/// Every row's image bytes of one row group.
fn decode_group(file: &Path, column: &str, group: usize) -> Result<Vec<Option<Vec<u8>>>, String> {
    let builder = builder(file)?;
    let at = builder.schema().fields().iter().position(|f| f.name() == column).ok_or("its image column is gone")?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [at]);
    let reader = builder.with_row_groups(vec![group]).with_projection(mask).build().map_err(|e| e.to_string())?;
    let mut images = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| format!("row group {group}: {}", unreadable(&e.to_string())))?;
        let column = batch.column(0);
        let bytes = match column.data_type() {
            DataType::Struct(_) => column.as_struct().column_by_name("bytes").cloned().ok_or("no `bytes` field")?,
            _ => column.clone(),
        };
        match bytes.data_type() {
            DataType::Binary => images.extend(bytes.as_binary::<i32>().iter().map(|b| b.map(<[u8]>::to_vec))),
            DataType::LargeBinary => images.extend(bytes.as_binary::<i64>().iter().map(|b| b.map(<[u8]>::to_vec))),
            DataType::BinaryView => images.extend(bytes.as_binary_view().iter().map(|b| b.map(<[u8]>::to_vec))),
            other => return Err(format!("image bytes of type {other}")),
        }
    }
    Ok(images)
}
