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
use wgtrain::device::{Activation, ConvStep, PoolWindow};
use wgtrain::loss::Loss;
use wgtrain::models::Model;
use wgtrain::nn::{
    Act, AvgPool2d, BatchNorm, Conv2d, Dense, Flatten, Gru, Layer, Lstm, MaxPool2d, RecurrentInput,
    Rnn,
};
use wgtrain::{CpuDevice, Device, Shape, Tensor};

const EPS: f32 = 1e-2;

fn close(analytic: f32, numeric: f32) -> bool {
    (analytic - numeric).abs() <= 1e-3 + 2e-2 * numeric.abs()
}

fn random(rng: &mut ChaCha8Rng, n: usize, spread: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-spread..=spread)).collect()
}

fn get(t: &CpuTensor) -> Vec<f32> {
    CpuDevice::new().download(t).unwrap()
}

fn put(v: &[f32], shape: &Shape) -> CpuTensor {
    CpuDevice::new().upload(v, shape.clone()).unwrap()
}

/// Checks a layer's input and parameter gradients for the scalar
/// `L = Σ layer(x) ⊙ r` with a fixed random `r`.
fn check_layer(mut layer: Box<dyn Layer<CpuDevice>>, x_shape: Shape, seed: u64, spread: f32) {
    let dev = CpuDevice::new();
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
        let layer = Dense::new(&CpuDevice::new(), "dense.0", 5, 3, act, rng).unwrap();
        check_layer(Box::new(layer), Shape::new([4, 5]), 10 + i as u64, 1.0);
    }
}

#[test]
fn dense_applies_to_every_step_of_a_sequence() {
    let rng = &mut ChaCha8Rng::seed_from_u64(3);
    let layer = Dense::new(&CpuDevice::new(), "dense.0", 3, 4, Activation::Tanh, rng).unwrap();
    check_layer(Box::new(layer), Shape::new([2, 3, 3]), 4, 1.0);
}

#[test]
fn conv2d_with_padding_at_the_borders() {
    // Padding 1 on a 5×4 input: every border pixel's gradient passes through
    // the zero padding logic; C_in 2 and C_out 3 exercise channel indexing.
    let rng = &mut ChaCha8Rng::seed_from_u64(5);
    let step = ConvStep::padded(1);
    let layer = Conv2d::new(
        &CpuDevice::new(),
        "conv.0",
        (2, 3),
        3,
        step,
        Activation::Tanh,
        rng,
    )
    .unwrap();
    check_layer(Box::new(layer), Shape::new([2, 2, 5, 4]), 6, 1.0);
    let rng = &mut ChaCha8Rng::seed_from_u64(7);
    let step = ConvStep::padded(0);
    let layer = Conv2d::new(
        &CpuDevice::new(),
        "conv.1",
        (1, 2),
        3,
        step,
        Activation::Relu,
        rng,
    )
    .unwrap();
    check_layer(Box::new(layer), Shape::new([1, 1, 4, 5]), 8, 1.0);
}

#[test]
fn conv2d_with_strides() {
    // Stride 2 over 7×6 with padding 1 (the last column is cut), and
    // stride 3 with a 2×2 kernel (pixels no window touches get 0).
    for (i, (kernel, stride, pad, hw)) in [(3, 2, 1, (7, 6)), (2, 3, 0, (8, 7)), (5, 2, 2, (6, 5))]
        .into_iter()
        .enumerate()
    {
        let rng = &mut ChaCha8Rng::seed_from_u64(20 + i as u64);
        let step = ConvStep { stride, pad };
        let layer = Conv2d::new(
            &CpuDevice::new(),
            "conv.0",
            (2, 3),
            kernel,
            step,
            Activation::Tanh,
            rng,
        )
        .unwrap();
        check_layer(
            Box::new(layer),
            Shape::new([2, 2, hw.0, hw.1]),
            30 + i as u64,
            1.0,
        );
    }
}

/// A pooling op on the CPU device, for the finite differences.
type PoolOp = fn(&CpuDevice, &CpuTensor, PoolWindow) -> CpuTensor;

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
    let dev = CpuDevice::new();
    // Tiled, overlapping (an input can be the maximum of several windows)
    // and gapped windows; max and average.
    for win in [
        PoolWindow::tiled(2),
        PoolWindow::new(3, 2),
        PoolWindow::new(2, 1),
        PoolWindow::new(2, 3),
    ] {
        let pools: [(Box<dyn Layer<CpuDevice>>, PoolOp); 2] = [
            (Box::new(MaxPool2d::new(win)), |d, x, w| {
                d.max_pool2d(x, w).unwrap().0
            }),
            (Box::new(AvgPool2d::new(win)), |d, x, w| {
                d.avg_pool2d(x, w).unwrap()
            }),
        ];
        for (mut pool, pooled) in pools {
            // A weighted sum of the outputs, so each window's gradient differs.
            let y = pool.forward(&dev, &put(&values, &shape), true).unwrap();
            let weights: Vec<f32> = (0..y.shape().numel())
                .map(|j| 1.0 + 0.25 * (j % 5) as f32)
                .collect();
            let r = put(&weights, y.shape());
            let dx = get(&pool.backward(&dev, &r, true).unwrap().unwrap());
            for i in 0..n {
                let (mut p, mut m) = (values.clone(), values.clone());
                p[i] += EPS;
                m[i] -= EPS;
                let f = |v: &[f32]| {
                    get(&pooled(&dev, &put(v, &shape), win))
                        .iter()
                        .zip(&weights)
                        .map(|(a, b)| a * b)
                        .sum::<f32>()
                };
                let num = (f(&p) - f(&m)) / (2.0 * EPS);
                assert!(
                    close(dx[i], num),
                    "{win:?} pool dx[{i}]: {} vs {num}",
                    dx[i]
                );
            }
        }
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
    let layer = Rnn::new(&CpuDevice::new(), "rnn", 3, 4, rng).unwrap();
    check_layer(Box::new(layer), Shape::new([5, 2, 3]), 12, 1.0);
}

#[test]
fn lstm_and_gru_through_several_time_steps() {
    let rng = &mut ChaCha8Rng::seed_from_u64(14);
    let lstm = Lstm::new(&CpuDevice::new(), "lstm", 3, 4, rng).unwrap();
    check_layer(Box::new(lstm), Shape::new([5, 2, 3]), 15, 1.0);
    let gru = Gru::new(&CpuDevice::new(), "gru", 3, 4, rng).unwrap();
    check_layer(Box::new(gru), Shape::new([5, 2, 3]), 16, 1.0);
}

/// A recurrent layer reading token ids (a `one_hot` layer folded into it)
/// computes what the same layer computes from the one-hot vectors: the same
/// states, bit for bit, and the same weight gradients (its input weight's by
/// a scatter-add instead of a product, within rounding); it has no input
/// gradient to give.
#[test]
fn recurrent_layers_reading_ids_match_their_one_hot_vectors() {
    let dev = CpuDevice::new();
    let (t, b, vocab) = (4, 3, 6);
    let ids: Vec<f32> = (0..t * b).map(|i| ((i * 5 + 1) % vocab) as f32).collect();
    let ids = put(&ids, &Shape::new([t, b]));
    let flat = dev.reshape(&ids, [t * b]).unwrap();
    let one_hot = dev
        .reshape(&dev.one_hot(&flat, vocab).unwrap(), [t, b, vocab])
        .unwrap();
    let tokens = RecurrentInput::Tokens { vocab };
    type Make = fn(&CpuDevice, &mut ChaCha8Rng, RecurrentInput) -> Box<dyn Layer<CpuDevice>>;
    let cells: [(&str, Make); 3] = [
        ("rnn", |d, r, i| {
            Box::new(Rnn::new(d, "l", 6, 5, r).unwrap().reading(i))
        }),
        ("lstm", |d, r, i| {
            Box::new(Lstm::new(d, "l", 6, 5, r).unwrap().reading(i))
        }),
        ("gru", |d, r, i| {
            Box::new(Gru::new(d, "l", 6, 5, r).unwrap().reading(i))
        }),
    ];
    for (cell, make) in cells {
        let mut by_ids = make(&dev, &mut ChaCha8Rng::seed_from_u64(3), tokens);
        let mut by_vectors = make(
            &dev,
            &mut ChaCha8Rng::seed_from_u64(3),
            RecurrentInput::Vectors,
        );
        let y = by_ids.forward(&dev, &ids, true).unwrap();
        assert_eq!(
            get(&y),
            get(&by_vectors.forward(&dev, &one_hot, true).unwrap()),
            "{cell}"
        );
        let dy = put(
            &random(&mut ChaCha8Rng::seed_from_u64(4), t * b * 5, 1.0),
            y.shape(),
        );
        assert!(by_ids.backward(&dev, &dy, false).unwrap().is_none());
        by_vectors.backward(&dev, &dy, false).unwrap();
        for (p, q) in by_ids.params().iter().zip(by_vectors.params()) {
            let (g, h) = (get(p.grad.as_ref().unwrap()), get(q.grad.as_ref().unwrap()));
            for (a, e) in g.iter().zip(&h) {
                assert!(
                    (a - e).abs() <= 1e-6 * (1.0 + e.abs()),
                    "{cell} {}: {a} vs {e}",
                    p.name
                );
            }
        }
        let err = by_ids.backward(&dev, &dy, true).unwrap_err().to_string();
        assert!(err.contains("token ids have no input gradient"), "{err}");
    }
}

/// Under f16 a recurrent layer keeps its token ids exact (they are not
/// activations to round): ids past 2048, which f16 cannot hold, get the
/// input weight's gradient in their own rows and no others.
#[test]
fn recurrent_layers_keep_token_ids_exact_under_f16() {
    use wgtrain::device::Precision;
    let dev = CpuDevice::new().with_precision(Precision::F16).unwrap();
    let (vocab, hidden) = (4100, 3);
    // 2049 and 4097 round to 2048 and 4096 in f16, 4099 to 4100.
    let ids = [2049.0, 4097.0, 7.0, 4099.0];
    let x = put(&ids, &Shape::new([2, 2]));
    let tokens = RecurrentInput::Tokens { vocab };
    let rng = &mut ChaCha8Rng::seed_from_u64(6);
    let layers: [Box<dyn Layer<CpuDevice>>; 3] = [
        Box::new(
            Rnn::new(&dev, "l", vocab, hidden, rng)
                .unwrap()
                .reading(tokens),
        ),
        Box::new(
            Lstm::new(&dev, "l", vocab, hidden, rng)
                .unwrap()
                .reading(tokens),
        ),
        Box::new(
            Gru::new(&dev, "l", vocab, hidden, rng)
                .unwrap()
                .reading(tokens),
        ),
    ];
    for mut layer in layers {
        let y = layer.forward(&dev, &x, true).unwrap();
        let dy = put(&random(rng, y.shape().numel(), 1.0), y.shape());
        layer.backward(&dev, &dy, false).unwrap();
        let dw = &layer.params()[0];
        let g = get(dw.grad.as_ref().unwrap());
        let width = g.len() / vocab;
        let rows: Vec<usize> = (0..vocab)
            .filter(|r| g[r * width..(r + 1) * width].iter().any(|&v| v != 0.0))
            .collect();
        assert_eq!(rows, [7, 2049, 4097, 4099], "{}", dw.name);
    }
}

/// `Σ f(xw) ⊙ r`'s derivative in each input, by central differences.
fn numeric_grad(xw: &[f32], r: &[f32], f: impl Fn(&[f32]) -> Vec<f32>) -> Vec<f32> {
    let objective =
        |v: &[f32]| -> f32 { f(v).iter().zip(r).map(|(a, b)| (a * b) as f64).sum::<f64>() as f32 };
    (0..xw.len())
        .map(|i| {
            let (mut p, mut m) = (xw.to_vec(), xw.to_vec());
            p[i] += EPS;
            m[i] -= EPS;
            (objective(&p) - objective(&m)) / (2.0 * EPS)
        })
        .collect()
}

fn assert_grads(what: &str, analytic: &[f32], numeric: &[f32]) {
    let bad: Vec<String> = analytic
        .iter()
        .zip(numeric)
        .enumerate()
        .filter(|(_, (a, n))| !close(**a, **n))
        .map(|(i, (a, n))| format!("{what}[{i}]: analytic {a} numeric {n}"))
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn gated_recurrences_from_a_carried_state() {
    // The device ops directly, from nonzero initial states (what a layer
    // carrying its state between calls starts from): the gradient of
    // Σ h ⊙ r in the input projections xw (and, for the GRU, in the
    // recurrent bias, whose gradient is the column sums of dhu).
    let dev = CpuDevice::new();
    let rng = &mut ChaCha8Rng::seed_from_u64(21);
    let (t, b, h) = (4, 2, 3);
    let state = Shape::new([b, h]);
    let h0 = put(&random(rng, b * h, 1.0), &state);
    let c0 = put(&random(rng, b * h, 1.5), &state);
    let r = random(rng, t * b * h, 1.0);
    let dh = put(&r, &Shape::new([t, b, h]));

    let xw_shape = Shape::new([t, b, 4 * h]);
    let u = put(&random(rng, 4 * h * h, 0.6), &Shape::new([h, 4 * h]));
    let xw = random(rng, t * b * 4 * h, 1.0);
    let lstm = |v: &[f32]| dev.lstm_forward(&put(v, &xw_shape), &u, &h0, &c0).unwrap();
    let (_, cs, gates) = lstm(&xw);
    let da = get(&dev.lstm_backward(&gates, &cs, &c0, &u, &dh).unwrap());
    assert_grads("lstm da", &da, &numeric_grad(&xw, &r, |v| get(&lstm(v).0)));

    let xw_shape = Shape::new([t, b, 3 * h]);
    let u = put(&random(rng, 3 * h * h, 0.6), &Shape::new([h, 3 * h]));
    let ub = random(rng, 3 * h, 0.5);
    let xw = random(rng, t * b * 3 * h, 1.0);
    let gru = |v: &[f32], ub: &[f32]| {
        dev.gru_forward(&put(v, &xw_shape), &u, &put(ub, &Shape::new([3 * h])), &h0)
            .unwrap()
    };
    let (hs, gates) = gru(&xw, &ub);
    let hs_flat = get(&hs);
    let h_prev: Vec<f32> = get(&h0)
        .into_iter()
        .chain(hs_flat[..(t - 1) * b * h].iter().copied())
        .collect();
    let h_prev = put(&h_prev, &Shape::new([t, b, h]));
    let (dxw, dhu) = dev.gru_backward(&gates, &h_prev, &u, &dh).unwrap();
    let num = numeric_grad(&xw, &r, |v| get(&gru(v, &ub).0));
    assert_grads("gru dxw", &get(&dxw), &num);
    let dhu = get(&dhu);
    let dub: Vec<f32> = (0..3 * h)
        .map(|j| (0..t * b).map(|n| dhu[n * 3 * h + j]).sum())
        .collect();
    let num = numeric_grad(&ub, &r, |v| get(&gru(&xw, v).0));
    assert_grads("gru d(recurrent bias)", &dub, &num);
}

#[test]
fn recurrent_layers_carry_their_state_between_calls() {
    // With the state carried, two calls over halves of a sequence give the
    // states of one call over all of it (what sampling relies on).
    let dev = CpuDevice::new();
    let rng = &mut ChaCha8Rng::seed_from_u64(22);
    let x = random(rng, 6 * 2 * 3, 1.0);
    let layers: Vec<Box<dyn Layer<CpuDevice>>> = vec![
        Box::new(Rnn::new(&dev, "rnn", 3, 4, rng).unwrap()),
        Box::new(Lstm::new(&dev, "lstm", 3, 4, rng).unwrap()),
        Box::new(Gru::new(&dev, "gru", 3, 4, rng).unwrap()),
    ];
    for mut layer in layers {
        layer.set_carry_state(true);
        let whole = get(&layer
            .forward(&dev, &put(&x, &Shape::new([6, 2, 3])), false)
            .unwrap());
        layer.set_carry_state(true);
        let half = Shape::new([3, 2, 3]);
        let mut parts = get(&layer.forward(&dev, &put(&x[..18], &half), false).unwrap());
        parts.extend(get(&layer
            .forward(&dev, &put(&x[18..], &half), false)
            .unwrap()));
        assert_eq!(parts, whole);
        // Without carrying, the second half starts from zeros again.
        layer.set_carry_state(false);
        let fresh = get(&layer.forward(&dev, &put(&x[18..], &half), false).unwrap());
        assert_ne!(fresh[..], whole[24..]);
    }
}

#[test]
fn batch_norm_trains_on_batch_statistics_and_evaluates_on_running_ones() {
    let dev = CpuDevice::new();
    let rng = &mut ChaCha8Rng::seed_from_u64(23);
    let mut bn = BatchNorm::new(&dev, "bn", 3).unwrap();
    // Three channels with means near 5, −2 and 0.
    let x: Vec<f32> = (0..8 * 3)
        .map(|i| [5.0, -2.0, 0.0][i % 3] + rng.random_range(-1.0f32..1.0))
        .collect();
    let xt = put(&x, &Shape::new([8, 3]));
    let y = get(&bn.forward(&dev, &xt, true).unwrap());
    // Training: each channel of the output has mean 0 (gamma 1, beta 0).
    for ch in 0..3 {
        let mean: f32 = y.iter().skip(ch).step_by(3).sum::<f32>() / 8.0;
        assert!(mean.abs() < 1e-5, "channel {ch}: mean {mean}");
    }
    // The running mean moved a tenth of the way to the batch's.
    let batch_mean: Vec<f32> = (0..3)
        .map(|ch| x.iter().skip(ch).step_by(3).sum::<f32>() / 8.0)
        .collect();
    let rm = get(&bn.running_mean.value);
    for ch in 0..3 {
        assert!((rm[ch] - 0.1 * batch_mean[ch]).abs() < 1e-6, "{rm:?}");
    }
    // Evaluation normalises with the running averages: another output.
    let e = get(&bn.forward(&dev, &xt, false).unwrap());
    let rv = get(&bn.running_var.value);
    for (i, (&v, &o)) in x.iter().zip(&e).enumerate() {
        let ch = i % 3;
        let want = (v - rm[ch]) / (rv[ch] + 1e-5).sqrt();
        assert!((o - want).abs() < 1e-5, "{i}: {o} vs {want}");
    }
    assert_ne!(y, e);
}

#[test]
fn every_loss_gradient() {
    let dev = CpuDevice::new();
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
    let dev = CpuDevice::new();
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
