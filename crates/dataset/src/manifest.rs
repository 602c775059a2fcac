//! A manifest: a CSV, TSV, JSON Lines or Parquet file that lists the photos (a path column, and
//! optionally a label and a split column) where a data root would hold folders. Every stage
//! that takes `--data` takes one, and sees the rows a folder of the same photos would give.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use arrow_schema::DataType;

use crate::parquet::ImageColumns;
use crate::{ClassIndex, Dataset, DatasetError, SPLIT_NAMES, Sample, Split, natural_cmp};

/// Column names read as the photo's path, its class and its split (any case), first found wins.
const PATH_COLUMNS: [&str; 5] = ["path", "filepath", "file", "filename", "image"];
const LABEL_COLUMNS: [&str; 2] = ["label", "class"];
const SPLIT_COLUMN: &str = "split";

/// The choices a user may write after a manifest's name (`train.csv?label=breed`): which
/// columns hold the path, the label and the split, and a pattern that builds the path from
/// columns (Kaggle's `id,label` files: `train.csv?pattern=train/{id}.jpg`). They travel with
/// `--data` into every later stage (resume, report), so the rows are the same there.
#[derive(Debug, Clone, Default, PartialEq)]
struct Columns {
    path: Option<String>,
    label: Option<String>,
    split: Option<String>,
    pattern: Option<String>,
}

/// What a manifest's choices may set, for the error that names an unknown one.
const CHOICES: &str = "path, label, split, pattern";

impl Columns {
    /// The choices after `?`: `key=value` pairs joined by `&`.
    fn parse(query: &str) -> Result<Columns, String> {
        let mut columns = Columns::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) =
                pair.split_once('=').ok_or_else(|| format!("`{pair}` after `?` is not key=value ({CHOICES})"))?;
            let slot = match key {
                "path" => &mut columns.path,
                "label" => &mut columns.label,
                "split" => &mut columns.split,
                "pattern" => &mut columns.pattern,
                _ => return Err(format!("unknown choice `{key}` after `?` (one of {CHOICES})")),
            };
            *slot = Some(value.to_string());
        }
        Ok(columns)
    }
}

/// `data` split into the manifest file and the choices written after its name, when it names a
/// manifest (a file ending in `.csv`, `.tsv`, `.jsonl`, `.ndjson` or `.parquet`, possibly with
/// `?choices`).
fn manifest_parts(data: &Path) -> Option<(PathBuf, &str)> {
    let text = data.to_str()?;
    let (file, query) = match text.split_once('?') {
        Some((file, query)) if !data.exists() => (Path::new(file), query),
        _ => (data, ""),
    };
    let ext = file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    (file.is_file() && matches!(ext.as_deref(), Some("csv" | "tsv" | "jsonl" | "ndjson" | "parquet")))
        .then(|| (file.to_path_buf(), query))
}

/// Whether `data` names a manifest (a file ending in `.csv`, `.tsv`, `.jsonl`, `.ndjson` or
/// `.parquet`, possibly followed by `?choices`).
pub fn is_manifest(data: &Path) -> bool {
    manifest_parts(data).is_some()
}

/// One listed photo, as written.
struct Row {
    line: u64,
    path: String,
    label: Option<String>,
    split: String,
}

/// Reads a manifest into a dataset whose root is the manifest's folder (relative paths are
/// relative to it). A row without a split is `train`'s. Class ids follow the sorted class
/// names, as for folders, and each split's rows are put in a folder's order (class, then
/// natural path order), so the same photos listed or foldered give the same rows. Refused,
/// naming the file and line, before any photo is read: a line that cannot be parsed, no path
/// column, an empty path, an unknown split, the same path twice, a split whose rows are partly
/// labelled, a class of validation or test that train does not have.
pub(crate) fn open(data: &Path) -> Result<Dataset, DatasetError> {
    let (file, query) = manifest_parts(data).expect("Dataset::open checked it is a manifest");
    let fail = |reason: String| DatasetError::Manifest { path: file.clone(), reason };
    let columns = Columns::parse(query).map_err(fail)?;
    let ext = file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if ext.as_deref() == Some("parquet") && crate::parquet::holds_images(&file, columns.path.as_deref(), &PATH_COLUMNS)
    {
        let chosen = ImageColumns {
            image: columns.path.as_deref(),
            label: columns.label.as_deref(),
            split: columns.split.as_deref(),
        };
        let root = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        return crate::parquet::open_images(data, root, std::slice::from_ref(&file), chosen);
    }
    let rows = match ext.as_deref() {
        Some("parquet") => parquet_rows(&file, &columns).map_err(fail)?,
        Some("jsonl" | "ndjson") => json_lines(&file, &columns).map_err(fail)?,
        Some("tsv") => delimited(&file, b'\t', &columns).map_err(fail)?,
        _ => delimited(&file, b',', &columns).map_err(fail)?,
    };
    let mut first_line: HashMap<&str, u64> = HashMap::with_capacity(rows.len());
    for row in &rows {
        if let Some(earlier) = first_line.insert(&row.path, row.line) {
            return Err(fail(format!("lines {earlier} and {} both list `{}`", row.line, row.path)));
        }
    }
    let root = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut by_split: Vec<(&str, Vec<&Row>)> = SPLIT_NAMES.iter().map(|&s| (s, Vec::new())).collect();
    for row in &rows {
        let Some((_, split)) = by_split.iter_mut().find(|(name, _)| *name == row.split) else {
            let known = SPLIT_NAMES.join(", ");
            return Err(fail(format!("line {}: unknown split `{}` (one of {known})", row.line, row.split)));
        };
        split.push(row);
    }
    by_split.retain(|(_, rows)| !rows.is_empty());
    if by_split.is_empty() {
        return Err(fail("lists no photos".into()));
    }
    for (name, rows) in &by_split {
        let labelled = rows[0].label.is_some();
        if let Some(odd) = rows.iter().find(|r| r.label.is_some() != labelled) {
            return Err(fail(format!(
                "line {}: split `{name}` has rows with and without a label; label all of them, or none",
                odd.line
            )));
        }
    }
    // class ids come from the first labelled split, as for folders
    let classes = match by_split.iter().find(|(_, rows)| rows[0].label.is_some()) {
        Some((_, rows)) => ClassIndex::new(rows.iter().filter_map(|r| r.label.clone()).collect()),
        None => ClassIndex::default(),
    };
    let mut splits = Vec::new();
    for (name, rows) in by_split {
        let mut samples = Vec::with_capacity(rows.len());
        for row in rows {
            let label = match &row.label {
                Some(class) => Some(classes.id(class).ok_or_else(|| {
                    fail(format!(
                        "line {}: class `{class}` is not one of the classes of the first labelled split ({})",
                        row.line,
                        classes.names().join(", ")
                    ))
                })?),
                None => None,
            };
            samples.push(Sample::file(root.join(&row.path), row.path.clone(), label));
        }
        samples.sort_by(|a, b| a.label.cmp(&b.label).then_with(|| natural_cmp(&a.rel, &b.rel)));
        splits.push(Split { name: name.to_string(), samples });
    }
    Ok(Dataset { root: root.to_path_buf(), source: data.to_path_buf(), classes, splits })
}

/// Where a row's path comes from: a column, or a pattern of text and columns.
enum PathFrom {
    Column(usize),
    Pattern(Vec<Piece>),
}

/// A piece of a path pattern: text as written, or a column's value.
enum Piece {
    Text(String),
    Column(usize),
}

/// The columns of a header that make a row: its path, label and split.
struct Layout {
    path: PathFrom,
    label: Option<usize>,
    split: Option<usize>,
}

impl Layout {
    /// Finds the columns in `header`: those `chosen` names (refused when absent), else the usual
    /// names; a pattern's `{column}`s must all be there.
    fn new(header: &[String], chosen: &Columns) -> Result<Layout, String> {
        let has = || header.join(", ");
        let find = |choice: &Option<String>, usual: &[&str]| -> Result<Option<usize>, String> {
            match choice {
                Some(name) => match header.iter().position(|h| h == name) {
                    Some(i) => Ok(Some(i)),
                    None => Err(format!("no column `{name}` (it has {})", has())),
                },
                None => Ok(usual.iter().find_map(|n| header.iter().position(|h| h.eq_ignore_ascii_case(n)))),
            }
        };
        let path = match &chosen.pattern {
            Some(pattern) => PathFrom::Pattern(pieces(pattern, header).map_err(|e| format!("pattern `{pattern}`: {e}"))?),
            None => PathFrom::Column(find(&chosen.path, &PATH_COLUMNS)?.ok_or_else(|| {
                format!(
                    "no path column (it has {}); name one {}, or choose one with `?path=COLUMN` or `?pattern=DIR/{{COLUMN}}.jpg`",
                    has(),
                    PATH_COLUMNS.join(", ")
                )
            })?),
        };
        Ok(Layout { path, label: find(&chosen.label, &LABEL_COLUMNS)?, split: find(&chosen.split, &[SPLIT_COLUMN])? })
    }

    /// The columns it reads.
    fn columns(&self) -> Vec<usize> {
        let path = match &self.path {
            PathFrom::Column(i) => vec![*i],
            PathFrom::Pattern(pieces) => {
                pieces.iter().filter_map(|p| if let Piece::Column(i) = p { Some(*i) } else { None }).collect()
            }
        };
        let mut columns: Vec<usize> = path.into_iter().chain(self.label).chain(self.split).collect();
        columns.sort_unstable();
        columns.dedup();
        columns
    }

    /// The row of line `line`, whose fields `field` gives by column: the path (refused when
    /// empty), the label and the split when given and not empty.
    fn row<'f>(&self, line: u64, field: impl Fn(usize) -> Option<&'f str>) -> Result<Row, String> {
        let path = match &self.path {
            PathFrom::Column(i) => field(*i).unwrap_or("").trim().to_string(),
            PathFrom::Pattern(pieces) => pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(text) => text.as_str(),
                    Piece::Column(i) => field(*i).unwrap_or("").trim(),
                })
                .collect(),
        };
        if path.is_empty() {
            return Err(format!("line {line}: empty path"));
        }
        let given = |i: Option<usize>| i.and_then(&field).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        Ok(Row { line, path, label: given(self.label), split: given(self.split).unwrap_or("train".into()) })
    }
}

/// The rows of a Parquet manifest (its columns of text or integers; a path column must be text).
fn parquet_rows(file: &Path, chosen: &Columns) -> Result<Vec<Row>, String> {
    let mut layout = None;
    let rows = crate::parquet::table(file, |header, types| {
        let found = Layout::new(header, chosen)?;
        if let PathFrom::Column(i) = found.path
            && !matches!(types[i], DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        {
            return Err(format!(
                "column `{}` holds {}: a path column holds text, an image column bytes (binary, or a struct with `bytes`)",
                header[i], types[i]
            ));
        }
        let columns = found.columns();
        layout = Some(found);
        Ok(columns)
    })?;
    let layout = layout.expect("the header was read");
    rows.iter().enumerate().map(|(i, values)| layout.row(i as u64 + 1, |c| values[c].as_deref())).collect()
}

/// A path pattern's pieces: `{column}` names a column of `header`, the rest is text.
fn pieces(pattern: &str, header: &[String]) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or("a `{` without its `}`")? + open;
        let name = &rest[open + 1..close];
        let column = header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("no column `{name}` (it has {})", header.join(", ")))?;
        pieces.extend([Piece::Text(rest[..open].to_string()), Piece::Column(column)]);
        rest = &rest[close + 1..];
    }
    pieces.push(Piece::Text(rest.to_string()));
    match pieces.iter().any(|p| matches!(p, Piece::Column(_))) {
        true => Ok(pieces),
        false => Err("names no `{column}`".into()),
    }
}

/// The rows of a CSV (or, with a tab, TSV) file with a header line.
fn delimited(file: &Path, delimiter: u8, chosen: &Columns) -> Result<Vec<Row>, String> {
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter).from_path(file).map_err(|e| format!("cannot be read: {e}"))?;
    let header: Vec<String> =
        reader.headers().map_err(|e| format!("line 1: {e}"))?.iter().map(|h| h.trim().to_string()).collect();
    let layout = Layout::new(&header, chosen)?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.position() {
            Some(p) => format!("line {}: {}", p.line(), csv_reason(&e)),
            None => e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        rows.push(layout.row(line, |i| record.get(i))?);
    }
    Ok(rows)
}

/// The rows of a JSON Lines file: one object a line (blank lines skipped); a label may be a
/// string or a number.
fn json_lines(file: &Path, chosen: &Columns) -> Result<Vec<Row>, String> {
    let reader = BufReader::new(File::open(file).map_err(|e| format!("cannot be read: {e}"))?);
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i as u64 + 1;
        let line = line.map_err(|e| format!("line {n}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&line).map_err(|e| format!("line {n}: not a JSON object ({e})"))?;
        let keys: Vec<String> = object.keys().cloned().collect();
        let values: Vec<Option<String>> = object
            .values()
            .map(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            })
            .collect();
        let layout = Layout::new(&keys, chosen).map_err(|e| format!("line {n}: {e}"))?;
        rows.push(layout.row(n, |i| values[i].as_deref())?);
    }
    Ok(rows)
}

/// What is wrong with a record, without csv's own position prefix (the line is given apart).
fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".into(),
        _ => e.to_string(),
    }
}

/// The folder photos are found in: a manifest's own folder, else `data` itself.
pub fn photo_root(data: &Path) -> PathBuf {
    match manifest_parts(data) {
        Some((file, _)) => file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf(),
        None => data.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch data root of photo files (empty: only paths matter here) and a manifest beside.
    fn scratch(files: &[&str], manifest: (&str, &str)) -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        for f in files {
            let path = t.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        let file = t.path().join(manifest.0);
        std::fs::write(&file, manifest.1).unwrap();
        (t, file)
    }

    const PHOTOS: [&str; 5] =
        ["train/cats/c10.jpg", "train/cats/c2.jpg", "train/dogs/d1.jpg", "validation/cats/v1.jpg", "test/t1.jpg"];

    #[test]
    fn a_manifest_gives_the_rows_of_the_same_photos_in_folders() {
        let csv = "path,label,split\ntest/t1.jpg,,test\ntrain/dogs/d1.jpg,dogs,train\nvalidation/cats/v1.jpg,cats,validation\n\
                   train/cats/c10.jpg,cats,\ntrain/cats/c2.jpg,cats,train\n";
        let jsonl = "{\"image\": \"train/cats/c10.jpg\", \"class\": \"cats\"}\n\n{\"image\": \"train/cats/c2.jpg\", \
                     \"class\": \"cats\", \"split\": \"train\"}\n{\"image\": \"train/dogs/d1.jpg\", \"class\": \"dogs\"}\n\
                     {\"image\": \"validation/cats/v1.jpg\", \"class\": \"cats\", \"split\": \"validation\"}\n\
                     {\"image\": \"test/t1.jpg\", \"class\": null, \"split\": \"test\"}\n";
        let tsv = csv.replace(',', "\t");
        for (name, text) in [("m.csv", csv), ("m.jsonl", jsonl), ("m.tsv", tsv.as_str())] {
            let (t, file) = scratch(&PHOTOS, (name, text));
            let folders = Dataset::open(t.path()).unwrap();
            let listed = Dataset::open(&file).unwrap();
            assert_eq!(listed.root, folders.root, "{name}");
            assert_eq!(listed.classes, folders.classes, "{name}");
            let names: Vec<&str> = listed.splits.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["train", "validation", "test"], "{name}");
            for (a, b) in listed.splits.iter().zip(&folders.splits) {
                assert_eq!(a.samples, b.samples, "{name}: split {}", a.name);
            }
        }
    }

    #[test]
    fn bad_manifests_are_refused_naming_the_file_and_line() {
        let cases = [
            ("file,label\na.jpg,cats,extra\n", "line 2: 3 fields where the header has 2"),
            ("name,label\na.jpg,cats\n", "no path column (it has name, label); name one path, filepath"),
            ("path,label\n ,cats\n", "line 2: empty path"),
            ("path,label,split\na.jpg,cats,holdout\n", "line 2: unknown split `holdout`"),
            ("path,label\na.jpg,cats\nb.jpg,dogs\na.jpg,dogs\n", "lines 2 and 4 both list `a.jpg`"),
            ("path,label\na.jpg,cats\nb.jpg,\n", "line 3: split `train` has rows with and without a label"),
            ("path,label,split\na.jpg,cats,train\nb.jpg,birds,test\n", "line 3: class `birds` is not one of"),
            ("path\n", "lists no photos"),
        ];
        for (text, want) in cases {
            let (_t, file) = scratch(&[], ("m.csv", text));
            let err = Dataset::open(&file).unwrap_err().to_string();
            assert!(err.starts_with(&file.display().to_string()) && err.contains(want), "{text:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        let (_t, file) = scratch(&[], ("m.jsonl", "{\"path\": \"a.jpg\"}\n[1, 2]\n"));
        let err = Dataset::open(&file).unwrap_err().to_string();
        assert!(err.contains("line 2: not a JSON object"), "{err}");
    }

    #[test]
    fn kaggle_ids_become_paths_through_a_pattern_and_columns_can_be_chosen() {
        let (t, file) = scratch(&PHOTOS[..3], ("train.csv", "id,breed\ncats/c2,cats\ndogs/d1,dogs\ncats/c10,cats\n"));
        let kaggle = Dataset::open(format!("{}?pattern=train/{{id}}.jpg&label=breed", file.display())).unwrap();
        let folders = Dataset::open(t.path()).unwrap();
        assert_eq!(kaggle.classes, folders.classes);
        assert_eq!(kaggle.splits[0].samples, folders.splits[0].samples);
        // the choices are part of the source: a later stage opens the same rows
        assert!(kaggle.source.to_str().unwrap().ends_with("train.csv?pattern=train/{id}.jpg&label=breed"));
        assert_eq!(photo_root(&kaggle.source), t.path());
        let (_t, file) = scratch(&[], ("m.csv", "where,kind\na.jpg,cats\n"));
        let chosen = Dataset::open(format!("{}?path=where&label=kind", file.display())).unwrap();
        assert_eq!(chosen.splits[0].samples[0].rel, "a.jpg");
        assert_eq!(chosen.classes.names(), ["cats"]);
    }

    #[test]
    fn bad_choices_are_refused_naming_the_columns_there_are() {
        let (_t, file) = scratch(&[], ("m.csv", "id,label\n1,cats\n"));
        let cases = [
            ("?size=3", "unknown choice `size` after `?` (one of path, label, split, pattern)"),
            ("?label", "`label` after `?` is not key=value"),
            ("?path=where", "no column `where` (it has id, label)"),
            ("?pattern=train/{idx}.jpg", "pattern `train/{idx}.jpg`: no column `idx` (it has id, label)"),
            ("?pattern=train/{id.jpg", "a `{` without its `}`"),
            ("?pattern=train.jpg", "names no `{column}`"),
            ("", "choose one with `?path=COLUMN` or `?pattern=DIR/{COLUMN}.jpg`"),
        ];
        for (query, want) in cases {
            let err = Dataset::open(format!("{}{query}", file.display())).unwrap_err().to_string();
            assert!(err.starts_with(&file.display().to_string()) && err.contains(want), "{query}: {err}");
        }
    }

    #[test]
    fn photos_are_found_beside_the_manifest() {
        let (t, file) = scratch(&PHOTOS, ("m.csv", "path\ntest/t1.jpg\n"));
        assert_eq!(photo_root(&file), t.path());
        assert_eq!(photo_root(t.path()), t.path());
        assert!(is_manifest(&file) && !is_manifest(t.path()) && !is_manifest(&t.path().join("test/t1.jpg")));
    }
}
