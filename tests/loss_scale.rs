//! Loss scaling under `--precision f16`: why it is needed (gradients of a
//! large batch lose their precision in f16 operands without it), that an
//! overflowing step is skipped and the scale backs off, identically on both
//! devices, and that a resumed run continues the scale where it stopped.

mod common;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgtrain::device::Precision;
use wgtrain::models::{parse_layers, FeatureShape, Model, ModelSpec, Output};
use wgtrain::optim::{LossScale, OptimConfig, OptimizerKind};
use wgtrain::tensor::HostTensor;
use wgtrain::{CpuDevice, Device};

/// An MLP of `features` inputs, hidden layers `hidden`, `classes` outputs.
fn mlp(features: usize, hidden: &str, classes: usize) -> ModelSpec {
    ModelSpec::new(
        &parse_layers(hidden).unwrap(),
        FeatureShape::Flat { features },
        Output::Classes { classes },
    )
    .unwrap()
}

/// A batch of `rows` samples: inputs in [-1, 1], class ids.
fn batch<D: Device>(
    dev: &D,
    rows: usize,
    features: usize,
    classes: usize,
) -> (D::Tensor, D::Tensor) {
    let rng = &mut ChaCha8Rng::seed_from_u64(5);
    let x: Vec<f32> = (0..rows * features)
        .map(|_| rng.random_range(-1.0..=1.0))
        .collect();
    let y: Vec<f32> = (0..rows)
        .map(|_| rng.random_range(0..classes) as f32)
        .collect();
    (
        dev.upload(&x, [rows, features]).unwrap(),
        dev.upload(&y, [rows]).unwrap(),
    )
}

/// Every parameter's gradient, divided by `scale`.
fn grads<D: Device>(dev: &D, model: &Model<D>, scale: f32) -> Vec<Vec<f32>> {
    model
        .params()
        .iter()
        .map(|p| {
            let g = dev.download(p.grad.as_ref().unwrap()).unwrap();
            g.into_iter().map(|v| v / scale).collect()
        })
        .collect()
}

/// Every parameter's values, one after another.
fn flat_params<D: Device>(dev: &D, model: &Model<D>) -> Vec<f32> {
    model
        .params()
        .iter()
        .flat_map(|p| dev.download(&p.value).unwrap())
        .collect()
}

/// `‖a − b‖ / ‖b‖`.
fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (diff / norm).sqrt()
}

/// A model that has nearly learned a batch of 1024 (300 Adam steps in f32,
/// loss about 0.002), as late in training: its residuals, and so its
/// gradients, are small. Its gradients with f16 product operands are then
/// off by 10–15 % in the first layers without loss scaling (the loss
/// gradient's entries, about 1e-6, are f16 subnormals with a few
/// significant bits), and by 1–2.5 % with it (what f16 rounding of the
/// activations leaves, relative to a gradient that is a small difference of
/// larger terms). The bounds below sit between the two.
#[test]
fn f16_gradients_of_a_nearly_learned_batch_need_the_loss_scaled() {
    let spec = mlp(64, "dense:128,tanh,dense:128,tanh", 10);
    let f32_dev = CpuDevice::new();
    let f16_dev = CpuDevice::new().with_precision(Precision::F16).unwrap();
    let mut model = Model::new(&f32_dev, &spec, 3).unwrap();
    let mut opt = OptimConfig::new(OptimizerKind::Adam, 0.003)
        .build()
        .unwrap();
    // The two devices share a tensor type, so one model serves both.
    let (x, y) = batch(&f32_dev, 1024, 64, 10);
    let mut loss = f32::NAN;
    for _ in 0..300 {
        let l = model.train_step(&f32_dev, &x, &y, opt.as_mut()).unwrap();
        loss = f32_dev.download(&l).unwrap()[0];
    }
    assert!(loss < 0.01, "the batch is not nearly learned: loss {loss}");
    let mut grads_at = |dev: &CpuDevice, scale: Option<f32>| {
        let s = scale.map(|s| dev.full([1], s).unwrap());
        model
            .loss_and_scaled_grads(dev, &x, &y, s.as_ref())
            .unwrap();
        grads(dev, &model, scale.unwrap_or(1.0))
    };
    let exact = grads_at(&f32_dev, None);
    let unscaled = grads_at(&f16_dev, None);
    let scaled = grads_at(&f16_dev, Some(65_536.0));
    // Every parameter but the last bias, a sum of the loss gradient that
    // no product rounds (earlier biases sum gradients that came through
    // products).
    for i in 0..exact.len() - 1 {
        let (u, s) = (
            relative_error(&unscaled[i], &exact[i]),
            relative_error(&scaled[i], &exact[i]),
        );
        println!("parameter {i}: off by {u:.3e} unscaled, {s:.3e} scaled");
        assert!(s < 0.03, "parameter {i}: scaled gradient off by {s:.3e}");
        assert!(
            u > 3.0 * s,
            "parameter {i}: unscaled {u:.3e}, scaled {s:.3e}"
        );
    }
}

/// Loss scaling state `[scale, good steps]` as a checkpoint holds it.
fn scale_state(scale: f32, good: f32) -> HostTensor {
    HostTensor {
        name: "optimizer.loss_scale".into(),
        shape: vec![2],
        values: vec![scale, good],
    }
}

/// The loss scale after each of `steps` SGD steps of dynamic scaling from
/// 2²⁴ on a batch of two, and whether each step moved the parameters.
fn overflow_run<D: Device + 'static>(dev: &D, steps: usize) -> Vec<(f32, bool)> {
    let spec = mlp(6, "dense:8,tanh", 3);
    let mut model = Model::new(dev, &spec, 3).unwrap();
    let mut opt = OptimConfig {
        loss_scale: Some(LossScale::Dynamic),
        ..OptimConfig::new(OptimizerKind::Sgd, 0.1)
    }
    .build::<D>()
    .unwrap();
    opt.load_state(dev, &model.params(), 0, &[scale_state(16_777_216.0, 0.0)])
        .unwrap();
    let (x, y) = batch(dev, 2, 6, 3);
    let values = |m: &Model<D>| -> Vec<Vec<f32>> {
        m.params()
            .iter()
            .map(|p| dev.download(&p.value).unwrap())
            .collect()
    };
    (0..steps)
        .map(|_| {
            let before = values(&model);
            model.train_step(dev, &x, &y, opt.as_mut()).unwrap();
            let state = opt.state(dev, &model.params()).unwrap();
            let scale = state.iter().find(|t| t.name == "optimizer.loss_scale");
            (scale.unwrap().values[0], values(&model) != before)
        })
        .collect()
}

/// From 2²⁴ the scaled loss gradient of a two-sample batch (entries up to
/// ½ · 2²⁴) overflows f16: those steps leave the parameters as they were
/// and halve the scale, until it fits; then steps update and the scale
/// stays (it grows only after 2000 good steps).
fn check_overflow_run(run: &[(f32, bool)]) {
    let mut scale = 16_777_216.0;
    let first_taken = run
        .iter()
        .position(|&(_, moved)| moved)
        .expect("no step taken");
    assert!(first_taken > 0, "the first step, at 2^24, did not overflow");
    for (i, &(after, moved)) in run.iter().enumerate() {
        let skipped = i < first_taken;
        assert_eq!(moved, !skipped, "step {i}: {run:?}");
        if skipped {
            scale *= 0.5;
        }
        assert_eq!(after, scale, "step {i}: {run:?}");
    }
}

#[test]
fn an_overflowing_step_is_skipped_and_the_scale_backs_off() {
    let cpu = CpuDevice::new().with_precision(Precision::F16).unwrap();
    let on_cpu = overflow_run(&cpu, 12);
    check_overflow_run(&on_cpu);
    let Some(gpu) = common::gpu() else { return };
    let gpu = gpu
        .with_precision(Precision::F16)
        .expect("llvmpipe and desktop GPUs have SHADER_F16");
    assert_eq!(overflow_run(&gpu, 12), on_cpu);
}

/// A run of dynamic scaling from 2²⁴ (which overflows for its first eight
/// steps), saved and restored after five, ends where the uninterrupted run
/// does, bit for bit: the restored scale is mid-descent, not the default.
#[test]
fn a_resumed_run_continues_the_loss_scale() {
    let dev = CpuDevice::new().with_precision(Precision::F16).unwrap();
    let spec = mlp(6, "dense:8,tanh", 3);
    let (x, y) = batch(&dev, 2, 6, 3);
    let config = OptimConfig {
        loss_scale: Some(LossScale::Dynamic),
        ..OptimConfig::new(OptimizerKind::Sgd, 0.1)
    };
    let run = |resume_after: Option<usize>| {
        let mut model = Model::new(&dev, &spec, 3).unwrap();
        let mut opt = config.build::<CpuDevice>().unwrap();
        opt.load_state(&dev, &model.params(), 0, &[scale_state(16_777_216.0, 0.0)])
            .unwrap();
        for step in 0..12 {
            if resume_after == Some(step) {
                let saved = opt.state(&dev, &model.params()).unwrap();
                let values: Vec<_> = model
                    .params()
                    .iter()
                    .map(|p| (p.name.clone(), p.value.clone()))
                    .collect();
                model = Model::new(&dev, &spec, 3).unwrap();
                model.set_params(values).unwrap();
                opt = config.build::<CpuDevice>().unwrap();
                opt.load_state(&dev, &model.params(), step as u64, &saved)
                    .unwrap();
            }
            model.train_step(&dev, &x, &y, opt.as_mut()).unwrap();
        }
        let mut out = flat_params(&dev, &model);
        out.extend(opt.state(&dev, &model.params()).unwrap()[0].values.clone());
        out
    };
    let whole = run(None);
    assert_eq!(run(Some(5)), whole);
    // Restoring a scale of 2^19 matters: from the default 2^16 the run
    // would take three more steps.
    let from_default = {
        let mut model = Model::new(&dev, &spec, 3).unwrap();
        let mut opt = config.build::<CpuDevice>().unwrap();
        opt.load_state(&dev, &model.params(), 0, &[scale_state(16_777_216.0, 0.0)])
            .unwrap();
        for _ in 0..5 {
            model.train_step(&dev, &x, &y, opt.as_mut()).unwrap();
        }
        opt.load_state(&dev, &model.params(), 5, &[]).unwrap();
        for _ in 5..12 {
            model.train_step(&dev, &x, &y, opt.as_mut()).unwrap();
        }
        flat_params(&dev, &model)
    };
    assert_ne!(from_default[..], whole[..from_default.len()]);
}

#[test]
fn loss_scale_settings_are_checked() {
    for bad in [0.0, -1.0, f32::NAN, 1e30] {
        let c = OptimConfig {
            loss_scale: Some(LossScale::Fixed(bad)),
            ..OptimConfig::new(OptimizerKind::Sgd, 0.1)
        };
        assert!(c.validate().is_err(), "{bad}");
    }
    // A checkpoint's state is checked too: an impossible scale or count.
    let dev = CpuDevice::new();
    let model = Model::new(&dev, &mlp(6, "dense:8,tanh", 3), 3).unwrap();
    let mut opt = OptimConfig::new(OptimizerKind::Sgd, 0.1)
        .for_precision(Precision::F16)
        .build::<CpuDevice>()
        .unwrap();
    for (scale, good) in [
        (0.0, 0.0),
        (f32::INFINITY, 0.0),
        (1024.0, -1.0),
        (1024.0, 0.5),
    ] {
        let e = opt
            .load_state(&dev, &model.params(), 0, &[scale_state(scale, good)])
            .unwrap_err();
        assert!(e.to_string().contains("impossible"), "{e}");
    }
}

/// In f32 a power-of-two scale is exact both ways, so scaled training,
/// clipping included (which reads the unscaled norm), takes exactly the
/// steps unscaled training takes.
#[test]
fn scaling_by_a_power_of_two_changes_nothing_in_f32() {
    let dev = CpuDevice::new();
    let spec = mlp(6, "dense:8,tanh", 3);
    let (x, y) = batch(&dev, 16, 6, 3);
    let run = |loss_scale| {
        let mut model = Model::new(&dev, &spec, 3).unwrap();
        let mut opt = OptimConfig {
            loss_scale: Some(loss_scale),
            // Below these gradients' norm, so every step clips.
            clip_norm: Some(0.05),
            ..OptimConfig::new(OptimizerKind::Adam, 0.01)
        }
        .build::<CpuDevice>()
        .unwrap();
        for _ in 0..5 {
            model.train_step(&dev, &x, &y, opt.as_mut()).unwrap();
        }
        flat_params(&dev, &model)
    };
    let plain = run(LossScale::Off);
    assert_eq!(run(LossScale::Fixed(65_536.0)), plain);
    assert_eq!(run(LossScale::Dynamic), plain);
    // And the clipping matters: without it the steps differ.
    let mut model = Model::new(&dev, &spec, 3).unwrap();
    let mut opt = OptimConfig::new(OptimizerKind::Adam, 0.01)
        .build::<CpuDevice>()
        .unwrap();
    for _ in 0..5 {
        model.train_step(&dev, &x, &y, opt.as_mut()).unwrap();
    }
    let unclipped = flat_params(&dev, &model);
    assert_ne!(unclipped, plain);
}

/// Gradients computed without the loss scale would be divided by it all
/// the same: an optimizer that scales the loss refuses a step whose scale
/// nobody asked for, instead of taking a silently wrong one.
#[test]
fn a_step_on_gradients_computed_without_the_scale_is_refused() {
    let dev = CpuDevice::new().with_precision(Precision::F16).unwrap();
    let mut model = Model::new(&dev, &mlp(6, "dense:8,tanh", 3), 3).unwrap();
    let mut opt = OptimConfig::new(OptimizerKind::Sgd, 0.1)
        .for_precision(Precision::F16)
        .build::<CpuDevice>()
        .unwrap();
    let (x, y) = batch(&dev, 4, 6, 3);
    model.train_step(&dev, &x, &y, opt.as_mut()).unwrap();
    model.loss_and_grads(&dev, &x, &y).unwrap();
    let e = opt.step(&dev, &mut model.params_mut()).unwrap_err();
    assert!(e.to_string().contains("Model::train_step"), "{e}");
    // Asked for, it is taken.
    let s = opt.loss_scale(&dev).unwrap();
    model
        .loss_and_scaled_grads(&dev, &x, &y, s.as_ref())
        .unwrap();
    opt.step(&dev, &mut model.params_mut()).unwrap();
}
