//! `tools/fetch_cats_and_dogs.py`, the dataset `just demo` downloads when `../shared` is
//! absent: checked for its layout and counts before it appears under its final name. The
//! archives here are made locally and served through a `file://` URL (no network).

use std::path::Path;
use std::process::Command;

use imgclf_testkit::*;

/// A cats_and_dogs_filtered-shaped zip with `drop` photos left out of validation/dogs.
fn archive(python: &Path, zip: &Path, drop: usize) {
    let script = r#"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1], "w")
drop = int(sys.argv[2])
for split, n in (("train", 1000), ("validation", 500)):
    for cls in ("cats", "dogs"):
        count = n - drop if (split, cls) == ("validation", "dogs") else n
        for i in range(count):
            z.writestr(f"cats_and_dogs_filtered/{split}/{cls}/{cls[:-1]}.{i}.jpg", b"x")
z.writestr("cats_and_dogs_filtered/vectorize.py", b"")
z.close()
"#;
    run_python(python, &["-c", script, zip.to_str().unwrap(), &drop.to_string()]);
}

fn fetch(python: &Path, dest: &Path, zip: &Path) -> std::process::Output {
    Command::new(python)
        .arg(workspace_root().join("tools/fetch_cats_and_dogs.py"))
        .arg(dest)
        .args(["--url", &format!("file://{}", zip.display())])
        .output()
        .unwrap()
}

#[test]
fn the_archive_is_unpacked_only_when_its_layout_and_counts_are_right() {
    let Some(python) = python_with(&["zipfile"]) else { return };
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("data");

    let short = t.path().join("short.zip");
    archive(&python, &short, 1);
    let out = fetch(&python, &dest, &short);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("validation/dogs/ has 499 .jpg files, expected 500"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&dest).unwrap().collect();
    assert!(left.is_empty(), "nothing is left behind: {left:?}");

    let good = t.path().join("good.zip");
    archive(&python, &good, 0);
    let out = fetch(&python, &dest, &good);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = dest.join("cats_and_dogs_filtered");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), root.to_str().unwrap());
    assert_eq!(std::fs::read_dir(root.join("train/cats")).unwrap().count(), 1000);

    // a second run finds it in place and downloads nothing (the URL no longer exists)
    let out = fetch(&python, &dest, &t.path().join("gone.zip"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
