//! Sharded extraction and `merge` on the fixture dataset: the shards of any count join into
//! the unsharded file, and every kind of wrong shard is refused, named, before anything is
//! written.

use std::fs;
use std::path::{Path, PathBuf};

use imgclf_dataset::Dataset;
use imgclf_features::prelude::*;
use imgclf_features::{Shard, merge, shard_status};
use imgclf_testkit::*;

/// The fixture dataset and model copied into a scratch folder the test may change.
fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    copy_dir(&fixtures().join("tiny_data"), &data);
    for f in ["tiny_convnet.onnx", "tiny_convnet.json"] {
        fs::copy(fixtures().join(f), t.path().join(f)).unwrap();
    }
    let model = t.path().join("tiny_convnet.onnx");
    (t, data, model)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn options(shard: Option<Shard>, batch: usize) -> ExtractOptions {
    ExtractOptions { batch, decode_threads: 1, shard, ..ExtractOptions::new(EngineConfig::cpu(EngineKind::Tract, 1)) }
}

fn extract_shard(data: &Path, model: &Path, out: &Path, shard: Option<Shard>, batch: usize) -> ExtractReport {
    let dataset = Dataset::open(data).unwrap();
    extract(&dataset, &Backbone::open(model).unwrap(), out, &options(shard, batch), &mut |_| {}).unwrap()
}

fn shard(index: usize, count: usize) -> Option<Shard> {
    Some(Shard { index, count })
}

const NAME: &str = "TinyConvNet";

/// Shards of 1, 2, 3 and 7 parts (7 is more parts than the small splits have batches)
/// merge into the unsharded file: rows, labels, paths, checksum and fingerprint, so that an
/// unsharded extract afterwards is a cache hit.
#[test]
fn shards_of_any_count_merge_into_the_unsharded_file() {
    let (t, data, model) = scratch();
    let whole_dir = t.path().join("whole");
    extract_shard(&data, &model, &whole_dir, None, 2);
    let whole = FeatureSet::read(&whole_dir.join("gap_TinyConvNet.h5")).unwrap();
    for n in [1, 2, 3, 7] {
        let out = t.path().join(format!("n{n}"));
        for k in 0..n {
            let report = extract_shard(&data, &model, &out, shard(k, n), 2);
            assert_eq!(report.output, out.join(format!("gap_TinyConvNet.shard-{k}-of-{n}.h5")));
        }
        let report = merge(&out, NAME, None, false).unwrap();
        assert!(!report.reused);
        let merged = FeatureSet::read(&report.output).unwrap();
        assert_eq!(merged, FeatureSet { model: merged.model.clone(), ..whole.clone() }, "{n} shards");
        assert_eq!(merged.checksum(), whole.checksum());
        let again = extract_shard(&data, &model, &out, None, 2);
        assert!(again.reused, "{n} shards: an unsharded extract reuses the merged file");
        assert!(merge(&out, NAME, None, false).unwrap().reused, "merging again keeps the file");
    }
}

/// A rerun of every shard recomputes only those whose files are missing.
#[test]
fn finished_shards_are_cache_hits_and_status_shows_the_rest() {
    let (t, data, model) = scratch();
    let out = t.path().join("f");
    extract_shard(&data, &model, &out, shard(0, 3), 2);
    extract_shard(&data, &model, &out, shard(2, 3), 2);
    // a killed writer leaves its temporary file behind
    fs::write(out.join(".gap_TinyConvNet.shard-1-of-3.h5.tmp-4194999"), b"partial").unwrap();
    let status = &shard_status(&out).unwrap()[0];
    assert_eq!((status.done.clone(), status.writing.clone(), status.merged), (vec![0, 2], vec![1], false));
    // so does a run stopped after a checkpoint: its parts folder
    fs::remove_file(out.join(".gap_TinyConvNet.shard-1-of-3.h5.tmp-4194999")).unwrap();
    fs::create_dir(out.join("gap_TinyConvNet.shard-1-of-3.h5.partial")).unwrap();
    assert_eq!(shard_status(&out).unwrap()[0].writing, [1]);
    let reruns: Vec<bool> = (0..3).map(|k| extract_shard(&data, &model, &out, shard(k, 3), 2).reused).collect();
    assert_eq!(reruns, [true, false, true]);
    merge(&out, NAME, None, false).unwrap();
    let status = &shard_status(&out).unwrap()[0];
    assert_eq!((status.done.len(), status.merged), (3, true));
}

/// Three shards of a run, for the refusal tests.
fn three_shards() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let (t, data, model) = scratch();
    let out = t.path().join("f");
    for k in 0..3 {
        extract_shard(&data, &model, &out, shard(k, 3), 2);
    }
    (t, data, model, out)
}

fn shard_path(out: &Path, k: usize, n: usize) -> PathBuf {
    out.join(format!("gap_TinyConvNet.shard-{k}-of-{n}.h5"))
}

/// Runs `merge` and checks it fails naming `file` and saying `reason`, with no merged file.
fn refused(out: &Path, count: Option<usize>, file: &str, reason: &str) {
    let err = merge(out, NAME, count, false).expect_err("must be refused").to_string();
    assert!(err.contains(file) && err.contains(reason), "expected `{file}` and `{reason}` in: {err}");
    assert!(!out.join("gap_TinyConvNet.h5").exists(), "nothing written: {err}");
}

#[test]
fn a_missing_or_damaged_shard_is_refused() {
    let (_t, _, _, out) = three_shards();
    let middle = shard_path(&out, 1, 3);
    let bytes = fs::read(&middle).unwrap();
    fs::remove_file(&middle).unwrap();
    refused(&out, None, "gap_TinyConvNet.shard-1-of-3.h5", "1 of 3 shards missing");
    // one changed bit in a row: the checksum no longer matches
    fs::write(&middle, &bytes).unwrap();
    let set = FeatureSet::read(&middle).unwrap();
    let row: Vec<u8> = set.splits[0].features.row(0).iter().flat_map(|v| v.to_le_bytes()).collect();
    let at = bytes.windows(row.len()).position(|w| w == row.as_slice()).expect("the rows are stored raw");
    let mut damaged = bytes.clone();
    damaged[at + 2] ^= 0x04;
    fs::write(&middle, &damaged).unwrap();
    refused(&out, None, "gap_TinyConvNet.shard-1-of-3.h5", "damaged");
}

#[test]
fn a_shard_of_another_model_is_refused() {
    // the same graph with one more (ignored) protobuf field: another sha256
    let (_t, data, model, out) = three_shards();
    let mut onnx = fs::read(&model).unwrap();
    onnx.extend_from_slice(b"\x32\x01x");
    fs::write(&model, onnx).unwrap();
    assert!(!extract_shard(&data, &model, &out, shard(1, 3), 2).reused, "the model changed");
    refused(&out, None, "gap_TinyConvNet.shard-1-of-3.h5", "another model");
}

#[test]
fn a_shard_of_another_spec_is_refused() {
    let (_t, data, model, out) = three_shards();
    let spec_path = model.with_extension("json");
    let spec = fs::read_to_string(&spec_path).unwrap();
    fs::write(&spec_path, spec.replace("\"bilinear\"", "\"nearest\"")).unwrap();
    assert!(!extract_shard(&data, &model, &out, shard(2, 3), 2).reused, "the spec changed");
    refused(&out, None, "gap_TinyConvNet.shard-2-of-3.h5", "another spec");
}

#[test]
fn a_shard_of_another_class_list_is_refused() {
    let (_t, data, model, out) = three_shards();
    for split in ["train", "validation"] {
        fs::rename(data.join(split).join("dogs"), data.join(split).join("puppies")).unwrap();
    }
    assert!(!extract_shard(&data, &model, &out, shard(1, 3), 2).reused, "the classes changed");
    refused(&out, None, "gap_TinyConvNet.shard-1-of-3.h5", "another class list");
}

#[test]
fn a_shard_of_another_batch_size_is_refused() {
    let (_t, data, model, out) = three_shards();
    fs::remove_file(shard_path(&out, 1, 3)).unwrap();
    extract_shard(&data, &model, &out, shard(1, 3), 3);
    refused(&out, None, "gap_TinyConvNet.shard-1-of-3.h5", "another batch size");
}

/// An image changed after the shards ran: the shard that holds it is recomputed, and until
/// the others have been rerun (cache hits that record the new dataset) the merge refuses.
#[test]
fn a_changed_image_needs_every_shard_rerun_and_only_its_own_is_recomputed() {
    let (t, data, model, out) = three_shards();
    let image = data.join("test/10.jpg"); // the last split's last image: shard 2's part
    let later = fs::metadata(&image).unwrap().modified().unwrap() + std::time::Duration::from_secs(5);
    fs::File::options().write(true).open(&image).unwrap().set_modified(later).unwrap();
    assert!(!extract_shard(&data, &model, &out, shard(2, 3), 2).reused);
    refused(&out, None, "gap_TinyConvNet.shard-2-of-3.h5", "another dataset");
    let reruns: Vec<bool> = (0..3).map(|k| extract_shard(&data, &model, &out, shard(k, 3), 2).reused).collect();
    assert_eq!(reruns, [true, true, true]);
    let merged = FeatureSet::read(&merge(&out, NAME, None, false).unwrap().output).unwrap();
    let fresh = FeatureSet::read(&extract_shard(&data, &model, &t.path().join("whole"), None, 2).output).unwrap();
    assert_eq!(merged.fingerprint, fresh.fingerprint);
    assert_eq!(merged.splits, fresh.splits);
}

#[test]
fn mixed_shard_counts_and_renamed_shards_are_refused() {
    let (_t, data, model, out) = three_shards();
    extract_shard(&data, &model, &out, shard(0, 2), 2);
    refused(&out, None, "gap_TinyConvNet.h5", "runs with 2 and 3 parts are here: say which count (`shards`)");
    // choosing the count merges those shards
    merge(&out, NAME, Some(3), false).unwrap();
    fs::remove_file(out.join("gap_TinyConvNet.h5")).unwrap();
    fs::rename(shard_path(&out, 0, 2), shard_path(&out, 1, 2)).unwrap();
    fs::copy(shard_path(&out, 0, 3), shard_path(&out, 0, 2)).unwrap();
    refused(&out, Some(2), "gap_TinyConvNet.shard-0-of-2.h5", "its name says shard 0/2, its contents 0/3");
}

/// Shards whose recorded parts overlap, or that hold the same image twice, are refused.
#[test]
fn overlapping_or_duplicated_rows_are_refused() {
    let (_t, _, _, out) = three_shards();
    let path = shard_path(&out, 1, 3);
    let original = FeatureSet::read(&path).unwrap();

    let mut overlapping = original.clone();
    let info = overlapping.shard.as_mut().unwrap();
    info.slices[0].start -= 2;
    overlapping.write(&path).unwrap();
    refused(&out, None, "gap_TinyConvNet.shard-1-of-3.h5", "overlap or leave a gap");

    let mut duplicated = original.clone();
    let first = FeatureSet::read(&shard_path(&out, 0, 3)).unwrap();
    duplicated.splits[0].paths[0] = first.splits[0].paths[0].clone();
    duplicated.write(&path).unwrap();
    refused(&out, None, "gap_TinyConvNet.shard-0-of-3.h5", "duplicated rows");
}
