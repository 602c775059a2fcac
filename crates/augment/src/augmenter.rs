//! `ImageDataGenerator`'s parameters, its random draws, and their application.

use image::RgbImage;
use imgclf_dataset::Rng;
use imgclf_dataset::limits::{BRIGHTNESS, CHANNEL_SHIFT, CVAL, RESCALE, ROTATION, SHEAR, SHIFT, ZOOM};
use ndarray::{Array3, Array4, Axis};
use rayon::prelude::*;

use crate::warp::{Affine, FillMode, warp};

/// A bad augmentation setting, named as Keras names it.
#[derive(Debug, thiserror::Error)]
pub enum AugmentError {
    /// A parameter out of its range, named as Keras names it.
    #[error("{name}: {reason}")]
    Param {
        /// Keras' name of the parameter (`zoom_range`, ...).
        name: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A batch of images of different sizes.
    #[error("a batch needs images of one size; image {index} is {got:?}, the first is {want:?}")]
    MixedSizes {
        /// The image whose size differs.
        index: usize,
        /// Its size (width, height).
        got: (u32, u32),
        /// The first image's size (width, height).
        want: (u32, u32),
    },
}

/// `ImageDataGenerator`'s augmentation arguments, with Keras' names and meaning.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AugmentParams {
    /// Degrees: a rotation uniform in `[-r, r]`.
    pub rotation_range: f64,
    /// A shift of the columns uniform in `[-r, r]`: a fraction of the width when `r < 1`,
    /// pixels otherwise.
    pub width_shift_range: f64,
    /// The same for rows and the height.
    pub height_shift_range: f64,
    /// Degrees (as Keras 2): a shear angle uniform in `[-r, r]`.
    pub shear_range: f64,
    /// `[lo, hi]`: zoom factors for rows and columns, each uniform in it (Keras' float `z`
    /// means `[1 - z, 1 + z]`, see [`AugmentParams::zoom`]). Factors above 1 zoom out.
    pub zoom_range: [f64; 2],
    /// Mirror half of the images left-right (Keras' `horizontal_flip`).
    pub horizontal_flip: bool,
    /// Mirror half of the images upside down (Keras' `vertical_flip`).
    pub vertical_flip: bool,
    /// How points that map outside the image are filled.
    pub fill_mode: FillMode,
    /// The fill value of `FillMode::Constant`.
    pub cval: f32,
    /// `[lo, hi]`: a brightness factor uniform in it, as PIL's brightness enhancer applies it.
    pub brightness_range: Option<[f64; 2]>,
    /// A value uniform in `[-r, r]` added to every channel, clipped to the image's range.
    pub channel_shift_range: f64,
    /// Multiplies every value last (Keras' `rescale=1./255`).
    pub rescale: Option<f32>,
}

impl Default for AugmentParams {
    /// No augmentation at all, like `ImageDataGenerator()`.
    fn default() -> Self {
        AugmentParams {
            rotation_range: 0.0,
            width_shift_range: 0.0,
            height_shift_range: 0.0,
            shear_range: 0.0,
            zoom_range: [1.0, 1.0],
            horizontal_flip: false,
            vertical_flip: false,
            fill_mode: FillMode::Nearest,
            cval: 0.0,
            brightness_range: None,
            channel_shift_range: 0.0,
            rescale: None,
        }
    }
}

impl AugmentParams {
    /// Keras' float `zoom_range=z`: `[1 - z, 1 + z]`.
    pub fn zoom(z: f64) -> [f64; 2] {
        [1.0 - z, 1.0 + z]
    }
}

/// One image's drawn transform, named as Keras' `get_random_transform` names it; angles in
/// degrees, shifts in pixels. As Keras' `apply_affine_transform` applies them to a
/// channels-last image, `tx` moves the picture left and `ty` up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    /// Rotation, degrees.
    pub theta: f64,
    /// Shift along the rows' axis, pixels.
    pub tx: f64,
    /// Shift along the columns' axis, pixels.
    pub ty: f64,
    /// Shear angle, degrees.
    pub shear: f64,
    /// Zoom factor of the rows (above 1 zooms out).
    pub zx: f64,
    /// Zoom factor of the columns.
    pub zy: f64,
    /// Mirrored left-right.
    pub flip_horizontal: bool,
    /// Mirrored upside down.
    pub flip_vertical: bool,
    /// A value added to every channel, when drawn.
    pub channel_shift: Option<f64>,
    /// A brightness factor, when drawn.
    pub brightness: Option<f64>,
}

impl Default for Transform {
    fn default() -> Self {
        Transform {
            theta: 0.0,
            tx: 0.0,
            ty: 0.0,
            shear: 0.0,
            zx: 1.0,
            zy: 1.0,
            flip_horizontal: false,
            flip_vertical: false,
            channel_shift: None,
            brightness: None,
        }
    }
}

type M3 = [[f64; 3]; 3];

fn mul(a: &M3, b: &M3) -> M3 {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

impl Transform {
    /// The output-to-source map of an `height × width` image: Keras' rotation · shift · shear
    /// · zoom about the centre (`apply_affine_transform`), then the flips.
    pub fn affine(&self, height: usize, width: usize) -> Affine {
        let (s, c) = self.theta.to_radians().sin_cos();
        let sh = self.shear.to_radians();
        let parts: [(bool, M3); 4] = [
            (self.theta != 0.0, [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]),
            (self.tx != 0.0 || self.ty != 0.0, [[1.0, 0.0, self.tx], [0.0, 1.0, self.ty], [0.0, 0.0, 1.0]]),
            (self.shear != 0.0, [[1.0, -sh.sin(), 0.0], [0.0, sh.cos(), 0.0], [0.0, 0.0, 1.0]]),
            (self.zx != 1.0 || self.zy != 1.0, [[self.zx, 0.0, 0.0], [0.0, self.zy, 0.0], [0.0, 0.0, 1.0]]),
        ];
        let mut affine = Affine::IDENTITY;
        if parts.iter().any(|p| p.0) {
            let mut t = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
            for (_, m) in parts.iter().filter(|p| p.0) {
                t = mul(&t, m);
            }
            // transform_matrix_offset_center(t, h, w)
            let (ox, oy) = (height as f64 / 2.0 - 0.5, width as f64 / 2.0 - 0.5);
            let offset = [[1.0, 0.0, ox], [0.0, 1.0, oy], [0.0, 0.0, 1.0]];
            let reset = [[1.0, 0.0, -ox], [0.0, 1.0, -oy], [0.0, 0.0, 1.0]];
            let t = mul(&mul(&offset, &t), &reset);
            // Keras swaps the first two rows and columns (M' = P M P) before calling scipy.
            affine = Affine { m: [[t[1][1], t[1][0]], [t[0][1], t[0][0]]], offset: [t[1][2], t[0][2]] };
        }
        if self.flip_horizontal {
            affine = affine.compose(&Affine { m: [[1.0, 0.0], [0.0, -1.0]], offset: [0.0, width as f64 - 1.0] });
        }
        if self.flip_vertical {
            affine = affine.compose(&Affine { m: [[-1.0, 0.0], [0.0, 1.0]], offset: [height as f64 - 1.0, 0.0] });
        }
        affine
    }
}

/// Draws and applies transforms; cheap to share between threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Augmenter {
    /// The checked parameters it draws from.
    pub params: AugmentParams,
}

/// The stream of random numbers behind augmentation (see [`Rng::stream`]).
const AUGMENT: u64 = 0xA06;

impl Augmenter {
    /// Checks the parameters as Keras would, naming the one at fault.
    pub fn new(params: AugmentParams) -> Result<Augmenter, AugmentError> {
        let bad = |name, reason: String| Err(AugmentError::Param { name, reason });
        let p = &params;
        let rescale = p.rescale.map_or(1.0, f64::from);
        for (name, limit, v) in [
            ("rotation_range", ROTATION, p.rotation_range),
            ("width_shift_range", SHIFT, p.width_shift_range),
            ("height_shift_range", SHIFT, p.height_shift_range),
            ("shear_range", SHEAR, p.shear_range),
            ("channel_shift_range", CHANNEL_SHIFT, p.channel_shift_range),
            ("cval", CVAL, f64::from(p.cval)),
            ("rescale", RESCALE, rescale),
        ] {
            if !limit.allows(v) {
                return bad(name, format!("must be {limit}, got {v}"));
            }
        }
        let [lo, hi] = p.zoom_range;
        if !(ZOOM.allows(lo) && ZOOM.allows(hi) && lo <= hi) {
            return bad(
                "zoom_range",
                format!("needs lo ≤ hi, each {ZOOM}, got [{lo}, {hi}] (a float z means [1 - z, 1 + z], so z < 1)"),
            );
        }
        if let Some([lo, hi]) = p.brightness_range
            && !(BRIGHTNESS.allows(lo) && BRIGHTNESS.allows(hi) && lo <= hi)
        {
            return bad("brightness_range", format!("needs lo ≤ hi, each {BRIGHTNESS}, got [{lo}, {hi}]"));
        }
        Ok(Augmenter { params })
    }

    /// A random transform for an `height × width` image, drawn in Keras' order.
    pub fn random_transform(&self, height: usize, width: usize, rng: &mut Rng) -> Transform {
        let p = &self.params;
        let symmetric = |rng: &mut Rng, r: f64| if r > 0.0 { rng.uniform(-r, r) } else { 0.0 };
        let pixels = |r: f64, size: usize| if r < 1.0 { r * size as f64 } else { r };
        let theta = symmetric(rng, p.rotation_range);
        // Keras draws tx from height_shift_range although tx moves columns, so its
        // width_shift_range shifts vertically (keras-team/keras#17398). We keep the documented
        // meaning: width_shift_range moves the picture sideways, by a share of the width.
        let tx = symmetric(rng, pixels(p.width_shift_range, width));
        let ty = symmetric(rng, pixels(p.height_shift_range, height));
        let shear = symmetric(rng, p.shear_range);
        let [lo, hi] = p.zoom_range;
        let (zx, zy) = if lo == 1.0 && hi == 1.0 { (1.0, 1.0) } else { (rng.uniform(lo, hi), rng.uniform(lo, hi)) };
        let flip_horizontal = p.horizontal_flip && rng.next_f32() < 0.5;
        let flip_vertical = p.vertical_flip && rng.next_f32() < 0.5;
        let channel_shift = (p.channel_shift_range > 0.0).then(|| symmetric(rng, p.channel_shift_range));
        let brightness = p.brightness_range.map(|[lo, hi]| rng.uniform(lo, hi));
        Transform { theta, tx, ty, shear, zx, zy, flip_horizontal, flip_vertical, channel_shift, brightness }
    }

    /// Applies `t` to an image: one resampling pass for the geometry (flips included), then
    /// channel shift, brightness and rescale. Returns `(height, width, 3)` f32 values.
    pub fn apply(&self, image: &RgbImage, t: &Transform) -> Array3<f32> {
        let (h, w) = (image.height() as usize, image.width() as usize);
        let p = &self.params;
        let mut x = warp(image, &t.affine(h, w), p.fill_mode, p.cval);
        if let Some(shift) = t.channel_shift {
            let (lo, hi) = x.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            x.mapv_inplace(|v| (v + shift as f32).clamp(lo, hi));
        }
        if let Some(b) = t.brightness {
            // PIL's enhancer on the uint8 image Keras makes of the array.
            x.mapv_inplace(|v| (v.clamp(0.0, 255.0).trunc() * b as f32).round().clamp(0.0, 255.0));
        }
        if let Some(r) = p.rescale {
            x *= r;
        }
        x
    }

    /// The `index`-th image of a stream seeded with `seed`: its transform depends on those two
    /// numbers only, never on threads or on other images.
    pub fn augment(&self, image: &RgbImage, seed: u64, index: u64) -> Array3<f32> {
        let mut rng = Rng::stream(seed, AUGMENT, index);
        let t = self.random_transform(image.height() as usize, image.width() as usize, &mut rng);
        self.apply(image, &t)
    }

    /// Images `first_index..` of the stream, augmented in parallel into one
    /// `(n, height, width, 3)` batch.
    pub fn augment_batch(&self, images: &[RgbImage], seed: u64, first_index: u64) -> Result<Array4<f32>, AugmentError> {
        let Some(first) = images.first() else {
            return Ok(Array4::zeros((0, 0, 0, 3)));
        };
        let want = first.dimensions();
        if let Some((index, img)) = images.iter().enumerate().find(|(_, i)| i.dimensions() != want) {
            return Err(AugmentError::MixedSizes { index, got: img.dimensions(), want });
        }
        let mut batch = Array4::zeros((images.len(), want.1 as usize, want.0 as usize, 3));
        let augmented: Vec<Array3<f32>> =
            images.par_iter().enumerate().map(|(i, img)| self.augment(img, seed, first_index + i as u64)).collect();
        for (mut dst, x) in batch.axis_iter_mut(Axis(0)).zip(augmented) {
            dst.assign(&x);
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-square image whose every pixel differs.
    fn pattern(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 11 % 256) as u8, ((x * y) % 251) as u8]))
    }

    fn as_f32(img: &RgbImage) -> Array3<f32> {
        Array3::from_shape_vec(
            (img.height() as usize, img.width() as usize, 3),
            img.as_raw().iter().map(|&v| v as f32).collect(),
        )
        .unwrap()
    }

    fn to_u8(x: &Array3<f32>) -> RgbImage {
        let (h, w, _) = x.dim();
        RgbImage::from_raw(w as u32, h as u32, x.iter().map(|&v| v.round() as u8).collect()).unwrap()
    }

    fn plain(fill_mode: FillMode, cval: f32) -> Augmenter {
        Augmenter::new(AugmentParams { fill_mode, cval, ..AugmentParams::default() }).unwrap()
    }

    #[test]
    fn zero_parameters_give_the_identity() {
        let img = pattern(23, 17);
        let aug = Augmenter::new(AugmentParams::default()).unwrap();
        assert_eq!(aug.augment(&img, 5, 0), as_f32(&img));
    }

    #[test]
    fn two_horizontal_flips_give_the_identity_and_one_mirrors() {
        let img = pattern(23, 17);
        let aug = plain(FillMode::Nearest, 0.0);
        let flip = Transform { flip_horizontal: true, ..Transform::default() };
        let once = to_u8(&aug.apply(&img, &flip));
        assert_eq!(once, image::imageops::flip_horizontal(&img));
        assert_eq!(to_u8(&aug.apply(&once, &flip)), img);
    }

    #[test]
    fn a_quarter_turn_of_a_square_image_is_the_exact_pixel_rotation() {
        let img = pattern(20, 20);
        let aug = plain(FillMode::Constant, 0.0);
        let turned = to_u8(&aug.apply(&img, &Transform { theta: 90.0, ..Transform::default() }));
        // Keras' positive angles turn the picture counter-clockwise.
        assert_eq!(turned, image::imageops::rotate270(&img));
        let back = to_u8(&aug.apply(&img, &Transform { theta: -90.0, ..Transform::default() }));
        assert_eq!(back, image::imageops::rotate90(&img));
    }

    #[test]
    fn shifts_move_a_marked_pixel_and_constant_fill_is_exactly_cval() {
        let mut img = RgbImage::from_pixel(30, 20, image::Rgb([10, 10, 10]));
        img.put_pixel(12, 9, image::Rgb([255, 0, 0])); // column 12, row 9
        let aug = plain(FillMode::Constant, 77.0);
        // tx = 3 moves the picture 3 columns left, ty = -5 moves it 5 rows down.
        let out = aug.apply(&img, &Transform { tx: 3.0, ty: -5.0, ..Transform::default() });
        assert_eq!([out[[14, 9, 0]], out[[14, 9, 1]]], [255.0, 0.0]);
        assert_eq!(out.iter().filter(|&&v| v == 255.0).count(), 1);
        // Columns 27.. and rows ..5 map outside the source: every value there is cval.
        for r in 0..20 {
            for c in 0..30 {
                if c >= 27 || r < 5 {
                    assert!((0..3).all(|k| out[[r, c, k]] == 77.0), "({r}, {c})");
                }
            }
        }
        // A rotation: every pixel whose source falls outside is cval, none inside is.
        let t = Transform { theta: 33.0, zx: 1.3, zy: 0.8, ..Transform::default() };
        let out = aug.apply(&img, &t);
        let map = t.affine(20, 30);
        for r in 0..20 {
            for c in 0..30 {
                let sr = map.m[0][0] * r as f64 + map.m[0][1] * c as f64 + map.offset[0];
                let sc = map.m[1][0] * r as f64 + map.m[1][1] * c as f64 + map.offset[1];
                let outside = !(0.0..=19.0).contains(&sr) || !(0.0..=29.0).contains(&sc);
                assert_eq!(outside, (0..3).all(|k| out[[r, c, k]] == 77.0), "({r}, {c})");
            }
        }
    }

    #[test]
    fn draws_stay_in_their_ranges_and_follow_keras_units() {
        let params = AugmentParams {
            rotation_range: 40.0,
            width_shift_range: 0.2,
            height_shift_range: 6.0,
            shear_range: 0.2,
            zoom_range: AugmentParams::zoom(0.2),
            horizontal_flip: true,
            channel_shift_range: 10.0,
            brightness_range: Some([0.5, 1.5]),
            ..AugmentParams::default()
        };
        let aug = Augmenter::new(params).unwrap();
        let mut rng = Rng::new(3);
        let draws: Vec<Transform> = (0..2000).map(|_| aug.random_transform(100, 150, &mut rng)).collect();
        let within = |f: fn(&Transform) -> f64, lo: f64, hi: f64| draws.iter().all(|t| (lo..=hi).contains(&f(t)));
        assert!(within(|t| t.theta, -40.0, 40.0));
        assert!(within(|t| t.tx, -30.0, 30.0), "20% of the width, in pixels");
        assert!(within(|t| t.ty, -6.0, 6.0), "a range ≥ 1 is pixels");
        assert!(within(|t| t.shear, -0.2, 0.2), "degrees");
        assert!(within(|t| t.zx, 0.8, 1.2) && within(|t| t.zy, 0.8, 1.2));
        assert!(draws.iter().any(|t| t.tx.abs() > 25.0) && draws.iter().any(|t| t.theta.abs() > 35.0));
        let flips = draws.iter().filter(|t| t.flip_horizontal).count();
        assert!((900..1100).contains(&flips), "{flips}");
        assert!(draws.iter().all(|t| !t.flip_vertical && t.brightness.is_some_and(|b| (0.5..=1.5).contains(&b))));
    }

    #[test]
    fn the_same_seed_and_index_give_the_same_image_on_any_number_of_threads() {
        let params = AugmentParams {
            rotation_range: 40.0,
            width_shift_range: 0.2,
            height_shift_range: 0.2,
            zoom_range: AugmentParams::zoom(0.2),
            horizontal_flip: true,
            ..AugmentParams::default()
        };
        let aug = Augmenter::new(params).unwrap();
        let images: Vec<RgbImage> = (0..12)
            .map(|i| pattern(31 + i % 2, 21))
            .map(|p| image::imageops::resize(&p, 31, 21, image::imageops::FilterType::Nearest))
            .collect();
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| aug.augment_batch(&images, 9, 100).unwrap())
        };
        let batch = run(1);
        assert_eq!(batch, run(3));
        assert_eq!(batch.index_axis(Axis(0), 4), aug.augment(&images[4], 9, 104));
        assert_ne!(aug.augment(&images[4], 9, 104), aug.augment(&images[4], 9, 105));
        assert_ne!(aug.augment(&images[4], 9, 104), aug.augment(&images[4], 10, 104));
        let mixed = [pattern(10, 10), pattern(11, 10)];
        assert!(aug.augment_batch(&mixed, 1, 0).unwrap_err().to_string().contains("image 1 is (11, 10)"));
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases = [
            (AugmentParams { rotation_range: -1.0, ..AugmentParams::default() }, "rotation_range"),
            (AugmentParams { zoom_range: AugmentParams::zoom(1.5), ..AugmentParams::default() }, "zoom_range"),
            (AugmentParams { brightness_range: Some([1.5, 0.5]), ..AugmentParams::default() }, "brightness_range"),
        ];
        for (params, name) in cases {
            assert!(Augmenter::new(params).unwrap_err().to_string().starts_with(name));
        }
    }
}
