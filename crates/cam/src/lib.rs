//! Class Activation Mapping (Zhou et al., "Learning Deep Features for Discriminative
//! Localization"): with a linear head on GAP features, the score of a class is the average
//! over positions of `Σ_c w_c · F_c(x, y)`, so that sum, drawn per position, shows where the
//! evidence is. Coloured and blended as the tutorial does (`cv2.applyColorMap(JET)`,
//! `addWeighted(photo, 0.8, heat, 0.4)`).
//!
//! This crate only draws: it takes feature maps and a linear head's weights as arrays, and
//! runs no model, so it links no HDF5, ONNX Runtime or tract. Getting the maps (a backbone
//! run on the photo) is `imgclf_runtime::Backbone::embed`'s job, or `imgclf_heads::Predictor`'s
//! for a trained run.
//!
//! A map for one photo (the core of `examples/cam_image.rs`):
//!
//! ```
//! use imgclf_cam::{class_activation_map, normalize, overlay};
//! use ndarray::{Array3, array};
//!
//! let photo = image::RgbImage::from_pixel(64, 48, image::Rgb([90, 90, 90]));
//! let maps = Array3::from_shape_fn((2, 7, 7), |(c, y, x)| if c == 0 { x as f32 } else { y as f32 });
//! let cam = normalize(&class_activation_map(maps.view(), array![1.0, 0.5].view()));
//! let picture = overlay(&photo, &cam); // JET heat over the photo, as the tutorial draws it
//! assert_eq!(picture.dimensions(), (64, 48));
//! ```

#![warn(missing_docs)]

mod draw;

pub use draw::{
    CONFIDENT, CONFIDENT_FROM, UNSURE, draw_text, label_colour, label_photo, resize_width, text_width, titled_grid,
};

use image::{Rgb, RgbImage};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayView3, Axis, s};

/// Why a map cannot be drawn for a head.
#[derive(Debug, thiserror::Error)]
pub enum CamError {
    /// The head and the backbones disagree on the feature width.
    #[error("the head takes {head} features, but the backbones' widths add up to {sources}")]
    Width {
        /// The inputs the head takes.
        head: usize,
        /// The sum of the backbones' feature widths.
        sources: usize,
    },
    /// No backbone with that index.
    #[error("backbone {index} is out of range ({count} backbones)")]
    Backbone {
        /// The index that is out of range, or the image at fault.
        index: usize,
        /// How many there are.
        count: usize,
    },
}

/// What CAM needs of a trained linear head (a head with a hidden layer has no map: its class
/// score is no weighted sum of the feature map).
#[derive(Debug, Clone, Copy)]
pub struct LinearHead<'a> {
    /// `(inputs, classes)`, or `(inputs, 1)` for a sigmoid unit.
    pub kernel: ArrayView2<'a, f32>,
    /// What the head divides its inputs by, when it standardizes them.
    pub scale: Option<ArrayView1<'a, f32>>,
}

/// The weights of backbone `index`'s columns toward `class`, as they act on the raw GAP
/// features (divided by the standardizer's scale; its mean only shifts every position
/// alike). `widths` are the backbones' feature widths in column order. For a sigmoid head,
/// class 0 gets the negated weights.
pub fn class_weights(head: &LinearHead, widths: &[usize], index: usize, class: usize) -> Result<Array1<f32>, CamError> {
    let total: usize = widths.iter().sum();
    if total != head.kernel.nrows() {
        return Err(CamError::Width { head: head.kernel.nrows(), sources: total });
    }
    if index >= widths.len() {
        return Err(CamError::Backbone { index, count: widths.len() });
    }
    let start: usize = widths[..index].iter().sum();
    let rows = start..start + widths[index];
    let kernel = head.kernel;
    let mut w = if kernel.ncols() == 1 {
        let sign = if class == 1 { 1.0 } else { -1.0 };
        kernel.slice(s![rows.clone(), ..]).column(0).mapv(|v| v * sign)
    } else {
        kernel.slice(s![rows.clone(), ..]).column(class).to_owned()
    };
    if let Some(scale) = head.scale {
        w /= &scale.slice(s![rows]);
    }
    Ok(w)
}

/// `Σ_c w_c · F_c(y, x)` for a `(channels, height, width)` feature map.
///
/// ```
/// use ndarray::{array, Array3};
/// // two 2×2 channels: the first lights the top row, the second the left column
/// let maps = Array3::from_shape_vec((2, 2, 2), vec![1., 1., 0., 0., 1., 0., 1., 0.]).unwrap();
/// let cam = imgclf_cam::class_activation_map(maps.view(), array![2.0, -1.0].view());
/// assert_eq!(cam, array![[1.0, 2.0], [-1.0, 0.0]]);
/// assert_eq!(imgclf_cam::normalize(&cam), array![[2.0 / 3.0, 1.0], [0.0, 1.0 / 3.0]]);
/// ```
pub fn class_activation_map(features: ArrayView3<f32>, weights: ArrayView1<f32>) -> Array2<f32> {
    assert_eq!(features.len_of(Axis(0)), weights.len(), "one weight per feature-map channel");
    let (_, h, w) = features.dim();
    let mut cam = Array2::zeros((h, w));
    for (f, &wc) in features.outer_iter().zip(weights) {
        cam.scaled_add(wc, &f);
    }
    cam
}

/// Min–max normalised to `[0, 1]` (all zeros for a flat map).
pub fn normalize(cam: &Array2<f32>) -> Array2<f32> {
    let (lo, hi) = cam.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if hi > lo { cam.mapv(|v| (v - lo) / (hi - lo)) } else { Array2::zeros(cam.raw_dim()) }
}

/// The JET colormap (blue → cyan → yellow → red) at `v ∈ [0, 1]`.
///
/// ```
/// use imgclf_cam::jet;
/// assert_eq!(jet(0.0), [0, 0, 128]); // dark blue
/// assert_eq!(jet(0.5), [128, 255, 128]); // green between cyan and yellow
/// assert_eq!(jet(1.0), [128, 0, 0]); // dark red
/// ```
pub fn jet(v: f32) -> [u8; 3] {
    let channel =
        |centre: f32| ((1.5 - (4.0 * v.clamp(0.0, 1.0) - centre).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    [channel(3.0), channel(2.0), channel(1.0)]
}

/// The tutorial's picture: the normalised map upsampled bilinearly to the photo, stretched
/// as `(cam - 0.2) / 0.8`, JET-coloured where above 0.2 (black elsewhere), and blended as
/// `0.8 · photo + 0.4 · heat`, saturating at 255.
pub fn overlay(photo: &RgbImage, cam01: &Array2<f32>) -> RgbImage {
    let (w, h) = photo.dimensions();
    let (ch, cw) = cam01.dim();
    let sample = |x: u32, y: u32| -> f32 {
        // Pixel centres aligned, as cv2.resize and Pillow do.
        let fy = ((y as f32 + 0.5) * ch as f32 / h as f32 - 0.5).clamp(0.0, ch as f32 - 1.0);
        let fx = ((x as f32 + 0.5) * cw as f32 / w as f32 - 0.5).clamp(0.0, cw as f32 - 1.0);
        let (y0, x0) = (fy.floor() as usize, fx.floor() as usize);
        let (y1, x1) = ((y0 + 1).min(ch - 1), (x0 + 1).min(cw - 1));
        let (ty, tx) = (fy - y0 as f32, fx - x0 as f32);
        let top = cam01[[y0, x0]] * (1.0 - tx) + cam01[[y0, x1]] * tx;
        let bottom = cam01[[y1, x0]] * (1.0 - tx) + cam01[[y1, x1]] * tx;
        top * (1.0 - ty) + bottom * ty
    };
    RgbImage::from_fn(w, h, |x, y| {
        let v = (sample(x, y) - 0.2) / 0.8;
        let heat = if v > 0.2 { jet(v) } else { [0, 0, 0] };
        let p = photo.get_pixel(x, y).0;
        Rgb(std::array::from_fn(|k| (0.8 * p[k] as f32 + 0.4 * heat[k] as f32).round().min(255.0) as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, array};

    #[test]
    fn the_map_is_the_weighted_sum_of_channels() {
        let f = Array3::from_shape_fn((3, 2, 4), |(c, y, x)| (c * 8 + y * 4 + x) as f32);
        let w = array![1.0f32, -0.5, 2.0];
        let cam = class_activation_map(f.view(), w.view());
        for y in 0..2 {
            for x in 0..4 {
                let expected = f[[0, y, x]] - 0.5 * f[[1, y, x]] + 2.0 * f[[2, y, x]];
                assert_eq!(cam[[y, x]], expected);
            }
        }
        let n = normalize(&cam);
        assert_eq!((n[[0, 0]], n[[1, 3]]), (0.0, 1.0));
        assert_eq!(normalize(&Array2::from_elem((2, 2), 3.0)), Array2::<f32>::zeros((2, 2)));
    }

    #[test]
    fn weights_are_the_backbones_slice_toward_the_class_on_raw_features() {
        let kernel = Array2::from_shape_fn((5, 1), |(i, _)| i as f32 - 1.5);
        let scale = array![1.0, 2.0, 4.0, 1.0, 0.5];
        let head = LinearHead { kernel: kernel.view(), scale: Some(scale.view()) };
        let k = kernel.column(0).to_owned();
        let dog = class_weights(&head, &[2, 3], 1, 1).unwrap();
        assert_eq!(dog, array![k[2] / 4.0, k[3], k[4] / 0.5]);
        let cat = class_weights(&head, &[2, 3], 1, 0).unwrap();
        assert_eq!(cat, -&dog);
        assert!(matches!(class_weights(&head, &[2, 2], 0, 1), Err(CamError::Width { .. })));
        assert!(matches!(class_weights(&head, &[2, 3], 2, 1), Err(CamError::Backbone { .. })));
        let softmax = Array2::from_shape_fn((5, 3), |(i, j)| (i * 3 + j) as f32);
        let head = LinearHead { kernel: softmax.view(), scale: None };
        assert_eq!(class_weights(&head, &[2, 3], 0, 2).unwrap(), array![2.0, 5.0]);
    }

    #[test]
    fn jet_runs_from_dark_blue_through_green_to_dark_red() {
        assert_eq!(jet(0.0), [0, 0, 128]);
        assert_eq!(jet(0.5), [128, 255, 128]);
        assert_eq!(jet(1.0), [128, 0, 0]);
        assert_eq!(jet(0.375), [0, 255, 255]);
    }

    #[test]
    fn the_overlay_darkens_cold_areas_and_reddens_the_peak() {
        let photo = RgbImage::from_pixel(40, 20, Rgb([100, 100, 100]));
        let mut cam = Array2::zeros((2, 4));
        cam[[0, 3]] = 1.0; // the top-right cell is hot
        let out = overlay(&photo, &cam);
        assert_eq!(out.dimensions(), (40, 20));
        assert_eq!(out.get_pixel(0, 19), &Rgb([80, 80, 80]), "cold: 0.8 · photo");
        let hot = out.get_pixel(39, 0);
        assert!(hot[0] > 120 && hot[2] < 90, "hot: red added, {hot:?}");
    }
}
