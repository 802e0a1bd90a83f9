//! Finite-difference checks of every layer, loss and model on the CPU device.
//!
//! Central differences `(f(θ+ε) − f(θ−ε)) / 2ε` in f32 with ε = 1e-2: the
//! truncation error is O(ε²·f''') ≈ 1e-4 relative for these smooth functions
//! of O(1) inputs, and the rounding error is about u·|f|/ε ≈ 1e-5. Each
//! analytic derivative must match within `1e-3 + 2e-2·|numeric|`. A wrong
//! term (a missing transpose, a dropped time step, a border pixel) is off by
//! O(0.1–1). Max-pool and ReLU have kinks; inputs are drawn so that no
//! window's top two values lie within 2ε of each other (checked).

mod common;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgtrain::device::cpu::CpuTensor;
use wgtrain::device::Activation;
use wgtrain::loss::Loss;
use wgtrain::models::Model;
use wgtrain::nn::{Act, Conv2d, Dense, Flatten, Layer, MaxPool2d, Rnn};
use wgtrain::{CpuDevice, Device, Shape, Tensor};

const EPS: f32 = 1e-2;

fn close(analytic: f32, numeric: f32) -> bool {
    (analytic - numeric).abs() <= 1e-3 + 2e-2 * numeric.abs()
}

fn random(rng: &mut ChaCha8Rng, n: usize, spread: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-spread..=spread)).collect()
}

fn get(t: &CpuTensor) -> Vec<f32> {
    CpuDevice.download(t).unwrap()
}

fn put(v: &[f32], shape: &Shape) -> CpuTensor {
    CpuDevice.upload(v, shape.clone()).unwrap()
}

/// Checks a layer's input and parameter gradients for the scalar
/// `L = Σ layer(x) ⊙ r` with a fixed random `r`.
fn check_layer(mut layer: Box<dyn Layer<CpuDevice>>, x_shape: Shape, seed: u64, spread: f32) {
    let dev = CpuDevice;
    let rng = &mut ChaCha8Rng::seed_from_u64(seed);
    let x = random(rng, x_shape.numel(), spread);
    let y = layer.forward(&dev, &put(&x, &x_shape), true).unwrap();
    let r = random(rng, y.shape().numel(), 1.0);
    let r_t = put(&r, y.shape());
    let dx = get(&layer
        .backward(&dev, &r_t, true)
        .unwrap()
        .expect("dx requested"));
    let grads: Vec<(String, Vec<f32>)> = layer
        .params()
        .iter()
        .map(|p| (p.name.clone(), get(p.grad.as_ref().unwrap())))
        .collect();

    // Training mode, as the analytic pass: a dropout layer draws the same
    // mask again (same step), so the function differentiated is the same.
    let objective = |layer: &mut Box<dyn Layer<CpuDevice>>, x: &[f32]| -> f32 {
        let y = get(&layer.forward(&dev, &put(x, &x_shape), true).unwrap());
        y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>() as f32
    };
    let mut failures = Vec::new();
    for i in 0..x.len() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[i] += EPS;
        xm[i] -= EPS;
        let num = (objective(&mut layer, &xp) - objective(&mut layer, &xm)) / (2.0 * EPS);
        if !close(dx[i], num) {
            failures.push(format!("dx[{i}]: analytic {} numeric {num}", dx[i]));
        }
    }
    for (pi, (name, grad)) in grads.iter().enumerate() {
        for i in 0..grad.len() {
            let original = get(&layer.params()[pi].value);
            let shape = layer.params()[pi].value.shape().clone();
            let eval = |delta: f32, layer: &mut Box<dyn Layer<CpuDevice>>| {
                let mut v = original.clone();
                v[i] += delta;
                layer.params_mut()[pi].value = put(&v, &shape);
                let f = objective(layer, &x);
                layer.params_mut()[pi].value = put(&original, &shape);
                f
            };
            let num = (eval(EPS, &mut layer) - eval(-EPS, &mut layer)) / (2.0 * EPS);
            if !close(grad[i], num) {
                failures.push(format!("{name}[{i}]: analytic {} numeric {num}", grad[i]));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} gradient mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn dense_with_each_activation() {
    for (i, act) in [
        Activation::Identity,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::LeakyRelu,
        Activation::Softplus,
    ]
    .into_iter()
    .enumerate()
    {
        let rng = &mut ChaCha8Rng::seed_from_u64(i as u64);
        let layer = Dense::new(&CpuDevice, "dense.0", 5, 3, act, rng).unwrap();
        check_layer(Box::new(layer), Shape::new([4, 5]), 10 + i as u64, 1.0);
    }
}

#[test]
fn dense_applies_to_every_step_of_a_sequence() {
    let rng = &mut ChaCha8Rng::seed_from_u64(3);
    let layer = Dense::new(&CpuDevice, "dense.0", 3, 4, Activation::Tanh, rng).unwrap();
    check_layer(Box::new(layer), Shape::new([2, 3, 3]), 4, 1.0);
}

#[test]
fn conv2d_with_padding_at_the_borders() {
    // Padding 1 on a 5×4 input: every border pixel's gradient passes through
    // the zero padding logic; C_in 2 and C_out 3 exercise channel indexing.
    let rng = &mut ChaCha8Rng::seed_from_u64(5);
    let layer = Conv2d::new(&CpuDevice, "conv.0", (2, 3), 3, 1, Activation::Tanh, rng).unwrap();
    check_layer(Box::new(layer), Shape::new([2, 2, 5, 4]), 6, 1.0);
    let rng = &mut ChaCha8Rng::seed_from_u64(7);
    let layer = Conv2d::new(&CpuDevice, "conv.1", (1, 2), 3, 0, Activation::Relu, rng).unwrap();
    check_layer(Box::new(layer), Shape::new([1, 1, 4, 5]), 8, 1.0);
}

#[test]
fn max_pool_and_activations() {
    // A permutation of well-separated values: no two inputs within 2ε, so
    // no perturbation changes a window's arg-max.
    let n = 2 * 2 * 5 * 7;
    let rng = &mut ChaCha8Rng::seed_from_u64(9);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let values: Vec<f32> = order.iter().map(|&o| o as f32 * 0.05 - 2.0).collect();
    let shape = Shape::new([2, 2, 5, 7]);
    let dev = CpuDevice;
    let mut pool: Box<dyn Layer<CpuDevice>> = Box::new(MaxPool2d::new(2));
    let y = pool.forward(&dev, &put(&values, &shape), true).unwrap();
    let r = put(&vec![1.0; y.shape().numel()], y.shape());
    let dx = get(&pool.backward(&dev, &r, true).unwrap().unwrap());
    for i in 0..n {
        let (mut p, mut m) = (values.clone(), values.clone());
        p[i] += EPS;
        m[i] -= EPS;
        let f = |v: &[f32]| {
            get(&dev.max_pool2d(&put(v, &shape), 2).unwrap().0)
                .iter()
                .sum::<f32>()
        };
        let num = (f(&p) - f(&m)) / (2.0 * EPS);
        assert!(close(dx[i], num), "pool dx[{i}]: {} vs {num}", dx[i]);
    }
    for (i, act) in [
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::LeakyRelu,
        Activation::Softplus,
        Activation::Gelu,
    ]
    .into_iter()
    .enumerate()
    {
        check_layer(
            Box::new(Act::new(act)),
            Shape::new([3, 7]),
            20 + i as u64,
            2.0,
        );
    }
    check_layer(Box::new(Flatten::new()), Shape::new([2, 3, 2, 2]), 30, 1.0);
}

#[test]
fn rnn_through_several_time_steps() {
    // T = 5 steps: the gradient of the first input passes through four
    // applications of U.
    let rng = &mut ChaCha8Rng::seed_from_u64(11);
    let layer = Rnn::new(&CpuDevice, "rnn", 3, 4, rng).unwrap();
    check_layer(Box::new(layer), Shape::new([5, 2, 3]), 12, 1.0);
}

#[test]
fn every_loss_gradient() {
    let dev = CpuDevice;
    let rng = &mut ChaCha8Rng::seed_from_u64(13);
    let shape = Shape::new([4, 3]);
    let logits = random(rng, 12, 2.0);
    let cases: [(Loss, Vec<f32>); 3] = [
        (Loss::Mse, random(rng, 12, 1.0)),
        (
            Loss::BinaryCrossEntropy,
            (0..12).map(|i| (i % 2) as f32).collect(),
        ),
        (Loss::SoftmaxCrossEntropy, vec![0.0, 2.0, 1.0, 2.0]),
    ];
    for (loss, targets) in cases {
        let t_shape = Shape::new([targets.len()]);
        let t = put(&targets, &t_shape);
        let lg = loss.apply(&dev, &put(&logits, &shape), &t).unwrap();
        let grad = get(&lg.grad);
        for i in 0..logits.len() {
            let f = |d: f32| {
                let mut v = logits.clone();
                v[i] += d;
                get(&loss.apply(&dev, &put(&v, &shape), &t).unwrap().loss)[0]
            };
            let num = (f(EPS) - f(-EPS)) / (2.0 * EPS);
            assert!(close(grad[i], num), "{loss:?} d[{i}]: {} vs {num}", grad[i]);
        }
    }
}

#[test]
fn every_model_end_to_end() {
    let dev = CpuDevice;
    for case in common::small_models() {
        let kind = &case.name;
        let mut model = Model::new(&dev, &case.spec, 1).unwrap();
        let (xt, yt) = case.batch(&dev);
        model.loss_and_grads(&dev, &xt, &yt).unwrap();
        let grads: Vec<Vec<f32>> = model
            .params()
            .iter()
            .map(|p| get(p.grad.as_ref().unwrap()))
            .collect();
        let mut checked = 0;
        for (pi, grad) in grads.iter().enumerate() {
            let original = get(&model.params()[pi].value);
            let shape = model.params()[pi].value.shape().clone();
            // Every element of small tensors; a spread of 40 from large ones.
            let stride = (grad.len() / 40).max(1);
            for i in (0..grad.len()).step_by(stride) {
                let mut loss_at = |d: f32| {
                    let mut v = original.clone();
                    v[i] += d;
                    model.params_mut()[pi].value = put(&v, &shape);
                    // Training mode: dropout's mask as in the analytic pass.
                    let logits = model.forward(&dev, &xt, true).unwrap();
                    let targets = model.arrange_targets(&dev, &yt).unwrap();
                    let l = get(&model.loss().apply(&dev, &logits, &targets).unwrap().loss)[0];
                    model.params_mut()[pi].value = put(&original, &shape);
                    l
                };
                let num = (loss_at(EPS) - loss_at(-EPS)) / (2.0 * EPS);
                let name = &model.params()[pi].name;
                assert!(
                    close(grad[i], num),
                    "{kind} {name}[{i}]: analytic {} numeric {num}",
                    grad[i]
                );
                checked += 1;
            }
        }
        let total: usize = grads.iter().map(Vec::len).sum();
        assert!(
            checked >= total.min(40),
            "{kind}: only {checked} of {total} derivatives checked"
        );
    }
}
