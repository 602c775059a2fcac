//! Text and layout for the pictures users show: labelled photos and titled grids.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::{Rgb, RgbImage, imageops};

/// Green for a confident prediction, amber otherwise.
pub const CONFIDENT: Rgb<u8> = Rgb([40, 220, 60]);
/// The label colour of a prediction below 90%: amber.
pub const UNSURE: Rgb<u8> = Rgb([255, 170, 0]);
/// The probability from which a label counts as confident.
pub const CONFIDENT_FROM: f32 = 0.9;

/// The colour of a label for a top-class probability `p`.
pub fn label_colour(p: f32) -> Rgb<u8> {
    if p >= CONFIDENT_FROM { CONFIDENT } else { UNSURE }
}

/// Draws `text` with its top-left corner at `(x, y)`, `size` pixels high, anti-aliased.
pub fn draw_text(image: &mut RgbImage, text: &str, (x, y): (i32, i32), size: f32, colour: Rgb<u8>) {
    let font = FontRef::try_from_slice(imgclf_dataset::FONT).expect("the bundled font parses");
    let scale = PxScale::from(size);
    let scaled = font.as_scaled(scale);
    let mut caret = x as f32;
    let baseline = y as f32 + scaled.ascent();
    for ch in text.chars() {
        let id = scaled.glyph_id(ch);
        let glyph = id.with_scale_and_position(scale, point(caret, baseline));
        caret += scaled.h_advance(id);
        let Some(outlined) = font.outline_glyph(glyph) else { continue };
        let bounds = outlined.px_bounds();
        outlined.draw(|gx, gy, coverage| {
            let (px, py) = (bounds.min.x as i32 + gx as i32, bounds.min.y as i32 + gy as i32);
            if px >= 0 && py >= 0 && (px as u32) < image.width() && (py as u32) < image.height() {
                let p = image.get_pixel_mut(px as u32, py as u32);
                for k in 0..3 {
                    p[k] = (p[k] as f32 * (1.0 - coverage) + colour[k] as f32 * coverage).round() as u8;
                }
            }
        });
    }
}

/// The width `text` takes at `size` pixels.
pub fn text_width(text: &str, size: f32) -> f32 {
    let font = FontRef::try_from_slice(imgclf_dataset::FONT).expect("the bundled font parses");
    let scaled = font.as_scaled(PxScale::from(size));
    text.chars().map(|c| scaled.h_advance(scaled.glyph_id(c))).sum()
}

/// A copy of `photo` scaled to `width` pixels wide with `label` on a dark band at the top,
/// in `colour` (the tutorial's `cv2.putText`, legible on any photo).
pub fn label_photo(photo: &RgbImage, label: &str, colour: Rgb<u8>, width: u32) -> RgbImage {
    let mut out = resize_width(photo, width);
    let height = out.height();
    let size = (width as f32 / 14.0).clamp(14.0, 40.0);
    let band = (size * 1.4) as u32;
    for y in 0..band.min(height) {
        for x in 0..width {
            let p = out.get_pixel_mut(x, y);
            p.0 = p.0.map(|v| (v as f32 * 0.35) as u8);
        }
    }
    draw_text(&mut out, label, ((size * 0.4) as i32, (size * 0.2) as i32), size, colour);
    out
}

/// `photo` scaled to `width` pixels wide, keeping its aspect ratio.
pub fn resize_width(photo: &RgbImage, width: u32) -> RgbImage {
    if photo.width() == width {
        return photo.clone();
    }
    let height = ((photo.height() as f64 * width as f64 / photo.width().max(1) as f64).round() as u32).max(1);
    imageops::resize(photo, width, height, imageops::FilterType::Triangle)
}

/// Images in a grid of `columns`, each cell titled above in black on white.
pub fn titled_grid(cells: &[(RgbImage, String)], columns: usize) -> RgbImage {
    const GAP: u32 = 8;
    let title = 26u32;
    let columns = columns.clamp(1, cells.len().max(1)) as u32;
    let rows = (cells.len() as u32).div_ceil(columns);
    let cw = cells.iter().map(|c| c.0.width()).max().unwrap_or(0);
    let ch = cells.iter().map(|c| c.0.height()).max().unwrap_or(0);
    let mut grid =
        RgbImage::from_pixel(GAP + columns * (cw + GAP), GAP + rows * (ch + title + GAP), Rgb([255, 255, 255]));
    for (i, (img, text)) in cells.iter().enumerate() {
        let (x, y) = (GAP + (i as u32 % columns) * (cw + GAP), GAP + (i as u32 / columns) * (ch + title + GAP));
        let tx = x as f32 + (cw as f32 - text_width(text, 18.0)) / 2.0;
        draw_text(&mut grid, text, (tx.max(x as f32) as i32, y as i32 + 2), 18.0, Rgb([0, 0, 0]));
        imageops::replace(&mut grid, img, x as i64, (y + title) as i64);
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_drawn_on_a_400_pixel_copy() {
        let photo = RgbImage::from_pixel(200, 150, Rgb([200, 200, 200]));
        let out = label_photo(&photo, "dog 97.31%", CONFIDENT, 400);
        assert_eq!(out.dimensions(), (400, 300));
        let green = out.pixels().filter(|p| p[1] > 150 && p[0] < 120).count();
        assert!(green > 100, "the text is drawn in green: {green} pixels");
        assert_eq!(out.get_pixel(200, 250), &Rgb([200, 200, 200]), "below the band the photo is untouched");
        assert_eq!((label_colour(0.95), label_colour(0.6)), (CONFIDENT, UNSURE));
    }

    #[test]
    fn grid_cells_get_their_titles_and_images() {
        let cell = RgbImage::from_pixel(50, 40, Rgb([255, 0, 0]));
        let grid = titled_grid(&[(cell.clone(), "cat 51.0%".into()), (cell, "dog 99.9%".into())], 2);
        assert_eq!(grid.dimensions(), (8 + 2 * 58, 8 + 40 + 26 + 8));
        assert_eq!(grid.get_pixel(8 + 25, 8 + 26 + 20), &Rgb([255, 0, 0]));
        let dark = (8..8 + 26)
            .flat_map(|y| (8..58).map(move |x| (x, y)))
            .filter(|&(x, y)| grid.get_pixel(x, y)[0] < 100)
            .count();
        assert!(dark > 20, "the title is drawn: {dark} dark pixels");
    }
}
