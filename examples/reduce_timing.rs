//! Times the GPU's workgroup reductions with subgroup operations and with
//! the shared-memory tree, alternating, on the default adapter (which must
//! have subgroups for the comparison): a sum over 1M values, softmax
//! cross-entropy over rows of 1,000 and 4,096 classes (rows longer than 256
//! take the workgroup kernel), and row sums. Median of 9 of each, every
//! launch ending with its result on the host.
//! `cargo run --release --example reduce_timing`

use std::time::Instant;

use wgtrain::device::Reduce;
use wgtrain::{Device, GpuDevice};

fn median_ms(mut f: impl FnMut() -> wgtrain::Result<()>) -> wgtrain::Result<f64> {
    f()?; // pipelines, pool
    let mut ms = (0..9)
        .map(|_| {
            let t = Instant::now();
            f()?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<wgtrain::Result<Vec<f64>>>()?;
    ms.sort_by(f64::total_cmp);
    Ok(ms[4])
}

fn main() -> wgtrain::Result<()> {
    let base = GpuDevice::new()?;
    println!("adapter: {}", base.adapter_info().name);
    if !base.subgroups() {
        println!("this adapter has no subgroup operations: nothing to compare");
        return Ok(());
    }
    let variants = [
        ("subgroups", base.with_subgroups(true)),
        ("tree", base.with_subgroups(false)),
    ];
    let values: Vec<f32> = (0..1 << 20).map(|i| (i % 97) as f32 * 0.01).collect();
    let x = base.upload(&values, [1 << 20])?;
    for (name, dev) in &variants {
        let ms = median_ms(|| dev.download(&dev.reduce(&x, Reduce::Sum)?).map(drop))?;
        println!("{name:<10} sum of 2^20 values        {ms:>7.2} ms");
    }
    for (rows, classes) in [(256usize, 1000usize), (64, 4096)] {
        let logits: Vec<f32> = (0..rows * classes).map(|i| (i % 13) as f32 * 0.1).collect();
        let labels: Vec<f32> = (0..rows).map(|r| (r % classes) as f32).collect();
        let z = base.upload(&logits, [rows, classes])?;
        let y = base.upload(&labels, [rows])?;
        for (name, dev) in &variants {
            let ms = median_ms(|| {
                let lg = dev.softmax_cross_entropy(&z, &y)?;
                dev.download(&lg.loss).map(drop)
            })?;
            println!("{name:<10} softmax cross-entropy {rows}×{classes:<5} {ms:>7.2} ms");
        }
        for (name, dev) in &variants {
            let ms = median_ms(|| dev.download(&dev.sum_cols(&z)?).map(drop))?;
            println!("{name:<10} row sums {rows}×{classes:<5}              {ms:>7.2} ms");
        }
    }
    Ok(())
}
