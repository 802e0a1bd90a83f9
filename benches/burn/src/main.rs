//! The workloads of benches/WORKLOADS.md in Burn, by the procedure
//! `wgtrain bench` uses (src/bench/mod.rs) and benches/peers/pytorch_bench.py
//! mirrors: the same shapes, steps, batch sizes and learning rate; warm-ups,
//! then timed repetitions; the median, slowest and fastest rate; the timed
//! region ending only when the device is idle (`Device::sync`). Prints one
//! JSON line per workload and backend, as `wgtrain bench --json` does, with
//! `peer`, `backend` and `version` added.
//!
//! Backends: ndarray on the CPU (deprecated in Burn 0.22 but still the
//! "Burn ndarray" of the README's old columns) and wgpu on the default
//! adapter (Mesa's llvmpipe on a machine without a GPU).
//!
//! One difference from the other harnesses: T3's 60,000 MNIST-sized samples
//! would be a 188 MB f32 tensor, over llvmpipe's 128 MiB storage binding, so
//! Burn's T3 batches are gathered and normalised on the host and uploaded
//! each step, as Burn's own data loaders do; every other workload keeps its
//! data on the device, as wgtrain does.
//!
//! Usage: burn-bench [--quick] [--device cpu|gpu|all] [--workloads K1,T3]

use std::time::Instant;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::{BinaryCrossEntropyLossConfig, CrossEntropyLossConfig, MseLoss, Reduction};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::activation::softmax;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, DeviceKind, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BURN_VERSION: &str = "0.22.1";

/// Warm-ups, timed repetitions, the scale of the training workloads' steps
/// and the shortest timed repetition of a kernel (as wgtrain's full and
/// `--quick` budgets).
#[derive(Clone, Copy)]
struct Budget {
    warmups: usize,
    reps: usize,
    step_scale: f64,
    min_rep_seconds: f64,
}

const FULL: Budget = Budget {
    warmups: 2,
    reps: 10,
    step_scale: 1.0,
    min_rep_seconds: 0.05,
};
const QUICK: Budget = Budget {
    warmups: 1,
    reps: 3,
    step_scale: 0.2,
    min_rep_seconds: 0.01,
};

/// One timed repetition: does the work and returns how much it did (FLOPs,
/// images, bytes or samples).
type Rep = Box<dyn FnMut() -> f64>;

fn uniform(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D], dev: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, shape), dev)
}

fn ints<const D: usize>(data: Vec<i64>, shape: [usize; D], dev: &Device) -> Tensor<D, Int> {
    Tensor::from_data(TensorData::new(data, shape), dev)
}

fn matmul(
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
) -> impl Fn(&Device, &mut ChaCha8Rng, Budget) -> Rep {
    move |dev, rng, budget| {
        let a = tensor(
            uniform(rng, m * k),
            if trans_a { [k, m] } else { [m, k] },
            dev,
        );
        let b = tensor(
            uniform(rng, k * n),
            if trans_b { [n, k] } else { [k, n] },
            dev,
        );
        let op = move || {
            let a = if trans_a {
                a.clone().transpose()
            } else {
                a.clone()
            };
            let b = if trans_b {
                b.clone().transpose()
            } else {
                b.clone()
            };
            a.matmul(b)
        };
        // Enough products per repetition that one lasts min_rep_seconds,
        // timed after a first product has compiled (and autotuned) the
        // kernel, rounded as wgtrain rounds.
        let _ = op();
        dev.sync().expect("sync");
        let t = Instant::now();
        let _ = op();
        dev.sync().expect("sync");
        let iters =
            ((budget.min_rep_seconds / t.elapsed().as_secs_f64()).ceil() as usize).clamp(1, 1000);
        let dev = dev.clone();
        Box::new(move || {
            for _ in 0..iters {
                let _ = op();
            }
            let _ = &dev;
            2.0 * (m * k * n * iters) as f64
        })
    }
}

fn conv(ci: usize, co: usize, hw: usize) -> impl Fn(&Device, &mut ChaCha8Rng, Budget) -> Rep {
    move |dev, rng, _| {
        let dev = dev.clone().autodiff();
        let x = tensor(uniform(rng, 64 * ci * hw * hw), [64, ci, hw, hw], &dev).require_grad();
        let w = tensor(uniform(rng, co * ci * 9), [co, ci, 3, 3], &dev).require_grad();
        let b = tensor(uniform(rng, co), [co], &dev).require_grad();
        let dy = tensor(uniform(rng, 64 * co * hw * hw), [64, co, hw, hw], &dev);
        Box::new(move || {
            // Forward, then the input, weight and bias gradients (through
            // Σ y·dy, whose gradient with respect to y is dy).
            let y = conv2d(
                x.clone(),
                w.clone(),
                Some(b.clone()),
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            );
            let grads = (y * dy.clone()).sum().backward();
            let _ = (x.grad(&grads), w.grad(&grads), b.grad(&grads));
            64.0
        })
    }
}

fn elementwise(dev: &Device, rng: &mut ChaCha8Rng, _: Budget) -> Rep {
    let x = tensor(uniform(rng, 128 * 4096), [128, 4096], dev);
    let dy = tensor(uniform(rng, 128 * 4096), [128, 4096], dev);
    let plane = (128 * 4096 * 4) as f64;
    Box::new(move || {
        let y = x.clone().tanh();
        let _ = dy.clone() * (y.clone() * y).neg().add_scalar(1.0);
        let _ = x.clone().sum_dim(1);
        let _ = softmax(x.clone(), 1);
        plane * 8.0
    })
}

#[derive(Module, Debug)]
struct Mlp {
    l1: Linear,
    l2: Linear,
    l3: Linear,
}

impl Mlp {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = self.l1.forward(x).tanh();
        let x = self.l2.forward(x).tanh();
        self.l3.forward(x)
    }
}

#[derive(Module, Debug)]
struct Cnn {
    c1: Conv2d,
    c2: Conv2d,
    pool: MaxPool2d,
    out: Linear,
}

impl Cnn {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(self.c1.forward(x).tanh());
        let x = self.pool.forward(self.c2.forward(x).tanh());
        self.out.forward(x.flatten(1, 3))
    }
}

/// Elman: `h_t = tanh(x_t·W + b + h_{t−1}·U)` over one-hot steps, every
/// state to the output layer.
#[derive(Module, Debug)]
struct Rnn {
    input: Linear,
    recurrent: Linear,
    out: Linear,
}

impl Rnn {
    fn forward(&self, ids: Tensor<2, Int>, vocab: usize) -> Tensor<2> {
        let [batch, seq] = ids.dims();
        let x: Tensor<3> = ids.one_hot::<3>(vocab).float();
        let xw = self.input.forward(x); // [B, T, H]
        let hidden = xw.dims()[2];
        let mut h: Option<Tensor<2>> = None;
        let mut states = Vec::with_capacity(seq);
        for t in 0..seq {
            let mut a = xw.clone().narrow(1, t, 1).reshape([batch, hidden]);
            if let Some(prev) = h {
                a = a + self.recurrent.forward(prev);
            }
            let s = a.tanh();
            states.push(s.clone());
            h = Some(s);
        }
        let hs: Tensor<3> = Tensor::stack(states, 1); // [B, T, H]
        self.out.forward(hs).reshape([batch * seq, vocab])
    }
}

/// A repetition of `steps` training steps of `model`: the minibatch loss
/// from `loss_of(model, step)`, backward, and an SGD step (lr 0.01); the
/// loss read back every 50 steps and after the last.
fn sgd_steps<M: Module + 'static>(
    model: M,
    steps: usize,
    batch: usize,
    mut loss_of: impl FnMut(&M, usize) -> Tensor<1> + 'static,
) -> Rep {
    let mut model = Some(model);
    let mut optim = SgdConfig::new().init();
    Box::new(move || {
        for step in 0..steps {
            let m = model.take().expect("put back after every step");
            let loss = loss_of(&m, step);
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            model = Some(optim.step(0.01, m, grads));
            if (step + 1) % 50 == 0 || step + 1 == steps {
                let _: f32 = loss.into_scalar();
            }
        }
        (steps * batch) as f64
    })
}

/// The training workloads: minibatches of a shuffled synthetic set.
fn train(kind: &'static str) -> impl Fn(&Device, &mut ChaCha8Rng, Budget) -> Rep {
    move |dev, rng, budget| {
        let dev = dev.clone().autodiff();
        let (n, batch, steps) = match kind {
            "T1" | "T2" => (65536, 1024, 64),
            "T3" => (60000, 128, 469),
            "T4" => (6400, 64, 100),
            _ => (3200, 64, 50),
        };
        let steps = ((steps as f64 * budget.step_scale).ceil() as usize).clamp(2, n / batch);
        let mut order: Vec<i64> = (0..n as i64).collect();
        order.shuffle(rng);
        let batch_ids = move |step: usize| order[step * batch..(step + 1) * batch].to_vec();
        let labels = |classes: i64| (0..n as i64).map(|i| i % classes).collect::<Vec<_>>();
        let (d, ids) = (dev.clone(), batch_ids.clone());
        let batch_of = move |step: usize| ints(ids(step), [batch], &d);
        match kind {
            "T1" | "T2" => {
                let x = tensor(uniform(rng, n * 64), [n, 64], &dev);
                let y_reg = tensor(uniform(rng, n), [n, 1], &dev);
                let y_bin = ints(labels(2), [n, 1], &dev);
                let bce = BinaryCrossEntropyLossConfig::new()
                    .with_logits(true)
                    .init(&dev);
                let model = LinearConfig::new(64, 1).init(&dev);
                sgd_steps(model, steps, batch, move |m: &Linear, step| {
                    let idx = batch_of(step);
                    let z = m.forward(x.clone().select(0, idx.clone()));
                    if kind == "T1" {
                        MseLoss::new().forward(z, y_reg.clone().select(0, idx), Reduction::Mean)
                    } else {
                        bce.forward(z, y_bin.clone().select(0, idx))
                    }
                })
            }
            "T3" => {
                // Bytes on the host, normalised while gathering as wgtrain
                // does on its device (see the module comment).
                let x: Vec<u8> = (0..n * 784).map(|_| rng.random()).collect();
                let y = labels(10);
                let model = Mlp {
                    l1: LinearConfig::new(784, 256).init(&dev),
                    l2: LinearConfig::new(256, 128).init(&dev),
                    l3: LinearConfig::new(128, 10).init(&dev),
                };
                let ce = CrossEntropyLossConfig::new().init(&dev);
                sgd_steps(model, steps, batch, move |m: &Mlp, step| {
                    let ids = batch_ids(step);
                    let mut xb = Vec::with_capacity(batch * 784);
                    for &i in &ids {
                        let row = &x[i as usize * 784..(i as usize + 1) * 784];
                        xb.extend(row.iter().map(|&v| (v as f32 - 127.5) / 73.7));
                    }
                    let yb: Vec<i64> = ids.iter().map(|&i| y[i as usize]).collect();
                    let z = m.forward(tensor(xb, [batch, 784], &dev));
                    ce.forward(z, ints(yb, [batch], &dev))
                })
            }
            "T4" => {
                let bytes: Vec<f32> = (0..n * 784)
                    .map(|_| (rng.random::<u8>() as f32 - 127.5) / 73.7)
                    .collect();
                let x = tensor(bytes, [n, 1, 28, 28], &dev);
                let y = ints(labels(10), [n], &dev);
                let pad = PaddingConfig2d::Explicit(1, 1, 1, 1);
                let model = Cnn {
                    c1: Conv2dConfig::new([1, 8], [3, 3])
                        .with_padding(pad.clone())
                        .init(&dev),
                    c2: Conv2dConfig::new([8, 16], [3, 3])
                        .with_padding(pad)
                        .init(&dev),
                    pool: MaxPool2dConfig::new([2, 2]).init(),
                    out: LinearConfig::new(784, 10).init(&dev),
                };
                let ce = CrossEntropyLossConfig::new().init(&dev);
                sgd_steps(model, steps, batch, move |m: &Cnn, step| {
                    let idx = batch_of(step);
                    let z = m.forward(x.clone().select(0, idx.clone()));
                    ce.forward(z, y.clone().select(0, idx))
                })
            }
            _ => {
                let (seq, vocab, hidden) = (32, 64, 128);
                let mut tokens = || {
                    ints(
                        (0..n * seq)
                            .map(|_| rng.random_range(0..vocab as i64))
                            .collect(),
                        [n, seq],
                        &dev,
                    )
                };
                let (x, y) = (tokens(), tokens());
                let model = Rnn {
                    input: LinearConfig::new(vocab, hidden).init(&dev),
                    recurrent: LinearConfig::new(hidden, hidden)
                        .with_bias(false)
                        .init(&dev),
                    out: LinearConfig::new(hidden, vocab).init(&dev),
                };
                let ce = CrossEntropyLossConfig::new().init(&dev);
                sgd_steps(model, steps, batch, move |m: &Rnn, step| {
                    let idx = batch_of(step);
                    let z = m.forward(x.clone().select(0, idx.clone()), vocab);
                    ce.forward(z, y.clone().select(0, idx).reshape([batch * seq]))
                })
            }
        }
    }
}

type Setup = Box<dyn Fn(&Device, &mut ChaCha8Rng, Budget) -> Rep>;

fn workloads() -> Vec<(&'static str, &'static str, Setup)> {
    vec![
        (
            "K1-256",
            "GFLOP/s",
            Box::new(matmul(256, 256, 256, false, false)),
        ),
        (
            "K1-512",
            "GFLOP/s",
            Box::new(matmul(512, 512, 512, false, false)),
        ),
        (
            "K1-1024",
            "GFLOP/s",
            Box::new(matmul(1024, 1024, 1024, false, false)),
        ),
        (
            "K1-784",
            "GFLOP/s",
            Box::new(matmul(128, 784, 256, false, false)),
        ),
        (
            "K2-TN",
            "GFLOP/s",
            Box::new(matmul(784, 128, 256, true, false)),
        ),
        (
            "K2-NT",
            "GFLOP/s",
            Box::new(matmul(128, 256, 784, false, true)),
        ),
        ("K3-1x8", "images/s", Box::new(conv(1, 8, 28))),
        ("K3-8x16", "images/s", Box::new(conv(8, 16, 14))),
        ("K4", "GB/s", Box::new(elementwise)),
        ("T1", "samples/s", Box::new(train("T1"))),
        ("T2", "samples/s", Box::new(train("T2"))),
        ("T3", "samples/s", Box::new(train("T3"))),
        ("T4", "samples/s", Box::new(train("T4"))),
        ("T5", "samples/s", Box::new(train("T5"))),
    ]
}

/// Warm-ups, then the timed repetitions' median (the upper one of an even
/// count, as wgtrain), slowest and fastest rates.
fn measure(setup: &Setup, unit: &str, dev: &Device, budget: Budget) -> (f64, f64, f64, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut rep = setup(dev, &mut rng, budget);
    let mut timed = || {
        let t = Instant::now();
        let work = rep();
        dev.sync().expect("sync");
        work / t.elapsed().as_secs_f64()
    };
    for _ in 0..budget.warmups {
        timed();
    }
    let mut rates: Vec<f64> = (0..budget.reps.max(1)).map(|_| timed()).collect();
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let scale = if unit == "GFLOP/s" || unit == "GB/s" {
        1e-9
    } else {
        1.0
    };
    (
        rates[rates.len() / 2] * scale,
        rates[0] * scale,
        rates[rates.len() - 1] * scale,
        rates.len(),
    )
}

/// The name of the adapter Burn's default wgpu device picks (wgpu's
/// high-performance choice).
fn adapter_name() -> Option<String> {
    let instance = wgpu::Instance::default();
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))
    .ok()?;
    Some(adapter.get_info().name)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name);
    let value = |name: &str| flag(name).and_then(|i| args.get(i + 1)).cloned();
    if flag("--version").is_some() {
        println!("Burn {BURN_VERSION} (ndarray, wgpu)");
        return;
    }
    if flag("--help").is_some() || flag("-h").is_some() {
        println!("usage: burn-bench [--quick] [--device cpu|gpu|all] [--workloads K1,T3]");
        return;
    }
    let budget = if flag("--quick").is_some() {
        QUICK
    } else {
        FULL
    };
    let device = value("--device").unwrap_or_else(|| "all".into());
    if !["cpu", "gpu", "all"].contains(&device.as_str()) {
        eprintln!("error: --device must be cpu, gpu or all, not {device}");
        std::process::exit(2);
    }
    let wanted: Option<Vec<String>> =
        value("--workloads").map(|w| w.split(',').map(String::from).collect());
    let known = |w: &String| {
        workloads()
            .iter()
            .any(|(id, _, _)| *id == w || id.starts_with(&format!("{w}-")))
    };
    if let Some(bad) = wanted.iter().flatten().find(|w| !known(w)) {
        eprintln!("error: unknown workload '{bad}' (ids: K1-256 ... T5, or groups K1 ... T5)");
        std::process::exit(2);
    }
    #[allow(deprecated)] // burn-ndarray: the Burn CPU backend the README's columns name
    let mut backends = vec![("ndarray", "cpu", Device::ndarray(), None)];
    if device != "cpu" {
        match adapter_name() {
            Some(name) => backends.push((
                "wgpu",
                "gpu",
                Device::wgpu(DeviceKind::DefaultDevice),
                Some(name),
            )),
            None => eprintln!("note: no wgpu adapter: no Burn wgpu figures"),
        }
    }
    if device == "gpu" {
        backends.retain(|b| b.1 == "gpu");
    }
    for (backend, kind, dev, adapter) in &backends {
        for (id, unit, setup) in workloads() {
            if let Some(w) = &wanted {
                if !w
                    .iter()
                    .any(|w| id == w || id.starts_with(&format!("{w}-")))
                {
                    continue;
                }
            }
            let (median, min, max, reps) = measure(&setup, unit, dev, budget);
            println!(
                "{}",
                serde_json::json!({
                    "id": id, "device": kind, "adapter": adapter, "unit": unit,
                    "median": median, "min": min, "max": max, "reps": reps,
                    "peer": "burn", "backend": backend, "version": BURN_VERSION,
                })
            );
        }
    }
}
