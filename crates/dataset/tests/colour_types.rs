//! Every colour type decodes to the RGB that Pillow's `convert("RGB")` gives
//! (golden images in `fixtures/expected_rgb`, made by `fixtures/make_fixtures.py`).

use std::path::PathBuf;

use imgclf_dataset::load_rgb;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Mean absolute difference in grey levels between our decode and Pillow's.
fn mean_diff(rel: &str, golden: &str) -> f64 {
    let ours = load_rgb(&fixtures().join("tiny_data").join(rel)).unwrap();
    let want = image::open(fixtures().join("expected_rgb").join(golden)).unwrap().to_rgb8();
    assert_eq!(ours.dimensions(), want.dimensions(), "{rel}");
    let sum: u64 = ours.as_raw().iter().zip(want.as_raw()).map(|(a, b)| a.abs_diff(*b) as u64).sum();
    sum as f64 / ours.as_raw().len() as f64
}

#[test]
fn lossless_colour_types_match_pillow_exactly() {
    for (rel, golden) in [
        ("train/cats/gray.png", "gray.png"),
        ("train/cats/rgba.png", "rgba.png"),
        ("train/cats/deep16.png", "deep16.png"),
        ("train/dogs/palette.png", "palette.png"),
        ("train/dogs/gif_named.jpg", "gif_named.png"),
    ] {
        assert_eq!(mean_diff(rel, golden), 0.0, "{rel}");
    }
}

#[test]
fn cmyk_jpeg_matches_pillow_up_to_decoder_rounding() {
    // JPEG decoders differ by a grey level here and there; a wrong CMYK conversion
    // (uninverted, or channels dropped) is off by tens of levels
    let d = mean_diff("train/dogs/cmyk.jpg", "cmyk.png");
    assert!(d < 2.0, "mean difference {d}");
}
