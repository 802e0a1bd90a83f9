//! Times the GPU's embedding gradient (`scatter_add_rows`) for 2048 ids of
//! 64 columns over several vocabulary sizes: the figures behind
//! `SORTED_SCATTER_MIN_ROWS` in src/device/gpu/kernels/data.rs.
//! `cargo run --release --example scatter_timing`

use std::time::Instant;

use wgtrain::{Device, GpuDevice};

fn main() -> wgtrain::Result<()> {
    let dev = GpuDevice::new()?;
    println!("adapter: {}", dev.adapter_info().name);
    let (n, dim) = (2048usize, 64usize);
    let dy = dev.upload(&vec![0.5f32; n * dim], [n, dim])?;
    for rows in [2usize, 8, 32, 63, 64, 255, 5000] {
        let ids: Vec<f32> = (0..n).map(|i| ((i * 7919) % rows) as f32).collect();
        let idx = dev.upload(&ids, [n])?;
        // The median of 7, each ending with the result on the host.
        let mut ms: Vec<f64> = (0..7)
            .map(|_| {
                let t = Instant::now();
                let out = dev.scatter_add_rows(&dy, &idx, rows)?;
                dev.download(&out)?;
                Ok(t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<wgtrain::Result<_>>()?;
        ms.sort_by(f64::total_cmp);
        println!("{rows:>5} rows: median {:.2} ms", ms[3]);
    }
    Ok(())
}
