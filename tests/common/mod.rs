//! Shared by the integration tests: the GPU device, or a skip that is only
//! allowed when no adapter exists and WGTRAIN_REQUIRE_GPU is unset.
#![allow(dead_code)]

use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgtrain::models::{ModelConfig, ModelKind, Task};
use wgtrain::{Error, GpuDevice, Shape};

/// Whether CI (or the user) demands that GPU tests really run.
pub fn gpu_required() -> bool {
    std::env::var("WGTRAIN_REQUIRE_GPU").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The GPU device shared by all tests of one test binary, or `None` when no
/// adapter exists and GPU tests may be skipped. Any other failure to open the
/// adapter, or a missing adapter under WGTRAIN_REQUIRE_GPU, fails the test.
pub fn gpu() -> Option<GpuDevice> {
    static DEVICE: OnceLock<Result<GpuDevice, String>> = OnceLock::new();
    let dev = DEVICE.get_or_init(|| match GpuDevice::new() {
        Ok(d) => Ok(d),
        Err(Error::NoAdapter(detail)) if !gpu_required() => Err(detail),
        Err(e) => panic!(
            "cannot open the GPU device (WGTRAIN_REQUIRE_GPU={}): {e}",
            gpu_required()
        ),
    });
    match dev {
        Ok(d) => Some(d.clone()),
        Err(detail) => {
            eprintln!("SKIPPED: no GPU adapter{detail} and WGTRAIN_REQUIRE_GPU is unset");
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

/// A small instance of each model family with a batch of inputs `x` of the
/// given shape and targets `y` (class ids, values, or `[B,T]` next tokens).
pub fn small_models() -> Vec<(ModelConfig, Shape, Vec<f32>, Vec<f32>)> {
    let rng = &mut ChaCha8Rng::seed_from_u64(17);
    let mut v = Vec::new();
    let cfg =
        |kind, task, input_shape: Vec<usize>, outputs, hidden: Vec<usize>, channels: Vec<usize>| {
            ModelConfig {
                kind,
                task,
                input_shape,
                outputs,
                hidden,
                channels,
            }
        };
    v.push((
        cfg(
            ModelKind::Linear,
            Task::Regression,
            vec![5],
            2,
            vec![],
            vec![],
        ),
        Shape::new([4, 5]),
        random(rng, 20, 1.0),
        random(rng, 8, 1.0),
    ));
    v.push((
        cfg(
            ModelKind::Logistic,
            Task::Classification,
            vec![5],
            2,
            vec![],
            vec![],
        ),
        Shape::new([6, 5]),
        random(rng, 30, 1.0),
        vec![0., 1., 1., 0., 1., 0.],
    ));
    v.push((
        cfg(
            ModelKind::Logistic,
            Task::Classification,
            vec![5],
            3,
            vec![],
            vec![],
        ),
        Shape::new([6, 5]),
        random(rng, 30, 1.0),
        vec![0., 1., 2., 2., 1., 0.],
    ));
    v.push((
        cfg(
            ModelKind::Mlp,
            Task::Classification,
            vec![6],
            3,
            vec![5, 4],
            vec![],
        ),
        Shape::new([4, 6]),
        random(rng, 24, 1.0),
        vec![2., 0., 1., 2.],
    ));
    v.push((
        cfg(
            ModelKind::Cnn,
            Task::Classification,
            vec![2, 8, 8],
            3,
            vec![],
            vec![3, 2],
        ),
        Shape::new([2, 2, 8, 8]),
        random(rng, 256, 1.0),
        vec![1., 2.],
    ));
    let tokens = |n: usize, rng: &mut ChaCha8Rng| {
        (0..n)
            .map(|_| rng.random_range(0..5) as f32)
            .collect::<Vec<f32>>()
    };
    v.push((
        cfg(ModelKind::Rnn, Task::Text, vec![4], 5, vec![4], vec![]),
        Shape::new([3, 4]),
        tokens(12, rng),
        tokens(12, rng),
    ));
    v
}
