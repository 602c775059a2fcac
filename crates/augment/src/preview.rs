//! What `imgclf augment preview` shows: variants of one image and a contact sheet.

use image::{Rgb, RgbImage};
use ndarray::Array3;
use rayon::prelude::*;

use crate::Augmenter;

/// A `(height, width, 3)` array as an 8-bit image, values rounded and clipped to 0..=255.
pub fn to_rgb8(x: &Array3<f32>) -> RgbImage {
    let (h, w, _) = x.dim();
    let bytes = x.iter().map(|&v| v.round().clamp(0.0, 255.0) as u8).collect();
    RgbImage::from_raw(w as u32, h as u32, bytes).expect("(h, w, 3) holds h·w·3 values")
}

/// Variants `0..n` of `image` from the stream seeded with `seed`, as 8-bit images.
pub fn variants(augmenter: &Augmenter, image: &RgbImage, n: usize, seed: u64) -> Vec<RgbImage> {
    (0..n as u64).into_par_iter().map(|i| to_rgb8(&augmenter.augment(image, seed, i))).collect()
}

/// The images in a grid of `columns`, left to right then top to bottom, on white with a
/// 4-pixel gap; cells are as large as the largest image.
pub fn contact_sheet(images: &[RgbImage], columns: usize) -> RgbImage {
    const GAP: u32 = 4;
    let columns = columns.clamp(1, images.len().max(1)) as u32;
    let rows = (images.len() as u32).div_ceil(columns);
    let cell_w = images.iter().map(|i| i.width()).max().unwrap_or(0);
    let cell_h = images.iter().map(|i| i.height()).max().unwrap_or(0);
    let mut sheet =
        RgbImage::from_pixel(GAP + columns * (cell_w + GAP), GAP + rows * (cell_h + GAP), Rgb([255, 255, 255]));
    for (i, img) in images.iter().enumerate() {
        let (c, r) = (i as u32 % columns, i as u32 / columns);
        image::imageops::replace(&mut sheet, img, (GAP + c * (cell_w + GAP)) as i64, (GAP + r * (cell_h + GAP)) as i64);
    }
    sheet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sheet_places_each_image_in_its_cell() {
        let images: Vec<RgbImage> = (0..5).map(|i| RgbImage::from_pixel(10, 6, Rgb([i * 40, 0, 0]))).collect();
        let sheet = contact_sheet(&images, 3);
        assert_eq!(sheet.dimensions(), (4 + 3 * 14, 4 + 2 * 10));
        assert_eq!(sheet.get_pixel(4, 4), &Rgb([0, 0, 0]));
        assert_eq!(sheet.get_pixel(4 + 14 + 9, 4 + 5), &Rgb([40, 0, 0]));
        assert_eq!(sheet.get_pixel(4 + 14, 4 + 10), &Rgb([160, 0, 0]), "second row, second column");
        assert_eq!(sheet.get_pixel(4 + 28, 4 + 10), &Rgb([255, 255, 255]), "the empty sixth cell");
    }
}
