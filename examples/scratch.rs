use wgtrain::experiment::{Experiment, ExperimentConfig};
use wgtrain::models::ModelKind;
use wgtrain::train::{EpochStats, Hooks, TrainState};
use wgtrain::{CpuDevice, Device, GpuDevice};

struct Print;
impl<D: Device> Hooks<D> for Print {
    fn on_epoch(
        &mut self,
        s: &EpochStats,
        _: &TrainState,
        imp: bool,
        _: &wgtrain::models::Model<D>,
        _: &wgtrain::optim::Optimizer<D>,
    ) -> wgtrain::Result<()> {
        println!(
            "epoch {} loss {:.4} val {} {:.1}s {:.0}/s {}",
            s.epoch,
            s.train_loss,
            s.val.as_ref().map(|v| v.headline()).unwrap_or_default(),
            s.seconds,
            s.samples_per_sec,
            if imp { "*" } else { "" }
        );
        Ok(())
    }
}

fn go<D: Device + 'static>(dev: &D, cfg: ExperimentConfig) {
    let t = std::time::Instant::now();
    let mut e = Experiment::new(dev, cfg).unwrap();
    println!("params {}", e.model.param_count());
    e.run(dev, &mut Print, None).unwrap();
    println!(
        "test {:?} in {:.1}s",
        e.evaluate(dev, "test").unwrap().map(|v| v.headline()),
        t.elapsed().as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind: ModelKind = args[1].parse().unwrap();
    let mut cfg = ExperimentConfig::defaults(kind);
    if let Some(d) = args.get(3) {
        cfg.data = d.clone();
    }
    if let Some(e) = args.get(4) {
        cfg.epochs = e.parse().unwrap();
    }
    if let Some(m) = args.get(5) {
        cfg.max_train_samples = Some(m.parse().unwrap());
    }
    if let Ok(s) = std::env::var("SEED") {
        cfg.seed = s.parse().unwrap();
    }
    if let Ok(s) = std::env::var("WD") {
        cfg.optim.weight_decay = s.parse().unwrap();
    }
    if let Ok(s) = std::env::var("LR") {
        cfg.optim.lr = s.parse().unwrap();
    }
    if args[2] == "gpu" {
        go(&GpuDevice::new().unwrap(), cfg)
    } else {
        go(&CpuDevice, cfg)
    }
}
