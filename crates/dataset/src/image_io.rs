use std::io::Cursor;
use std::path::Path;

use fast_image_resize::images::CroppedImage;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{ImageFormat, ImageReader, Limits, RgbImage};

use crate::DatasetError;

/// Largest side and decode allocation we accept: a header declaring more is a
/// decompression bomb, refused before any pixel buffer is allocated.
const MAX_SIDE: u32 = 16_384;
const MAX_ALLOC: u64 = 1 << 30;

/// Decodes any supported image to 8-bit RGB. The format comes from the bytes, not the
/// extension (Kaggle's cats and dogs ship GIF and BMP files named `.jpg`); grayscale,
/// alpha, 16-bit, palette and CMYK images are converted (alpha is dropped, like PIL's
/// `convert("RGB")`).
pub fn load_rgb(path: &Path) -> Result<RgbImage, DatasetError> {
    decode_rgb(&read_photo(path)?, path)
}

/// An image file's bytes, for [`decode_rgb`] and for whatever else needs them (a digest):
/// [`load_rgb`] in two steps, with its errors.
pub fn read_photo(path: &Path) -> Result<Vec<u8>, DatasetError> {
    std::fs::read(path).map_err(DatasetError::io(path))
}

/// [`load_rgb`] on bytes already read; `path` only names them in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage, DatasetError> {
    let decode_err = |reason: String| DatasetError::Decode { path: path.to_path_buf(), reason };
    if bytes.is_empty() {
        return Err(decode_err("empty file (0 bytes)".into()));
    }
    let open = || ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(DatasetError::io(path));
    let mut reader = open()?;
    match reader.format() {
        None => return Err(decode_err("not an image format we read (jpeg, png, gif, bmp, pnm, webp)".into())),
        // the JPEG decoder fills a cut-off image with grey instead of failing: refuse it, as
        // Pillow does ("image file is truncated"), rather than learn from half a photo
        Some(ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
            return Err(decode_err("truncated JPEG (no end-of-image marker after its last scan)".into()));
        }
        Some(ImageFormat::Png) => png_palette_check(bytes).map_err(decode_err)?,
        Some(_) => {}
    }
    // the header alone: a decompression bomb is named before any pixel memory is allocated
    if let Ok((w, h)) = open()?.into_dimensions()
        && (w > MAX_SIDE || h > MAX_SIDE)
    {
        return Err(decode_err(format!("declares {w}x{h} pixels, over the {MAX_SIDE}-pixel limit per side")));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    // a decoder bug must cost one skipped file, not the run: a panic becomes this file's error
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.decode()));
    let image = match decoded {
        Ok(result) => result.map_err(|e| decode_err(e.to_string()))?,
        Err(panic) => {
            let what = panic.downcast_ref::<String>().map(String::as_str).or(panic.downcast_ref::<&str>().copied());
            return Err(decode_err(format!("the decoder crashed on this file ({})", what.unwrap_or("no message"))));
        }
    };
    if image.width() == 0 || image.height() == 0 {
        return Err(decode_err(format!("an image of {}x{} pixels: nothing to see", image.width(), image.height())));
    }
    Ok(image.to_rgb8())
}

/// Whether a JPEG's last scan is followed by its end-of-image marker. Inside entropy-coded
/// data 0xFF is always followed by 0x00 or a restart marker, so `FF D9` after the last
/// start-of-scan (`FF DA`) can only be the real end; trailing bytes after it are allowed.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    last_scan.is_some_and(|at| bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]))
}

/// Refuses a PNG whose palette chunk is not a whole number of RGB entries: the `png` crate
/// (0.18.1) panics on those (image-rs/image-png#694). Walks the chunk headers only.
fn png_palette_check(bytes: &[u8]) -> Result<(), String> {
    let mut at = 8; // the signature
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
        match &header[4..8] {
            b"PLTE" if !len.is_multiple_of(3) => {
                return Err(format!("damaged PNG: its palette chunk has {len} bytes, not a whole number of colours"));
            }
            b"PLTE" | b"IDAT" | b"IEND" => return Ok(()),
            _ => at = at.saturating_add(len).saturating_add(12),
        }
    }
    Ok(())
}

/// How the image is fitted to the model's input before resizing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fit {
    /// The whole image is resized to the target size, ignoring aspect ratio (Keras'
    /// `load_img(target_size=...)`).
    Stretch,
    /// A centred square of side `floor(fraction * min(w, h))` is cut first, then resized
    /// (the EfficientNet evaluation crop, fraction 0.875 = 224/256).
    CenterCrop {
        /// The share of the short side the square keeps.
        fraction: f64,
    },
}

/// Resampling filter. The convolution filters follow Pillow's definitions, so `Bicubic`
/// here and `Image.BICUBIC` there give the same pixels up to rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// The nearest pixel (Keras' `load_img` default).
    Nearest,
    /// Antialiased linear, as Pillow's `BILINEAR`.
    Bilinear,
    /// Antialiased cubic, as Pillow's `BICUBIC`.
    Bicubic,
    /// Lanczos with 3 lobes, as Pillow's `LANCZOS`.
    Lanczos3,
}

crate::named_enum!(Filter {
    Filter::Nearest => "nearest",
    Filter::Bilinear => "bilinear" | "linear",
    Filter::Bicubic => "bicubic" | "cubic",
    Filter::Lanczos3 => "lanczos3" | "lanczos",
});

impl Filter {
    fn algorithm(self) -> ResizeAlg {
        match self {
            Filter::Nearest => ResizeAlg::Nearest,
            Filter::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
            Filter::Bicubic => ResizeAlg::Convolution(FilterType::CatmullRom),
            Filter::Lanczos3 => ResizeAlg::Convolution(FilterType::Lanczos3),
        }
    }
}

/// A target size with its fit and filter: everything that turns a decoded photo into the
/// pixels a model sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resize {
    /// Target width, pixels.
    pub width: u32,
    /// Target height, pixels.
    pub height: u32,
    /// Whether the whole image is stretched or a centre crop is cut first.
    pub fit: Fit,
    /// The resampling filter.
    pub filter: Filter,
}

impl Resize {
    /// The source rectangle `(left, top, width, height)` that `fit` keeps of a `w`×`h` image.
    pub fn source_box(&self, w: u32, h: u32) -> (u32, u32, u32, u32) {
        match self.fit {
            Fit::Stretch => (0, 0, w, h),
            Fit::CenterCrop { fraction } => {
                // at least one pixel, never more than the image has (an empty image keeps none)
                let side = ((fraction * f64::from(w.min(h))).floor() as u32).max(1).min(w.min(h));
                // offsets as in the reference: ((h - c + 1) // 2, (w - c + 1) // 2)
                ((w - side).div_ceil(2), (h - side).div_ceil(2), side, side)
            }
        }
    }

    /// Resizes `image` (loaded from `path`, named in errors) to the target size. The crop is
    /// a true crop, as Pillow's `crop().resize()`: the filter never reads outside the box.
    pub fn apply(&self, image: &RgbImage, path: &Path) -> Result<RgbImage, DatasetError> {
        let (w, h) = image.dimensions();
        let fail = |reason: String| DatasetError::Resize { path: path.to_path_buf(), width: w, height: h, reason };
        let (left, top, bw, bh) = self.source_box(w, h);
        let source = CroppedImage::new(image, left, top, bw, bh).map_err(|e| fail(e.to_string()))?;
        let mut dst = RgbImage::new(self.width, self.height);
        let options = ResizeOptions::new().resize_alg(self.filter.algorithm());
        Resizer::new().resize(&source, &mut dst, &options).map_err(|e| fail(e.to_string()))?;
        Ok(dst)
    }

    /// Decodes and resizes one file.
    pub fn load(&self, path: &Path) -> Result<RgbImage, DatasetError> {
        self.apply(&load_rgb(path)?, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, ImageBuffer, Luma, LumaA, Rgb, Rgba};

    /// Found by `just fuzz`: a decoder may return an image with no pixels, and the centre
    /// crop of one used to underflow.
    #[test]
    fn an_image_without_pixels_is_refused_and_never_cropped() {
        let err = decode_rgb(b"P5\n0 5\n255\n", Path::new("empty.pgm")).unwrap_err().to_string();
        assert!(err.contains("empty.pgm") && err.contains("0x5 pixels"), "{err}");
        let crop = Resize { width: 4, height: 4, fit: Fit::CenterCrop { fraction: 0.875 }, filter: Filter::Bilinear };
        assert_eq!(crop.source_box(0, 5), (0, 3, 0, 0));
        assert_eq!(crop.source_box(1, 9), (0, 4, 1, 1));
    }

    fn save(dir: &Path, name: &str, img: DynamicImage) -> std::path::PathBuf {
        let p = dir.join(name);
        img.save(&p).unwrap();
        p
    }

    #[test]
    fn colour_types_all_become_rgb() {
        let t = tempfile::tempdir().unwrap();
        let gray = ImageBuffer::from_pixel(3, 2, Luma([200u8]));
        let p = save(t.path(), "g.png", DynamicImage::ImageLuma8(gray));
        assert_eq!(load_rgb(&p).unwrap().get_pixel(1, 1), &Rgb([200, 200, 200]));

        let gray_alpha = ImageBuffer::from_pixel(3, 2, LumaA([90u8, 10]));
        let p = save(t.path(), "ga.png", DynamicImage::ImageLumaA8(gray_alpha));
        assert_eq!(load_rgb(&p).unwrap().get_pixel(0, 0), &Rgb([90, 90, 90]));

        let rgba = ImageBuffer::from_pixel(3, 2, Rgba([10u8, 20, 30, 0]));
        let p = save(t.path(), "a.png", DynamicImage::ImageRgba8(rgba));
        assert_eq!(load_rgb(&p).unwrap().get_pixel(2, 1), &Rgb([10, 20, 30]));

        let deep = ImageBuffer::from_pixel(2, 2, Rgb([65535u16, 0, 32896]));
        let p = save(t.path(), "d.png", DynamicImage::ImageRgb16(deep));
        assert_eq!(load_rgb(&p).unwrap().get_pixel(0, 0), &Rgb([255, 0, 128]));
    }

    #[test]
    fn format_comes_from_bytes_not_extension() {
        let t = tempfile::tempdir().unwrap();
        let img = ImageBuffer::from_pixel(4, 4, Rgb([1u8, 2, 3]));
        let png = t.path().join("real.png");
        img.save(&png).unwrap();
        let misnamed = t.path().join("photo.jpg");
        std::fs::copy(&png, &misnamed).unwrap();
        assert_eq!(load_rgb(&misnamed).unwrap().get_pixel(3, 3), &Rgb([1, 2, 3]));
    }

    #[test]
    fn garbage_and_truncated_files_are_decode_errors_naming_the_file() {
        let t = tempfile::tempdir().unwrap();
        let text = t.path().join("notes.jpg");
        std::fs::write(&text, b"hello, not an image").unwrap();
        let err = load_rgb(&text).unwrap_err().to_string();
        assert!(err.contains("notes.jpg") && err.contains("cannot decode"), "{err}");

        let img = ImageBuffer::from_fn(64, 64, |x, y| Rgb([x as u8 * 4, y as u8 * 4, 7u8]));
        let full = t.path().join("full.png");
        img.save(&full).unwrap();
        let bytes = std::fs::read(&full).unwrap();
        let cut = t.path().join("cut.png");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(load_rgb(&cut), Err(DatasetError::Decode { .. })));
    }

    #[test]
    fn centre_crop_box_follows_the_reference_formula() {
        let r = Resize { width: 224, height: 224, fit: Fit::CenterCrop { fraction: 0.875 }, filter: Filter::Bicubic };
        // 500x375: c = int(0.875 * 375) = 328; left = (500 - 328 + 1) // 2 = 86; top = 24
        assert_eq!(r.source_box(500, 375), (86, 24, 328, 328));
        assert_eq!(r.source_box(1, 1), (0, 0, 1, 1));
        let s = Resize { fit: Fit::Stretch, ..r };
        assert_eq!(s.source_box(500, 375), (0, 0, 500, 375));
    }

    #[test]
    fn resize_keeps_flat_colour_and_reaches_the_target_size() {
        let img = ImageBuffer::from_pixel(50, 30, Rgb([10u8, 128, 250]));
        for filter in [Filter::Nearest, Filter::Bilinear, Filter::Bicubic, Filter::Lanczos3] {
            for fit in [Fit::Stretch, Fit::CenterCrop { fraction: 0.875 }] {
                let r = Resize { width: 7, height: 9, fit, filter };
                let out = r.apply(&img, Path::new("x")).unwrap();
                assert_eq!(out.dimensions(), (7, 9));
                assert!(out.pixels().all(|p| *p == Rgb([10, 128, 250])), "{filter:?} {fit:?}");
            }
        }
    }

    #[test]
    fn centre_crop_keeps_the_centre() {
        // left third red, middle third green, right third blue: the crop must see mostly green
        let img = ImageBuffer::from_fn(90, 30, |x, _| match x / 30 {
            0 => Rgb([255u8, 0, 0]),
            1 => Rgb([0, 255, 0]),
            _ => Rgb([0, 0, 255]),
        });
        let r = Resize { width: 8, height: 8, fit: Fit::CenterCrop { fraction: 0.875 }, filter: Filter::Bilinear };
        let out = r.apply(&img, Path::new("x")).unwrap();
        assert!(out.pixels().all(|p| p[1] == 255 && p[0] == 0 && p[2] == 0));
    }

    #[test]
    fn filter_names_round_trip() {
        for f in [Filter::Nearest, Filter::Bilinear, Filter::Bicubic, Filter::Lanczos3] {
            assert_eq!(f.to_string().parse::<Filter>(), Ok(f));
        }
        assert_eq!("BICUBIC".parse::<Filter>(), Ok(Filter::Bicubic));
        assert!("sinc".parse::<Filter>().is_err());
    }
}
