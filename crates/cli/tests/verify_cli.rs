//! `imgclf verify` over the bad-input corpus (`fixtures/bad/`) plus a symlink loop: it names
//! every unreadable file with its reason, `--quarantine` moves exactly those aside (nothing is
//! deleted), and `extract` lists the same files as skipped.

use std::path::Path;

use imgclf_testkit::fixtures;
use imgclf_testkit::run as imgclf;

/// train/a: the whole corpus and a symlink loop; train/b: two good images.
fn dirty_dataset(root: &Path) {
    let (a, b) = (root.join("train/a"), root.join("train/b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    for e in std::fs::read_dir(fixtures().join("bad")).unwrap().flatten() {
        std::fs::copy(e.path(), a.join(e.file_name())).unwrap();
    }
    std::os::unix::fs::symlink("loop.jpg", a.join("loop.jpg")).unwrap();
    for n in ["1.png", "2.png"] {
        std::fs::copy(fixtures().join("bad/gray.png"), b.join(n)).unwrap();
    }
}

const UNREADABLE: [&str; 7] =
    ["bad_crc.png", "bad_palette.png", "bomb.png", "empty.jpg", "loop.jpg", "text.jpg", "truncated.jpg"];

#[test]
fn verify_names_the_bad_files_and_quarantine_moves_exactly_those() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    dirty_dataset(&data);
    let d = data.to_str().unwrap();

    let o = imgclf(&["verify", "--data", d]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "unreadable files make verify fail");
    assert!(stdout.contains("17 images decoded") && stdout.contains("7 unreadable"), "{stdout}");
    for (name, why) in UNREADABLE.iter().zip([
        "CRC",
        "palette chunk",
        "60000x60000",
        "empty file",
        "symbolic links",
        "not an image",
        "truncated JPEG",
    ]) {
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("train/a/{name}:")))
            .unwrap_or_else(|| panic!("{name}: {stdout}"));
        assert!(line.contains(why), "{line}");
    }

    // extract skips the same files and lists them
    let out = t.path().join("features");
    let model = fixtures().join("tiny_convnet.onnx");
    let o = imgclf(&[
        "extract",
        "--engine",
        "tract",
        "--data",
        d,
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("7 unreadable image(s) skipped"), "{stderr}");
    UNREADABLE.iter().for_each(|n| assert!(stderr.contains(&format!("  train/a/{n}")), "{n}: {stderr}"));

    let q = t.path().join("quarantine");
    let o = imgclf(&["verify", "--data", d, "--quarantine", q.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut moved: Vec<String> = std::fs::read_dir(q.join("train/a"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into())
        .collect();
    moved.sort();
    assert_eq!(moved, UNREADABLE);
    let o = imgclf(&["verify", "--data", d]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("10 images decoded"));

    // a quarantine inside a split would be read again: refused
    let inside = data.join("train/quarantine");
    std::fs::copy(fixtures().join("bad/empty.jpg"), data.join("train/a/empty.jpg")).unwrap();
    let o = imgclf(&["verify", "--data", d, "--quarantine", inside.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("inside the split folder"));
    assert!(data.join("train/a/empty.jpg").exists());
}
