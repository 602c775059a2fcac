//! A hostile week of use, one test per class of what it broke (issue 34), each from the
//! user's side: the real binary on the fixture photos (the shared cats_dogs where a run must
//! last long enough to be raced or killed). Where a command is refused, every file it did not
//! create is left exactly as it was.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use imgclf_features::{FeatureReader, FeatureSet, Storage, partial_dir};
use imgclf_testkit::*;
use imgclf_testkit::{fixtures, shared};

/// Extracts `data` through the tiny model (or `model`) into `out` with tract, in batches of 4.
fn extract(dir: &Path, data: &Path, model: &Path, out: &str, extra: &[&str]) -> String {
    let args = ["extract", "--engine", "tract", "--batch", "4", "--data", s(data), "--model", s(model), "--out", out];
    ok(dir, &[&args[..], extra].concat())
}

fn tiny() -> (PathBuf, PathBuf) {
    (fixtures().join("tiny_data"), fixtures().join("tiny_convnet.onnx"))
}

/// Tiny features in `f/` and a logistic head on them in `run/`.
fn trained(d: &Path) {
    let (data, model) = tiny();
    extract(d, &data, &model, "f", &[]);
    ok(d, &["train-head", "--features", "f/gap_TinyConvNet.h5", "--epochs", "2", "--out", "run"]);
}

// 1. The storage is part of every identity that decides reuse, and merge compares it.
#[test]
fn merged_f16_shards_are_no_cache_hit_for_f32_and_mixed_storage_does_not_merge() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (data, model) = tiny();
    for k in 0..2 {
        extract(d, &data, &model, "f", &["--store", "f16", "--shard", &format!("{k}/2")]);
    }
    ok(d, &["features", "merge", "f"]);
    let file = d.join("f/gap_TinyConvNet.h5");
    assert_eq!(FeatureReader::open(&file).unwrap().storage, Storage::F16);
    // an f16 extract of the same data reuses the merged file ...
    assert!(extract(d, &data, &model, "f", &["--store", "f16"]).contains("reused"));
    // ... an f32 one does not, and writes float32 rows
    let out = extract(d, &data, &model, "f", &[]);
    assert!(!out.contains("reused"), "{out}");
    assert_eq!(FeatureReader::open(&file).unwrap().storage, Storage::F32);
    assert!(extract(d, &data, &model, "f", &[]).contains("reused"), "and f32 reuses its own");

    // shards of one run but two storages: refused by merge and by status, nothing written
    extract(d, &data, &model, "mixed", &["--store", "f16", "--shard", "0/2"]);
    extract(d, &data, &model, "mixed", &["--shard", "1/2"]);
    let before = snapshot(d);
    let line = refused(&imgclf(d, &["features", "merge", "mixed"]));
    assert!(line.contains("storage") && line.contains("shards of different runs"), "{line}");
    assert!(String::from_utf8_lossy(&imgclf(d, &["features", "status", "mixed"]).stdout).contains("storage"));
    assert_eq!(snapshot(d), before);
}

// 2. A command never replaces a file it did not make, and never a run's own files.
#[test]
fn output_flags_replace_only_their_own_earlier_output() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    trained(d);
    let (data, _) = tiny();
    let photos = d.join("photos");
    copy_tree(&data.join("validation/cats"), &photos);
    std::fs::write(d.join("notes.html"), "my notes").unwrap();
    std::fs::write(d.join("sample_submission.csv"), "id,label\n1,0.5\n").unwrap();
    std::fs::create_dir(d.join("aug")).unwrap();
    std::fs::write(d.join("aug/aug_0.jpg"), "a photo of mine").unwrap();
    let cam = ["cam", "--run", "run", "--engine", "tract", "--images", "photos", "--grid", "1x1", "--out"];
    let attempts: Vec<(Vec<&str>, &str)> = vec![
        (vec!["report", "run", "--out", "run/run.json"], "run folder"),
        (vec!["report", "run", "--out", "run/run.json", "--force"], "run folder"),
        (vec!["report", "run", "--out", "run/weights.safetensors", "--force"], "run folder"),
        (vec!["report", "run", "--out", "f/gap_TinyConvNet.h5", "--force"], "HDF5"),
        (vec!["report", "run", "--out", "notes.html"], "--force"),
        (vec!["report", "run", "--out", "f"], "folder"),
        (vec!["runs", ".", "--html", "notes.html"], "--force"),
        (vec!["runs", ".", "--html", "run/history.csv", "--force"], "run folder"),
        ([&cam[..], &["run/curves.png"]].concat(), "run folder"),
        ([&cam[..], &["notes.html"]].concat(), "--force"),
        (vec!["predict", "--run", "run", "--csv", "sample_submission.csv"], "--force"),
        (vec!["predict", "--run", "run", "--csv", "run/history.csv", "--force"], "run folder"),
        (vec!["predict", "--run", "run", "--engine", "tract", "photos", "--annotate", "photos"], "--force"),
        (vec!["augment", "preview", "--image", "photos/cat.0.jpg", "--out", "aug", "--n", "2"], "--force"),
    ];
    let before = snapshot(d);
    for (args, why) in &attempts {
        let line = refused(&imgclf(d, args));
        assert!(line.contains(why), "{args:?}: {line}");
        assert_eq!(snapshot(d), before, "{args:?} changed nothing");
    }
    // the command's own earlier output is replaced (a page of an older imgclf too); another
    // file only with --force
    std::fs::write(d.join("run/report.html"), "<html><head><title>imgclf report: run</title>").unwrap();
    ok(d, &["report", "run"]);
    ok(d, &["report", "run"]);
    ok(d, &["report", "run", "--out", "page.html"]);
    ok(d, &["report", "run", "--out", "page.html"]);
    ok(d, &["runs", ".", "--html", "runs.html"]);
    ok(d, &["runs", ".", "--html", "runs.html"]);
    ok(d, &[&cam[..], &["grid.png"]].concat());
    ok(d, &[&cam[..], &["grid.png"]].concat());
    ok(d, &["augment", "preview", "--image", "photos/cat.0.jpg", "--out", "mine", "--n", "2"]);
    ok(d, &["augment", "preview", "--image", "photos/cat.0.jpg", "--out", "mine", "--n", "2"]);
    ok(d, &["predict", "--run", "run", "--csv", "sample_submission.csv", "--force"]);
    ok(d, &["predict", "--run", "run", "--csv", "sample_submission.csv"]);
    ok(d, &["predict", "--run", "run", "--csv", "sub.csv"]);
    ok(d, &["predict", "--run", "run", "--csv", "sub.csv"]);
    refused(&imgclf(d, &["report", "run", "--out", "sub.csv"])); // another command's output
    ok(d, &["report", "run", "--out", "notes.html", "--force"]);
    assert!(std::fs::read_to_string(d.join("notes.html")).unwrap().contains("imgclf report"));
}

// 3. Never delete what it did not create, never through a link.
#[test]
fn a_parts_folder_that_is_a_link_or_holds_a_users_files_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (data, model) = tiny();
    std::fs::create_dir_all(d.join("elsewhere/deep")).unwrap();
    std::fs::write(d.join("elsewhere/precious.txt"), "keep me").unwrap();
    std::fs::write(d.join("elsewhere/part-00000.h5"), "also mine").unwrap();
    std::fs::write(d.join("elsewhere/deep/more.txt"), "and me").unwrap();
    std::fs::create_dir(d.join("f")).unwrap();
    std::os::unix::fs::symlink(d.join("elsewhere"), d.join("f/gap_TinyConvNet.h5.partial")).unwrap();
    let before = snapshot(d);
    let args = ["extract", "--engine", "tract", "--batch", "4", "--data", s(&data), "--model", s(&model)];
    let line = failed(&imgclf(d, &[&args[..], &["--out", "f"]].concat()));
    assert!(line.contains("gap_TinyConvNet.h5.partial") && line.contains("link"), "{line}");
    assert_eq!(snapshot(d), before, "nothing removed, through the link or beside it");
    // without checkpoints there are no parts: the link is left alone and the file is written
    extract(d, &data, &model, "f", &["--no-checkpoints"]);
    assert!(d.join("f/gap_TinyConvNet.h5").is_file());
    assert_eq!(std::fs::read_to_string(d.join("elsewhere/precious.txt")).unwrap(), "keep me");
    assert_eq!(std::fs::read_to_string(d.join("elsewhere/part-00000.h5")).unwrap(), "also mine");

    // a real parts folder with a user's files in it: they stay, and so does the folder
    std::fs::create_dir_all(d.join("g/gap_TinyConvNet.h5.partial/sub")).unwrap();
    std::fs::write(d.join("g/gap_TinyConvNet.h5.partial/notes.txt"), "mine").unwrap();
    std::fs::write(d.join("g/gap_TinyConvNet.h5.partial/sub/x"), "mine").unwrap();
    extract(d, &data, &model, "g", &["--checkpoint-batches", "1"]);
    assert_eq!(std::fs::read_to_string(d.join("g/gap_TinyConvNet.h5.partial/notes.txt")).unwrap(), "mine");
    assert_eq!(std::fs::read_to_string(d.join("g/gap_TinyConvNet.h5.partial/sub/x")).unwrap(), "mine");
    let left: Vec<String> = std::fs::read_dir(d.join("g/gap_TinyConvNet.h5.partial"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().all(|n| n == "notes.txt" || n == "sub"), "only the user's files: {left:?}");
    // and --force on a cache hit (which sweeps parts) keeps them too
    extract(d, &data, &model, "g", &["--checkpoint-batches", "1", "--force"]);
    assert!(d.join("g/gap_TinyConvNet.h5.partial/notes.txt").is_file());
    assert_eq!(
        FeatureSet::read(&d.join("g/gap_TinyConvNet.h5")).unwrap(),
        FeatureSet::read(&d.join("f/gap_TinyConvNet.h5")).unwrap(),
        "checkpoints or none, the same file"
    );
}

/// `imgclf ARGS` in `dir`, killed after `secs` if still running: (output, whether it finished).
fn bounded(dir: &Path, args: &[&str], secs: u64) -> (std::process::Output, bool) {
    let child = spawn_in(dir, args);
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()).unwrap());
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(o) => (o, true),
        Err(_) => {
            Command::new("kill").args(["-KILL", &id.to_string()]).status().unwrap();
            (rx.recv().unwrap(), false)
        }
    }
}

// 4. Never spin for ever: a diverging head stops in one line, charts draw absurd values, and
// run files that are FIFOs or devices are refused instead of read.
#[test]
fn divergence_stops_charts_draw_absurd_values_and_no_reader_blocks() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    trained(d);
    let before = snapshot(d);
    let args = ["train-head", "--features", "f/gap_TinyConvNet.h5", "--out", "wild", "--optimizer", "sgd"];
    let (o, finished) = bounded(d, &[&args[..], &["--lr", "10", "--l2", "10", "--epochs", "50"]].concat(), 120);
    assert!(finished, "a diverging head must stop");
    let line = failed(&o);
    assert!(line.contains("diverged") && line.contains("epoch") && line.contains("--lr"), "{line}");
    assert!(line.contains("--l2") && !line.contains("`"), "{line}");
    assert_eq!(snapshot(d), before, "no run and no hidden folder left");

    // a history holding inf, NaN and 1e308: the page and its charts are drawn
    let history = "epoch,loss,acc,val_loss,val_acc,seconds\n1,inf,0.5,NaN,0.5,0.1\n2,1e308,0.5,-inf,0.5,1e300\n";
    std::fs::write(d.join("run/history.csv"), history).unwrap();
    let (o, finished) = bounded(d, &["report", "run"], 120);
    assert!(finished && o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(d.join("run/report.html")).unwrap();
    assert!(page.contains("values not drawn"), "the chart says what it left off");
    let (o, finished) = bounded(d, &["runs", "."], 60);
    assert!(finished && o.status.success());
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.lines().all(|l| l.len() < 300), "no 309-digit cell: {table}");

    // history.csv a FIFO, run.json a device: no reader waits or reads for ever
    std::fs::remove_file(d.join("run/history.csv")).unwrap();
    assert!(Command::new("mkfifo").arg(d.join("run/history.csv")).status().unwrap().success());
    let (o, finished) = bounded(d, &["report", "run"], 120);
    assert!(finished && o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::rename(d.join("run/run.json"), d.join("run.json.bak")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.join("run/run.json")).unwrap();
    for args in [&["report", "run"][..], &["evaluate", "--run", "run"], &["runs", "run"]] {
        let (o, finished) = bounded(d, args, 60);
        assert!(finished, "{args:?} returns");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && stderr.contains("not a plain file"), "{args:?}: {stderr}");
    }
}

/// `imgclf extract` of the shared cats_dogs photos through the tiny model into `out`, spawned.
fn spawn_tiny(data: &Path, out: &Path, extra: &[&str]) -> Child {
    let flags = ["--batch", "16", "--threads", "1", "--decode-threads", "1"];
    spawn_extract(data, &fixtures().join("tiny_convnet.onnx"), out, &[&flags[..], extra].concat())
}

/// Waits up to a minute for `path` to exist.
fn wait_for(path: &Path) -> bool {
    let started = Instant::now();
    while !path.exists() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    path.exists()
}

// 5. Two processes, one output: the second is refused naming the first, the first finishes,
// and the status never says what is not true.
#[test]
fn a_second_extract_of_the_same_output_is_refused_naming_the_first() {
    let Some(shared) = shared() else { return };
    let data = shared.join("data/cats_dogs");
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("f");
    let file = out.join("gap_TinyConvNet.h5");
    let first = spawn_tiny(&data, &out, &["--checkpoint-batches", "2"]);
    assert!(wait_for(&partial_dir(&file).join("part-00000.json")), "the first run commits");
    let status = Command::new(env!("CARGO_BIN_EXE_imgclf")).args(["features", "status"]).arg(&out).output().unwrap();
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(shown.contains(&format!("being written by process {}", first.id())), "{shown}");
    for extra in [&[][..], &["--force"], &["--no-checkpoints"]] {
        let second = spawn_tiny(&data, &out, extra).wait_with_output().unwrap();
        let line = failed(&second);
        assert!(!line.contains("kept") && !line.contains("fix the cause"), "no false cause: {line}");
        assert!(line.contains(&format!("process {}", first.id())) && line.contains("gap_TinyConvNet.h5"), "{line}");
    }
    let o = first.wait_with_output().unwrap();
    assert!(o.status.success(), "the first run is not disturbed: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(FeatureSet::read(&file).unwrap().split("train").unwrap().paths.len(), 1980);
    // nothing unfinished is reported once it is done
    let status = Command::new(env!("CARGO_BIN_EXE_imgclf")).args(["features", "status"]).arg(&out).output().unwrap();
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(!shown.contains("partial") && !shown.contains("being written"), "{shown}");
    assert_eq!(names(&out), ["gap_TinyConvNet.h5"], "no lock file or parts left");
}

// 6. Resume checks what it resumes: a part copied over another, or a record edited, is
// recomputed, never stitched in.
#[test]
fn tampered_parts_are_recomputed_and_the_file_equals_an_uninterrupted_run() {
    let Some(shared) = shared() else { return };
    let data = shared.join("data/cats_dogs");
    let t = tempfile::tempdir().unwrap();
    let clean = t.path().join("clean");
    let o = spawn_tiny(&data, &clean, &[]).wait_with_output().unwrap();
    assert!(o.status.success());
    let complete = FeatureSet::read(&clean.join("gap_TinyConvNet.h5")).unwrap();

    type Tamper = fn(&Path);
    let tampers: [(&str, Tamper); 3] = [
        ("a part copied over the next", |dir| {
            std::fs::copy(dir.join("part-00000.h5"), dir.join("part-00001.h5")).unwrap();
        }),
        ("a record claiming more batches", |dir| {
            let text = std::fs::read_to_string(dir.join("part-00001.json")).unwrap();
            let mut record: serde_json::Value = serde_json::from_str(&text).unwrap();
            record["batches"] = (record["batches"].as_u64().unwrap() + 3).into();
            record["images"] = (record["images"].as_u64().unwrap() + 48).into();
            std::fs::write(dir.join("part-00001.json"), record.to_string()).unwrap();
        }),
        ("a record's rows edited", |dir| {
            let text = std::fs::read_to_string(dir.join("part-00001.json")).unwrap();
            let mut record: serde_json::Value = serde_json::from_str(&text).unwrap();
            record["rows"][0][1] = (record["rows"][0][1].as_u64().unwrap() - 16).into();
            std::fs::write(dir.join("part-00001.json"), record.to_string()).unwrap();
        }),
    ];
    for (what, tamper) in tampers {
        let out = t.path().join("f");
        let file = out.join("gap_TinyConvNet.h5");
        let _ = std::fs::remove_dir_all(&out);
        let child = spawn_tiny(&data, &out, &["--checkpoint-batches", "2"]);
        assert!(wait_for(&partial_dir(&file).join("part-00002.json")), "{what}: three commits");
        Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
        assert!(!child.wait_with_output().unwrap().status.success());
        tamper(&partial_dir(&file));
        let o = spawn_tiny(&data, &out, &["--checkpoint-batches", "2"]).wait_with_output().unwrap();
        assert!(o.status.success(), "{what}: {}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        // the first part (2 batches of 16) is kept; the tampered one and those after are not
        assert!(stdout.contains("32 images done by an earlier run"), "{what}: {stdout}");
        assert_eq!(FeatureSet::read(&file).unwrap(), complete, "{what}: the uninterrupted run's file");
    }
}

// 7. Joins are symmetric and complete.
#[test]
fn joins_refuse_a_duplicated_path_in_either_order() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (data, model) = tiny();
    let other = second_model(&fixtures(), d);
    extract(d, &data, &model, "f", &[]);
    extract(d, &data, &other, "f", &[]);
    // one file's second train row made a copy of its first: a path twice, another path gone
    let file = d.join("f/gap_TinyConvNet.h5");
    let mut set = FeatureSet::read(&file).unwrap();
    let train = set.splits.iter_mut().find(|s| s.name == "train").unwrap();
    train.paths[1] = train.paths[0].clone();
    let first = train.features.row(0).to_owned();
    train.features.row_mut(1).assign(&first);
    train.labels.as_mut().unwrap()[1] = train.labels.as_ref().unwrap()[0];
    train.photos.as_mut().unwrap()[1] = train.photos.as_ref().unwrap()[0];
    let doubled = d.join("doubled.h5");
    set.write(&doubled).unwrap();
    let before = snapshot(d);
    for pair in [["doubled.h5", "f/gap_Other.h5"], ["f/gap_Other.h5", "doubled.h5"]] {
        let args = ["train-head", "--features", pair[0], pair[1], "--epochs", "1", "--out", "run"];
        let line = refused(&imgclf(d, &args));
        assert!(line.contains("twice") && line.contains("train/cats/cat.0.jpg"), "{pair:?}: {line}");
    }
    assert_eq!(snapshot(d), before);
}

// 8. Links and names in pages and tables.
#[test]
fn runs_pages_encode_every_link_and_tables_survive_odd_names_and_numbers() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    trained(d);
    ok(d, &["report", "run"]);
    std::fs::create_dir(d.join("runs")).unwrap();
    let names = ["javascript:alert(1)", "a\nb", "50% #1 ?x=y", "<b>"];
    for name in names {
        copy_tree(&d.join("run"), &d.join("runs").join(name));
    }
    let absurd = d.join("runs/<b>/run.json");
    let info = std::fs::read_to_string(&absurd).unwrap();
    let mut info: serde_json::Value = serde_json::from_str(&info).unwrap();
    info["metrics"]["val_loss"] = serde_json::json!(1e308);
    info["metrics"]["val_acc"] = serde_json::json!(-1e300);
    std::fs::write(&absurd, info.to_string()).unwrap();

    let table = ok(d, &["runs", "runs", "--html", "runs.html"]);
    assert_eq!(table.lines().count(), names.len() + 1, "one line per run: {table}");
    assert!(table.contains("a\\nb") && table.contains("1.000e308"), "{table}");
    assert!(table.lines().all(|l| l.len() < 400), "{table}");
    let page = std::fs::read_to_string(d.join("runs.html")).unwrap();
    let hrefs: Vec<&str> = page.split("href=\"").skip(1).map(|h| &h[..h.find('"').unwrap()]).collect();
    assert_eq!(hrefs.len(), names.len(), "{hrefs:?}");
    for href in &hrefs {
        assert!(href.starts_with("runs/"), "a relative link, no scheme: {href}");
        assert!(href.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b)), "encoded: {href}");
    }
    assert!(hrefs.contains(&"runs/javascript%3Aalert%281%29/report.html"), "{hrefs:?}");
    assert!(hrefs.contains(&"runs/50%25%20%231%20%3Fx%3Dy/report.html"), "{hrefs:?}");
    // each link leads to the page it names
    for href in &hrefs {
        let decoded = percent_decode(href);
        assert!(d.join(decoded).is_file(), "{href}");
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

// 9. The smaller ones.
#[test]
fn values_and_places_are_checked_before_any_work() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (data, model) = tiny();
    let before = snapshot(d);
    let long = "9".repeat(309);
    for (args, wants) in [
        (vec!["verify", "--data", s(&data), "--threads", "0"], "threads must be a whole number in [1, 1024]"),
        (vec!["verify", "--data", s(&data), "--threads", "5000"], "[1, 1024]"),
        (vec!["train-head", "--features", "f.h5", "--out", "r", "--seed", "abc"], "seed must be a whole number"),
        (vec!["train-head", "--features", "f.h5", "--out", "r", "--memory-budget", "-1"], "is not a size"),
        (vec!["train-head", "--features", "f.h5", "--out", "r", "--lr", &long], "(309 characters)"),
    ] {
        let line = refused(&imgclf(d, &args));
        assert!(line.contains(wants), "{args:?}: {line}");
        assert!(!line.contains("invalid digit") && !line.contains("unknown unit") && line.len() < 300, "{line}");
    }
    assert_eq!(snapshot(d), before);

    // train-head finds out that --out cannot be written before it trains
    extract(d, &data, &model, "f", &[]);
    std::fs::write(d.join("a-file"), "x").unwrap();
    let before = snapshot(d);
    let o = imgclf(d, &["train-head", "--features", "f/gap_TinyConvNet.h5", "--out", "a-file/run", "--epochs", "3"]);
    assert!(refused(&o).contains("a-file"));
    assert!(o.stdout.is_empty(), "no epoch trained: {}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(snapshot(d), before);
}

#[test]
fn report_shows_a_replaced_photo_as_changed_and_refuses_another_dataset() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (data, model) = tiny();
    copy_tree(&data, &d.join("data"));
    extract(d, &d.join("data"), &model, "f", &[]);
    ok(d, &["train-head", "--features", "f/gap_TinyConvNet.h5", "--epochs", "2", "--out", "run"]);
    let page = |extra: &[&str]| {
        ok(d, &[&["report", "run", "--data", "data", "--top", "100", "--examples", "100"][..], extra].concat());
        std::fs::read_to_string(d.join("run/report.html")).unwrap()
    };
    assert!(!page(&[]).contains("changed since"));
    // a validation photo replaced by another after extraction
    std::fs::copy(d.join("data/validation/dogs/dog.0.jpg"), d.join("data/validation/cats/cat.0.jpg")).unwrap();
    assert!(page(&[]).contains("photo changed since its features were made"));
    // a data root of other photos altogether: refused, no page written
    std::fs::remove_file(d.join("run/report.html")).unwrap();
    copy_tree(&data, &d.join("other"));
    for entry in walk_files(&d.join("other")) {
        std::fs::write(&entry, b"not these photos").unwrap();
    }
    let line = refused(&imgclf(d, &["report", "run", "--data", "other"]));
    assert!(line.contains("not the photos these features were made from") && line.contains("--data"), "{line}");
    assert!(!d.join("run/report.html").exists());
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        match entry.path().is_dir() {
            true => out.extend(walk_files(&entry.path())),
            false => out.push(entry.path()),
        }
    }
    out
}

/// A seeded xorshift: the kill moments are the same on every run of the test.
fn draws(seed: u64, n: usize) -> Vec<f64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

/// The kill corpus: SIGKILL at seeded random moments of a run, and once just as its last part
/// is committed (the file being assembled); whatever the moment, the final name holds nothing
/// or the whole file, and the rerun gives the uninterrupted run's file, in f32 and f16.
#[test]
fn sigkill_at_any_moment_then_a_rerun_gives_the_uninterrupted_file() {
    let Some(shared) = shared() else { return };
    let data = shared.join("data/cats_dogs");
    let t = tempfile::tempdir().unwrap();
    // 124 train and 50 validation batches of 16, a commit every 3: the last record is part 57
    let last_record = "part-00057.json";
    for store in ["f32", "f16"] {
        let flags = ["--checkpoint-batches", "3", "--store", store];
        let reference = t.path().join(format!("reference-{store}"));
        let started = Instant::now();
        assert!(spawn_tiny(&data, &reference, &flags).wait_with_output().unwrap().status.success());
        let whole_ms = started.elapsed().as_millis() as f64;
        let complete = FeatureSet::read(&reference.join("gap_TinyConvNet.h5")).unwrap();

        let out = t.path().join(format!("killed-{store}"));
        let file = out.join("gap_TinyConvNet.h5");
        let mut landed = Vec::new();
        let kill_at = |moment: Option<u64>, landed: &mut Vec<String>| {
            let child = spawn_tiny(&data, &out, &flags);
            match moment {
                Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
                None => assert!(wait_for(&partial_dir(&file).join(last_record)), "{store}: the last commit"),
            }
            Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
            let o = child.wait_with_output().unwrap();
            landed.push(format!("{moment:?} ms: {}", if o.status.success() { "finished first" } else { "killed" }));
            if file.exists() {
                assert_eq!(FeatureSet::read(&file).unwrap(), complete, "{store} {moment:?}: the final name is whole");
            }
        };
        let finish = || {
            let o = spawn_tiny(&data, &out, &flags).wait_with_output().unwrap();
            assert!(o.status.success(), "{store}: {}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(FeatureSet::read(&file).unwrap(), complete, "{store}: the rerun's file");
            assert_eq!(names(&out), ["gap_TinyConvNet.h5"], "{store}: nothing else left");
        };
        // just as the last part is committed: the file is being assembled
        kill_at(None, &mut landed);
        finish();
        // a chain of kills at seeded moments, each run continuing the one killed before it
        std::fs::remove_dir_all(&out).unwrap();
        for u in draws(34 + store.len() as u64, 6) {
            kill_at(Some((u * whole_ms * 1.1) as u64), &mut landed);
        }
        finish();
        eprintln!("{store}: {}", landed.join("; "));
        assert!(landed.iter().filter(|l| l.ends_with("killed")).count() >= 3, "kills must land mid-run: {landed:?}");
    }
}
