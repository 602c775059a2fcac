//! The pixel feed: a model rewritten to take the decoded `u8` pixels (`N×H×W×3`, RGB, as
//! `RgbImage` holds them) and do the spec's conversion itself, as nodes in front of the
//! original input: channel order, cast, `(x - mean) / std`, layout. On a GPU that moves a
//! quarter of the bytes over PCIe and leaves the CPU only decoding; on the CPU it gives the
//! features of [`ModelSpec::fill_input`] (the same operations in the same order). A model
//! whose spec names no pooled output gets its feature map pooled at the end too ([`POOLED`]):
//! rows, not maps (64 MB per batch of 256 for Lite0), come back over PCIe.

use std::path::Path;

use crate::onnx::pb;
use crate::onnx::pb::tensor_proto::DataType;

use crate::onnx::{self, Dim};
use crate::{ColorOrder, Layout, ModelSpec, RuntimeError};

/// The input name of an adapted model.
pub const PIXELS: &str = "imgclf_pixels";

/// The output an adapted model adds when its spec names no pooled output: the feature
/// map's global average pool, `(N, C)`.
pub const POOLED: &str = "imgclf_pooled";

/// `model`'s bytes with its input replaced by [`PIXELS`], a `u8` `N×H×W×3` RGB batch, and,
/// when the spec has no pooled output, the pooled feature map added as [`POOLED`].
pub fn pixel_model(model: &Path, spec: &ModelSpec) -> Result<Vec<u8>, RuntimeError> {
    let bytes = std::fs::read(model).map_err(RuntimeError::io(model))?;
    let mismatch = |reason: String| RuntimeError::SpecMismatch { model: model.to_path_buf(), reason };
    let mut proto = onnx::decode(&bytes).map_err(|reason| RuntimeError::Engine {
        model: model.to_path_buf(),
        engine: "ort",
        reason,
    })?;
    let graph = proto.graph.as_mut().ok_or_else(|| mismatch("the file holds no graph".into()))?;
    if graph.initializer.iter().any(|t| t.data_location == Some(pb::tensor_proto::DataLocation::External as i32)) {
        return Err(mismatch("its weights live in external files; the pixel feed needs a self-contained model".into()));
    }
    let index = graph
        .input
        .iter()
        .position(|i| i.name == spec.input_name)
        .ok_or_else(|| mismatch(format!("no input `{}`", spec.input_name)))?;
    let original = graph.input.remove(index);
    let declared = onnx::declared_dims(&original);
    if !declared.is_empty() {
        spec.check_input_shape(&declared).map_err(mismatch)?;
    }
    let batch = declared.first().copied().flatten().map_or(Dim::Named("N"), Dim::Fixed);
    let (h, w) = (spec.resize.height as usize, spec.resize.width as usize);
    graph.input.insert(
        index,
        onnx::value_info(PIXELS, &[batch, Dim::Fixed(h), Dim::Fixed(w), Dim::Fixed(3)], DataType::Uint8),
    );

    let name = |s: &str| format!("{PIXELS}_{s}");
    let mut nodes = Vec::new();
    let mut last = PIXELS.to_string();
    if spec.color == ColorOrder::Bgr {
        graph.initializer.push(onnx::int64s(&name("bgr"), &[3], &[2, 1, 0]));
        nodes.push(onnx::node("Gather", &[&last, &name("bgr")], &name("ordered"), vec![onnx::int("axis", 3)]));
        last = name("ordered");
    }
    nodes.push(onnx::node("Cast", &[&last], &name("float"), vec![onnx::int("to", DataType::Float as i64)]));
    graph.initializer.push(onnx::floats(&name("mean"), &[1, 1, 1, 3], &spec.normalize.mean));
    graph.initializer.push(onnx::floats(&name("std"), &[1, 1, 1, 3], &spec.normalize.std));
    nodes.push(onnx::node("Sub", &[&name("float"), &name("mean")], &name("centred"), vec![]));
    let scaled = if spec.layout == Layout::Nchw { name("scaled") } else { spec.input_name.clone() };
    nodes.push(onnx::node("Div", &[&name("centred"), &name("std")], &scaled, vec![]));
    if spec.layout == Layout::Nchw {
        nodes.push(onnx::node("Transpose", &[&scaled], &spec.input_name, vec![onnx::ints("perm", &[0, 3, 1, 2])]));
    }
    graph.node.splice(0..0, nodes);
    if let (None, Some((map, layout))) = (&spec.pooled, &spec.feature_map) {
        let map = if *layout == Layout::Nhwc {
            let perm = vec![onnx::ints("perm", &[0, 3, 1, 2])];
            graph.node.push(onnx::node("Transpose", &[map], &name("map_nchw"), perm));
            name("map_nchw")
        } else {
            map.clone()
        };
        graph.node.push(onnx::node("GlobalAveragePool", &[&map], &name("gap"), vec![]));
        graph.node.push(onnx::node("Flatten", &[&name("gap")], POOLED, vec![onnx::int("axis", 1)]));
        graph.output.push(onnx::value_info(POOLED, &[batch, Dim::Named("C")], DataType::Float));
    }
    Ok(onnx::encode(&proto))
}
