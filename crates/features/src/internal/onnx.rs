//! Writing ONNX graphs with the protobuf types `tract-onnx` generates (`tract_onnx::pb`):
//! the zoo's converters build whole graphs, the pixel feed prepends nodes to one.

use prost::Message;
use tract_onnx::pb;
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
