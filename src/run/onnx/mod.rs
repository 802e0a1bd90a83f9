//! Export to ONNX, so a model trained here runs in onnxruntime and any
//! other ONNX runtime without wgtrain.
//!
//! The graph takes the raw inputs `wgtrain predict` takes and gives what it
//! prints:
//!
//! - input `input`: `float32 [batch, features]` for tabular models,
//!   `float32 [batch, channels, height, width]` (pixel values 0–255) for
//!   image models, `int64 [batch, steps]` token ids for text models (the
//!   vocabulary is in the metadata property `vocab`, a JSON string).
//! - The stored standardisation is the graph's first nodes.
//! - output `probabilities` for classifiers (`[batch, classes]`, two
//!   columns for a two-class model), `prediction` for regression
//!   (`[batch, targets]`, in target units), `probabilities` for text models
//!   (`[batch, steps, vocab]`: step `t`'s distribution of the next token,
//!   from a zero initial state, as `wgtrain eval` scores a window).
//!
//! Layers map one to one: dense → `MatMul` + `Add` (on the last dimension,
//! as here), conv2d → `Conv`, maxpool → `MaxPool`, avgpool → `AveragePool`, flatten → `Flatten`,
//! one_hot → `OneHot`, embedding → `Gather`, rnn/lstm/gru → `RNN`/`LSTM`/`GRU`
//! (`W = Wᵢₕ`, `R = Wₕₕ` in ONNX's `[gates·hidden, input]` layout with the
//! gate blocks reordered to ONNX's, the bias in `Wb`, a GRU's recurrent bias
//! in `Rb` with `linear_before_reset = 1`), activations → their ONNX
//! operators, layernorm → `LayerNormalization`, batchnorm →
//! `BatchNormalization` (the running statistics), global_avgpool →
//! `GlobalAveragePool` + `Flatten`; dropout, a training-time
//! layer, adds nothing. Opset 17, IR
//! version 8. `scripts/check_onnx.py` checks an
//! exported file in onnxruntime against `wgtrain predict`/`eval` (CI).

mod proto;

use std::path::Path;

use prost::Message;

use self::proto::*;
use super::checkpoint::{write_atomically, Checkpoint};
use crate::data::Normalizer;
use crate::device::{Activation, GELU_K, LEAKY_SLOPE};
use crate::error::{Error, Result};
use crate::models::{format_layers, Cell, FeatureShape, LayerSpec, Output};
use crate::nn::{BATCH_NORM_EPS, LAYER_NORM_EPS};
use crate::tensor::HostTensor;

/// The ONNX operator set the graph is written for.
pub const OPSET: i64 = 17;
/// The ONNX IR version that goes with [`OPSET`].
const IR_VERSION: i64 = 8;

/// `values` (gate blocks of equal size, in wgtrain's order) with the blocks
/// rearranged: block `k` of the result is block `order[k]` of `values`.
fn gate_blocks(values: &[f32], order: &[usize]) -> Vec<f32> {
    let n = values.len() / order.len();
    order
        .iter()
        .flat_map(|&k| &values[k * n..(k + 1) * n])
        .copied()
        .collect()
}

/// A graph under construction: nodes in order, constants, fresh names.
struct Graph {
    nodes: Vec<NodeProto>,
    constants: Vec<TensorProto>,
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: attribute_type::INT,
        ..Default::default()
    }
}

fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f,
        r#type: attribute_type::FLOAT,
        ..Default::default()
    }
}

fn ints(name: &str, ints: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: ints.iter().map(|&v| v as i64).collect(),
        r#type: attribute_type::INTS,
        ..Default::default()
    }
}

impl Graph {
    /// A float constant of `shape`.
    fn constant(&mut self, name: &str, shape: &[usize], values: &[f32]) -> String {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.push_constant(name, shape, data_type::FLOAT, bytes)
    }

    /// An int64 constant of `shape`.
    fn constant_i64(&mut self, name: &str, shape: &[usize], values: &[i64]) -> String {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.push_constant(name, shape, data_type::INT64, bytes)
    }

    /// `raw_data` is little-endian, whatever the host.
    fn push_constant(&mut self, name: &str, shape: &[usize], ty: i32, raw_data: Vec<u8>) -> String {
        self.constants.push(TensorProto {
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: ty,
            name: name.into(),
            raw_data,
        });
        name.into()
    }

    /// Appends `op(inputs)` with `attrs`; returns its output's name.
    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let output = format!("{}_{}", op.to_lowercase(), self.nodes.len());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op.into(),
            attribute: attrs,
        });
        output
    }
}

fn value_info(name: &str, elem_type: i32, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Some(v) => Dimension {
                dim_value: Some(*v as i64),
                dim_param: None,
            },
            None => Dimension {
                dim_value: None,
                dim_param: Some("batch".into()),
            },
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

/// For a `--relative` forecaster (input `[batch, steps, features]`, the
/// target column at position `k` among the features): the window's last
/// value of that column as `[batch, 1]`, and that value in column `k` of
/// every step (zeros elsewhere), `[batch, steps, features]`, to subtract.
fn relative_base(g: &mut Graph, ck: &Checkpoint) -> Result<(String, String)> {
    let meta = &ck.meta;
    let k = meta
        .feature_names
        .iter()
        .position(|c| *c == meta.target_name);
    let (FeatureShape::Sequence { len, features }, Some(k)) = (meta.model.input, k) else {
        return Err(Error::Config(
            "a --relative model needs a time-series input with its target among the features"
                .into(),
        ));
    };
    let last = g.constant_i64("relative.last", &[], &[len as i64 - 1]);
    let step = g.node("Gather", &["input", &last], vec![int("axis", 1)]);
    let col = g.constant_i64("relative.column", &[1], &[k as i64]);
    let base = g.node("Gather", &[&step, &col], vec![int("axis", 1)]);
    let shape = g.constant_i64("relative.shape", &[3], &[-1, 1, 1]);
    let base3 = g.node("Reshape", &[&base, &shape], vec![]);
    let mask: Vec<f32> = (0..len * features)
        .map(|i| if i % features == k { 1.0 } else { 0.0 })
        .collect();
    let mask = g.constant("relative.mask", &[len, features], &mask);
    let offset = g.node("Mul", &[&base3, &mask], vec![]);
    Ok((offset, base))
}

/// The checkpoint's model as an ONNX model (see the module docs).
pub fn onnx_model(ck: &Checkpoint) -> Result<Vec<u8>> {
    ck.check_tensors()?;
    let spec = &ck.meta.model;
    let get = |name: String| ck.tensor(&name);
    let mut g = Graph {
        nodes: Vec::new(),
        constants: Vec::new(),
    };
    let tokens = matches!(spec.input, FeatureShape::Tokens { .. });
    let mut input_dims = vec![None];
    input_dims.extend(spec.input.dims().into_iter().map(Some));
    let input = value_info(
        "input",
        if tokens {
            data_type::INT64
        } else {
            data_type::FLOAT
        },
        &input_dims,
    );

    let mut x = "input".to_string();
    // A `--relative` forecaster: the window's target column taken relative
    // to its last value, which is added back to the prediction.
    let base = if ck.meta.experiment.relative {
        let (offset, base) = relative_base(&mut g, ck)?;
        x = g.node("Sub", &[&x, &offset], vec![]);
        Some(base)
    } else {
        None
    };
    match &ck.meta.normalizer {
        Normalizer::Identity => {}
        Normalizer::PerFeature { mean, std } => {
            // Shaped like a sample, so a sequence's [steps, features]
            // statistics broadcast over the batch.
            let dims = spec.input.dims();
            let m = g.constant("input.mean", &dims, mean);
            let s = g.constant("input.std", &dims, std);
            x = g.node("Sub", &[&x, &m], vec![]);
            x = g.node("Div", &[&x, &s], vec![]);
        }
        Normalizer::Global { .. } => {
            // The same `x·scale + shift` the device applies to stored bytes,
            // so the two agree to the last bit.
            let (scale, shift) = ck.meta.normalizer.affine();
            let a = g.constant("input.scale", &[], &[scale]);
            let b = g.constant("input.shift", &[], &[shift]);
            x = g.node("Mul", &[&x, &a], vec![]);
            x = g.node("Add", &[&x, &b], vec![]);
        }
    }

    let shapes = spec.shapes()?;
    for (i, layer) in spec.layers.iter().enumerate() {
        x = match *layer {
            LayerSpec::Last => {
                // Between layers the graph is batch-major [batch, steps, F].
                let before = if i == 0 { spec.input } else { shapes[i - 1] };
                let FeatureShape::Sequence { len, .. } = before else {
                    return Err(Error::Config(format!("layer {i} (last) follows {before}")));
                };
                let t = g.constant_i64(&format!("{i}.last"), &[], &[len as i64 - 1]);
                g.node("Gather", &[&x, &t], vec![int("axis", 1)])
            }
            LayerSpec::Dense { .. } => {
                let w = get(format!("layers.{i}.weight"))?;
                let b = get(format!("layers.{i}.bias"))?;
                let w = g.constant(&format!("{i}.weight"), &w.shape, &w.values);
                let b = g.constant(&format!("{i}.bias"), &b.shape, &b.values);
                let y = g.node("MatMul", &[&x, &w], vec![]);
                g.node("Add", &[&y, &b], vec![])
            }
            LayerSpec::Conv2d {
                kernel,
                stride,
                padding,
                ..
            } => {
                let w = get(format!("layers.{i}.weight"))?;
                let b = get(format!("layers.{i}.bias"))?;
                let w = g.constant(&format!("{i}.weight"), &w.shape, &w.values);
                let b = g.constant(&format!("{i}.bias"), &b.shape, &b.values);
                let attrs = vec![
                    ints("kernel_shape", &[kernel, kernel]),
                    ints("strides", &[stride, stride]),
                    ints("pads", &[padding; 4]),
                ];
                g.node("Conv", &[&x, &w, &b], attrs)
            }
            LayerSpec::MaxPool { size, stride } => {
                let attrs = vec![
                    ints("kernel_shape", &[size, size]),
                    ints("strides", &[stride, stride]),
                ];
                g.node("MaxPool", &[&x], attrs)
            }
            LayerSpec::AvgPool { size, stride } => {
                let attrs = vec![
                    ints("kernel_shape", &[size, size]),
                    ints("strides", &[stride, stride]),
                ];
                g.node("AveragePool", &[&x], attrs)
            }
            LayerSpec::Flatten => g.node("Flatten", &[&x], vec![int("axis", 1)]),
            LayerSpec::GlobalAvgPool => {
                let y = g.node("GlobalAveragePool", &[&x], vec![]);
                g.node("Flatten", &[&y], vec![int("axis", 1)])
            }
            LayerSpec::Activation(a) => {
                let op = match a {
                    Activation::Identity => "Identity",
                    Activation::Tanh => "Tanh",
                    Activation::Sigmoid => "Sigmoid",
                    Activation::Relu => "Relu",
                    Activation::LeakyRelu => "LeakyRelu",
                    Activation::Softplus => "Softplus",
                    // Opset 17 has no Gelu: ½x(1 + tanh(k(x + c·x³))).
                    Activation::Gelu => {
                        let c = g.constant(&format!("{i}.c"), &[], &[0.044715]);
                        let k = g.constant(&format!("{i}.k"), &[], &[GELU_K]);
                        let half = g.constant(&format!("{i}.half"), &[], &[0.5]);
                        let one = g.constant(&format!("{i}.one"), &[], &[1.0]);
                        let x2 = g.node("Mul", &[&x, &x], vec![]);
                        let x3 = g.node("Mul", &[&x2, &x], vec![]);
                        let cx3 = g.node("Mul", &[&x3, &c], vec![]);
                        let inner = g.node("Add", &[&x, &cx3], vec![]);
                        let scaled = g.node("Mul", &[&inner, &k], vec![]);
                        let t = g.node("Tanh", &[&scaled], vec![]);
                        let t1 = g.node("Add", &[&t, &one], vec![]);
                        let hx = g.node("Mul", &[&x, &half], vec![]);
                        x = g.node("Mul", &[&hx, &t1], vec![]);
                        continue;
                    }
                };
                let attrs = match a {
                    Activation::LeakyRelu => vec![float("alpha", LEAKY_SLOPE)],
                    _ => vec![],
                };
                g.node(op, &[&x], attrs)
            }
            // Training only: nothing at inference.
            LayerSpec::Dropout { .. } => x,
            LayerSpec::LayerNorm => {
                let w = get(format!("layers.{i}.weight"))?;
                let b = get(format!("layers.{i}.bias"))?;
                let w = g.constant(&format!("{i}.weight"), &w.shape, &w.values);
                let b = g.constant(&format!("{i}.bias"), &b.shape, &b.values);
                let attrs = vec![int("axis", -1), float("epsilon", LAYER_NORM_EPS)];
                g.node("LayerNormalization", &[&x, &w, &b], attrs)
            }
            LayerSpec::BatchNorm => {
                // Inference mode: the running statistics.
                let mut inputs = vec![x.clone()];
                for p in ["weight", "bias", "running_mean", "running_var"] {
                    let t = get(format!("layers.{i}.{p}"))?;
                    inputs.push(g.constant(&format!("{i}.{p}"), &t.shape, &t.values));
                }
                let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let attrs = vec![float("epsilon", BATCH_NORM_EPS)];
                g.node("BatchNormalization", &inputs, attrs)
            }
            LayerSpec::Embedding { .. } => {
                let w = get(format!("layers.{i}.weight"))?;
                let w = g.constant(&format!("{i}.weight"), &w.shape, &w.values);
                g.node("Gather", &[&w, &x], vec![int("axis", 0)])
            }
            LayerSpec::OneHot { depth } => {
                let depth = depth
                    .ok_or_else(|| Error::Config(format!("layer {i} (one_hot) has no depth")))?;
                let d = g.constant_i64(&format!("{i}.depth"), &[], &[depth as i64]);
                let v = g.constant(&format!("{i}.values"), &[2], &[0.0, 1.0]);
                g.node("OneHot", &[&x, &d, &v], vec![int("axis", -1)])
            }
            LayerSpec::Recurrent { cell, hidden } => {
                // ONNX's RNN, LSTM and GRU read [steps, batch, input] and
                // write [steps, directions, batch, hidden]; their weights are
                // [directions, gates·hidden, input] with the gate blocks in
                // ONNX's order (LSTM i, o, f, c; GRU z, r, h).
                let (op, order): (&str, &[usize]) = match cell {
                    Cell::Elman => ("RNN", &[0]),
                    Cell::Lstm => ("LSTM", &[0, 3, 1, 2]),
                    Cell::Gru => ("GRU", &[1, 0, 2]),
                };
                let w = get(format!("layers.{i}.input_weight"))?.transposed(String::new())?;
                let u = get(format!("layers.{i}.recurrent_weight"))?.transposed(String::new())?;
                let with_dir = |t: &HostTensor| [&[1][..], &t.shape].concat();
                let w = g.constant(
                    &format!("{i}.W"),
                    &with_dir(&w),
                    &gate_blocks(&w.values, order),
                );
                let r = g.constant(
                    &format!("{i}.R"),
                    &with_dir(&u),
                    &gate_blocks(&u.values, order),
                );
                let gh = cell.gates() * hidden;
                let mut bias = gate_blocks(&get(format!("layers.{i}.bias"))?.values, order);
                match cell {
                    Cell::Gru => bias.extend(gate_blocks(
                        &get(format!("layers.{i}.recurrent_bias"))?.values,
                        order,
                    )),
                    Cell::Elman | Cell::Lstm => bias.resize(2 * gh, 0.0),
                }
                let b = g.constant(&format!("{i}.B"), &[1, 2 * gh], &bias);
                let perm = || ints("perm", &[1, 0, 2]);
                let steps_first = g.node("Transpose", &[&x], vec![perm()]);
                let mut attrs = vec![int("hidden_size", hidden as i64)];
                if cell == Cell::Gru {
                    // b_hn inside the reset product, as PyTorch and wgtrain.
                    attrs.push(int("linear_before_reset", 1));
                }
                let y = g.node(op, &[&steps_first, &w, &r, &b], attrs);
                let axes = g.constant_i64(&format!("{i}.axes"), &[1], &[1]);
                let y = g.node("Squeeze", &[&y, &axes], vec![]);
                g.node("Transpose", &[&y], vec![perm()])
            }
        };
    }

    let (name, dims) = match spec.output {
        Output::Regression { targets } => {
            if let Some(s) = &ck.meta.target_scaler {
                let std = g.constant("target.std", &[s.std.len()], &s.std);
                let mean = g.constant("target.mean", &[s.mean.len()], &s.mean);
                x = g.node("Mul", &[&x, &std], vec![]);
                x = g.node("Add", &[&x, &mean], vec![]);
            }
            if let Some(b) = &base {
                x = g.node("Add", &[&x, b], vec![]);
            }
            ("prediction", vec![None, Some(targets)])
        }
        Output::Classes { classes: 2 } => {
            // One logit z: p(class 1) = σ(z), p(class 0) = 1 − σ(z).
            let p = g.node("Sigmoid", &[&x], vec![]);
            let one = g.constant("one", &[], &[1.0]);
            let q = g.node("Sub", &[&one, &p], vec![]);
            x = g.node("Concat", &[&q, &p], vec![int("axis", 1)]);
            ("probabilities", vec![None, Some(2)])
        }
        Output::Classes { classes } => {
            x = g.node("Softmax", &[&x], vec![int("axis", -1)]);
            ("probabilities", vec![None, Some(classes)])
        }
        Output::NextToken { vocab } => {
            x = g.node("Softmax", &[&x], vec![int("axis", -1)]);
            let steps = spec.input.dims()[0];
            ("probabilities", vec![None, Some(steps), Some(vocab)])
        }
    };
    // Name the result: the last node's output becomes the graph's.
    if let Some(last) = g.nodes.last_mut() {
        last.output = vec![name.into()];
    } else {
        g.node("Identity", &[&x], vec![]);
        g.nodes.last_mut().expect("just pushed").output = vec![name.into()];
    }

    let meta = &ck.meta;
    let props_layers = format_layers(&spec.layers);
    let mut props = vec![
        ("layers", props_layers.clone()),
        ("task", meta.task.name().to_string()),
        ("features", json(&meta.feature_names)),
        ("classes", json(&meta.class_names)),
        ("target", meta.target_name.clone()),
    ];
    if let Some(vocab) = &meta.vocab {
        props.push(("vocab", json(&vocab.iter().collect::<String>())));
    }
    let model = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "wgtrain".into(),
        producer_version: meta.wgtrain_version.clone(),
        doc_string: format!("wgtrain {} model: {}", meta.task.name(), props_layers),
        graph: Some(GraphProto {
            node: g.nodes,
            name: "wgtrain".into(),
            initializer: g.constants,
            input: vec![input],
            output: vec![value_info(name, data_type::FLOAT, &dims)],
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        metadata_props: props
            .into_iter()
            .map(|(k, v)| StringStringEntryProto {
                key: k.into(),
                value: v,
            })
            .collect(),
    };
    Ok(model.encode_to_vec())
}

/// JSON text of names and vocabularies (which always serialise).
fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Writes [`onnx_model`] to `path` (atomically).
pub fn export_onnx(ck: &Checkpoint, path: &Path) -> Result<()> {
    write_atomically(path, &onnx_model(ck)?)
}
