//! Photos inline: decoded, scaled to a thumbnail and encoded as a JPEG `data:` URI.

use std::path::Path;

use base64::Engine as _;
use image::RgbImage;
use imgclf_cam::resize_width;
use imgclf_dataset::{decode_rgb, read_photo};

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
/// training, changed since its features were made (`digest`, where recorded), unreadable).
pub fn thumbnail(path: &Path, digest: Option<u64>) -> Result<String, String> {
    let bytes = recorded_photo(path, digest)?;
    let photo = decode_rgb(&bytes, path).map_err(|e| format!("unreadable: {e}"))?;
    Ok(data_uri(&resize_width(&photo, THUMB)))
}

/// The bytes of the file at `path` when it is the photo whose features were made: there, and
/// with the recorded digest (the first 8 bytes of its sha256) when there is one; else why not.
pub fn recorded_photo(path: &Path, digest: Option<u64>) -> Result<Vec<u8>, String> {
    if !path.is_file() {
        return Err("missing".into());
    }
    let bytes = read_photo(path).map_err(|e| format!("unreadable: {e}"))?;
    match digest.is_none_or(|d| imgclf_features::photo_digest(&bytes) == d) {
        true => Ok(bytes),
        false => Err("changed since its features were made".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thumbnail_decodes_back_to_its_width_and_a_missing_photo_says_so() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("p.png");
        RgbImage::from_pixel(400, 200, image::Rgb([200, 30, 30])).save(&path).unwrap();
        let digest = imgclf_features::photo_digest(&std::fs::read(&path).unwrap());
        let uri = thumbnail(&path, Some(digest)).unwrap();
        let b64 = uri.strip_prefix("data:image/jpeg;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        let back = image::load_from_memory(&bytes).unwrap();
        assert_eq!((back.width(), back.height()), (THUMB, THUMB / 2));
        assert_eq!(thumbnail(&t.path().join("gone.jpg"), None).unwrap_err(), "missing");
        assert_eq!(thumbnail(&path, Some(digest ^ 1)).unwrap_err(), "changed since its features were made");
    }
}
