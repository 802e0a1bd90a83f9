//! The cross-check as a user would write it: the same model, seed and
//! batches on the CPU reference and on the GPU, losses compared step by
//! step. The model is the two-stage ReLU CNN of `examples/mnist_cnn.toml`,
//! on the first 512 MNIST training images (8 steps of 64). Run from the
//! repository root: `cargo run --release --example cross_check`.
//!
//! Exits non-zero when the losses drift apart, or when there is no GPU and
//! WGTRAIN_REQUIRE_GPU is set.

use wgtrain::prelude::*;

const STEPS: usize = 8;

fn losses<D: Device + 'static>(dev: &D) -> wgtrain::Result<Vec<f32>> {
    let mut config = ExperimentConfig::from_toml(include_str!("mnist_cnn.toml"), None)?;
    config.max_train_samples = Some(STEPS * 64);
    config.batch_size = Some(64);
    config.epochs = Some(1);
    // Validation runs once, after the steps compared: keep it small.
    config.val_fraction = 0.01;
    config.log_every = 1;
    let mut run = Experiment::new(dev, config)?;
    let mut hooks = Losses(Vec::new());
    run.run(dev, &mut hooks, None)?;
    Ok(hooks.0)
}

/// Collects the loss of every step (read back every step: log_every 1).
struct Losses(Vec<f32>);

impl<D: Device> Hooks<D> for Losses {
    fn on_step(&mut self, p: &wgtrain::run::StepProgress) {
        self.0.extend(p.loss.map(|l| l as f32));
    }
}

fn main() -> wgtrain::Result<()> {
    let gpu = match GpuDevice::new() {
        Ok(g) => g,
        Err(e) if std::env::var_os("WGTRAIN_REQUIRE_GPU").is_none() => {
            println!("no GPU adapter ({e}): nothing to compare");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let cpu = losses(&CpuDevice::new())?;
    let on_gpu = losses(&gpu)?;
    println!(
        "step  cpu loss    gpu loss    |difference|  ({})",
        gpu.name()
    );
    let mut worst = 0.0f32;
    for (i, (c, g)) in cpu.iter().zip(&on_gpu).enumerate() {
        let d = (c - g).abs();
        worst = worst.max(d / c.abs().max(1.0));
        println!("{:>4}  {c:<10.6}  {g:<10.6}  {d:.2e}", i + 1);
    }
    if cpu.len() != STEPS || on_gpu.len() != STEPS || worst > 1e-4 {
        return Err(Error::Config(format!(
            "CPU and GPU disagree: {} and {} steps, worst relative difference {worst:.2e}",
            cpu.len(),
            on_gpu.len()
        )));
    }
    println!("the GPU matches the CPU reference (worst relative difference {worst:.2e})");
    Ok(())
}
