//! The benchmark workloads of benches/WORKLOADS.md (K1–K4 kernels, T1–T5 training
//! steps), runnable on any device. `wgtrain bench` and the criterion benches
//! both use them, so the figures they print measure the same thing.
//!
//! Every repetition ends with `Device::synchronize`: on the GPU the timed
//! region closes only when the queue has finished the work. Data is synthetic
//! and seeded (these measure speed; accuracy is measured on real data
//! elsewhere).

pub mod baseline;

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::{Dataset, DeviceData, Features, Normalizer, Targets, Task};
use crate::device::{Activation, ConvStep, Device, MatmulSpec, Tensor};
use crate::error::{Error, Result};
use crate::models::{FeatureShape, Model, ModelSpec, Output, Preset};
use crate::optim::{OptimConfig, OptimizerKind};

/// The figure a workload reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Unit {
    /// Billions of floating-point operations per second (kernels K1, K2).
    #[serde(rename = "GFLOP/s")]
    GflopPerSec,
    /// Images per second (convolution kernels K3).
    #[serde(rename = "images/s")]
    ImagesPerSec,
    /// Gigabytes read and written per second (elementwise kernels K4).
    #[serde(rename = "GB/s")]
    GbPerSec,
    /// Training samples per second (training steps T1–T5).
    #[serde(rename = "samples/s")]
    SamplesPerSec,
}

impl Unit {
    /// The unit as printed and serialized (`GFLOP/s`, `images/s`, …).
    pub fn label(self) -> &'static str {
        match self {
            Unit::GflopPerSec => "GFLOP/s",
            Unit::ImagesPerSec => "images/s",
            Unit::GbPerSec => "GB/s",
            Unit::SamplesPerSec => "samples/s",
        }
    }
}

/// One workload: an id (`K1-1024`, `T3`), what it is, and its unit.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Unique id, e.g. `K1-1024` or `T3`.
    pub id: &'static str,
    /// The benches/WORKLOADS.md group it belongs to (`K1`…`K4`, `T1`…`T5`).
    pub group: &'static str,
    /// A one-line description of the work, e.g. `matmul 512²`.
    pub what: &'static str,
    /// What the measurement is reported in.
    pub unit: Unit,
    /// Run only when named (`--workloads K1-4096`), never as part of "all":
    /// a size for real GPUs that would take minutes on a software adapter
    /// or a 2-core CPU.
    pub on_request: bool,
    kind: Kind,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Matmul {
        m: usize,
        k: usize,
        n: usize,
        spec: MatmulSpec,
    },
    Conv {
        ci: usize,
        co: usize,
        hw: usize,
    },
    Elementwise,
    Train(Train),
}

#[derive(Clone, Copy, Debug)]
enum Train {
    Linear,
    Logistic,
    Mlp,
    Cnn,
    /// T5 over a vocabulary of this size.
    Rnn(usize),
}

/// Every workload, in the order of benches/WORKLOADS.md.
pub fn workloads() -> Vec<Workload> {
    let mm = |id, what, m, k, n, spec| Workload {
        id,
        group: "K1",
        what,
        unit: Unit::GflopPerSec,
        on_request: false,
        kind: Kind::Matmul { m, k, n, spec },
    };
    let train = |id, what, t| Workload {
        id,
        group: id,
        what,
        unit: Unit::SamplesPerSec,
        on_request: false,
        kind: Kind::Train(t),
    };
    vec![
        mm("K1-256", "matmul 256²", 256, 256, 256, MatmulSpec::NN),
        mm("K1-512", "matmul 512²", 512, 512, 512, MatmulSpec::NN),
        mm("K1-1024", "matmul 1024²", 1024, 1024, 1024, MatmulSpec::NN),
        // The real-GPU size (a group of its own, run only when named: 137
        // GFLOP a product, seconds each on lavapipe).
        Workload {
            group: "K1-4096",
            on_request: true,
            ..mm("K1-4096", "matmul 4096²", 4096, 4096, 4096, MatmulSpec::NN)
        },
        // 76 columns, T5-V75's output layer padded: the size the 16×12
        // `bcast` block is for (run only when named; wgtrain only).
        Workload {
            group: "K1-76",
            on_request: true,
            ..mm(
                "K1-76",
                "matmul 2048×128·128×76",
                2048,
                128,
                76,
                MatmulSpec::NN,
            )
        },
        mm(
            "K1-784",
            "matmul 128×784·784×256",
            128,
            784,
            256,
            MatmulSpec::NN,
        ),
        Workload {
            group: "K2",
            ..mm(
                "K2-TN",
                "matmul (128×784)ᵀ·128×256",
                784,
                128,
                256,
                MatmulSpec::TN,
            )
        },
        Workload {
            group: "K2",
            ..mm(
                "K2-NT",
                "matmul 128×256·(784×256)ᵀ",
                128,
                256,
                784,
                MatmulSpec::NT,
            )
        },
        Workload {
            id: "K3-1x8",
            group: "K3",
            what: "conv 1→8 @28², batch 64, fwd+bwd",
            unit: Unit::ImagesPerSec,
            on_request: false,
            kind: Kind::Conv {
                ci: 1,
                co: 8,
                hw: 28,
            },
        },
        Workload {
            id: "K3-8x16",
            group: "K3",
            what: "conv 8→16 @14², batch 64, fwd+bwd",
            unit: Unit::ImagesPerSec,
            on_request: false,
            kind: Kind::Conv {
                ci: 8,
                co: 16,
                hw: 14,
            },
        },
        Workload {
            id: "K4",
            group: "K4",
            what: "tanh fwd+bwd, row sum, softmax on 128×4096",
            unit: Unit::GbPerSec,
            on_request: false,
            kind: Kind::Elementwise,
        },
        train(
            "T1",
            "linear regression, 65536×64, batch 1024",
            Train::Linear,
        ),
        train(
            "T2",
            "logistic regression, 65536×64, batch 1024",
            Train::Logistic,
        ),
        train("T3", "MLP 784-256-128-10, batch 128", Train::Mlp),
        train(
            "T4",
            "CNN conv8-pool-conv16-pool-dense, batch 64",
            Train::Cnn,
        ),
        train(
            "T5",
            "RNN vocab 64, hidden 128, seq 32, batch 64",
            Train::Rnn(64),
        ),
        // T5 at the Austen text's vocabulary, not a multiple of 4: what an
        // awkward size costs the products (a group of its own, so that
        // `--workloads T5` and the comparisons run T5 alone).
        Workload {
            group: "T5-V75",
            ..train(
                "T5-V75",
                "RNN vocab 75, hidden 128, seq 32, batch 64",
                Train::Rnn(75),
            )
        },
    ]
}

/// Median, min and max of the repetitions, in the workload's unit.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// Median rate over the timed repetitions.
    pub median: f64,
    /// Slowest repetition's rate.
    pub min: f64,
    /// Fastest repetition's rate.
    pub max: f64,
    /// Timed repetitions (at least 1).
    pub reps: usize,
    /// Training steps in the timed repetitions (0 for kernels).
    pub steps: usize,
}

/// How long to measure.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Untimed repetitions run first.
    pub warmups: usize,
    /// Timed repetitions (at least 1 is run).
    pub reps: usize,
    /// Training workloads: steps per repetition, as a fraction of the
    /// benches/WORKLOADS.md count (1.0 = as specified).
    pub step_scale: f64,
    /// Kernel workloads: aim for repetitions of at least this many seconds.
    pub min_rep_seconds: f64,
}

impl Budget {
    /// 2 warm-ups and 10 repetitions, as benches/WORKLOADS.md asks.
    pub const FULL: Budget = Budget {
        warmups: 2,
        reps: 10,
        step_scale: 1.0,
        min_rep_seconds: 0.05,
    };
    /// A smoke run: fewer, shorter repetitions.
    pub const QUICK: Budget = Budget {
        warmups: 1,
        reps: 3,
        step_scale: 0.2,
        min_rep_seconds: 0.01,
    };
}

fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// One repetition: does the work and returns how much of the unit's
/// quantity it did (FLOPs, images, bytes, samples).
type Rep<'a> = Box<dyn FnMut() -> Result<f64> + 'a>;

/// A workload set up on a device, ready to repeat (for harnesses such as
/// criterion that do their own timing).
pub struct Prepared<'a, D: Device> {
    dev: &'a D,
    rep: Rep<'a>,
}

impl<'a, D: Device + 'static> Prepared<'a, D> {
    /// Sets `w` up on `dev` (uploads, model, optimizer) without running it.
    pub fn new(dev: &'a D, w: &Workload, budget: Budget) -> Result<Self> {
        Ok(Prepared {
            dev,
            rep: prepare(dev, w, budget)?.0,
        })
    }

    /// One repetition, finished on the device; returns its amount of work
    /// (FLOPs, images, bytes or samples).
    pub fn run_once(&mut self) -> Result<f64> {
        let work = (self.rep)()?;
        self.dev.synchronize()?;
        Ok(work)
    }
}

/// Runs `w` on `dev` and reports its throughput. With `profile`, the
/// profiler (crate::profile) is restarted after the warm-ups, so its report
/// covers exactly the timed repetitions.
pub fn run<D: Device + 'static>(
    dev: &D,
    w: &Workload,
    budget: Budget,
    profile: bool,
) -> Result<Measurement> {
    let (mut rep, steps_per_rep) = prepare(dev, w, budget)?;
    let timed = |rep: &mut Rep| -> Result<f64> {
        let t = Instant::now();
        let work = rep()?;
        dev.synchronize()?;
        Ok(work / t.elapsed().as_secs_f64())
    };
    for _ in 0..budget.warmups {
        timed(&mut rep)?;
    }
    if profile {
        crate::profile::enable();
    }
    let mut rates = (0..budget.reps.max(1))
        .map(|_| timed(&mut rep))
        .collect::<Result<Vec<f64>>>()?;
    rates.sort_by(f64::total_cmp);
    let scale = match w.unit {
        Unit::GflopPerSec | Unit::GbPerSec => 1e-9,
        _ => 1.0,
    };
    Ok(Measurement {
        median: rates[rates.len() / 2] * scale,
        min: rates[0] * scale,
        max: rates[rates.len() - 1] * scale,
        reps: rates.len(),
        steps: steps_per_rep * rates.len(),
    })
}

/// The repetition closure and, for training workloads, its steps.
fn prepare<'a, D: Device + 'static>(
    dev: &'a D,
    w: &Workload,
    budget: Budget,
) -> Result<(Rep<'a>, usize)> {
    let rng = &mut ChaCha8Rng::seed_from_u64(7);
    Ok(match w.kind {
        Kind::Matmul { m, k, n, spec } => {
            let a_shape = if spec.trans_a { [k, m] } else { [m, k] };
            let b_shape = if spec.trans_b { [n, k] } else { [k, n] };
            let a = dev.upload(&random(rng, m * k), a_shape)?;
            let b = dev.upload(&random(rng, k * n), b_shape)?;
            let flops = 2.0 * (m * k * n) as f64;
            // Enough products per repetition that one lasts min_rep_seconds,
            // timed after a first product has compiled the pipelines and
            // tuned the kernel choice.
            dev.matmul(&a, &b, None, spec)?;
            dev.synchronize()?;
            let t = Instant::now();
            dev.matmul(&a, &b, None, spec)?;
            dev.synchronize()?;
            let iters = ((budget.min_rep_seconds / t.elapsed().as_secs_f64()).ceil() as usize)
                .clamp(1, 1000);
            let rep: Rep = Box::new(move || {
                for _ in 0..iters {
                    dev.matmul(&a, &b, None, spec)?;
                }
                Ok(flops * iters as f64)
            });
            (rep, 0)
        }
        Kind::Conv { ci, co, hw } => {
            let batch = 64;
            let x = dev.upload(&random(rng, batch * ci * hw * hw), [batch, ci, hw, hw])?;
            let wt = dev.upload(&random(rng, co * ci * 9), [co, ci, 3, 3])?;
            let b = dev.upload(&random(rng, co), [co])?;
            let dy = dev.upload(&random(rng, batch * co * hw * hw), [batch, co, hw, hw])?;
            let rep: Rep = Box::new(move || {
                let step = ConvStep::padded(1);
                dev.conv2d(&x, &wt, Some(&b), step)?;
                dev.conv2d_input_grad(&dy, &wt, x.shape(), step)?;
                dev.conv2d_weight_grad(&x, &dy, step, (3, 3))?;
                dev.channel_sum(&dy)?;
                Ok(batch as f64)
            });
            (rep, 0)
        }
        Kind::Elementwise => {
            let (r, c) = (128, 4096);
            let x = dev.upload(&random(rng, r * c), [r, c])?;
            let dy = dev.upload(&random(rng, r * c), [r, c])?;
            let plane = (r * c * 4) as f64;
            let rep: Rep = Box::new(move || {
                let y = dev.activation(&x, Activation::Tanh)?; // read 1, write 1
                dev.activation_backward(&y, &dy, Activation::Tanh)?; // read 2, write 1
                dev.sum_cols(&x)?; // read 1
                dev.softmax_rows(&x)?; // read 1, write 1
                Ok(plane * 8.0)
            });
            (rep, 0)
        }
        Kind::Train(t) => train_rep(dev, t, budget)?,
    })
}

/// `n` random byte images of `shape` labelled with 10 classes in turn.
fn images(rng: &mut ChaCha8Rng, n: usize, shape: Vec<usize>) -> Dataset {
    let len: usize = shape.iter().product();
    Dataset {
        name: "synthetic".into(),
        task: Task::Classification,
        sample_shape: shape,
        features: Features::U8((0..n * len).map(|_| rng.random()).collect()),
        targets: Targets::Classes {
            ids: (0..n).map(|i| (i % 10) as u32).collect(),
            classes: 10,
            per_sample: 1,
        },
        feature_names: Vec::new(),
        target_name: String::new(),
        class_names: Vec::new(),
    }
}

/// A synthetic dataset for a training workload.
fn synthetic(t: Train, rng: &mut ChaCha8Rng) -> (Dataset, ModelSpec, usize, usize) {
    let table = |rng: &mut ChaCha8Rng, n: usize, f: usize, targets: Targets, task| Dataset {
        name: "synthetic".into(),
        task,
        sample_shape: vec![f],
        features: Features::F32(random(rng, n * f)),
        targets,
        feature_names: Vec::new(),
        target_name: String::new(),
        class_names: Vec::new(),
    };
    let cfg = |preset: Preset, input: FeatureShape, output: Output, sizes: Option<&[usize]>| {
        let (hidden, channels) = match preset {
            Preset::Cnn => (None, sizes),
            _ => (sizes, None),
        };
        let layers = preset
            .layers(hidden, channels)
            .expect("benchmark sizes fit");
        ModelSpec::new(&layers, input, output).expect("benchmark models are valid")
    };
    let flat = |features| FeatureShape::Flat { features };
    match t {
        Train::Linear => {
            let n = 65536;
            let values = random(&mut ChaCha8Rng::seed_from_u64(1), n);
            (
                table(
                    rng,
                    n,
                    64,
                    Targets::Values { values, dims: 1 },
                    Task::Regression,
                ),
                cfg(
                    Preset::Linear,
                    flat(64),
                    Output::Regression { targets: 1 },
                    None,
                ),
                1024,
                64,
            )
        }
        Train::Logistic => {
            let n = 65536;
            let ids = (0..n).map(|i| (i % 2) as u32).collect();
            (
                table(
                    rng,
                    n,
                    64,
                    Targets::Classes {
                        ids,
                        classes: 2,
                        per_sample: 1,
                    },
                    Task::Classification,
                ),
                cfg(
                    Preset::Logistic,
                    flat(64),
                    Output::Classes { classes: 2 },
                    None,
                ),
                1024,
                64,
            )
        }
        // MNIST-shaped images of random bytes with 10 classes, kept as bytes
        // on the device as real MNIST is (60,000 as f32 would exceed
        // lavapipe's 128 MiB storage-binding limit).
        Train::Mlp => (
            images(rng, 60000, vec![784]),
            cfg(
                Preset::Mlp,
                flat(784),
                Output::Classes { classes: 10 },
                Some(&[256, 128]),
            ),
            128,
            469,
        ),
        // 6,400 images: enough for 100 steps of 64.
        Train::Cnn => (
            images(rng, 6400, vec![1, 28, 28]),
            cfg(
                Preset::Cnn,
                FeatureShape::Image {
                    channels: 1,
                    height: 28,
                    width: 28,
                },
                Output::Classes { classes: 10 },
                Some(&[8, 16]),
            ),
            64,
            100,
        ),
        Train::Rnn(vocab) => {
            let (n, seq) = (3200, 32);
            let tokens: Vec<f32> = (0..n * seq)
                .map(|_| rng.random_range(0..vocab) as f32)
                .collect();
            let next: Vec<u32> = (0..n * seq)
                .map(|_| rng.random_range(0..vocab as u32))
                .collect();
            (
                Dataset {
                    name: "synthetic".into(),
                    task: Task::Text,
                    sample_shape: vec![seq],
                    features: Features::F32(tokens),
                    targets: Targets::Classes {
                        ids: next,
                        classes: vocab,
                        per_sample: seq,
                    },
                    feature_names: Vec::new(),
                    target_name: String::new(),
                    class_names: Vec::new(),
                },
                cfg(
                    Preset::Rnn,
                    FeatureShape::Tokens { len: seq },
                    Output::NextToken { vocab },
                    Some(&[128]),
                ),
                64,
                50,
            )
        }
    }
}

fn train_rep<'a, D: Device + 'static>(
    dev: &'a D,
    t: Train,
    budget: Budget,
) -> Result<(Rep<'a>, usize)> {
    let rng = &mut ChaCha8Rng::seed_from_u64(11);
    let (ds, config, batch, steps) = synthetic(t, rng);
    // An epoch's full batches at most (T3: 468 of 128 from 60,000).
    let steps = ((steps as f64 * budget.step_scale).ceil() as usize).clamp(2, ds.len() / batch);
    let norm = match ds.features {
        Features::U8(_) => Normalizer::Global {
            mean: 127.5,
            std: 73.6,
        },
        _ => Normalizer::Identity,
    };
    let data = DeviceData::upload(dev, &ds, &norm, None)?;
    let mut model = Model::new(dev, &config, 1)?;
    let mut optimizer = OptimConfig::new(OptimizerKind::Sgd, 0.01)
        .for_precision(dev.precision())
        .build::<D>()?;
    let n = data.len();
    let mut order = data.in_order(dev, batch)?;
    if steps * batch > n {
        return Err(Error::Config(
            "benchmark dataset smaller than its steps".into(),
        ));
    }
    let rep: Rep = Box::new(move || {
        let mut running: Option<D::Tensor> = None;
        for step in 0..steps {
            let (x, y) = data.batch(dev, &mut order, step * batch, batch)?;
            let loss = model.train_step(dev, &x, &y, &mut *optimizer)?;
            running = Some(match running {
                Some(r) => dev.add(&r, &loss)?,
                None => loss,
            });
            // The loss comes back every 50 steps, as in training.
            if (step + 1) % 50 == 0 || step + 1 == steps {
                let l = dev.download(running.as_ref().expect("set"))?[0];
                if !l.is_finite() {
                    return Err(Error::Config(format!("benchmark loss became {l}")));
                }
                running = None;
            }
        }
        Ok((steps * batch) as f64)
    });
    Ok((rep, steps))
}
