//! The model spec: the small JSON next to each ONNX file that says how to feed the model and
//! which outputs hold its features (see `../shared/models/efficientnet_lite0.json`).

use std::path::{Path, PathBuf};

use image::RgbImage;
use imgclf_dataset::{Filter, Fit, Resize};
use serde::Deserialize;
use serde_json::Value;

use crate::RuntimeError;

/// Largest model input side a spec may declare (the largest ImageNet backbones take ~600).
pub const MAX_INPUT_SIDE: u32 = 4096;

/// Tensor layout of the model input or of a feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Channels first: `(N, C, H, W)` (PyTorch).
    Nchw,
    /// Channels last: `(N, H, W, C)` (Keras).
    Nhwc,
}

/// Channel order the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorOrder {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red (Caffe-style Keras models).
    Bgr,
}

/// `(pixel - mean[c]) / std[c]` with pixels in 0..255 and channels in the model's order.
/// Every scaling convention (`caffe`, `tf`, `torch`, plain 0-1, explicit mean/std) reduces
/// to this one form, so preprocessing has a single code path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    /// Subtracted per channel, in pixel units (0..255).
    pub mean: [f32; 3],
    /// Divided by per channel, after the mean.
    pub std: [f32; 3],
}

/// How to feed a model and where its features come out.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Backbone name; the feature file is `gap_<name>.h5`.
    pub name: String,
    /// The graph input the images go to.
    pub input_name: String,
    /// The input's layout.
    pub layout: Layout,
    /// The channel order the model expects.
    pub color: ColorOrder,
    /// How pixels become the model's numbers.
    pub normalize: Normalize,
    /// Input size, fit and filter.
    pub resize: Resize,
    /// The last conv feature map, with its layout, when the model exposes it.
    pub feature_map: Option<(String, Layout)>,
    /// An already pooled `(N, D)` output, when the model has one.
    pub pooled: Option<String>,
    /// The spec file as read, kept verbatim in feature files and in the cache fingerprint.
    pub source_json: String,
}

impl ModelSpec {
    /// Compares a graph's declared input dims (`None` = dynamic) with the spec's layout and size.
    pub(crate) fn check_input_shape(&self, dims: &[Option<usize>]) -> Result<(), String> {
        let (spec, want) = (self, self.input_shape(1));
        if dims.len() != 4 {
            return Err(format!(
                "input `{}` has {} dimensions; the spec describes a 4-D image batch",
                spec.input_name,
                dims.len()
            ));
        }
        for (axis, (got, want)) in dims.iter().zip(want).enumerate().skip(1) {
            if let Some(got) = got
                && *got != want
            {
                let layout = match spec.layout {
                    Layout::Nchw => "NCHW",
                    Layout::Nhwc => "NHWC",
                };
                return Err(format!(
                    "input `{}` has size {got} on axis {axis}, but the spec ({layout}, {}x{}) says {want}",
                    spec.input_name, spec.resize.height, spec.resize.width
                ));
            }
        }
        Ok(())
    }

    /// The spec for `model.onnx` is `model.json` beside it.
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("json")
    }

    /// Reads the spec beside an ONNX file.
    pub fn for_model(model: &Path) -> Result<ModelSpec, RuntimeError> {
        let path = Self::path_for(model);
        let text = std::fs::read_to_string(&path).map_err(|e| RuntimeError::Spec {
            path: path.clone(),
            reason: format!("cannot read the model spec ({e}); every ONNX backbone needs a JSON spec beside it"),
        })?;
        Self::parse(&text).map_err(|reason| RuntimeError::Spec { path, reason })
    }

    /// Parses spec JSON text; the error says which field is wrong.
    pub fn parse(text: &str) -> Result<ModelSpec, String> {
        let raw: RawSpec = serde_json::from_str(text).map_err(|e| format!("invalid spec JSON: {e}"))?;
        let input = raw.input;
        let layout = parse_layout(&input.layout)
            .ok_or_else(|| format!("input.layout `{}`: expected NCHW or NHWC", input.layout))?;
        let color = match input.color.to_ascii_uppercase().as_str() {
            "RGB" => ColorOrder::Rgb,
            "BGR" => ColorOrder::Bgr,
            other => return Err(format!("input.color `{other}`: expected RGB or BGR")),
        };
        let [height, width] = input.size;
        if !(1..=MAX_INPUT_SIDE).contains(&height) || !(1..=MAX_INPUT_SIDE).contains(&width) {
            return Err(format!("input.size {:?}: expected [height, width], each in 1..={MAX_INPUT_SIDE}", input.size));
        }
        let normalize = normalize(&input)?;
        let (fit, filter) = resize_policy(input.resize.as_ref())?;
        let feature_map = match raw.outputs.features {
            Some(f) => {
                let l = match f.layout {
                    Some(l) => parse_layout(&l)
                        .ok_or_else(|| format!("outputs.features.layout `{l}`: expected NCHW or NHWC"))?,
                    None => layout,
                };
                Some((f.name, l))
            }
            None => None,
        };
        let pooled = raw.outputs.pooled.map(|p| p.name);
        if feature_map.is_none() && pooled.is_none() {
            return Err("outputs: name a `features` map (N,C,H,W or N,H,W,C) or a `pooled` (N,D) output".into());
        }
        Ok(ModelSpec {
            name: sanitize_name(&raw.name)?,
            input_name: input.name,
            layout,
            color,
            normalize,
            resize: Resize { width, height, fit, filter },
            feature_map,
            pooled,
            source_json: text.to_string(),
        })
    }

    /// Every output the spec names: the feature output, then the map when it is another one.
    pub fn outputs(&self) -> Vec<&str> {
        let mut outputs = vec![self.feature_output()];
        if let Some((map, _)) = &self.feature_map
            && map != self.feature_output()
        {
            outputs.push(map);
        }
        outputs
    }

    /// The output that gives the feature vector: the pooled one, else the map to pool.
    pub fn feature_output(&self) -> &str {
        match (&self.pooled, &self.feature_map) {
            (Some(p), _) => p,
            (None, Some((f, _))) => f,
            (None, None) => unreachable!("parse requires one of them"),
        }
    }

    /// Input tensor shape for a batch of `n` images.
    pub fn input_shape(&self, n: usize) -> [usize; 4] {
        let (h, w) = (self.resize.height as usize, self.resize.width as usize);
        match self.layout {
            Layout::Nchw => [n, 3, h, w],
            Layout::Nhwc => [n, h, w, 3],
        }
    }

    /// Writes one resized RGB image into its slot of the input tensor (`3*H*W` floats),
    /// reordering channels and normalising as the spec says.
    pub fn fill_input(&self, image: &RgbImage, slot: &mut [f32]) {
        let (w, h) = image.dimensions();
        assert_eq!((w, h), (self.resize.width, self.resize.height), "image not resized to the model input");
        assert_eq!(slot.len(), 3 * (w * h) as usize);
        let order = match self.color {
            ColorOrder::Rgb => [0, 1, 2],
            ColorOrder::Bgr => [2, 1, 0],
        };
        let Normalize { mean, std } = self.normalize;
        // where pixel i, channel c lands: planes (NCHW) or interleaved (NHWC)
        let (pixel_stride, channel_stride) = match self.layout {
            Layout::Nchw => (1, (w * h) as usize),
            Layout::Nhwc => (3, 1),
        };
        for (i, px) in image.pixels().enumerate() {
            for (c, &src) in order.iter().enumerate() {
                slot[i * pixel_stride + c * channel_stride] = (f32::from(px[src]) - mean[c]) / std[c];
            }
        }
    }
}

#[derive(Deserialize)]
struct RawSpec {
    name: String,
    input: RawInput,
    outputs: RawOutputs,
}

#[derive(Deserialize)]
struct RawInput {
    name: String,
    layout: String,
    size: [u32; 2],
    color: String,
    scale: String,
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
    pixel_range: Option<[f32; 2]>,
    resize: Option<Value>,
}

#[derive(Deserialize)]
struct RawOutputs {
    features: Option<RawOutput>,
    pooled: Option<RawOutput>,
}

#[derive(Deserialize)]
struct RawOutput {
    name: String,
    layout: Option<String>,
}

fn parse_layout(s: &str) -> Option<Layout> {
    match s.to_ascii_uppercase().as_str() {
        "NCHW" => Some(Layout::Nchw),
        "NHWC" => Some(Layout::Nhwc),
        _ => None,
    }
}

/// Named scalings give defaults; explicit `mean`/`std` (in channel order, in `pixel_range`
/// units) override them.
fn normalize(input: &RawInput) -> Result<Normalize, String> {
    let (mean, std) = match input.scale.to_ascii_lowercase().as_str() {
        // Keras ResNet50/VGG: BGR minus the ImageNet means, no scaling
        "caffe" => ([103.939, 116.779, 123.68], [1.0; 3]),
        // Keras Inception/Xception: x / 127.5 - 1
        "tf" => ([127.5; 3], [127.5; 3]),
        // torchvision: (x / 255 - mean) / std
        "torch" => ([0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0], [0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0]),
        "unit" | "0-1" => ([0.0; 3], [255.0; 3]),
        "none" | "raw" => ([0.0; 3], [1.0; 3]),
        "mean_std" => {
            if input.mean.is_none() || input.std.is_none() {
                return Err("input.scale `mean_std` needs input.mean and input.std".into());
            }
            ([0.0; 3], [1.0; 3])
        }
        other => return Err(format!("input.scale `{other}`: expected caffe, tf, torch, unit, none or mean_std")),
    };
    let unit = match input.pixel_range {
        None | Some([0.0, 255.0]) => 1.0,
        Some([0.0, 1.0]) => 255.0,
        Some(r) => return Err(format!("input.pixel_range {r:?}: expected [0, 255] or [0, 1]")),
    };
    let scale = |v: [f32; 3]| v.map(|x| x * unit);
    let n = Normalize { mean: input.mean.map(scale).unwrap_or(mean), std: input.std.map(scale).unwrap_or(std) };
    if n.std.iter().any(|&s| s <= 0.0 || !s.is_finite()) {
        return Err(format!("input.std {:?}: every value must be positive", n.std));
    }
    if n.mean.iter().any(|m| !m.is_finite()) {
        return Err(format!("input.mean {:?}: every value must be a finite number", n.mean));
    }
    Ok(n)
}

/// `input.resize` is either an object (`policy`, `interpolation`, optional `crop_fraction`)
/// or a free-text note (Keras specs), which means a plain resize of the whole image.
/// Without an interpolation we use bilinear: the antialiased convolution that Pillow's
/// BILINEAR gives, which keeps small features intact when large photos shrink.
fn resize_policy(resize: Option<&Value>) -> Result<(Fit, Filter), String> {
    let Some(Value::Object(obj)) = resize else {
        return Ok((Fit::Stretch, Filter::Bilinear));
    };
    let filter = match obj.get("interpolation").and_then(Value::as_str) {
        Some(name) => name.parse::<Filter>().map_err(|e| format!("input.resize.interpolation {e}"))?,
        None => Filter::Bilinear,
    };
    let fit = match obj.get("policy").and_then(Value::as_str).unwrap_or("resize") {
        "resize" | "stretch" => Fit::Stretch,
        "center_crop_then_resize" | "center_crop" => {
            let fraction = obj.get("crop_fraction").and_then(Value::as_f64).unwrap_or(0.875);
            if !(fraction > 0.0 && fraction <= 1.0) {
                return Err(format!("input.resize.crop_fraction {fraction}: expected 0 < f <= 1"));
            }
            Fit::CenterCrop { fraction }
        }
        other => return Err(format!("input.resize.policy `{other}`: expected resize or center_crop_then_resize")),
    };
    Ok((fit, filter))
}

/// The backbone name becomes part of a file name; keep it to safe characters.
fn sanitize_name(name: &str) -> Result<String, String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(format!("name `{name}`: use letters, digits, '-', '_' or '.' (it names the feature file)"));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn spec(input_extra: &str, outputs: &str) -> Result<ModelSpec, String> {
        ModelSpec::parse(&format!(
            r#"{{"name": "Net", "input": {{"name": "x", "size": [2, 2], {input_extra}}}, "outputs": {outputs}}}"#
        ))
    }

    const FMAP: &str = r#"{"features": {"name": "f"}}"#;

    fn first_pixel(s: &ModelSpec, rgb: [u8; 3]) -> Vec<f32> {
        let img = RgbImage::from_pixel(2, 2, Rgb(rgb));
        let mut slot = vec![0.0; 12];
        s.fill_input(&img, &mut slot);
        match s.layout {
            Layout::Nchw => vec![slot[0], slot[4], slot[8]],
            Layout::Nhwc => slot[..3].to_vec(),
        }
    }

    #[test]
    fn caffe_is_bgr_minus_imagenet_means() {
        let s = spec(r#""layout": "NHWC", "color": "BGR", "scale": "caffe""#, FMAP).unwrap();
        let v = first_pixel(&s, [200, 100, 50]);
        assert_eq!(v, [50.0 - 103.939, 100.0 - 116.779, 200.0 - 123.68]);
    }

    #[test]
    fn tf_maps_to_minus_one_one() {
        let s = spec(r#""layout": "NHWC", "color": "RGB", "scale": "tf""#, FMAP).unwrap();
        assert_eq!(first_pixel(&s, [0, 255, 127]), [-1.0, 1.0, (127.0 - 127.5) / 127.5]);
    }

    #[test]
    fn torch_uses_imagenet_mean_and_std_on_unit_pixels() {
        let s = spec(r#""layout": "NCHW", "color": "RGB", "scale": "torch""#, FMAP).unwrap();
        let v = first_pixel(&s, [255, 0, 128]);
        let expect = [(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (128.0 / 255.0 - 0.406) / 0.225];
        for (a, b) in v.iter().zip(expect) {
            assert!((a - b).abs() < 1e-5, "{v:?} vs {expect:?}");
        }
    }

    #[test]
    fn unit_and_none_scalings() {
        let s = spec(r#""layout": "NCHW", "color": "RGB", "scale": "unit""#, FMAP).unwrap();
        assert_eq!(first_pixel(&s, [255, 0, 51]), [1.0, 0.0, 0.2]);
        let s = spec(r#""layout": "NCHW", "color": "RGB", "scale": "none""#, FMAP).unwrap();
        assert_eq!(first_pixel(&s, [255, 0, 51]), [255.0, 0.0, 51.0]);
    }

    #[test]
    fn explicit_mean_std_and_pixel_range() {
        let s = spec(
            r#""layout": "NCHW", "color": "RGB", "scale": "mean_std", "mean": [127, 127, 127], "std": [128, 128, 128]"#,
            FMAP,
        )
        .unwrap();
        assert_eq!(first_pixel(&s, [255, 127, 0]), [1.0, 0.0, -127.0 / 128.0]);
        let s = spec(
            r#""layout": "NCHW", "color": "RGB", "scale": "mean_std", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "pixel_range": [0, 1]"#,
            FMAP,
        )
        .unwrap();
        assert_eq!(s.normalize.mean, [127.5; 3]);
        assert!(spec(r#""layout": "NCHW", "color": "RGB", "scale": "mean_std""#, FMAP).is_err());
    }

    #[test]
    fn layouts_place_channels_in_planes_or_interleaved() {
        let img = RgbImage::from_fn(2, 2, |x, y| Rgb([(x + 2 * y) as u8, 10, 20]));
        let nchw = spec(r#""layout": "NCHW", "color": "RGB", "scale": "none""#, FMAP).unwrap();
        let mut a = vec![0.0; 12];
        nchw.fill_input(&img, &mut a);
        assert_eq!(a, [0., 1., 2., 3., 10., 10., 10., 10., 20., 20., 20., 20.]);
        let nhwc = ModelSpec { layout: Layout::Nhwc, ..nchw };
        let mut b = vec![0.0; 12];
        nhwc.fill_input(&img, &mut b);
        assert_eq!(b, [0., 10., 20., 1., 10., 20., 2., 10., 20., 3., 10., 20.]);
        assert_eq!(nhwc.input_shape(5), [5, 2, 2, 3]);
    }

    #[test]
    fn the_shared_efficientnet_spec_format_parses() {
        let s = ModelSpec::parse(
            r#"{"name": "EfficientNet-Lite0", "input": {"name": "input", "layout": "NCHW", "size": [224, 224],
            "color": "RGB", "scale": "mean_std", "pixel_range": [0, 255], "mean": [127.0, 127.0, 127.0],
            "std": [128.0, 128.0, 128.0], "resize": {"policy": "center_crop_then_resize", "interpolation": "bicubic"}},
            "outputs": {"features": {"name": "features", "layout": "NCHW"}, "logits": {"name": "logits"}, "pooled": null}}"#,
        )
        .unwrap();
        assert_eq!(s.resize.fit, Fit::CenterCrop { fraction: 0.875 });
        assert_eq!(s.resize.filter, Filter::Bicubic);
        assert_eq!(s.feature_output(), "features");
        assert_eq!(s.feature_map, Some(("features".into(), Layout::Nchw)));
    }

    #[test]
    fn keras_spec_with_text_resize_and_pooled_output() {
        let s = spec(
            r#""layout": "NHWC", "color": "BGR", "scale": "caffe", "resize": "whole image to size x size""#,
            r#"{"features": {"name": "features", "layout": "NHWC"}, "pooled": {"name": "gap"}}"#,
        )
        .unwrap();
        assert_eq!((s.resize.fit, s.resize.filter), (Fit::Stretch, Filter::Bilinear));
        assert_eq!(s.feature_output(), "gap");
    }

    #[test]
    fn bad_fields_are_named() {
        let e = spec(r#""layout": "CHW", "color": "RGB", "scale": "tf""#, FMAP).unwrap_err();
        assert!(e.contains("input.layout"), "{e}");
        let e = spec(r#""layout": "NCHW", "color": "RGB", "scale": "magic""#, FMAP).unwrap_err();
        assert!(e.contains("input.scale"), "{e}");
        let e = spec(r#""layout": "NCHW", "color": "RGB", "scale": "tf""#, "{}").unwrap_err();
        assert!(e.contains("outputs"), "{e}");
        let e = ModelSpec::parse("{").unwrap_err();
        assert!(e.contains("invalid spec JSON"), "{e}");
    }
}
