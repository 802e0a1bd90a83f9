//! Times the Elman recurrence of T5 (32 steps, batch 64, hidden 128) on the
//! default adapter both ways a step can run (`RnnVariant`): one fused
//! dispatch per step, or the step's product through the matmul kernels and
//! a second dispatch finishing the step. Forward and backward passes, the
//! two ways alternating, four rounds; each figure the median of 5 passes,
//! ending with the device idle. `cargo run --release --example rnn_timing`

use std::time::Instant;

use wgtrain::device::gpu::tune::RnnVariant;
use wgtrain::{Device, GpuDevice};

/// Milliseconds of one call of `f`, the median of 5, the device idle after each.
fn median_ms(dev: &GpuDevice, f: &dyn Fn() -> wgtrain::Result<()>) -> wgtrain::Result<f64> {
    let mut ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        f()?;
        dev.synchronize()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms[2])
}

fn main() -> wgtrain::Result<()> {
    let base = GpuDevice::new()?;
    println!("adapter: {}", base.adapter_info().name);
    let (t, b, h) = (32usize, 64usize, 128usize);
    // Deterministic values in [-s/2, s/2).
    let values = |n: usize, s: f32| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 * s - s / 2.0)
            .collect()
    };
    let xw = base.upload(&values(t * b * h, 1.0), [t, b, h])?;
    let u = base.upload(&values(h * h, 0.2), [h, h])?;
    let h0 = base.upload(&values(b * h, 1.0), [b, h])?;
    for round in 1..=4 {
        for way in RnnVariant::ALL {
            let dev = base.with_rnn_kernel(way);
            // Pipelines and the matmul's tuning happen here, untimed.
            let hs = dev.rnn_forward(&xw, &u, &h0)?;
            dev.rnn_backward(&hs, &u, &xw)?;
            dev.synchronize()?;
            let forward = median_ms(&dev, &|| dev.rnn_forward(&xw, &u, &h0).map(drop))?;
            let backward = median_ms(&dev, &|| dev.rnn_backward(&hs, &u, &xw).map(drop))?;
            println!("round {round} {way:?}: forward {forward:.2} ms, backward {backward:.2} ms");
        }
    }
    Ok(())
}
