//! Photos inline: decoded, scaled to a thumbnail and encoded as a JPEG `data:` URI.

use base64::Engine as _;
use image::RgbImage;
use imgclf_cam::resize_width;
use imgclf_dataset::{Sample, decode_rgb};

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

/// A row's photo as a [`THUMB`]-wide data URI, or why it cannot be shown (missing since
/// training, changed since its features were made (`digest`, where recorded), unreadable).
pub fn thumbnail(photo: &Sample, digest: Option<u64>) -> Result<String, String> {
    let bytes = recorded_photo(photo, digest)?;
    let picture = decode_rgb(&bytes, &photo.path).map_err(|e| format!("unreadable: {e}"))?;
    Ok(data_uri(&resize_width(&picture, THUMB)))
}

/// The bytes of a row's photo (a file, or a member of a tar or Parquet file) when it is the
/// photo whose features were made: there, and with the recorded digest (the first 8 bytes of
/// its sha256) when there is one; else why not.
pub fn recorded_photo(photo: &Sample, digest: Option<u64>) -> Result<Vec<u8>, String> {
    if photo.member.is_none() && !photo.path.is_file() {
        return Err("missing".into());
    }
    let bytes = photo.read().map_err(|e| format!("unreadable: {e}"))?;
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
        let photo = |path: &std::path::Path| Sample::file(path.to_path_buf(), String::new(), None);
        let uri = thumbnail(&photo(&path), Some(digest)).unwrap();
        let b64 = uri.strip_prefix("data:image/jpeg;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        let back = image::load_from_memory(&bytes).unwrap();
        assert_eq!((back.width(), back.height()), (THUMB, THUMB / 2));
        assert_eq!(thumbnail(&photo(&t.path().join("gone.jpg")), None).unwrap_err(), "missing");
        assert_eq!(thumbnail(&photo(&path), Some(digest ^ 1)).unwrap_err(), "changed since its features were made");
    }
}
