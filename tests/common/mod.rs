//! Shared by the integration tests: the GPU device, and the rule that a
//! missing adapter is never a pass.
//!
//! Without an adapter a GPU test fails, saying how to get one (Mesa's
//! software Vulkan driver), unless the user opts out with
//! `WGTRAIN_SKIP_GPU=1`; each skipped test then says so on the real standard
//! output (not the captured one), with the running count of skips.
//! `WGTRAIN_REQUIRE_GPU=1` (CI) refuses the opt-out, and an adapter asked
//! for by name (`WGTRAIN_ADAPTER`) that does not exist is always a failure.
#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgtrain::models::{parse_layers, FeatureShape, LayerSpec, ModelSpec, Output, Preset};
use wgtrain::{Device, Error, GpuDevice, Shape};

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether CI (or the user) demands that GPU tests really run.
pub fn gpu_required() -> bool {
    env_flag("WGTRAIN_REQUIRE_GPU")
}

/// GPU tests skipped by this test binary so far.
static SKIPPED: AtomicUsize = AtomicUsize::new(0);

/// The GPU device shared by all tests of one test binary, poisoning its
/// allocations ([`GpuDevice::with_poisoned_allocations`]), or `None` when the
/// user opted out of GPU tests and no adapter exists. Anything else without
/// an adapter fails the test.
pub fn gpu() -> Option<GpuDevice> {
    static DEVICE: OnceLock<Result<GpuDevice, String>> = OnceLock::new();
    let dev = DEVICE.get_or_init(|| {
        let dev = GpuDevice::new().map_err(|e| match e {
            Error::NoAdapter(_) => e.to_string(),
            e => panic!("cannot open the GPU device: {e}"),
        })?;
        // An output element a kernel leaves unwritten reads NaN, not a
        // stale value from the pool (often the right one).
        Ok(dev.with_poisoned_allocations())
    });
    match dev {
        Ok(d) => Some(d.clone()),
        Err(e) => {
            let named = std::env::var_os("WGTRAIN_ADAPTER").is_some();
            if gpu_required() || named || !env_flag("WGTRAIN_SKIP_GPU") {
                panic!(
                    "{e}. GPU tests need an adapter: install Mesa's software Vulkan driver \
                     (apt-get install mesa-vulkan-drivers; `scripts/test` does it), or set \
                     WGTRAIN_SKIP_GPU=1 to skip them"
                );
            }
            let n = SKIPPED.fetch_add(1, Ordering::Relaxed) + 1;
            let name = std::thread::current().name().unwrap_or("?").to_string();
            // The real stdout: the test harness captures print!.
            let _ = writeln!(
                std::io::stdout().lock(),
                "SKIPPED (WGTRAIN_SKIP_GPU=1, no adapter): {name}; {n} GPU test(s) skipped in this binary"
            );
            None
        }
    }
}

/// A device of its own (not shared with other tests), for tests that count
/// allocations or submissions. Same skip rules as [`gpu`].
pub fn fresh_gpu() -> Option<GpuDevice> {
    gpu()?;
    Some(GpuDevice::new().expect("the adapter opened once already"))
}

fn random(rng: &mut ChaCha8Rng, n: usize, spread: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-spread..=spread)).collect()
}

/// A small model and one batch for it: inputs `x` of `x_shape` and targets
/// `y` (class ids, values, or `[B,T]` next tokens).
pub struct Case {
    pub name: String,
    pub spec: ModelSpec,
    pub x_shape: Shape,
    pub x: Vec<f32>,
    pub y: Vec<f32>,
}

impl Case {
    /// The batch on `dev`, targets shaped as the training loop gathers them.
    pub fn batch<D: Device>(&self, dev: &D) -> (D::Tensor, D::Tensor) {
        let x = dev.upload(&self.x, self.x_shape.clone()).unwrap();
        let rows = self.x_shape.rows();
        let y = if self.spec.predicts_every_step() {
            dev.upload(&self.y, [rows, self.y.len() / rows]).unwrap()
        } else {
            dev.upload(&self.y, [self.y.len()]).unwrap()
        };
        (x, y)
    }
}

/// A small instance of each preset, and custom stacks that between them use
/// every layer kind (dropout included), every activation, odd and even kernels, padding 0 and
/// "same", overlapping-free pools of 3, two-class (BCE) heads, several
/// regression targets, an explicit one-hot and stacked recurrent layers.
pub fn small_models() -> Vec<Case> {
    let rng = &mut ChaCha8Rng::seed_from_u64(17);
    let mut v = Vec::new();
    let flat = |features| FeatureShape::Flat { features };
    let image = |channels, side| FeatureShape::Image {
        channels,
        height: side,
        width: side,
    };
    let tokens = |n: usize, vocab: u32, rng: &mut ChaCha8Rng| {
        (0..n)
            .map(|_| rng.random_range(0..vocab) as f32)
            .collect::<Vec<f32>>()
    };
    let mut add = |name: &str, layers: Vec<LayerSpec>, input, output, x_shape: Shape, x, y| {
        let spec = ModelSpec::new(&layers, input, output).unwrap();
        v.push(Case {
            name: name.into(),
            spec,
            x_shape,
            x,
            y,
        });
    };
    let preset = |p: Preset, sizes: &[usize]| match p {
        Preset::Cnn => p.layers(None, Some(sizes)).unwrap(),
        Preset::Mlp | Preset::Rnn | Preset::Lstm | Preset::Gru => {
            p.layers(Some(sizes), None).unwrap()
        }
        _ => p.layers(None, None).unwrap(),
    };
    let x = random(rng, 20, 1.0);
    let y = random(rng, 8, 1.0);
    add(
        "linear",
        preset(Preset::Linear, &[]),
        flat(5),
        Output::Regression { targets: 2 },
        Shape::new([4, 5]),
        x,
        y,
    );
    let x = random(rng, 30, 1.0);
    add(
        "logistic-2",
        preset(Preset::Logistic, &[]),
        flat(5),
        Output::Classes { classes: 2 },
        Shape::new([6, 5]),
        x,
        vec![0., 1., 1., 0., 1., 0.],
    );
    let x = random(rng, 30, 1.0);
    add(
        "logistic-3",
        preset(Preset::Logistic, &[]),
        flat(5),
        Output::Classes { classes: 3 },
        Shape::new([6, 5]),
        x,
        vec![0., 1., 2., 2., 1., 0.],
    );
    let x = random(rng, 24, 1.0);
    add(
        "mlp",
        preset(Preset::Mlp, &[5, 4]),
        flat(6),
        Output::Classes { classes: 3 },
        Shape::new([4, 6]),
        x,
        vec![2., 0., 1., 2.],
    );
    let x = random(rng, 256, 1.0);
    add(
        "cnn",
        preset(Preset::Cnn, &[3, 2]),
        image(2, 8),
        Output::Classes { classes: 3 },
        Shape::new([2, 2, 8, 8]),
        x,
        vec![1., 2.],
    );
    let (x, y) = (tokens(12, 5, rng), tokens(12, 5, rng));
    add(
        "rnn",
        preset(Preset::Rnn, &[4]),
        FeatureShape::Tokens { len: 4 },
        Output::NextToken { vocab: 5 },
        Shape::new([3, 4]),
        x,
        y,
    );
    let x = random(rng, 20, 1.0);
    let y = random(rng, 8, 1.0);
    add(
        "dense-activations",
        parse_layers("dense:6,relu,dense:5,sigmoid,dense:4,identity,dense:3,tanh").unwrap(),
        flat(5),
        Output::Regression { targets: 2 },
        Shape::new([4, 5]),
        x,
        y,
    );
    let x = random(rng, 2 * 81, 1.0);
    add(
        "conv-kernels",
        parse_layers("conv2d:3:5,relu,maxpool:3,conv2d:2:2,sigmoid,flatten,dense:4,tanh").unwrap(),
        image(1, 9),
        Output::Classes { classes: 2 },
        Shape::new([2, 1, 9, 9]),
        x,
        vec![1., 0.],
    );
    let x = random(rng, 40, 1.0);
    let y = random(rng, 8, 1.0);
    add(
        "dropout-leaky-softplus",
        parse_layers(
            "dense:16,leaky_relu,dropout:0.3,layernorm,dense:8,softplus,dropout:0.5,dense:6,gelu",
        )
        .unwrap(),
        flat(5),
        Output::Regression { targets: 1 },
        Shape::new([8, 5]),
        x,
        y,
    );
    let (x, y) = (tokens(8, 6, rng), tokens(8, 6, rng));
    add(
        "embedding-rnn",
        parse_layers("embedding:3,rnn:4,layernorm").unwrap(),
        FeatureShape::Tokens { len: 4 },
        Output::NextToken { vocab: 6 },
        Shape::new([2, 4]),
        x,
        y,
    );
    let (x, y) = (tokens(6, 4, rng), tokens(6, 4, rng));
    add(
        "stacked-rnn",
        parse_layers("one_hot,rnn:4,relu,dense:5,rnn:3").unwrap(),
        FeatureShape::Tokens { len: 3 },
        Output::NextToken { vocab: 4 },
        Shape::new([2, 3]),
        x,
        y,
    );
    // Later cases draw after the earlier ones, so earlier inputs stay as
    // they were when a case is added here.
    let x = random(rng, 2 * 2 * 36, 1.0);
    add(
        "global-avgpool",
        parse_layers("conv2d:3:3,tanh,avgpool:2,global_avgpool,dense:4,tanh").unwrap(),
        image(2, 6),
        Output::Classes { classes: 3 },
        Shape::new([2, 2, 6, 6]),
        x,
        vec![2., 0.],
    );
    // The gated presets, stacked two deep, and both cells over a numeric
    // sequence with an embedding-free input.
    for (name, p) in [("lstm", Preset::Lstm), ("gru", Preset::Gru)] {
        let (x, y) = (tokens(12, 5, rng), tokens(12, 5, rng));
        add(
            name,
            preset(p, &[4, 3]),
            FeatureShape::Tokens { len: 4 },
            Output::NextToken { vocab: 5 },
            Shape::new([3, 4]),
            x,
            y,
        );
    }
    // Batch normalisation of features and of image planes (finite
    // differences through the batch statistics of training mode). Each
    // follows an activation: a bias right before batch normalisation has a
    // gradient of exactly zero, which Adam would turn into noise-sized
    // steps that differ between devices; and no max-pool follows, whose
    // kinks the normalisation would move.
    let x = random(rng, 6 * 5, 1.0);
    let y = random(rng, 6 * 2, 1.0);
    add(
        "batchnorm-dense",
        parse_layers("dense:6,relu,batchnorm,dense:4,tanh,batchnorm").unwrap(),
        flat(5),
        Output::Regression { targets: 2 },
        Shape::new([6, 5]),
        x,
        y,
    );
    let x = random(rng, 3 * 2 * 36, 1.0);
    add(
        "batchnorm-conv",
        parse_layers("conv2d:3:3,tanh,batchnorm,avgpool:2,flatten").unwrap(),
        image(2, 6),
        Output::Classes { classes: 3 },
        Shape::new([3, 2, 6, 6]),
        x,
        vec![2., 0., 1.],
    );
    // Numeric sequences, many-to-one (a `last` read-out is added): several
    // values per step (the gathered time-major layout) and one (the
    // transposed one).
    let x = random(rng, 3 * 4 * 3, 1.0);
    let y = random(rng, 3 * 2, 1.0);
    add(
        "sequence-lstm-gru",
        parse_layers("lstm:5,gru:4").unwrap(),
        FeatureShape::Sequence {
            len: 4,
            features: 3,
        },
        Output::Regression { targets: 2 },
        Shape::new([3, 4, 3]),
        x,
        y,
    );
    let x = random(rng, 4 * 5, 1.0);
    add(
        "sequence-rnn",
        parse_layers("rnn:4").unwrap(),
        FeatureShape::Sequence {
            len: 5,
            features: 1,
        },
        Output::Classes { classes: 3 },
        Shape::new([4, 5, 1]),
        x,
        vec![0., 2., 1., 2.],
    );
    let (x, y) = (tokens(8, 6, rng), tokens(8, 6, rng));
    add(
        "embedding-gru-lstm",
        parse_layers("embedding:3,gru:5,dropout:0.2,lstm:4").unwrap(),
        FeatureShape::Tokens { len: 4 },
        Output::NextToken { vocab: 6 },
        Shape::new([2, 4]),
        x,
        y,
    );
    // Overlapping max pooling (first, so that no weight moves an arg-max
    // within the finite differences' step), a strided convolution (the
    // padded input's last column in no window) and overlapping average
    // pooling.
    let x = random(rng, 2 * 2 * 169, 1.0);
    add(
        "strided-conv-overlapping-pools",
        parse_layers("maxpool:3:2,conv2d:4:3:2:1,tanh,avgpool:2:1,flatten,dense:3,tanh").unwrap(),
        image(2, 13),
        Output::Classes { classes: 3 },
        Shape::new([2, 2, 13, 13]),
        x,
        vec![1., 2.],
    );
    v
}
