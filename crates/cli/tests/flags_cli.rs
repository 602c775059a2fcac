//! Flags that cannot mislead: every numeric flag of every command refuses NaN, infinities,
//! negatives, zero where it means nothing, huge values and garbage with one line naming the
//! flag, the value and the range, exit 1 and nothing written; then each mistake a hostile
//! review found (absurd shard counts, a failed command leaving a run, a boolean meaning its
//! opposite, Keras' rescale, two copies of a dataset, a flag --resume ignored, shard sets that
//! status called done) as a regression test.

use std::path::Path;
use std::process::Command;

use imgclf_testkit::fixtures;
use imgclf_testkit::{copy_tree, imgclf, ok, refused, s};

/// Every path under `dir`, hidden ones included, relative and sorted.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            out.push(entry.path().strip_prefix(root).unwrap().display().to_string());
            if entry.path().is_dir() {
                walk(root, &entry.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The values every numeric flag is tried with.
const BAD: [&str; 8] = ["nan", "inf", "-inf", "-1", "0", "1e30", "abc", ""];

/// A numeric flag and the values of [`BAD`] it accepts (zero, for most that allow it; -1 for cval).
type Flag = (&'static str, &'static [&'static str]);

/// Each command (with its other required flags) and its numeric flags.
const FLAGS: &[(&str, &[Flag])] = &[
    (
        "train-head --features f.h5 --out run",
        &[
            ("hidden", &[]),
            ("dropout", &["0"]),
            ("l2", &["0"]),
            ("lr", &[]),
            ("decay", &["0"]),
            ("momentum", &["0"]),
            ("epochs", &[]),
            ("batch", &[]),
            ("val-split", &[]),
            ("patience", &[]),
            ("seed", &["0"]),
            ("c", &[]),
            ("tol", &[]),
            ("max-iter", &[]),
        ],
    ),
    (
        "train-cnn --arch small --data d --out run",
        &[
            ("epochs", &[]),
            ("batch", &[]),
            ("lr", &[]),
            ("decay", &["0"]),
            ("momentum", &["0"]),
            ("dropout", &["0"]),
            ("label-smoothing", &["0"]),
            ("seed", &["0"]),
        ],
    ),
    (
        "fine-tune --run r --data d --out o",
        &[("epochs", &[]), ("lr", &[]), ("momentum", &["0"]), ("batch", &[]), ("seed", &["0"])],
    ),
    (
        "extract --data d --model m.onnx --out f",
        &[
            ("batch", &[]),
            ("threads", &[]),
            ("decode-threads", &[]),
            ("checkpoint-secs", &[]),
            ("checkpoint-batches", &[]),
        ],
    ),
    ("extract --data d --model m.onnx --out f --shard auto", &[("shards", &[])]),
    ("features merge f", &[("shards", &[])]),
    ("evaluate --run r", &[("top", &["0"])]),
    ("predict --run r --csv x.csv", &[("top", &[]), ("batch", &[]), ("clip", &["0"])]),
    ("cam --run r --images i --out o.png", &[("sample", &[]), ("width", &[]), ("seed", &["0"])]),
    ("report r", &[("top", &["0"]), ("examples", &["0"])]),
    ("verify --data d", &[("threads", &[])]),
    (
        "augment preview --image i.jpg --out p",
        &[
            ("n", &[]),
            ("columns", &[]),
            ("rotation", &["0"]),
            ("width-shift", &["0"]),
            ("height-shift", &["0"]),
            ("shear", &["0"]),
            ("cval", &["0", "-1"]),
            ("channel-shift", &["0"]),
            ("seed", &["0"]),
        ],
    ),
];

#[test]
fn every_numeric_flag_refuses_what_is_not_a_value_for_it() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("keep.txt"), b"x").unwrap();
    let before = listing(d);
    let mut tried = 0;
    for (command, flags) in FLAGS {
        for (flag, accepted) in *flags {
            for value in BAD.iter().filter(|v| !accepted.contains(v)) {
                // `--lr=-1` and `--lr -1` alike
                let flag_arg = format!("--{flag}");
                let joined = format!("--{flag}={value}");
                let args: Vec<&str> = match tried % 2 {
                    0 => command.split(' ').chain([joined.as_str()]).collect(),
                    _ => command.split(' ').chain([flag_arg.as_str(), value]).collect(),
                };
                let line = refused(&imgclf(d, &args));
                assert!(line.contains(&format!("'--{flag} ")), "names the flag: {args:?}: {line}");
                assert!(line.contains(&format!("'{value}'")), "names the value: {args:?}: {line}");
                assert!(line.contains("must be a") && line.contains(" in "), "names the range: {args:?}: {line}");
                assert_eq!(listing(d), before, "nothing written: {args:?}");
                tried += 1;
            }
        }
    }
    assert!(tried > 300, "{tried} refusals tried");
}

/// Extracts `data` through `model` into `out` with the tract engine, in batches of 4.
fn extract(dir: &Path, data: &Path, model: &Path, out: &str, extra: &[&str]) -> String {
    let args = ["extract", "--engine", "tract", "--batch", "4", "--data", s(data), "--model", s(model), "--out", out];
    ok(dir, &[&args[..], extra].concat())
}

#[test]
fn absurd_shard_counts_are_refused_in_one_line_before_anything_is_written() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (data, model) = (fixtures().join("tiny_data"), fixtures().join("tiny_convnet.onnx"));
    let base = ["extract", "--engine", "tract", "--batch", "4", "--data", s(&data), "--model", s(&model)];
    let line = refused(&imgclf(d, &[&base[..], &["--out", "f", "--shard", "0/4294967296"]].concat()));
    assert!(line.contains("--shard") && line.contains("[1, 10000]"), "{line}");
    // 13 train images in batches of 4: 4 parts at most
    let line = refused(&imgclf(d, &[&base[..], &["--out", "f", "--shard", "0/5"]].concat()));
    assert!(line.contains("at most 4 parts") && line.contains("`train`"), "{line}");
    assert!(listing(d).is_empty(), "nothing written: {:?}", listing(d));
    assert!(extract(d, &data, &model, "f", &["--shard", "3/4"]).contains("shard-3-of-4"));

    // a stray file named as a shard of an absurd count: one line, in a 2 GB address space
    std::fs::create_dir(d.join("stray")).unwrap();
    std::fs::write(d.join("stray/gap_X.shard-0-of-4000000000.h5"), b"not hdf5").unwrap();
    for command in ["status", "merge"] {
        let script = format!("ulimit -v 2000000; exec \"$0\" features {command} stray");
        let o = Command::new("bash").current_dir(d).args(["-c", &script, env!("CARGO_BIN_EXE_imgclf")]).output();
        let line = refused(&o.unwrap());
        assert!(
            line.contains("gap_X.shard-0-of-4000000000.h5") && line.contains("not a file extract writes"),
            "{line}"
        );
    }
    // a real count with thousands of parts missing: still one short line
    std::fs::remove_file(d.join("stray/gap_X.shard-0-of-4000000000.h5")).unwrap();
    std::fs::copy(d.join("f/gap_TinyConvNet.shard-3-of-4.h5"), d.join("stray/gap_X.shard-0-of-10000.h5")).unwrap();
    let line = refused(&imgclf(d, &["features", "merge", "stray"]));
    assert!(line.contains("9999 of 10000 shards missing") && line.contains("and 9994 more"), "{line}");
    assert!(line.len() < 600, "{} characters: {line}", line.len());
}

#[test]
fn a_command_that_fails_leaves_no_run_behind() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (data, model) = (fixtures().join("tiny_data"), fixtures().join("tiny_convnet.onnx"));
    extract(d, &data, &model, "f", &[]);
    ok(d, &["train-head", "--features", "f/gap_TinyConvNet.h5", "--epochs", "1", "--out", "head"]);
    let before = listing(d);
    let fine_tune = ["fine-tune", "--run", "head", "--data", s(&data), "--out", "ft", "--epochs", "1"];
    for device in [&["--device", "cuda"][..], &["--engine", "tract", "--device", "cuda"], &["--precision", "tf32"]] {
        for _ in 0..2 {
            // twice: a rerun meets the same error, not "already exists"
            let line = refused(&imgclf(d, &[&fine_tune[..], device].concat()));
            assert!(!line.contains("already exists"), "{line}");
            assert_eq!(listing(d), before, "{device:?}: no run folder and no staging folder");
        }
    }
    // train-cnn on data whose train split has no image: nothing either
    std::fs::create_dir_all(d.join("empty/train/a")).unwrap();
    std::fs::create_dir_all(d.join("empty/train/b")).unwrap();
    let before = listing(d);
    refused(&imgclf(d, &["train-cnn", "--arch", "lenet", "--data", "empty", "--out", "cnn"]));
    assert_eq!(listing(d), before);
    // ... nor on photos none of which can be read: found only once they are loaded, which is
    // now before the run folder starts (it used to be left behind, holding run.json)
    for class in ["a", "b"] {
        std::fs::create_dir_all(d.join(format!("junk/train/{class}"))).unwrap();
        std::fs::write(d.join(format!("junk/train/{class}/x.jpg")), b"not a photo").unwrap();
    }
    let before = listing(d);
    let o = imgclf(d, &["train-cnn", "--arch", "lenet", "--data", "junk", "--out", "cnn", "--epochs", "1"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no training samples could be read"), "{stderr}");
    assert_eq!(listing(d), before);
}

#[test]
fn flips_mean_what_they_say_and_rescale_is_refused_where_it_is_built_in() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let cat = fixtures().join("tiny_data/train/cats/cat.0.jpg");
    let preview = |out: &str, spec: &str| {
        ok(d, &["augment", "preview", "--image", s(&cat), "--out", out, "--n", "8", "--seed", "1", "--augment", spec]);
        (0..8).map(|i| std::fs::read(d.join(out).join(format!("aug_{i}.jpg"))).unwrap()).collect::<Vec<_>>()
    };
    let none = preview("none", "none");
    for spelling in ["hflip=0", "hflip=false", "hflip=no", "hflip=off", "vflip=0"] {
        assert_eq!(preview(spelling, spelling), none, "{spelling} flips nothing");
    }
    let flipped = preview("flip", "hflip=1");
    assert!(flipped != none && flipped == preview("flip-yes", "hflip=yes"), "hflip=1 is hflip=yes");
    let line = refused(&imgclf(d, &["augment", "preview", "--image", s(&cat), "--out", "x", "--augment", "hflip=2"]));
    assert!(line.contains("`2` is not yes or no"), "{line}");

    let data = fixtures().join("tiny_data");
    let before = listing(d);
    for (spec, why) in [
        ("shear=0.2,rescale=1/255", "already applies, in training and scoring alike"),
        ("rescale=0", "rescale: must be a number in (0, 1000000]"),
    ] {
        let train = ["train-cnn", "--arch", "lenet", "--data", s(&data), "--out", "cnn", "--augment", spec];
        let line = refused(&imgclf(d, &train));
        assert!(line.contains("--augment") && line.contains(why), "{spec}: {line}");
    }
    assert_eq!(listing(d), before);
}

#[test]
fn resume_refuses_every_flag_it_cannot_honour() {
    let t = tempfile::tempdir().unwrap();
    for flag in [&["--interpolation", "bicubic"][..], &["--lr", "0.1"], &["--augment", "none"], &["--seed", "3"]] {
        let line = refused(&imgclf(t.path(), &[&["train-cnn", "--out", "run", "--resume"][..], flag].concat()));
        assert!(line.contains("cannot be used with") && line.contains(flag[0]), "{line}");
    }
}

/// Two copies of the fixture photos, `a` and `b`, with the same file names; in `b` one photo
/// (`train/cats/cat.0.jpg`) is edited.
fn two_copies(dir: &Path) {
    copy_tree(&fixtures().join("tiny_data"), &dir.join("a"));
    copy_tree(&fixtures().join("tiny_data"), &dir.join("b"));
    std::fs::copy(dir.join("b/train/cats/cat.1.jpg"), dir.join("b/train/cats/cat.0.jpg")).unwrap();
}

#[test]
fn feature_files_of_two_copies_of_a_dataset_are_not_joined() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (model, other) = (fixtures().join("tiny_convnet.onnx"), imgclf_testkit::second_model(&fixtures(), d));
    two_copies(d);
    extract(d, &d.join("a"), &model, "fa", &[]);
    extract(d, &d.join("a"), &other, "fa", &[]);
    extract(d, &d.join("b"), &other, "fb", &[]);
    // the same photos through two backbones join
    ok(d, &["train-head", "--features", "fa/gap_TinyConvNet.h5", "fa/gap_Other.h5", "--epochs", "1", "--out", "ok"]);
    let before = listing(d);
    let line = refused(&imgclf(
        d,
        &["train-head", "--features", "fa/gap_TinyConvNet.h5", "fb/gap_Other.h5", "--epochs", "1", "--out", "bad"],
    ));
    assert!(line.contains("train/cats/cat.0.jpg") && line.contains("different photo"), "{line}");
    assert!(line.contains("fa/gap_TinyConvNet.h5") && line.contains("fb/gap_Other.h5"), "{line}");
    assert_eq!(listing(d), before);
}

#[test]
fn status_fails_where_merge_would_and_merge_keeps_a_file_it_did_not_make() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let model = fixtures().join("tiny_convnet.onnx");
    two_copies(d);
    // two shards of two different datasets: both done, but not one set
    extract(d, &d.join("a"), &model, "mixed", &["--shard", "0/2"]);
    extract(d, &d.join("b"), &model, "mixed", &["--shard", "1/2"]);
    let o = imgclf(d, &["features", "status", "mixed"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("done 0,1") && stdout.contains("merge would refuse them: "), "{stdout}");
    assert!(refused(&o).contains("merge would refuse"));
    assert!(refused(&imgclf(d, &["features", "merge", "mixed"])).contains("shards of different runs"));

    // shards of `a` beside a fresher unsharded extract of `b`: kept unless --force
    extract(d, &d.join("a"), &model, "f", &["--shard", "0/2"]);
    extract(d, &d.join("a"), &model, "f", &["--shard", "1/2"]);
    extract(d, &d.join("b"), &model, "f", &[]);
    let theirs = std::fs::read(d.join("f/gap_TinyConvNet.h5")).unwrap();
    let line = refused(&imgclf(d, &["features", "merge", "f"]));
    assert!(line.contains("is not these shards merged") && line.contains("--force"), "{line}");
    assert_eq!(std::fs::read(d.join("f/gap_TinyConvNet.h5")).unwrap(), theirs);
    assert!(ok(d, &["features", "merge", "f", "--force"]).contains("2 shards merged"));
    assert!(ok(d, &["features", "status", "f"]).contains("| merged"));
    assert!(ok(d, &["features", "merge", "f"]).contains("already merged, kept"));
}
