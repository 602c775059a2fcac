//! Photos inline: decoded, scaled to a thumbnail and encoded as a JPEG `data:` URI.

use std::path::Path;

use base64::Engine as _;
use image::RgbImage;
use imgclf_cam::resize_width;
use imgclf_dataset::load_rgb;

/// Thumbnail width in pixels (CSS shows them at this size; 2x screens get a slight blur).
pub const THUMB: u32 = 160;

/// A picture as a `data:image/jpeg;base64,...` URI (quality 85).
pub fn data_uri(picture: &RgbImage) -> String {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(picture)
        .expect("JPEG encoding into memory cannot fail for an RGB8 image");
    format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(&jpeg))
}

/// The photo at `path` as a [`THUMB`]-wide data URI, or why it cannot be shown (missing since
/// training, unreadable).
pub fn thumbnail(path: &Path) -> Result<String, String> {
    if !path.is_file() {
        return Err("missing".into());
    }
    let photo = load_rgb(path).map_err(|e| format!("unreadable: {e}"))?;
    Ok(data_uri(&resize_width(&photo, THUMB)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thumbnail_decodes_back_to_its_width_and_a_missing_photo_says_so() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("p.png");
        RgbImage::from_pixel(400, 200, image::Rgb([200, 30, 30])).save(&path).unwrap();
        let uri = thumbnail(&path).unwrap();
        let b64 = uri.strip_prefix("data:image/jpeg;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        let back = image::load_from_memory(&bytes).unwrap();
        assert_eq!((back.width(), back.height()), (THUMB, THUMB / 2));
        assert_eq!(thumbnail(&t.path().join("gone.jpg")).unwrap_err(), "missing");
    }
}
