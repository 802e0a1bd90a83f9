//! What streaming a split costs: one epoch of a small MLP on 96 MiB of
//! synthetic regression data, on the default GPU adapter, resident and
//! streamed in chunks of 64 and 8 MiB (bit-identical results; the
//! streamed epochs gather the next chunk on a helper thread while the
//! current one trains). Median of 3 epochs each, run side by side.
//! `cargo run --release --example stream_timing`

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgtrain::data::{Dataset, DeviceData, Features, Normalizer, Residency, Targets, Task};
use wgtrain::models::{parse_layers, FeatureShape, Model, ModelSpec, Output};
use wgtrain::optim::{OptimConfig, OptimizerKind, Schedule};
use wgtrain::run::{fit, Silent, TrainConfig, TrainData, TrainState};
use wgtrain::{Device, GpuDevice};

fn main() -> wgtrain::Result<()> {
    let dev = GpuDevice::new()?;
    println!("adapter: {}", dev.adapter_info().name);
    let (n, features) = (768 * 1024, 32);
    let rng = &mut ChaCha8Rng::seed_from_u64(1);
    let x: Vec<f32> = (0..n * features)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let y = x.chunks(features).map(|r| r[0] * r[1] - r[2]).collect();
    let ds = Dataset {
        name: "synthetic".into(),
        task: Task::Regression,
        sample_shape: vec![features],
        features: Features::F32(x),
        targets: Targets::Values { values: y, dims: 1 },
        feature_names: Vec::new(),
        target_name: String::new(),
        class_names: Vec::new(),
    };
    let spec = ModelSpec::new(
        &parse_layers("dense:64,relu")?,
        FeatureShape::Flat { features },
        Output::Regression { targets: 1 },
    )?;
    let ways = [
        ("resident", Residency::Resident),
        (
            "streamed, 64 MiB chunks",
            Residency::Streamed {
                chunk_bytes: 64 << 20,
            },
        ),
        (
            "streamed, 8 MiB chunks",
            Residency::Streamed {
                chunk_bytes: 8 << 20,
            },
        ),
    ];
    let mut seconds = vec![Vec::new(); ways.len()];
    for epoch in 1..=3 {
        for (way, (_, residency)) in ways.iter().enumerate() {
            let data = DeviceData::upload_with(&dev, &ds, &Normalizer::Identity, None, *residency)?;
            let mut model = Model::new(&dev, &spec, 1)?;
            let mut optimizer = OptimConfig::new(OptimizerKind::Sgd, 0.05).build::<GpuDevice>()?;
            let cfg = TrainConfig {
                epochs: epoch,
                batch_size: 1024,
                patience: None,
                seed: 3,
                log_every: 50,
                schedule: Schedule::Constant,
                stop_at_epoch: None,
            };
            // The epoch numbered `epoch`: each way sees the same shuffle.
            let mut state = TrainState {
                epoch: epoch - 1,
                ..Default::default()
            };
            let split = TrainData {
                train: &data,
                val: None,
                scaler: None,
            };
            let t = Instant::now();
            fit(
                &dev,
                &mut model,
                optimizer.as_mut(),
                &split,
                &cfg,
                &mut state,
                &mut Silent,
            )?;
            dev.synchronize()?;
            seconds[way].push(t.elapsed().as_secs_f64());
        }
    }
    for ((name, _), mut s) in ways.iter().zip(seconds) {
        s.sort_by(f64::total_cmp);
        println!(
            "{name:<24} median {:.2} s an epoch ({:.0} samples/s)",
            s[1],
            n as f64 / s[1]
        );
    }
    Ok(())
}
