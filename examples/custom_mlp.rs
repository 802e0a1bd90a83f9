//! A custom MLP trained on data made in memory: two interleaved spirals,
//! which no linear model separates. Run with
//! `cargo run --release --example custom_mlp`.

use ndarray::Array2;
use wgtrain::prelude::*;

fn main() -> wgtrain::Result<()> {
    // 600 points on two spirals, labelled by spiral.
    let n = 600;
    let mut x = Array2::<f32>::zeros((n, 2));
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i % 2) as u32;
        let t = (i / 2) as f32 / (n / 2) as f32 * 3.0 * std::f32::consts::PI;
        let angle = t + class as f32 * std::f32::consts::PI;
        x[[i, 0]] = t * angle.cos();
        x[[i, 1]] = t * angle.sin();
        labels.push(class);
    }
    let data = Dataset::classification("spirals", x.view(), &labels)?;
    let prepared = Prepared::from_dataset(data, 0.1, 0.2, 42)?;

    // The architecture is data: a layer list, the output layer from the data.
    let mut config =
        ExperimentConfig::custom(parse_layers("dense:64,relu,dense:64,relu")?, "spirals");
    config.epochs = Some(150);
    config.optim = OptimConfig::new(OptimizerKind::AdamW, 1e-2);
    config.optim.weight_decay = 1e-4;

    // Any device: the CPU reference here; `GpuDevice::new()?` for the GPU.
    let dev = CpuDevice::new();
    let mut run = Experiment::from_prepared(&dev, config, prepared)?;
    print!("{}", run.model.spec.summary()?);
    run.run(&dev, &mut Silent, None)?;
    let test = run.evaluate(&dev, "test")?.expect("20% held out");
    println!(
        "spirals: test {} after {} epochs (best {})",
        test.headline(),
        run.state.epoch,
        run.state.best_epoch
    );
    if test.accuracy.unwrap_or(0.0) < 0.9 {
        return Err(Error::Config("the spirals were not learned".into()));
    }
    Ok(())
}
