//! Times the row-wise softmax and row sums of K4's 128×4096 matrix on the
//! default adapter with the vec4 one-invocation-per-row kernels and with a
//! workgroup per row (`GpuDevice::with_lane_rows`), alternating, twice:
//! median of 7 repetitions of 10 launches each, ending with the device idle.
//! `cargo run --release --example rowwise_timing`

use std::time::Instant;

use wgtrain::{Device, GpuDevice};

fn median_ms(dev: &GpuDevice, f: &dyn Fn() -> wgtrain::Result<()>) -> wgtrain::Result<f64> {
    f()?; // pipelines, pool
    dev.synchronize()?;
    let mut ms = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..10 {
            f()?;
        }
        dev.synchronize()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3 / 10.0);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms[3])
}

fn main() -> wgtrain::Result<()> {
    let base = GpuDevice::new()?;
    println!("adapter: {}", base.adapter_info().name);
    let (r, c) = (128, 4096);
    let v: Vec<f32> = (0..r * c)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    for round in 1..=2 {
        for lane in [true, false] {
            let dev = base.with_lane_rows(lane);
            let x = dev.upload(&v, [r, c])?;
            let softmax = median_ms(&dev, &|| dev.softmax_rows(&x).map(drop))?;
            let sums = median_ms(&dev, &|| dev.sum_cols(&x).map(drop))?;
            let kind = if lane {
                "one invocation per row, vec4"
            } else {
                "a workgroup per row        "
            };
            println!("round {round}, {kind}: softmax {softmax:.2} ms, row sums {sums:.2} ms");
        }
    }
    Ok(())
}
