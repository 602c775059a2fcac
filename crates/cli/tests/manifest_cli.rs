//! Photos listed in a manifest instead of split folders: pandas writes the list (rows shuffled,
//! as a CSV and as JSON Lines), and every file a stage writes equals what the folders give.

use imgclf_testkit::*;

/// pandas' listing of the photos under `data`: path relative to it, label (none for flat
/// test photos), split; rows shuffled.
const LIST: &str = r#"
import os, sys, pandas as pd
data = sys.argv[1]
rows = []
for split in ("train", "validation", "test"):
    for top, _, files in os.walk(os.path.join(data, split)):
        for f in files:
            rel = os.path.relpath(os.path.join(top, f), data)
            parts = rel.split(os.sep)
            rows.append({"path": "/".join(parts), "label": parts[1] if len(parts) == 3 else None, "split": split})
frame = pd.DataFrame(rows).sample(frac=1, random_state=3)
frame.to_csv(os.path.join(data, "photos.csv"), index=False)
frame.to_json(os.path.join(data, "photos.jsonl"), orient="records", lines=True)
"#;

/// h5py: every dataset of two feature files equal, numbers byte for byte, strings as strings.
const SAME: &str = r#"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
assert sorted(a) == sorted(b), (sorted(a), sorted(b))
for k in a:
    x, y = a[k][()], b[k][()]
    assert x.dtype == y.dtype and x.shape == y.shape, k
    same = list(x) == list(y) if x.dtype == object else x.tobytes() == y.tobytes()
    assert same, k
print(len(a), "datasets equal; train", a["train"].shape)
"#;

#[test]
fn a_manifest_gives_the_features_and_the_head_its_folders_give() {
    let Some(python) = python_with(&["pandas", "h5py"]) else { return };
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    copy_tree(&fixtures().join("tiny_data"), &data);
    run_python(&python, &["-c", LIST, s(&data)]);
    let folders = extract_tiny(&data, &t.path().join("folders"), &[]);
    for manifest in ["photos.csv", "photos.jsonl"] {
        let listed = extract_tiny(&data.join(manifest), &t.path().join(manifest), &[]);
        let said = run_python(&python, &["-c", SAME, s(&folders), s(&listed)]);
        assert!(said.contains("datasets equal"), "{manifest}: {said}");
        let from = |run: &str| t.path().join(run);
        assert_eq!(
            head_weights(&folders, &from("from-folders")),
            head_weights(&listed, &from(&format!("from-{manifest}"))),
            "{manifest}"
        );
        std::fs::remove_dir_all(t.path().join("from-folders")).unwrap();
    }
}

#[test]
fn a_bad_manifest_is_refused_in_one_line_and_nothing_is_written() {
    let t = tempfile::tempdir().unwrap();
    let manifest = t.path().join("photos.csv");
    std::fs::write(&manifest, "path,label\ntrain/cats/1.jpg,cats\ntrain/dogs/2.jpg,dogs,extra\n").unwrap();
    let out = t.path().join("features");
    let model = fixtures().join("tiny_convnet.onnx");
    let o = run(&["extract", "--data", s(&manifest), "--model", s(&model), "--out", s(&out), "--engine", "tract"]);
    let line = refused(&o);
    assert!(line.contains("photos.csv: line 3: 3 fields where the header has 2"), "{line}");
    assert!(!out.exists(), "nothing written");
}
