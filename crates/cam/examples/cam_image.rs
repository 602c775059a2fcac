//! Draw a class activation map for one image: the fixture photo's feature map (here a stand-in
//! with two channels, one lighting the photo's left half, one its top), weighed by a class's
//! head weights, normalised, JET-coloured and blended over the photo.
//!
//!     cargo run -p imgclf-cam --example cam_image

use imgclf_cam::{class_activation_map, normalize, overlay};
use imgclf_dataset::load_rgb;
use ndarray::{Array3, array};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny_data/train/cats/cat.0.jpg");
    let photo = load_rgb(&path)?;
    // a (channels, 7, 7) map, as a backbone's last convolution gives it
    let maps =
        Array3::from_shape_fn((2, 7, 7), |(c, y, x)| if c == 0 { (x < 3) as u8 as f32 } else { (y < 3) as u8 as f32 });
    let weights = array![1.5, 0.5]; // the head's weights of the class, per channel
    let cam = normalize(&class_activation_map(maps.view(), weights.view()));
    println!("map {:?}: {:.2} top-left, {:.2} bottom-right", cam.dim(), cam[[0, 0]], cam[[6, 6]]);
    let out = std::env::temp_dir().join("imgclf_cam_example.png");
    overlay(&photo, &cam).save(&out)?;
    println!("{} with its map: {}", path.display(), out.display());
    Ok(())
}
