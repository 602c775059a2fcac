//! A predicted photo's class activation map, drawn over what the backbone saw of it (what
//! `imgclf cam` draws, and the report beside each top loss).

use image::RgbImage;
use imgclf_cam::{LinearHead, class_activation_map, class_weights, normalize, overlay, resize_width};
use imgclf_heads::{Predictions, Predictor};
use ndarray::Axis;

use crate::ReportError;

/// The map of row `row` of `predictions` toward `class`, from backbone `index`'s feature map
/// (the predictor must keep maps), over the photo's crop that backbone saw, `width` pixels
/// wide. The head must be linear (no hidden layer).
pub fn cam_overlay(
    predictor: &Predictor,
    predictions: &Predictions,
    row: usize,
    index: usize,
    class: usize,
    width: u32,
) -> Result<RgbImage, ReportError> {
    let widths: Vec<usize> = predictor.backbones().iter().map(|b| b.1).collect();
    let head = &predictor.run.head;
    let linear =
        LinearHead { kernel: head.output.kernel.view(), scale: head.standardizer.as_ref().map(|s| s.scale.view()) };
    let weights = class_weights(&linear, &widths, index, class)?;
    let map = predictions.maps[index].index_axis(Axis(0), row);
    let cam = normalize(&class_activation_map(map, weights.view()));
    let photo = predictions.samples[row].load_rgb()?;
    let (left, top, w, h) = predictor.resize(index).source_box(photo.width(), photo.height());
    let photo = resize_width(&image::imageops::crop_imm(&photo, left, top, w, h).to_image(), width);
    Ok(overlay(&photo, &cam))
}
