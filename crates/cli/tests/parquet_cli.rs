//! Parquet on both sides: `imgclf features export` read back by pyarrow, polars and DuckDB
//! equal to h5py's read of the feature file.

use std::path::{Path, PathBuf};

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

fn extract(out: &Path, flags: &[&str]) -> PathBuf {
    let model = fixtures().join("tiny_convnet.onnx");
    let data = fixtures().join("tiny_data");
    let args = ["extract", "--data", s(&data), "--model", s(&model), "--out", s(out), "--engine", "tract"];
    run_ok(&[&args[..], flags].concat());
    out.join("gap_TinyConvNet.h5")
}

#[test]
fn an_export_reads_back_in_pyarrow_polars_and_duckdb_as_h5py_reads_the_file() {
    let Some(python) = python_with(&["h5py", "pyarrow", "polars", "duckdb"]) else { return };
    let t = tempfile::tempdir().unwrap();
    for (store, kind) in [("f32", "float"), ("f16", "halffloat")] {
        let file = extract(&t.path().join(store), &["--store", store]);
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
