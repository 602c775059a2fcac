//! The last part of an ONNX backbone, from a named tensor to its feature map, rebuilt as
//! trainable candle layers with the weights of the ONNX initializers: what fine-tuning trains
//! while the part before it stays frozen (run once, its output cached). The ops such tails
//! use are supported: Conv (stride 1, full or depthwise, any padding), Clip, Relu, Add, Pad.

use std::collections::{HashMap, HashSet};

use candle_core::{DType, Device, Tensor, Var};
use imgclf_runtime::onnx::{self, attribute as attr, constants, pb};

use crate::NetError;

/// One op of a [`Tail`], reading and writing tensors by their ONNX names.
enum Op {
    Conv { input: String, output: String, kernel: Var, bias: Var, group: usize, pads: [usize; 4] },
    Clip { input: String, output: String, min: f32, max: f32 },
    Relu { input: String, output: String },
    Add { a: String, b: String, output: String },
    Pad { input: String, output: String, pads: [usize; 4] },
}

/// The trainable end of a backbone: `from` → … → `to`.
pub struct Tail {
    /// The tensor the tail starts from.
    pub from: String,
    /// The tensor it ends at.
    pub to: String,
    ops: Vec<Op>,
}

fn fail(reason: impl std::fmt::Display) -> NetError {
    NetError::Config(reason.to_string())
}

/// ONNX 4-D pads `[top, left, bottom, right]` from `[b1, b2, b3, b4, e1, e2, e3, e4]` or a
/// Conv's `[top, left, bottom, right]`; batch and channel pads must be zero.
fn spatial_pads(values: &[i64], node: &str) -> Result<[usize; 4], NetError> {
    let p: Vec<usize> = values
        .iter()
        .map(|&v| usize::try_from(v).map_err(|_| fail(format!("{node}: negative pad"))))
        .collect::<Result<_, _>>()?;
    match p[..] {
        [t, l, b, r] => Ok([t, l, b, r]),
        [0, 0, t, l, 0, 0, b, r] => Ok([t, l, b, r]),
        _ => Err(fail(format!("{node}: pads {values:?} are not spatial pads of a 4-D tensor"))),
    }
}

impl Tail {
    /// Rebuilds the nodes between tensor `from` and tensor `to` of `model`. Refuses a span that
    /// needs a tensor computed before `from` (a skip connection around it), or an op this
    /// rebuild does not know.
    pub fn from_onnx(model: &pb::ModelProto, from: &str, to: &str, device: &Device) -> Result<Tail, NetError> {
        let graph = model.graph.as_ref().ok_or_else(|| fail("the ONNX file has no graph"))?;
        let consts = constants(graph);
        let mut available: HashSet<&str> = HashSet::from([from]);
        let mut nodes = Vec::new();
        for node in &graph.node {
            if available.contains(to) {
                break;
            }
            let dynamic: Vec<&str> =
                node.input.iter().map(String::as_str).filter(|i| !i.is_empty() && !consts.contains_key(i)).collect();
            if !dynamic.iter().any(|i| available.contains(i)) {
                continue; // part of the frozen start
            }
            if let Some(missing) = dynamic.iter().find(|i| !available.contains(*i)) {
                return Err(fail(format!(
                    "node `{}` after `{from}` also reads `{missing}`, computed before it: start the tail at an earlier tensor",
                    node.name
                )));
            }
            nodes.push(node);
            available.extend(node.output.iter().map(String::as_str));
        }
        if !available.contains(to) {
            return Err(fail(format!("`{to}` is not computed from `{from}` in this model")));
        }
        let ops = nodes.into_iter().map(|node| Self::op(node, &consts, device)).collect::<Result<_, _>>()?;
        Ok(Tail { from: from.into(), to: to.into(), ops })
    }

    fn op(node: &pb::NodeProto, consts: &HashMap<&str, &pb::TensorProto>, device: &Device) -> Result<Op, NetError> {
        let name = if node.name.is_empty() { node.op_type.as_str() } else { node.name.as_str() };
        let input = || node.input[0].clone();
        let output = node.output.first().cloned().unwrap_or_default();
        let constant = |i: usize| {
            node.input
                .get(i)
                .and_then(|n| consts.get(n.as_str()))
                .copied()
                .ok_or_else(|| fail(format!("{name}: input {i} is not a constant")))
        };
        let var = |t: &pb::TensorProto| -> Result<Var, NetError> {
            let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
            Ok(Var::from_tensor(&Tensor::from_vec(onnx::float_values(t).map_err(fail)?, shape, device)?)?)
        };
        Ok(match node.op_type.as_str() {
            "Conv" => {
                let ones = |key: &str| attr(node, key).is_none_or(|a| a.ints.iter().all(|&v| v == 1));
                if !ones("strides") || !ones("dilations") {
                    return Err(fail(format!(
                        "{name}: strided or dilated convolutions are not supported in a trained tail"
                    )));
                }
                let kernel = var(constant(1)?)?;
                let (out_channels, _, kh, kw) = kernel.dims4()?;
                if kh != kw {
                    return Err(fail(format!("{name}: a {kh}x{kw} kernel; square kernels only")));
                }
                let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
                    Some(_) => var(constant(2)?)?,
                    None => Var::zeros(out_channels, DType::F32, device)?,
                };
                let group = attr(node, "group").map_or(1, |a| a.i as usize);
                let pads = match attr(node, "pads") {
                    Some(a) => spatial_pads(&a.ints, name)?,
                    None => [0; 4],
                };
                if attr(node, "auto_pad").is_some_and(|a| !a.s.is_empty() && a.s != b"NOTSET") {
                    return Err(fail(format!("{name}: auto_pad is not supported; export with explicit pads")));
                }
                Op::Conv { input: input(), output, kernel, bias, group, pads }
            }
            "Clip" => {
                let bound = |i: usize, default: f32| -> Result<f32, NetError> {
                    match node.input.get(i).filter(|n| !n.is_empty()) {
                        Some(_) => onnx::float_values(constant(i)?)
                            .map_err(fail)?
                            .first()
                            .copied()
                            .ok_or_else(|| fail(format!("{name}: empty bound"))),
                        None => Ok(attr(node, if i == 1 { "min" } else { "max" }).map_or(default, |a| a.f)),
                    }
                };
                Op::Clip { input: input(), output, min: bound(1, f32::MIN)?, max: bound(2, f32::MAX)? }
            }
            "Relu" => Op::Relu { input: input(), output },
            "Add" => Op::Add { a: node.input[0].clone(), b: node.input[1].clone(), output },
            "Pad" => {
                let mode = attr(node, "mode").map_or(&b"constant"[..], |a| &a.s[..]);
                let value = match node.input.get(2).filter(|n| !n.is_empty()) {
                    Some(_) => onnx::float_values(constant(2)?).map_err(fail)?.first().copied().unwrap_or(0.0),
                    None => 0.0,
                };
                if mode != b"constant" || value != 0.0 {
                    return Err(fail(format!("{name}: only zero padding is supported")));
                }
                let pads = match node.input.get(1) {
                    Some(_) => onnx::int64_values(constant(1)?).map_err(fail)?,
                    None => attr(node, "pads").map(|a| a.ints.clone()).unwrap_or_default(),
                };
                Op::Pad { input: input(), output, pads: spatial_pads(&pads, name)? }
            }
            other => return Err(fail(format!("{name}: op {other} is not supported in a trained tail"))),
        })
    }

    /// The trainable tensors with names (`<node output>.kernel` / `.bias`), in op order.
    pub fn params(&self) -> Vec<(String, &Var)> {
        let mut out = Vec::new();
        for op in &self.ops {
            if let Op::Conv { output, kernel, bias, .. } = op {
                out.push((format!("tail.{output}.kernel"), kernel));
                out.push((format!("tail.{output}.bias"), bias));
            }
        }
        out
    }

    /// The feature map `to` for activations `from` `(n, C, H, W)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, NetError> {
        let mut values: HashMap<&str, Tensor> = HashMap::from([(self.from.as_str(), x.clone())]);
        let get = |values: &HashMap<&str, Tensor>, name: &str| {
            values.get(name).cloned().ok_or_else(|| fail(format!("tensor `{name}` is not computed in the tail")))
        };
        for op in &self.ops {
            let (output, y) = match op {
                Op::Conv { input, output, kernel, bias, group, pads } => {
                    let x = get(&values, input)?;
                    let y = if *group == 1 {
                        imgclf_kernels::conv2d(&pad(&x, *pads)?, kernel.as_tensor(), bias.as_tensor(), 0)?
                    } else if *group == x.dim(1)? && kernel.dim(1)? == 1 && kernel.dim(0)? == *group {
                        imgclf_kernels::depthwise_conv2d(&x, kernel.as_tensor(), bias.as_tensor(), *pads)?
                    } else {
                        return Err(fail(format!("{output}: grouped convolution with {group} groups; depthwise only")));
                    };
                    (output, y)
                }
                Op::Clip { input, output, min, max } => (output, get(&values, input)?.clamp(*min, *max)?),
                Op::Relu { input, output } => (output, get(&values, input)?.relu()?),
                Op::Add { a, b, output } => (output, get(&values, a)?.add(&get(&values, b)?)?),
                Op::Pad { input, output, pads } => (output, pad(&get(&values, input)?, *pads)?),
            };
            values.insert(output.as_str(), y);
        }
        get(&values, &self.to)
    }
}

/// Zeros around a `(n, c, h, w)` tensor: `[top, left, bottom, right]`.
fn pad(x: &Tensor, [t, l, b, r]: [usize; 4]) -> Result<Tensor, NetError> {
    let x = if t + b > 0 { x.pad_with_zeros(2, t, b)? } else { x.clone() };
    Ok(if l + r > 0 { x.pad_with_zeros(3, l, r)? } else { x })
}

/// The input of the backbone's last residual block: the earlier-computed input of the last
/// `Add` of two computed tensors (the skip connection). `None` when the graph has no such Add.
pub fn last_block_input(model: &pb::ModelProto) -> Option<String> {
    let graph = model.graph.as_ref()?;
    let consts = constants(graph);
    let producer: HashMap<&str, usize> =
        graph.node.iter().enumerate().flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i))).collect();
    let add = graph.node.iter().rev().find(|n| {
        n.op_type == "Add" && n.input.len() == 2 && n.input.iter().all(|i| !consts.contains_key(i.as_str()))
    })?;
    // a graph input (no producer) is the earliest of all
    add.input.iter().min_by_key(|i| producer.get(i.as_str()).map_or(-1, |&p| p as i64)).cloned()
}

/// The part of `model` that computes `output`, with `output` as its only graph output: the
/// frozen start of a fine-tuned backbone.
pub fn prefix_model(model: &pb::ModelProto, output: &str) -> Result<pb::ModelProto, NetError> {
    let graph = model.graph.as_ref().ok_or_else(|| fail("the ONNX file has no graph"))?;
    let mut needed: HashSet<&str> = HashSet::from([output]);
    let mut keep = vec![false; graph.node.len()];
    for (i, node) in graph.node.iter().enumerate().rev() {
        if node.output.iter().any(|o| needed.contains(o.as_str())) {
            keep[i] = true;
            needed.extend(node.input.iter().map(String::as_str));
        }
    }
    if !keep.iter().any(|&k| k) {
        return Err(fail(format!("no node of the model computes `{output}`")));
    }
    let mut prefix = model.clone();
    let g = prefix.graph.as_mut().expect("checked above");
    g.node = graph.node.iter().zip(&keep).filter(|(_, k)| **k).map(|(n, _)| n.clone()).collect();
    g.initializer.retain(|t| needed.contains(t.name.as_str()));
    let tensor = pb::type_proto::Tensor { elem_type: 1, shape: None };
    g.output = vec![pb::ValueInfoProto {
        name: output.into(),
        r#type: Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(tensor)), ..Default::default() }),
        ..Default::default()
    }];
    g.value_info.clear();
    Ok(prefix)
}
