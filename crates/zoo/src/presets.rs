//! Specs for backbones a user exported the usual way, for `imgclf models add --preset`:
//! the tutorial's Keras models as `tools/export_keras_backbones.py` (and
//! `../shared/tools/make_keras_backbones.py`) write them, and EfficientNet-Lite0 as PyTorch's
//! exporter or `imgclf models pull` write it, and torchvision's ResNet50 as
//! `tools/export_torchvision.py` writes it. `add` still loads the model to check the spec.

use crate::{ZooError, efficientnet};

/// The preset names, for `--help` and messages.
pub const PRESETS: &[&str] =
    &["keras-resnet50", "keras-inceptionv3", "keras-xception", "efficientnet-lite0", "torchvision-resnet50"];

/// The spec JSON of preset `name`.
pub fn preset(name: &str) -> Result<String, ZooError> {
    // Keras' `include_top=False` models exported with a `features` map and a `gap` pool
    let keras = |app: &str, size: usize, map: usize, scaling: serde_json::Value| {
        let mut input = serde_json::json!({
            "name": "input", "layout": "NHWC", "shape": ["batch", size, size, 3], "size": [size, size],
            "resize": "whole image to size x size",
        });
        input.as_object_mut().unwrap().extend(scaling.as_object().unwrap().clone());
        let spec = serde_json::json!({
            "name": app,
            "input": input,
            "outputs": {
                "features": {"name": "features", "layout": "NHWC", "shape": ["batch", map, map, 2048]},
                "pooled": {"name": "gap", "shape": ["batch", 2048]},
            },
            "source": format!("a Keras {app} (include_top=False) export registered from its preset"),
        });
        serde_json::to_string_pretty(&spec).expect("a JSON value serialises") + "\n"
    };
    let caffe = serde_json::json!({"scale": "caffe", "color": "BGR", "mean": [103.939, 116.779, 123.68], "std": [1.0, 1.0, 1.0]});
    let tf =
        serde_json::json!({"scale": "tf", "color": "RGB", "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5]});
    match name {
        "keras-resnet50" => Ok(keras("ResNet50", 224, 7, caffe)),
        "keras-inceptionv3" => Ok(keras("InceptionV3", 299, 8, tf)),
        "keras-xception" => Ok(keras("Xception", 299, 10, tf)),
        "efficientnet-lite0" => Ok(efficientnet::LITE0.spec("an EfficientNet-Lite0 export registered from its preset")),
        "torchvision-resnet50" => Ok(torchvision_resnet50()),
        _ => Err(ZooError::Unknown { name: name.into(), known: PRESETS.join(", ") }),
    }
}

/// torchvision's ResNet50 as `tools/export_torchvision.py` writes it: NCHW, RGB, ImageNet
/// mean/std on 0-1 pixels, resize the short side to 256 then crop the centre 224 (its
/// `IMAGENET1K` transforms), outputs `features` (the last conv map) and `gap` (its pool).
fn torchvision_resnet50() -> String {
    let spec = serde_json::json!({
        "name": "ResNet50-torchvision",
        "input": {
            "name": "input", "layout": "NCHW", "shape": ["batch", 3, 224, 224], "size": [224, 224],
            "color": "RGB", "scale": "torch",
            "resize": {"policy": "center_crop_then_resize", "crop_fraction": 0.875, "interpolation": "bilinear"},
        },
        "outputs": {
            "features": {"name": "features", "layout": "NCHW", "shape": ["batch", 2048, 7, 7]},
            "pooled": {"name": "gap", "shape": ["batch", 2048]},
        },
        "source": "a torchvision ResNet50 exported by tools/export_torchvision.py, registered from its preset",
    });
    serde_json::to_string_pretty(&spec).expect("a JSON value serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclf_runtime::{ColorOrder, Layout, ModelSpec};

    #[test]
    fn every_preset_parses_into_the_preprocessing_its_model_needs() {
        for name in PRESETS {
            let spec = ModelSpec::parse(&preset(name).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let (size, layout, color, mean, std) = match *name {
                "keras-resnet50" => (224, Layout::Nhwc, ColorOrder::Bgr, 103.939, 1.0),
                "keras-inceptionv3" | "keras-xception" => (299, Layout::Nhwc, ColorOrder::Rgb, 127.5, 127.5),
                "torchvision-resnet50" => (224, Layout::Nchw, ColorOrder::Rgb, 0.485 * 255.0, 0.229 * 255.0),
                _ => (224, Layout::Nchw, ColorOrder::Rgb, 127.0, 128.0),
            };
            assert_eq!((spec.resize.width, spec.layout, spec.color), (size, layout, color), "{name}");
            assert_eq!((spec.normalize.mean[0], spec.normalize.std[0]), (mean, std), "{name}");
        }
        assert!(preset("vgg16").unwrap_err().to_string().contains("keras-resnet50"));
    }
}
