//! Export to the layouts other tools load. `pytorch`: a safetensors file
//! whose tensors have PyTorch's `state_dict` names and layouts for an
//! `nn.Sequential` of the same layers at the same indices: `i.weight`
//! `[out, in]` and `i.bias` for a dense layer (`nn.Linear`), `i.weight`
//! `[out, in, k, k]` for a convolution (`nn.Conv2d`), `i.weight` `[vocab,
//! dim]` for an embedding (`nn.Embedding`), `i.weight`, `i.bias` for a
//! layer norm (`nn.LayerNorm`, eps 1e-5), `i.weight`, `i.bias`,
//! `i.running_mean`, `i.running_var` for a batch norm (`nn.BatchNorm1d/2d`;
//! no `num_batches_tracked`: load with `strict=False`), and
//! `i.weight_ih_l0` `[G·H, I]`, `i.weight_hh_l0` `[G·H, H]`, `i.bias_ih_l0`,
//! `i.bias_hh_l0` for a recurrent layer (`nn.RNN` with tanh, `nn.LSTM`,
//! `nn.GRU`; G = 1, 4, 3 gate blocks in PyTorch's order). The
//! standardisation travels as `input.mean` / `input.std` (flat, one value per
//! number of a sample: `[steps·features]` for a sequence), and `target.mean`
//! / `target.std` for regression, to apply before the network (and after,
//! inverted). A time-series model's metadata adds `window` and, for a
//! `--relative` one, `relative_to`: the feature whose last value in each
//! window is subtracted from that feature's values and from the target
//! before the network, and added back to its prediction.

use std::collections::HashMap;
use std::path::Path;

use super::checkpoint::{write_safetensors, Checkpoint};
use crate::data::Normalizer;
use crate::error::Result;
use crate::models::{format_layers, Cell, LayerSpec};
use crate::tensor::HostTensor;

/// The checkpoint's tensors in PyTorch's names and layouts, and the
/// metadata that says how to rebuild the module (`layers`, `classes`).
pub fn pytorch_tensors(ck: &Checkpoint) -> Result<(Vec<HostTensor>, HashMap<String, String>)> {
    ck.check_tensors()?;
    let get = |name: String| ck.tensor(&name);
    let mut out = Vec::new();
    for (i, layer) in ck.meta.model.layers.iter().enumerate() {
        match layer {
            LayerSpec::Dense { .. } => {
                out.push(get(format!("layers.{i}.weight"))?.transposed(format!("{i}.weight"))?);
                out.push(HostTensor {
                    name: format!("{i}.bias"),
                    ..get(format!("layers.{i}.bias"))?.clone()
                });
            }
            // nn.Embedding's weight is [vocab, dim], as here; no bias.
            LayerSpec::Embedding { .. } => out.push(HostTensor {
                name: format!("{i}.weight"),
                ..get(format!("layers.{i}.weight"))?.clone()
            }),
            // nn.BatchNorm1d/2d: weight, bias, running_mean, running_var
            // (PyTorch's num_batches_tracked is not written: load with
            // strict=False).
            LayerSpec::BatchNorm => {
                for p in ["weight", "bias", "running_mean", "running_var"] {
                    out.push(HostTensor {
                        name: format!("{i}.{p}"),
                        ..get(format!("layers.{i}.{p}"))?.clone()
                    });
                }
            }
            LayerSpec::Conv2d { .. } | LayerSpec::LayerNorm => {
                for p in ["weight", "bias"] {
                    out.push(HostTensor {
                        name: format!("{i}.{p}"),
                        ..get(format!("layers.{i}.{p}"))?.clone()
                    });
                }
            }
            LayerSpec::Recurrent { cell, hidden } => {
                // nn.RNN/nn.LSTM/nn.GRU hold W_ih = Wᵀ and W_hh = Uᵀ
                // ([gates·hidden, in]); wgtrain's gate blocks are already in
                // PyTorch's order (LSTM i, f, g, o; GRU r, z, n). Their two
                // biases add, except the GRU's b_hn (inside the reset
                // product), which wgtrain keeps as its recurrent bias.
                let w = get(format!("layers.{i}.input_weight"))?;
                out.push(w.transposed(format!("{i}.weight_ih_l0"))?);
                let u = get(format!("layers.{i}.recurrent_weight"))?;
                out.push(u.transposed(format!("{i}.weight_hh_l0"))?);
                out.push(HostTensor {
                    name: format!("{i}.bias_ih_l0"),
                    ..get(format!("layers.{i}.bias"))?.clone()
                });
                let gh = cell.gates() * hidden;
                out.push(match cell {
                    Cell::Gru => HostTensor {
                        name: format!("{i}.bias_hh_l0"),
                        ..get(format!("layers.{i}.recurrent_bias"))?.clone()
                    },
                    Cell::Elman | Cell::Lstm => HostTensor {
                        name: format!("{i}.bias_hh_l0"),
                        shape: vec![gh],
                        values: vec![0.0; gh],
                    },
                });
            }
            _ => {}
        }
    }
    let stat = |name: &str, v: Vec<f32>| HostTensor {
        name: name.into(),
        shape: vec![v.len()],
        values: v,
    };
    match &ck.meta.normalizer {
        Normalizer::Identity => {}
        Normalizer::PerFeature { mean, std } => {
            out.push(stat("input.mean", mean.clone()));
            out.push(stat("input.std", std.clone()));
        }
        Normalizer::Global { mean, std } => {
            out.push(stat("input.mean", vec![*mean]));
            out.push(stat("input.std", vec![*std]));
        }
    }
    if let Some(s) = &ck.meta.target_scaler {
        out.push(stat("target.mean", s.mean.clone()));
        out.push(stat("target.std", s.std.clone()));
    }
    let mut info = HashMap::new();
    info.insert("format".into(), "pytorch".into());
    info.insert("layers".into(), format_layers(&ck.meta.model.layers));
    info.insert("task".into(), ck.meta.task.name().into());
    info.insert(
        "classes".into(),
        serde_json::to_string(&ck.meta.class_names).unwrap_or_default(),
    );
    info.insert(
        "features".into(),
        serde_json::to_string(&ck.meta.feature_names).unwrap_or_default(),
    );
    let exp = &ck.meta.experiment;
    if let Some(w) = exp.window {
        info.insert("window".into(), w.to_string());
    }
    if exp.relative {
        info.insert("relative_to".into(), ck.meta.target_name.clone());
    }
    Ok((out, info))
}

/// Writes [`pytorch_tensors`] to `path` as safetensors.
pub fn export_pytorch(ck: &Checkpoint, path: &Path) -> Result<()> {
    let (tensors, info) = pytorch_tensors(ck)?;
    let refs: Vec<&HostTensor> = tensors.iter().collect();
    write_safetensors(path, &refs, info)
}
