//! Our transforms against Keras' own `ImageDataGenerator.apply_transform` (scipy `ndimage`,
//! order 1) on the same image, for every fill mode: goldens from
//! fixtures/make_augment_goldens.py.

use std::path::PathBuf;

use imgclf_augment::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    fill_mode: String,
    cval: f32,
    #[serde(default)]
    theta: f64,
    #[serde(default)]
    tx: f64,
    #[serde(default)]
    ty: f64,
    #[serde(default)]
    shear: f64,
    zx: Option<f64>,
    zy: Option<f64>,
    #[serde(default)]
    flip_horizontal: bool,
    #[serde(default)]
    flip_vertical: bool,
}

fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/augment"))
}

#[test]
fn every_fill_mode_matches_keras_within_a_grey_level() {
    let cases: Vec<Case> = serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap()).unwrap();
    let source = image::open(dir().join("source.png")).unwrap().to_rgb8();
    let modes: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.fill_mode.as_str()).collect();
    assert_eq!(modes.len(), 4, "nearest, constant, reflect and wrap are all covered");
    for case in &cases {
        let fill_mode: FillMode = case.fill_mode.parse().unwrap();
        let augmenter =
            Augmenter::new(AugmentParams { fill_mode, cval: case.cval, ..AugmentParams::default() }).unwrap();
        let t = Transform {
            theta: case.theta,
            tx: case.tx,
            ty: case.ty,
            shear: case.shear,
            zx: case.zx.unwrap_or(1.0),
            zy: case.zy.unwrap_or(1.0),
            flip_horizontal: case.flip_horizontal,
            flip_vertical: case.flip_vertical,
            ..Transform::default()
        };
        let ours = augmenter.apply(&source, &t);
        let golden = image::open(dir().join(format!("{}.png", case.name))).unwrap().to_rgb8();
        let (h, w) = (golden.height() as usize, golden.width() as usize);
        // Interior pixels: all but a one-pixel frame, where scipy's edge handling is the
        // least specified.
        let (mut sum, mut n, mut worst) = (0.0f64, 0usize, 0.0f32);
        for r in 1..h - 1 {
            for c in 1..w - 1 {
                for k in 0..3 {
                    let d = (ours[[r, c, k]] - golden.get_pixel(c as u32, r as u32)[k] as f32).abs();
                    sum += d as f64;
                    worst = worst.max(d);
                    n += 1;
                }
            }
        }
        let mean = sum / n as f64;
        println!("{}: mean |ours - keras| {mean:.3} grey levels, max {worst:.1}", case.name);
        assert!(mean <= 1.0, "{}: mean difference {mean:.3} > 1 grey level (max {worst})", case.name);
        // Stricter than asked: the goldens are Keras' floats rounded to integers, so equal
        // maps differ by at most half a grey level.
        assert!(worst <= 0.55, "{}: a pixel differs by {worst}", case.name);
    }
}
