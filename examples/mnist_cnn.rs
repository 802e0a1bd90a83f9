//! The two-stage ReLU CNN of `examples/mnist_cnn.toml` on MNIST, on the GPU
//! when there is one. Run from the repository root (MNIST is read from
//! data/mnist): `cargo run --release --example mnist_cnn [EPOCHS]`.

use wgtrain::prelude::*;

fn main() -> wgtrain::Result<()> {
    let mut config = ExperimentConfig::from_toml(include_str!("mnist_cnn.toml"), None)?;
    if let Some(epochs) = std::env::args().nth(1) {
        config.epochs = Some(
            epochs
                .parse()
                .map_err(|_| Error::Config(format!("'{epochs}' is not a number of epochs")))?,
        );
    }
    match GpuDevice::new() {
        Ok(gpu) => train(&gpu, config),
        Err(e) => {
            eprintln!("no GPU ({e}); training on the CPU");
            train(&CpuDevice::new(), config)
        }
    }
}

fn train<D: Device + 'static>(dev: &D, config: ExperimentConfig) -> wgtrain::Result<()> {
    let mut run = Experiment::new(dev, config)?;
    println!("training on {}", dev.name());
    print!("{}", run.model.spec.summary()?);
    run.run(dev, &mut Progress, None)?;
    let test = run.evaluate(dev, "test")?.expect("MNIST has a test set");
    println!("MNIST t10k: {}", test.headline());
    Ok(())
}

/// One line per epoch.
struct Progress;

impl<D: Device> Hooks<D> for Progress {
    fn on_epoch(&mut self, end: &EpochEnd<'_, D>) -> wgtrain::Result<()> {
        let s = end.stats;
        let val = s.val.as_ref().map_or(String::new(), |v| v.headline());
        println!(
            "epoch {:>2}: train loss {:.4}, validation {val}",
            s.epoch, s.train_loss
        );
        Ok(())
    }
}
