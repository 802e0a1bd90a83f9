//! Streamed splits (samples kept on the host, sent to the device in chunks
//! of whole batches, the next gathered and uploaded while the current one
//! trains) give exactly the batches of a resident split, so training on
//! them is bit-identical; and a split larger than one storage binding (128
//! MiB on lavapipe) trains on the GPU.

mod common;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgtrain::data::{Dataset, DeviceData, Features, Normalizer, Residency, Targets, Task};
use wgtrain::models::{parse_layers, FeatureShape, Model, ModelSpec, Output};
use wgtrain::optim::{OptimConfig, OptimizerKind, Schedule};
use wgtrain::run::{fit, EpochEnd, Hooks, Silent, TrainConfig, TrainData, TrainState};
use wgtrain::{CpuDevice, Device, Result};

fn dataset(name: &str, sample_shape: Vec<usize>, features: Features, targets: Targets) -> Dataset {
    let task = match &targets {
        Targets::Values { .. } => Task::Regression,
        Targets::Classes { per_sample: 1, .. } => Task::Classification,
        Targets::Classes { .. } => Task::Text,
    };
    Dataset {
        name: name.into(),
        task,
        sample_shape,
        features,
        targets,
        feature_names: Vec::new(),
        target_name: String::new(),
        class_names: Vec::new(),
    }
}

/// A small model and data of each kind a split can hold: f32 features with
/// two regression targets, bytes (images normalised in the gather), and
/// token sequences with one target per step.
fn cases(n: usize) -> Vec<(Dataset, ModelSpec, Normalizer)> {
    let rng = &mut ChaCha8Rng::seed_from_u64(5);
    let mut v = Vec::new();
    let x: Vec<f32> = (0..n * 6).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y: Vec<f32> = x
        .chunks(6)
        .flat_map(|r| [r[0] - 2.0 * r[3], r[1] * r[2]])
        .collect();
    let layers = parse_layers("dense:8,tanh").unwrap();
    let spec = ModelSpec::new(
        &layers,
        FeatureShape::Flat { features: 6 },
        Output::Regression { targets: 2 },
    )
    .unwrap();
    let targets = Targets::Values { values: y, dims: 2 };
    v.push((
        dataset("table", vec![6], Features::F32(x), targets),
        spec,
        Normalizer::Identity,
    ));

    let pixels: Vec<u8> = (0..n * 36).map(|_| rng.random()).collect();
    let ids: Vec<u32> = pixels.chunks(36).map(|p| u32::from(p[7]) % 3).collect();
    let layers = parse_layers("conv2d:2:3,relu,flatten").unwrap();
    let image = FeatureShape::Image {
        channels: 1,
        height: 6,
        width: 6,
    };
    let spec = ModelSpec::new(&layers, image, Output::Classes { classes: 3 }).unwrap();
    let targets = Targets::Classes {
        ids,
        classes: 3,
        per_sample: 1,
    };
    v.push((
        dataset("images", vec![1, 6, 6], Features::U8(pixels), targets),
        spec,
        Normalizer::Global {
            mean: 127.5,
            std: 73.6,
        },
    ));

    let seq = 5;
    let tokens: Vec<u32> = (0..n * (seq + 1)).map(|_| rng.random_range(0..4)).collect();
    let (mut x, mut ids) = (Vec::new(), Vec::new());
    for s in tokens.chunks(seq + 1) {
        x.extend(s[..seq].iter().map(|&t| t as f32));
        ids.extend_from_slice(&s[1..]);
    }
    let layers = parse_layers("rnn:6").unwrap();
    let spec = ModelSpec::new(
        &layers,
        FeatureShape::Tokens { len: seq },
        Output::NextToken { vocab: 4 },
    )
    .unwrap();
    let targets = Targets::Classes {
        ids,
        classes: 4,
        per_sample: seq,
    };
    v.push((
        dataset("text", vec![seq], Features::F32(x), targets),
        spec,
        Normalizer::Identity,
    ));
    v
}

/// Records each epoch's training and validation loss; stops once after
/// `stop_at` steps (an interrupted epoch, continued by a second `fit`).
struct Record {
    losses: Vec<(f64, f64)>,
    steps: usize,
    stop_at: Option<usize>,
}

impl<D: Device> Hooks<D> for Record {
    fn on_step(&mut self, _: &wgtrain::run::StepProgress) {
        self.steps += 1;
    }
    fn should_stop(&mut self) -> bool {
        self.stop_at.take_if(|s| *s == self.steps).is_some()
    }
    fn on_epoch(&mut self, end: &EpochEnd<'_, D>) -> Result<()> {
        let val = end.stats.val.as_ref().map_or(f64::NAN, |v| v.loss);
        self.losses.push((end.stats.train_loss, val));
        Ok(())
    }
}

/// Trains a fresh `spec` on `data` with `optim` up to `cfg.epochs`
/// (continuing after each interruption `hooks` asks for), validating on
/// the same data when `validate`; returns the parameters.
fn train_model<D: Device + 'static>(
    dev: &D,
    data: &DeviceData<D>,
    spec: &ModelSpec,
    optim: OptimConfig,
    cfg: &TrainConfig,
    validate: bool,
    hooks: &mut dyn Hooks<D>,
) -> Vec<Vec<f32>> {
    let mut model = Model::new(dev, spec, 3).unwrap();
    let mut optimizer = optim.build::<D>().unwrap();
    let split = TrainData {
        train: data,
        val: validate.then_some(data),
        scaler: None,
    };
    let mut state = TrainState::default();
    while state.epoch < cfg.epochs {
        fit(
            dev,
            &mut model,
            optimizer.as_mut(),
            &split,
            cfg,
            &mut state,
            hooks,
        )
        .unwrap();
    }
    model
        .params()
        .iter()
        .map(|p| dev.download(&p.value).unwrap())
        .collect()
}

/// Parameters after training, and each epoch's training and validation loss.
type Run = (Vec<Vec<f32>>, Vec<(f64, f64)>);

/// Trains `spec` on `ds` for two epochs of Adam (validating on the same
/// data), interrupted and continued once when `stop_at` says; returns the
/// parameters and each epoch's losses.
fn train<D: Device + 'static>(
    dev: &D,
    ds: &Dataset,
    spec: &ModelSpec,
    norm: &Normalizer,
    residency: Residency,
    stop_at: Option<usize>,
) -> Run {
    let data = DeviceData::upload_with(dev, ds, norm, None, residency).unwrap();
    assert_eq!(
        data.is_streamed(),
        matches!(residency, Residency::Streamed { .. }),
        "{residency:?}"
    );
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 16,
        patience: None,
        seed: 9,
        log_every: 4,
        schedule: Schedule::Constant,
        stop_at_epoch: None,
    };
    let mut hooks = Record {
        losses: Vec::new(),
        steps: 0,
        stop_at,
    };
    let adam = OptimConfig::new(OptimizerKind::Adam, 0.01);
    let params = train_model(dev, &data, spec, adam, &cfg, true, &mut hooks);
    assert!(
        stop_at.is_none() || hooks.stop_at.is_none(),
        "never stopped"
    );
    (params, hooks.losses)
}

/// On `dev`, streamed training (chunks of one batch, of three batches and
/// a remainder, interrupted inside an epoch and continued) equals resident
/// training bit for bit, for every kind of split.
fn streamed_equals_resident<D: Device + 'static>(dev: &D) {
    // 300 samples: 18 batches of 16 and one of 12.
    for (ds, spec, norm) in cases(300) {
        let resident = train(dev, &ds, &spec, &norm, Residency::Resident, None);
        let row = |bytes: u64| bytes * 16; // a batch's worth of rows, roughly
        for (chunk_bytes, stop_at) in [(1, None), (row(3 * 40), None), (row(3 * 40), Some(23))] {
            let streamed = train(
                dev,
                &ds,
                &spec,
                &norm,
                Residency::Streamed { chunk_bytes },
                stop_at,
            );
            let what = format!(
                "{}: chunks of {chunk_bytes} bytes, stopped at step {stop_at:?}",
                ds.name
            );
            assert_eq!(resident.0, streamed.0, "parameters, {what}");
            let val = |r: &Run| r.1.iter().map(|l| l.1).collect::<Vec<_>>();
            assert_eq!(val(&resident), val(&streamed), "validation losses, {what}");
            // An interrupted epoch sums its loss read-backs in other groups.
            if stop_at.is_none() {
                assert_eq!(resident.1, streamed.1, "training losses, {what}");
            }
        }
        let (_, losses) = &resident;
        assert!(losses[1].0 < losses[0].0, "{}: {losses:?}", ds.name);
    }
}

#[test]
fn cpu_streamed_training_equals_resident() {
    streamed_equals_resident(&CpuDevice::new());
}

#[test]
fn gpu_streamed_training_equals_resident() {
    let Some(gpu) = common::gpu() else { return };
    streamed_equals_resident(&gpu);
}

/// Batches of any range (not the order's batch size, across chunks) and
/// the errors of a misused order.
#[test]
fn any_batch_of_a_streamed_order_matches_resident() {
    let dev = CpuDevice::new();
    let (ds, _, norm) = cases(50).swap_remove(1);
    let resident = DeviceData::upload_with(&dev, &ds, &norm, None, Residency::Resident).unwrap();
    let streamed = DeviceData::upload_with(
        &dev,
        &ds,
        &norm,
        None,
        Residency::Streamed { chunk_bytes: 200 },
    )
    .unwrap();
    let order: Vec<u32> = (0..50).rev().collect();
    let mut a = resident.order(&dev, order.clone(), 4).unwrap();
    let mut b = streamed.order(&dev, order, 4).unwrap();
    assert_eq!(
        b.chunk_rows(),
        Some(4),
        "200 bytes: 5 rows of 40, whole batches"
    );
    for (start, count) in [(0, 4), (4, 4), (6, 7), (0, 50), (48, 2), (13, 1)] {
        let (xa, ya) = resident.batch(&dev, &mut a, start, count).unwrap();
        let (xb, yb) = streamed.batch(&dev, &mut b, start, count).unwrap();
        assert_eq!(dev.download(&xa).unwrap(), dev.download(&xb).unwrap());
        assert_eq!(dev.download(&ya).unwrap(), dev.download(&yb).unwrap());
    }
    for data in [&resident, &streamed] {
        let err = data.order(&dev, vec![3, 50], 4).err().unwrap();
        assert!(
            err.to_string().contains("sample 50 of a split of 50"),
            "{err}"
        );
    }
    let err = streamed.batch(&dev, &mut b, 48, 3).unwrap_err();
    assert!(err.to_string().contains("48..+3"), "{err}");
    let err = resident.batch(&dev, &mut b, 0, 4).unwrap_err();
    assert!(err.to_string().contains("different split"), "{err}");
    // Another streamed split of the same length does not take this order.
    let twin = DeviceData::upload_with(
        &dev,
        &ds,
        &norm,
        None,
        Residency::Streamed { chunk_bytes: 200 },
    )
    .unwrap();
    let err = twin.batch(&dev, &mut b, 0, 4).unwrap_err();
    assert!(err.to_string().contains("different split"), "{err}");
}

/// A regression split of more bytes than the adapter's largest storage
/// binding (capped at 256 MiB of data; above that cap, streaming is forced)
/// trains on the GPU to the known weights, and as on the CPU device.
#[test]
fn gpu_trains_on_a_split_larger_than_a_binding() {
    let Some(gpu) = common::gpu() else { return };
    let features = 34;
    let row = (features + 1) * 4;
    let limit = gpu.max_tensor_bytes();
    let bytes = (limit.min(256 << 20) as f64 * 1.1) as usize;
    let n = bytes / row;
    let rng = &mut ChaCha8Rng::seed_from_u64(41);
    let w: Vec<f32> = (0..features).map(|_| rng.random_range(-1.0..1.0)).collect();
    let x: Vec<f32> = (0..n * features)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let y: Vec<f32> = x
        .chunks(features)
        .map(|r| r.iter().zip(&w).map(|(a, b)| a * b).sum::<f32>() + 0.5)
        .collect();
    let ds = dataset(
        "large",
        vec![features],
        Features::F32(x),
        Targets::Values { values: y, dims: 1 },
    );
    let residency = if limit <= 256 << 20 {
        // The features alone exceed one binding: the upload must stream.
        assert!((n * features * 4) as u64 > limit);
        Residency::Auto
    } else {
        Residency::streamed(&gpu)
    };
    let spec = ModelSpec::new(
        &[],
        FeatureShape::Flat { features },
        Output::Regression { targets: 1 },
    )
    .unwrap();
    let (gpu_params, gpu_streamed) = sgd_epoch(&gpu, &ds, &spec, residency);
    assert!(gpu_streamed);
    // The CPU device holds any tensor: resident unless told.
    let (cpu_params, _) = sgd_epoch(&CpuDevice::new(), &ds, &spec, residency);
    // Weights `[features, 1]` then the bias: the generating ones, to well
    // within what a model that learned nothing (all near 0) would show.
    let learned: Vec<f32> = gpu_params.concat();
    for (i, (&got, &want)) in learned.iter().zip(w.iter().chain([&0.5])).enumerate() {
        assert!((got - want).abs() < 0.01, "parameter {i}: {got} vs {want}");
    }
    for (g, c) in learned.iter().zip(cpu_params.concat()) {
        assert!((g - c).abs() < 1e-4, "GPU {g} vs CPU {c}");
    }
}

/// One SGD epoch of linear regression on a split, on some device.
/// Returns the parameters and whether the split was streamed.
fn sgd_epoch<D: Device + 'static>(
    dev: &D,
    ds: &Dataset,
    spec: &ModelSpec,
    residency: Residency,
) -> (Vec<Vec<f32>>, bool) {
    let data = DeviceData::upload_with(dev, ds, &Normalizer::Identity, None, residency).unwrap();
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 4096,
        patience: None,
        seed: 2,
        log_every: 50,
        schedule: Schedule::Constant,
        stop_at_epoch: None,
    };
    let sgd = OptimConfig::new(OptimizerKind::Sgd, 0.5);
    let params = train_model(dev, &data, spec, sgd, &cfg, false, &mut Silent);
    (params, data.is_streamed())
}

/// More samples than a resident split may index exactly (2^24, as f32)
/// stream automatically, even where every tensor fits, and train.
#[test]
fn more_than_2_pow_24_samples_stream_and_train() {
    let dev = CpuDevice::new();
    let n = wgtrain::data::MAX_RESIDENT_SAMPLES + 5;
    let rng = &mut ChaCha8Rng::seed_from_u64(8);
    let x: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y: Vec<f32> = x.iter().map(|v| 3.0 * v + 1.0).collect();
    let ds = dataset(
        "many",
        vec![1],
        Features::F32(x),
        Targets::Values { values: y, dims: 1 },
    );
    let err = DeviceData::upload_with(&dev, &ds, &Normalizer::Identity, None, Residency::Resident)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("streaming has no such limit"),
        "{err}"
    );
    let spec = ModelSpec::new(
        &[],
        FeatureShape::Flat { features: 1 },
        Output::Regression { targets: 1 },
    )
    .unwrap();
    let (params, streamed) = sgd_epoch(&dev, &ds, &spec, Residency::Auto);
    assert!(streamed);
    let (w, b) = (params[0][0], params[1][0]);
    assert!(
        (w - 3.0).abs() < 0.05 && (b - 1.0).abs() < 0.05,
        "w {w}, b {b}"
    );
}
