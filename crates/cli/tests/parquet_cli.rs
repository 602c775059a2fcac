//! Parquet on both sides: `imgclf features export` read back by pyarrow, polars and DuckDB
//! equal to h5py's read of the feature file.

use std::path::Path;

use imgclf_features::FeatureSet;
use imgclf_testkit::*;

/// The feature file `sys.argv[1]` as h5py reads it against its Parquet export `sys.argv[2]` as
/// pyarrow, polars and DuckDB read it: every split's paths, labels, class names, photo digests
/// and features equal, the features a fixed-size list of `sys.argv[3]` (float or halffloat).
const READ_BACK: &str = r#"
import sys, h5py, numpy as np, pyarrow.compute as pc, pyarrow.parquet as pq, polars as pl, duckdb
h5, table, kind = h5py.File(sys.argv[1]), sys.argv[2], sys.argv[3]
classes = [c.decode() if isinstance(c, bytes) else c for c in h5.attrs["classes"]]
arrow = pq.read_table(table)
assert str(arrow.schema.field("features").type) == f"fixed_size_list<item: {kind} not null>[{h5['train'].shape[1]}]", arrow.schema
def by_column(relation):
    return dict(zip(relation.columns, map(list, zip(*relation.fetchall()))))
readers = {
    "pyarrow": lambda split: arrow.filter(pc.equal(arrow["split"], split)).to_pydict(),
    "polars": lambda split: pl.read_parquet(table).filter(pl.col("split") == split).to_dict(as_series=False),
    "duckdb": lambda split: by_column(duckdb.sql(
        f"select * exclude (file_row_number) from read_parquet('{table}', file_row_number = true) "
        f"where split = '{split}' order by file_row_number"
    )),
}
for name, read in readers.items():
    total = 0
    for split in ("train", "validation", "test"):
        rows = read(split)
        x = h5[split][()]
        got = np.array([np.asarray(v, dtype=x.dtype) for v in rows["features"]])
        assert got.shape == x.shape and got.tobytes() == x.tobytes(), (name, split)
        assert [p.decode() for p in h5[f"{split}_paths"][()]] == list(rows["path"]), (name, split)
        assert list(h5[f"{split}_photos"][()]) == [int(p) for p in rows["photo"]], (name, split)
        key = "label" if split == "train" else f"{split}_label"
        if key in h5:
            labels = list(h5[key][()])
            assert labels == [int(l) for l in rows["label"]], (name, split)
            assert [classes[l] for l in labels] == list(rows["class"]), (name, split)
        else:
            assert all(l is None for l in rows["label"]) and all(c is None for c in rows["class"]), (name, split)
        total += len(x)
    print(name, total, "rows equal")
"#;

#[test]
fn an_export_reads_back_in_pyarrow_polars_and_duckdb_as_h5py_reads_the_file() {
    let Some(python) = python_with(&["h5py", "pyarrow", "polars", "duckdb"]) else { return };
    let t = tempfile::tempdir().unwrap();
    for (store, kind) in [("f32", "float"), ("f16", "halffloat")] {
        let file = extract_tiny(&fixtures().join("tiny_data"), &t.path().join(store), &["--store", store]);
        let said = run_ok(&["features", "export", s(&file), "--to", "parquet"]);
        let table = file.with_extension("parquet");
        assert!(said.contains("train 12, validation 2, test 3 (8 features)"), "{said}");
        let read = run_python(&python, &["-c", READ_BACK, s(&file), s(&table), kind]);
        for reader in ["pyarrow", "polars", "duckdb"] {
            assert!(read.contains(&format!("{reader} 17 rows equal")), "{store}: {read}");
        }
        // a second export replaces its own table; another file there is refused without --force
        run_ok(&["features", "export", s(&file)]);
        let other = t.path().join(format!("{store}/notes.parquet"));
        std::fs::write(&other, b"someone's notes").unwrap();
        let line = refused(&run(&["features", "export", s(&file), "--out", s(&other)]));
        assert!(line.contains("--out") && line.contains("notes.parquet"), "{line}");
        assert_eq!(std::fs::read(&other).unwrap(), b"someone's notes");
    }
}

#[test]
fn exporting_what_is_not_a_feature_file_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("gap_X.h5");
    std::fs::write(&file, b"not HDF5").unwrap();
    let line = refused(&run(&["features", "export", s(&file)]));
    assert!(line.contains("gap_X.h5"), "{line}");
    let left: Vec<_> = std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "only the input: {left:?}");
}

/// From a folder feature file's rows (`sys.argv[2]`, photos under `sys.argv[1]`), pandas writes
/// a Parquet manifest beside the photos (path, class name, split; rows shuffled) and Hugging
/// Face `datasets` writes `sys.argv[3]/<split>-00000-of-00001.parquet` with the images inside
/// (an `Image` column, a `ClassLabel`; rows in the file's order).
const WRITE: &str = r#"
import os, sys, h5py, pandas as pd
from datasets import ClassLabel, Dataset, Image
data, features, hf = sys.argv[1:4]
f = h5py.File(features)
classes = [c.decode() if isinstance(c, bytes) else c for c in f.attrs["classes"]]
rows = []
os.makedirs(hf)
for split, key in (("train", "label"), ("validation", "validation_label"), ("test", None)):
    paths = [p.decode() for p in f[f"{split}_paths"][()]]
    labels = list(f[key][()]) if key else None
    rows += [{"path": p, "label": classes[labels[i]] if labels else None, "split": split} for i, p in enumerate(paths)]
    columns = {"image": [{"bytes": open(os.path.join(data, p), "rb").read(), "path": p} for p in paths]}
    if labels:
        columns["label"] = [int(l) for l in labels]
    ds = Dataset.from_dict(columns).cast_column("image", Image())
    if labels:
        ds = ds.cast_column("label", ClassLabel(names=classes))
    ds.to_parquet(os.path.join(hf, f"{split}-00000-of-00001.parquet"))
pd.DataFrame(rows).sample(frac=1, random_state=5).to_parquet(os.path.join(data, "photos.parquet"), index=False)
"#;

/// h5py: the datasets of two feature files equal byte for byte (the paths too, unless
/// `sys.argv[3]` is `nopaths`).
const SAME: &str = r#"
import sys, h5py
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
keys = [k for k in a if sys.argv[3] == "paths" or not k.endswith("_paths")]
assert sorted(a) == sorted(b), (sorted(a), sorted(b))
for k in keys:
    x, y = a[k][()], b[k][()]
    same = list(x) == list(y) if x.dtype == object else x.tobytes() == y.tobytes()
    assert x.dtype == y.dtype and x.shape == y.shape and same, k
print(len(keys), "datasets equal")
"#;

#[test]
fn a_parquet_manifest_and_hugging_face_files_give_the_folders_features_and_head() {
    let Some(python) = python_with(&["h5py", "pandas", "pyarrow", "datasets"]) else { return };
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    copy_tree(&fixtures().join("tiny_data"), &data);
    let extract = |source: &Path, out: &str| extract_tiny(source, &t.path().join(out), &[]);
    let folders = extract(&data, "folders");
    let hf = t.path().join("hf");
    run_python(&python, &["-c", WRITE, s(&data), s(&folders), s(&hf)]);

    let listed = extract(&data.join("photos.parquet"), "listed");
    let said = run_python(&python, &["-c", SAME, s(&folders), s(&listed), "paths"]);
    assert!(said.contains("11 datasets equal"), "a Parquet manifest: {said}");
    let embedded = extract(&hf, "embedded");
    let said = run_python(&python, &["-c", SAME, s(&folders), s(&embedded), "nopaths"]);
    assert!(said.contains("8 datasets equal"), "Hugging Face files: {said}");
    let paths =
        run_python(&python, &["-c", "import sys, h5py; print(h5py.File(sys.argv[1])['train_paths'][1])", s(&embedded)]);
    assert!(paths.contains("train-00000-of-00001.parquet/1"), "a row's identity is file/row: {paths}");
    let from_hf = t.path().join("from-hf");
    assert_eq!(head_weights(&folders, &t.path().join("from-folders")), head_weights(&embedded, &from_hf));

    // predict, cam and the report's maps read the photos inside the Parquet file
    let validation = hf.join("validation-00000-of-00001.parquet");
    let said = run_ok(&["predict", "--run", s(&from_hf), s(&validation)]);
    let rows = FeatureSet::read(&folders).unwrap().splits[1].paths.len();
    assert_eq!(said.lines().filter(|l| l.contains(".parquet/")).count(), rows, "one line a photo: {said}");
    let grid = t.path().join("cam.png");
    run_ok(&["cam", "--run", s(&from_hf), "--images", s(&validation), "--grid", "2x2", "--out", s(&grid)]);
    assert_eq!(image::image_dimensions(&grid).unwrap().0, 2 * 256 + 3 * 8, "two maps a row, three 8-pixel gaps");
    run_ok(&["report", s(&from_hf), "--data", s(&hf)]);
    let html = std::fs::read_to_string(from_hf.join("report.html")).unwrap();
    assert!(!html.contains("class=\"missing\"") && !html.contains("no maps"), "report of a Parquet-fed run");
}

/// pandas and `datasets` write the bad Parquet files of `sys.argv[1]`.
const BAD: &str = r#"
import os, sys, pandas as pd
from datasets import ClassLabel, Dataset, Image
out = sys.argv[1]
pd.DataFrame({"image": [1, 2], "label": ["a", "b"]}).to_parquet(os.path.join(out, "ints.parquet"))
pd.DataFrame({"name": ["a.jpg"], "label": ["a"]}).to_parquet(os.path.join(out, "nameless.parquet"))
pd.DataFrame({"path": ["a.jpg"], "label": ["a"]}).to_parquet(os.path.join(out, "zstd.parquet"), compression="zstd")
photo = open(sys.argv[2], "rb").read()
ds = Dataset.from_dict({"image": [{"bytes": photo, "path": "a.jpg"}], "label": [5]}).cast_column("image", Image())
ds.cast_column("label", ClassLabel(names=["cats", "dogs", "x", "y", "z", "w"])).to_parquet(os.path.join(out, "ok.parquet"))
Dataset.from_dict({"image": [{"bytes": photo, "path": "a.jpg"}], "label": [5]}).cast_column("image", Image()) \
    .to_parquet(os.path.join(out, "plain.parquet"))
import pyarrow as pa, pyarrow.parquet as pq, json
table = pq.read_table(os.path.join(out, "ok.parquet"))
meta = {b"huggingface": json.dumps({"info": {"features": {"label": {"names": ["cats", "dogs"]}}}}).encode()}
pq.write_table(table.replace_schema_metadata(meta), os.path.join(out, "unnamed.parquet"))
"#;

#[test]
fn bad_parquet_files_are_refused_before_any_photo_and_nothing_is_written() {
    let Some(python) = python_with(&["pandas", "pyarrow", "datasets"]) else { return };
    let t = tempfile::tempdir().unwrap();
    run_python(&python, &["-c", BAD, s(t.path()), s(&fixtures().join("tiny_data/train/cats/cat.0.jpg"))]);
    let model = fixtures().join("tiny_convnet.onnx");
    let out = t.path().join("features");
    let cases = [
        ("ints.parquet", "column `image` holds Int64: a path column holds text, an image column bytes"),
        ("nameless.parquet", "no path column (it has name, label)"),
        ("unnamed.parquet", "row 0: label 5 is not a class (the metadata names 2)"),
        ("zstd.parquet", "is compressed with zstd, which imgclf does not read: write it with snappy"),
    ];
    for (file, want) in cases {
        let data = t.path().join(file);
        let o = run(&["extract", "--data", s(&data), "--model", s(&model), "--out", s(&out), "--engine", "tract"]);
        let line = refused(&o);
        assert!(line.contains(file) && line.contains(want), "{file}: {line}");
        assert!(!out.exists(), "{file}: nothing written");
    }
    // class names from the metadata; without metadata, the labels as written
    run_ok(&["verify", "--data", s(&t.path().join("ok.parquet"))]);
    run_ok(&["verify", "--data", s(&t.path().join("plain.parquet"))]);
}
