//! A model's architecture travels in its checkpoint: spec → file → rebuilt
//! model gives bit-identical outputs, for every layer kind; a checkpoint
//! whose metadata lies about the architecture is refused before anything is
//! allocated.

mod common;

use wgtrain::data::{Normalizer, TargetScaler, Task};
use wgtrain::models::{parse_layers, Model, ModelSpec, Output};
use wgtrain::run::checkpoint::{self, ModelMeta, FORMAT};
use wgtrain::run::fit::snapshot;
use wgtrain::run::ExperimentConfig;
use wgtrain::{CpuDevice, Device};

fn meta(spec: &ModelSpec) -> ModelMeta {
    let task = match spec.output {
        Output::Regression { .. } => Task::Regression,
        Output::Classes { .. } => Task::Classification,
        Output::NextToken { .. } => Task::Text,
    };
    ModelMeta {
        format: FORMAT,
        wgtrain_version: env!("CARGO_PKG_VERSION").into(),
        model: spec.clone(),
        task,
        normalizer: Normalizer::Identity,
        target_scaler: match spec.output {
            Output::Regression { targets } => Some(TargetScaler {
                mean: vec![0.0; targets],
                std: vec![1.0; targets],
            }),
            _ => None,
        },
        vocab: match spec.output {
            Output::NextToken { vocab } => {
                Some((0..vocab as u8).map(|i| (b'a' + i) as char).collect())
            }
            _ => None,
        },
        feature_names: Vec::new(),
        target_name: String::new(),
        class_names: Vec::new(),
        experiment: ExperimentConfig::custom(
            spec.layers[..spec.layers.len() - 1].to_vec(),
            "memory",
        ),
        data_checksum: None,
    }
}

#[test]
fn every_model_rebuilds_from_its_checkpoint() {
    let dev = CpuDevice::new();
    let dir = tempfile::tempdir().unwrap();
    for case in common::small_models() {
        let mut model = Model::new(&dev, &case.spec, 5).unwrap();
        assert_eq!(
            case.spec.param_count().unwrap(),
            model.param_count(),
            "{}",
            case.name
        );
        let (x, _) = case.batch(&dev);
        // A training pass moves batch normalisation's running averages
        // off their initial values, so the file must carry them.
        model.forward(&dev, &x, true).unwrap();
        let before = dev
            .download(&model.forward(&dev, &x, false).unwrap())
            .unwrap();
        let path = dir.path().join(format!("{}.safetensors", case.name));
        checkpoint::save(
            &path,
            &meta(&case.spec),
            &snapshot(&dev, &model).unwrap(),
            None,
        )
        .unwrap();
        let ck = checkpoint::load(&path).unwrap();
        assert_eq!(ck.meta.model, case.spec, "{}", case.name);
        let mut rebuilt = ck.model(&dev).unwrap();
        let after = dev
            .download(&rebuilt.forward(&dev, &x, false).unwrap())
            .unwrap();
        assert_eq!(
            before, after,
            "{}: outputs differ after the round trip",
            case.name
        );
        // A different seed gives other weights: the outputs really come from
        // the file, not from the initialisation.
        let mut other = Model::new(&dev, &case.spec, 6).unwrap();
        let fresh = dev
            .download(&other.forward(&dev, &x, false).unwrap())
            .unwrap();
        assert_ne!(before, fresh, "{}", case.name);
    }
}

#[test]
fn lying_metadata_is_refused() {
    let dev = CpuDevice::new();
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::new(
        &parse_layers("dense:4,relu").unwrap(),
        wgtrain::models::FeatureShape::Flat { features: 3 },
        Output::Classes { classes: 3 },
    )
    .unwrap();
    let model = Model::new(&dev, &spec, 1).unwrap();
    let params = snapshot(&dev, &model).unwrap();
    // A layer far over the size limit: refused while reading the metadata.
    let path = dir.path().join("huge.safetensors");
    let m = meta(&spec);
    let json = serde_json::to_string(&m)
        .unwrap()
        .replace("\"layers\":\"dense:4,", "\"layers\":\"dense:400000000000,");
    let mut info = std::collections::HashMap::new();
    info.insert("wgtrain".to_string(), json);
    let bytes: Vec<Vec<u8>> = params
        .iter()
        .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views: Vec<_> = params
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            (
                t.name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, Some(info)).unwrap()).unwrap();
    let e = checkpoint::load(&path).unwrap_err().to_string();
    assert!(e.contains("over the limit"), "{e}");
    // A spec that does not fit its own tensors: refused by name.
    let path = dir.path().join("wide.safetensors");
    let mut wide = meta(&spec);
    wide.model = ModelSpec::new(
        &parse_layers("dense:5,relu").unwrap(),
        spec.input,
        spec.output,
    )
    .unwrap();
    checkpoint::save(&path, &wide, &params, None).unwrap();
    let e = checkpoint::load(&path)
        .unwrap()
        .model(&dev)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("has 38 parameters, its tensors hold 31"), "{e}");
}

#[test]
fn every_model_exports_to_onnx_with_its_weights() {
    // The numbers are checked in onnxruntime by scripts/check_onnx.py (CI);
    // here: every layer kind the grammar has maps to ONNX, and the file
    // carries the trained tensors themselves, not fresh ones.
    let dev = CpuDevice::new();
    for case in common::small_models() {
        let model = Model::new(&dev, &case.spec, 5).unwrap();
        let ck = wgtrain::run::Checkpoint {
            meta: meta(&case.spec),
            params: snapshot(&dev, &model).unwrap(),
            resume: None,
        };
        let bytes =
            wgtrain::run::onnx::onnx_model(&ck).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        // The PyTorch layout too: one tensor per trained one, plus the
        // second bias of the Elman and LSTM layers (the GRU trains both).
        let (torch, _) = wgtrain::run::export::pytorch_tensors(&ck)
            .unwrap_or_else(|e| panic!("{}: pytorch: {e}", case.name));
        let rnn = case
            .spec
            .layers
            .iter()
            .filter(|l| ["rnn", "lstm"].contains(&l.kind()))
            .count();
        let layer_tensors = torch
            .iter()
            .filter(|t| !t.name.starts_with("input.") && !t.name.starts_with("target."))
            .count();
        assert_eq!(layer_tensors, ck.params.len() + rnn, "{}", case.name);
        // Dense and conv tensors keep their layout; a recurrent layer's
        // weights are transposed (checked numerically in CI), its bias not,
        // except that LSTM and GRU gate blocks are reordered to ONNX's.
        let gated: Vec<String> = (case.spec.layers.iter().enumerate())
            .filter(|(_, l)| ["lstm", "gru"].contains(&l.kind()))
            .map(|(i, _)| format!("layers.{i}."))
            .collect();
        for t in ck.params.iter().filter(|t| {
            (t.name.ends_with(".weight") || t.name.ends_with(".bias"))
                && !gated.iter().any(|g| t.name.starts_with(g))
        }) {
            let raw: &[u8] = bytemuck::cast_slice(&t.values);
            assert!(
                bytes.windows(raw.len()).any(|w| w == raw),
                "{}: tensor {} is not in the ONNX file",
                case.name,
                t.name
            );
        }
    }
}

#[test]
fn a_negative_running_variance_is_refused() {
    // Batch norm divides by √(running_var + eps): a file with a negative
    // (or NaN) variance would make every prediction NaN, so it is refused.
    let dev = CpuDevice::new();
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::new(
        &parse_layers("dense:4,relu,batchnorm").unwrap(),
        wgtrain::models::FeatureShape::Flat { features: 3 },
        Output::Classes { classes: 3 },
    )
    .unwrap();
    let model = Model::new(&dev, &spec, 1).unwrap();
    let good = snapshot(&dev, &model).unwrap();
    for bad in [-1.0f32, f32::NAN] {
        let mut params = good.clone();
        let var = params
            .iter_mut()
            .find(|t| t.name.ends_with(".running_var"))
            .unwrap();
        var.values[1] = bad;
        let path = dir.path().join("bn.safetensors");
        checkpoint::save(&path, &meta(&spec), &params, None).unwrap();
        // A NaN is refused at load, as in any tensor; a negative variance
        // when the model is built.
        let e = checkpoint::load(&path)
            .and_then(|ck| ck.model(&dev).map(drop))
            .expect_err("refused")
            .to_string();
        assert!(e.contains("layers.2.running_var"), "{e}");
    }
    // The unchanged file loads.
    let path = dir.path().join("good.safetensors");
    checkpoint::save(&path, &meta(&spec), &good, None).unwrap();
    assert!(checkpoint::load(&path).unwrap().model(&dev).is_ok());
}

#[test]
fn export_refuses_tensors_the_architecture_does_not_have() {
    // Export reads tensors by name without building the model: a tensor
    // of the wrong shape (a transposed weight) must not reach the file.
    let dev = CpuDevice::new();
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::new(
        &parse_layers("dense:4,relu").unwrap(),
        wgtrain::models::FeatureShape::Flat { features: 3 },
        Output::Classes { classes: 2 },
    )
    .unwrap();
    let mut params = snapshot(&dev, &Model::new(&dev, &spec, 1).unwrap()).unwrap();
    params[0].shape.reverse();
    let path = dir.path().join("t.safetensors");
    checkpoint::save(&path, &meta(&spec), &params, None).unwrap();
    let ck = checkpoint::load(&path).unwrap();
    let out = dir.path().join("out");
    for e in [
        wgtrain::run::export::export_pytorch(&ck, &out).unwrap_err(),
        wgtrain::run::onnx::export_onnx(&ck, &out).unwrap_err(),
    ] {
        assert!(e.to_string().contains(&params[0].name), "{e}");
    }
    assert!(!out.exists());
}
