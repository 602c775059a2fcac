//! Reading and writing ONNX files with the protobuf types `tract-onnx` generates ([`pb`]), the
//! one place in the workspace that touches them: the pixel feed prepends nodes to a model, the
//! zoo's converters build whole graphs, fine-tuning reads a backbone's last block back as
//! weights. Reading gives plain values and `String` reasons, which each caller wraps in its
//! own error with the file's name.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;
pub use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

/// Opset of the graphs written here (the shared reference model's).
pub const OPSET: i64 = 17;
/// IR version that goes with opset 17.
pub const IR_VERSION: i64 = 8;

/// A tensor dimension in a graph input or output.
#[derive(Debug, Clone, Copy)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic dimension such as `batch`.
    Named(&'static str),
}

/// A graph under construction: float32 inputs, initializers, nodes and outputs.
#[derive(Default)]
pub struct Graph {
    graph: pb::GraphProto,
}

impl Graph {
    /// An empty graph named `name`.
    pub fn new(name: &str) -> Graph {
        Graph { graph: pb::GraphProto { name: name.into(), ..Default::default() } }
    }

    /// Adds a float32 input and returns its name.
    pub fn input(&mut self, name: &str, dims: &[Dim]) -> String {
        self.graph.input.push(value_info(name, dims, DataType::Float));
        name.into()
    }

    /// Declares a float32 output of the graph.
    pub fn output(&mut self, name: &str, dims: &[Dim]) {
        self.graph.output.push(value_info(name, dims, DataType::Float));
    }

    /// Adds a float32 initializer and returns its name.
    pub fn constant(&mut self, name: &str, shape: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len(), "{name}");
        self.graph.initializer.push(floats(name, shape, data));
        name.into()
    }

    /// Adds a node with one output, named `output`, and returns that name.
    pub fn node(&mut self, op: &str, inputs: &[&str], output: &str, attributes: Vec<pb::AttributeProto>) -> String {
        self.graph.node.push(node(op, inputs, output, attributes));
        output.into()
    }

    /// The finished model, opset [`OPSET`].
    pub fn into_model(self, producer: &str, doc: &str) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
            producer_name: producer.into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(self.graph),
            ..Default::default()
        }
    }
}

/// A node with one output, named `output` (its name too).
pub fn node(op: &str, inputs: &[&str], output: &str, attributes: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        name: output.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attributes,
        ..Default::default()
    }
}

/// A float32 tensor (an initializer).
pub fn floats(name: &str, shape: &[usize], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An int64 tensor (indices, shapes).
pub fn int64s(name: &str, shape: &[usize], data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        data_type: DataType::Int64 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..floats(name, shape, &[])
    }
}

/// An integer-list attribute (`strides`, `pads`, ...).
pub fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// An integer attribute (`group`, `transB`, ...).
pub fn int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// The model's protobuf bytes, as an `.onnx` file holds them.
pub fn encode(model: &pb::ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// A graph input or output: a tensor of `elem_type` with these dimensions.
pub fn value_info(name: &str, dims: &[Dim], elem_type: DataType) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(*n as i64),
                Dim::Named(s) => dimension::Value::DimParam(s.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem_type as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

// ---------------------------------------------------------------- reading

/// Reads an `.onnx` file.
pub fn read(path: &Path) -> Result<pb::ModelProto, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    decode(&bytes)
}

/// Decodes a model from the bytes an `.onnx` file holds.
pub fn decode(bytes: &[u8]) -> Result<pb::ModelProto, String> {
    pb::ModelProto::decode(bytes).map_err(|e| format!("not an ONNX model: {e}"))
}

/// Constant tensors of a graph (initializers and Constant nodes) by name.
pub fn constants(graph: &pb::GraphProto) -> HashMap<&str, &pb::TensorProto> {
    let mut out: HashMap<&str, &pb::TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    for node in graph.node.iter().filter(|n| n.op_type == "Constant") {
        if let (Some(out_name), Some(t)) = (node.output.first(), node.attribute.iter().find_map(|a| a.t.as_ref())) {
            out.insert(out_name.as_str(), t);
        }
    }
    out
}

/// The values of a float32 tensor, raw or listed.
pub fn float_values(t: &pb::TensorProto) -> Result<Vec<f32>, String> {
    match t.data_type {
        1 if !t.raw_data.is_empty() => {
            Ok(t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        }
        1 => Ok(t.float_data.clone()),
        other => Err(format!("initializer `{}` has ONNX type {other}, expected float", t.name)),
    }
}

/// The values of an int64 tensor, raw or listed.
pub fn int64_values(t: &pb::TensorProto) -> Result<Vec<i64>, String> {
    match t.data_type {
        7 if !t.raw_data.is_empty() => Ok(t
            .raw_data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect()),
        7 => Ok(t.int64_data.clone()),
        other => Err(format!("initializer `{}` has ONNX type {other}, expected int64", t.name)),
    }
}

/// A node's attribute by name.
pub fn attribute<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// The declared dimensions of a graph input or output (`None` where symbolic or unknown).
pub fn declared_dims(value: &pb::ValueInfoProto) -> Vec<Option<usize>> {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(t)) = value.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Vec::new();
    };
    let dims = t.shape.as_ref().map_or(&[][..], |s| &s.dim[..]);
    dims.iter()
        .map(|d| match d.value {
            Some(Value::DimValue(n)) if n > 0 => Some(n as usize),
            _ => None,
        })
        .collect()
}
