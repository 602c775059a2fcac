//! `imgclf augment preview` as a user runs it.

use imgclf_testkit::fixtures;
use imgclf_testkit::run as imgclf;

#[test]
fn preview_writes_numbered_variants_and_a_sheet_reproducibly() {
    let t = tempfile::tempdir().unwrap();
    let image = fixtures().join("tiny_data/train/cats/cat.0.jpg");
    let source = image::open(&image).unwrap().to_rgb8();
    let run = |out: &str, seed: &str| {
        let out = t.path().join(out);
        let args =
            ["augment", "preview", "--image", image.to_str().unwrap(), "--n", "5", "--out", out.to_str().unwrap()];
        let flags =
            ["--rotation", "40", "--width-shift", "0.2", "--zoom", "0.2", "--horizontal-flip", "--columns", "3"];
        let o = imgclf(&[&args[..], &flags[..], &["--seed", seed]].concat());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let a = run("a", "1");
    for i in 0..5 {
        let variant = image::open(a.join(format!("aug_{i}.jpg"))).unwrap();
        assert_eq!((variant.width(), variant.height()), source.dimensions());
    }
    assert!(!a.join("aug_5.jpg").exists());
    let sheet = image::open(a.join("aug_sheet.png")).unwrap();
    let (w, h) = source.dimensions();
    assert_eq!((sheet.width(), sheet.height()), (4 + 3 * (w + 4), 4 + 2 * (h + 4)), "6 images in rows of 3");
    let bytes = |dir: &std::path::Path, i: usize| std::fs::read(dir.join(format!("aug_{i}.jpg"))).unwrap();
    let b = run("b", "1");
    let c = run("c", "2");
    assert!((0..5).all(|i| bytes(&a, i) == bytes(&b, i)), "same seed, same files");
    assert!((0..5).any(|i| bytes(&a, i) != bytes(&c, i)), "another seed, other files");
}

#[test]
fn bad_settings_get_one_line_errors() {
    let t = tempfile::tempdir().unwrap();
    let image = fixtures().join("tiny_data/train/cats/cat.0.jpg");
    let (image, out) = (image.to_str().unwrap(), t.path().to_str().unwrap());
    let cases: [(&[&str], &str); 4] = [
        (&["--image", image, "--out", out, "--zoom", "1.5"], "zoom_range"),
        (&["--image", image, "--out", out, "--fill-mode", "mirror"], "nearest, constant, reflect or wrap"),
        (&["--image", "nope.jpg", "--out", out], "nope.jpg"),
        (&["--image", image, "--out", out, "--brightness", "1.2"], "LO,HI"),
    ];
    for (args, expected) in cases {
        let o = imgclf(&[&["augment", "preview"][..], args].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        let line = err.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
        assert!(line.contains(expected), "{args:?}: expected `{expected}` in:\n{err}");
    }
}

#[test]
fn help_explains_every_flag() {
    let help = String::from_utf8(imgclf(&["augment", "preview", "--help"]).stdout).unwrap();
    for flag in [
        "--image",
        "--n",
        "--out",
        "--prefix",
        "--seed",
        "--columns",
        "--rotation",
        "--width-shift",
        "--height-shift",
        "--shear",
        "--zoom",
        "--horizontal-flip",
        "--vertical-flip",
        "--fill-mode",
        "--cval",
        "--brightness",
        "--channel-shift",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

/// `--augment` takes the one-line syntax of `train-cnn --augment` and gives the variants the
/// separate flags give; it cannot be mixed with them.
#[test]
fn the_one_line_syntax_equals_the_flags() {
    let t = tempfile::tempdir().unwrap();
    let image = fixtures().join("tiny_data/train/cats/cat.0.jpg");
    let run = |out: &str, params: &[&str]| {
        let out = t.path().join(out);
        let args =
            ["augment", "preview", "--image", image.to_str().unwrap(), "--n", "3", "--out", out.to_str().unwrap()];
        let o = imgclf(&[&args[..], params].concat());
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned(), out)
    };
    let flags =
        ["--rotation", "40", "--width-shift", "0.2", "--height-shift", "0.2", "--zoom", "0.2", "--horizontal-flip"];
    let (ok_a, err_a, a) = run("flags", &flags);
    let (ok_b, err_b, b) = run("line", &["--augment", "rotation=40,shift=0.2,zoom=0.2,hflip"]);
    assert!(ok_a && ok_b, "{err_a}{err_b}");
    for i in 0..3 {
        let name = format!("aug_{i}.jpg");
        assert_eq!(std::fs::read(a.join(&name)).unwrap(), std::fs::read(b.join(&name)).unwrap(), "{name}");
    }
    let (ok, err, _) = run("both", &["--augment", "hflip", "--rotation", "10"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let (ok, err, _) = run("bad", &["--augment", "zoom=1.5"]);
    assert!(!ok && err.contains("zoom_range"), "{err}");
}
