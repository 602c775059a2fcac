//! Photos in WebDataset tar shards: the `webdataset` package's `ShardWriter` writes the photos
//! of the folders, in their row order, and extraction over the tars gives the folders' features
//! and the same head; broken tars and samples are skipped and named, the other tars go on.

use std::path::{Path, PathBuf};

use imgclf_features::{FeatureSet, partial_dir, partial_status};
use imgclf_testkit::*;

/// webdataset writes the photos of a folder feature file's rows (`<split>_paths`, in order) as
/// shards of 4 samples, `train-%06d.tar`, `val-%06d.tar` and `test-%06d.tar`; a labelled
/// sample's class id is its `.cls`. With `faulty`, train gets a sample with two images and one with none, and the
/// first tar is cut in the middle of its last member (whose name it prints).
const SHARDS: &str = r#"
import os, sys, h5py, webdataset as wds
data, features, out, faulty = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "faulty"
f = h5py.File(features)
os.makedirs(out)
for split, name, label in (("train", "train", "label"), ("validation", "val", "validation_label"), ("test", "test", "")):
    paths = [p.decode() for p in f[f"{split}_paths"][()]]
    labels = f[label][()] if label in f else None
    with wds.ShardWriter(os.path.join(out, f"{name}-%06d.tar"), maxcount=4, verbose=0) as sink:
        for i, rel in enumerate(paths):
            ext = rel.rsplit(".", 1)[1].lower()
            sample = {"__key__": f"{i:04d}", ext: open(os.path.join(data, rel), "rb").read()}
            if labels is not None:
                sample["cls"] = int(labels[i])
            sink.write(sample)
        if faulty and split == "train":
            photo = open(os.path.join(data, paths[0]), "rb").read()
            sink.write({"__key__": "twice", "jpg": photo, "png": photo, "cls": 0})
            sink.write({"__key__": "none", "cls": 1})
if faulty:
    # the first tar loses its end: its last photo is cut in the middle
    import tarfile
    first = os.path.join(out, "train-000000.tar")
    with tarfile.open(first) as tar:
        last = tar.getmembers()[-1]
    os.truncate(first, last.offset_data + last.size // 2)
    print(last.name)
"#;

/// h5py: the datasets of two feature files equal byte for byte, but for the paths (a tar row's
/// identity is `shard.tar/key`, a file's its path); given a list, only the datasets whose name
/// starts with one of its words.
const SAME: &str = r#"
import sys, h5py
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
only = sys.argv[3].split(",") if len(sys.argv) > 3 else None
keys = [k for k in a if not k.endswith("_paths") and (only is None or k.split("_")[0] in only)]
for k in keys:
    x, y = a[k][()], b[k][()]
    assert x.dtype == y.dtype and x.shape == y.shape, (k, x.shape, y.shape)
    assert x.tobytes() == y.tobytes(), k
print(len(keys), "datasets equal; tar rows", [p.decode() for p in b["train_paths"][:2]])
"#;

/// `imgclf extract` with the tiny model, which must succeed; what it said (stdout, stderr).
fn extract(data: &Path, out: &Path) -> String {
    let model = fixtures().join("tiny_convnet.onnx");
    let o = run(&["extract", "--data", s(data), "--model", s(&model), "--out", s(out), "--engine", "tract"]);
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "extract {} failed:\n{said}", data.display());
    said
}

/// The tiny fixture's folder features and webdataset's shards of the same rows (`kind`:
/// `whole` or `faulty`, see [`SHARDS`]) in a scratch folder.
struct Tiny {
    t: tempfile::TempDir,
    python: PathBuf,
    folders: PathBuf,
    shards: PathBuf,
    /// What the shard writer printed (the member it cut, when faulty).
    printed: String,
}

fn tiny_shards(kind: &str) -> Option<Tiny> {
    let python = python_with(&["webdataset", "h5py"])?;
    let t = tempfile::tempdir().unwrap();
    let data = fixtures().join("tiny_data");
    extract(&data, &t.path().join("folders"));
    let folders = t.path().join("folders/gap_TinyConvNet.h5");
    let shards = t.path().join("shards");
    let printed = run_python(&python, &["-c", SHARDS, s(&data), s(&folders), s(&shards), kind]);
    Some(Tiny { t, python, folders, shards, printed })
}

#[test]
fn tar_shards_give_the_features_and_the_head_their_folders_give() {
    let Some(Tiny { t, python, folders, shards, .. }) = tiny_shards("whole") else { return };
    assert!(shards.join("train-000002.tar").is_file(), "12 train photos in shards of 4");

    let said = extract(&shards, &t.path().join("tars"));
    assert!(said.contains("2 classes"), "class ids from the .cls members: {said}");
    let tars = t.path().join("tars/gap_TinyConvNet.h5");
    let said = run_python(&python, &["-c", SAME, s(&folders), s(&tars)]);
    assert!(said.contains("datasets equal; tar rows ['train-000000.tar/0000', 'train-000000.tar/0001']"), "{said}");
    assert_eq!(
        head_weights(&folders, &t.path().join("from-folders")),
        head_weights(&tars, &t.path().join("from-tars"))
    );
    // the report finds the photos in the tars (the page's thumbnails are data: URIs)
    run_ok(&["report", s(&t.path().join("from-tars")), "--data", s(&shards)]);
    let html = std::fs::read_to_string(t.path().join("from-tars/report.html")).unwrap();
    assert!(html.matches("data:image/jpeg;base64,").count() >= 2, "thumbnails of the validation photos");
    // a photo that cannot be shown is a `div.missing` ("photo missing", "photo unreadable: ...");
    // the class activation maps are drawn from the tars' photos too
    assert!(!html.contains("class=\"missing\"") && !html.contains("no maps"), "report of a tar-fed run");

    // predict and cam take a tar as they take photo files: the same probabilities as the files
    let from_tars = t.path().join("from-tars");
    let tar = shards.join("val-000000.tar");
    let validation = &FeatureSet::read(&folders).unwrap().splits[1];
    assert_eq!(validation.name, "validation");
    assert!(validation.paths.len() <= 4, "the validation photos are all in the first tar");
    let files: Vec<PathBuf> = validation.paths.iter().map(|p| fixtures().join("tiny_data").join(p)).collect();
    let probabilities = |said: String| -> Vec<String> {
        said.lines().map(|l| l.split_once("  ").expect("path, then classes").1.to_string()).collect()
    };
    let by_files =
        run_ok(&[&["predict", "--run", s(&from_tars)][..], &files.iter().map(|f| s(f)).collect::<Vec<_>>()].concat());
    let by_tar = run_ok(&["predict", "--run", s(&from_tars), s(&tar)]);
    assert!(by_tar.starts_with(&format!("{}/0000.", tar.display())), "a tar photo is named by its member: {by_tar}");
    assert_eq!(probabilities(by_tar), probabilities(by_files));
    let grid = t.path().join("cam.png");
    run_ok(&["cam", "--run", s(&from_tars), "--images", s(&tar), "--grid", "2x2", "--out", s(&grid)]);
    assert_eq!(image::image_dimensions(&grid).unwrap().0, 2 * 256 + 3 * 8, "two maps a row, three 8-pixel gaps");

    // WebDataset's brace notation names the train shards alone
    let braces = format!("{}/train-{{000000..000002}}.tar", shards.display());
    extract(Path::new(&braces), &t.path().join("braces"));
    let said =
        run_python(&python, &["-c", SAME, s(&folders), s(&t.path().join("braces/gap_TinyConvNet.h5")), "train,label"]);
    assert!(said.contains("3 datasets equal"), "{said}");
}

#[test]
fn a_cut_tar_and_odd_samples_are_skipped_and_named_and_the_other_tars_go_on() {
    let Some(Tiny { t, python, shards, printed, .. }) = tiny_shards("faulty") else { return };
    let cut = printed.trim();

    let stderr = extract(&shards, &t.path().join("tars"));
    let said = format!("train-000000.tar/{cut}: cannot decode image: the tar is cut short (it ends inside `{cut}`)");
    assert!(stderr.contains(&said), "{said}\n{stderr}");
    assert!(
        stderr.contains("train-000003.tar/twice.jpg: cannot decode image: a sample with 2 image members; keep one"),
        "{stderr}"
    );
    assert!(
        stderr.contains("train-000003.tar/none: cannot decode image: a sample without an image member"),
        "{stderr}"
    );
    // the cut tar's 3 whole photos and the other tars' rows are there: 12 train photos, one cut
    let rows = run_python(
        &python,
        &[
            "-c",
            "import sys, h5py; print(h5py.File(sys.argv[1])['train'].shape[0])",
            s(&t.path().join("tars/gap_TinyConvNet.h5")),
        ],
    );
    assert_eq!(rows.trim(), "11", "{stderr}");
}

#[test]
fn editing_one_tar_recomputes_and_an_unchanged_set_is_a_cache_hit() {
    let Some(Tiny { t, shards, .. }) = tiny_shards("whole") else { return };
    let out = t.path().join("tars");
    extract(&shards, &out);
    let again = extract(&shards, &out);
    assert!(again.contains("reused"), "{again}");
    let tar = shards.join("test-000000.tar");
    let bytes = std::fs::read(&tar).unwrap();
    std::fs::write(&tar, bytes).unwrap();
    let edited = extract(&shards, &out);
    assert!(!edited.contains("reused"), "a rewritten tar is new: {edited}");
}

/// webdataset writes every photo of a data root as `<split>-%06d.tar` shards of 200 samples,
/// keyed by their order in each class folder, labelled by class id (`.cls`).
const FOLDER_TO_SHARDS: &str = r#"
import os, sys, webdataset as wds
data, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
classes = sorted(os.listdir(os.path.join(data, "train")))
for split in ("train", "validation"):
    with wds.ShardWriter(os.path.join(out, f"{split}-%06d.tar"), maxcount=200, verbose=0) as sink:
        for c, name in enumerate(classes):
            folder = os.path.join(data, split, name)
            for i, f in enumerate(sorted(os.listdir(folder))):
                sink.write({"__key__": f"{name}/{i:05d}", "jpg": open(os.path.join(folder, f), "rb").read(), "cls": c})
"#;

/// Over tars as over folders: two shards merge into one process's file, and an extract killed
/// after two checkpoints continues from them to the file an uninterrupted run writes.
#[test]
fn shards_over_tars_merge_to_one_process_and_a_killed_run_resumes() {
    let (Some(shared), Some(python)) = (shared(), python_with(&["webdataset"])) else { return };
    let t = tempfile::tempdir().unwrap();
    let shards = t.path().join("shards");
    run_python(&python, &["-c", FOLDER_TO_SHARDS, s(&shared.join("data/cats_dogs")), s(&shards)]);
    let model = fixtures().join("tiny_convnet.onnx");
    let flags = ["--batch", "16", "--threads", "2"];
    let extract = |out: &Path, extra: &[&str]| spawn_extract(&shards, &model, out, &[&flags[..], extra].concat());
    let finish = |child: std::process::Child| {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let whole = t.path().join("whole");
    finish(extract(&whole, &[]));
    let whole = FeatureSet::read(&whole.join("gap_TinyConvNet.h5")).unwrap();

    let parts = t.path().join("parts");
    finish(extract(&parts, &["--shard", "0/2"]));
    finish(extract(&parts, &["--shard", "1/2"]));
    // each shard reads whole tars: no tar has rows in both
    let tars_of = |k: usize| -> std::collections::BTreeSet<String> {
        let part = FeatureSet::read(&parts.join(format!("gap_TinyConvNet.shard-{k}-of-2.h5"))).unwrap();
        part.splits.iter().flat_map(|s| s.paths.iter().map(|p| p.split_once('/').unwrap().0.to_string())).collect()
    };
    let (first, second) = (tars_of(0), tars_of(1));
    assert!(first.is_disjoint(&second) && !first.is_empty() && !second.is_empty(), "{first:?} {second:?}");
    run_ok(&["features", "merge", s(&parts)]);
    assert_eq!(FeatureSet::read(&parts.join("gap_TinyConvNet.h5")).unwrap(), whole, "merged shards");

    let out = t.path().join("killed");
    let file = out.join("gap_TinyConvNet.h5");
    let child = extract(&out, &["--checkpoint-batches", "4"]);
    let second = partial_dir(&file).join("part-00001.json");
    let waited = std::time::Instant::now();
    while !second.exists() && waited.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::process::Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
    assert!(!child.wait_with_output().unwrap().status.success(), "killed before the end");
    let kept = partial_status(&file).expect("the parts folder survives a SIGKILL").images;
    let stdout = finish(extract(&out, &["--checkpoint-batches", "4"]));
    assert!(stdout.contains(&format!("{kept} images done by an earlier run")), "{stdout}");
    assert_eq!(FeatureSet::read(&file).unwrap(), whole, "the same file as an uninterrupted run");
}
