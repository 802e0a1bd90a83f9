//! Times a product whose C is cropped from the padded kernel's (75
//! columns) against the same product at 76 columns, where nothing is
//! cropped, both with the forced `bcast` family (`matmul_bcast` 16×12 at
//! these widths), taking turns every 10 launches: the median of each
//! width's 10-launch repetitions, and of the repetitions' ratios. What the
//! padded kernels' store of C's corner costs.
//! `cargo run --release --example crop_timing [repetitions] [k]`
//! (repetitions at least 1, k a multiple of 4 so that only C is padded)

use std::time::Instant;

use wgtrain::device::gpu::MatmulKernel;
use wgtrain::device::MatmulSpec;
use wgtrain::{Device, GpuDevice};

fn main() -> wgtrain::Result<()> {
    let mut args = std::env::args().skip(1);
    let reps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(15);
    let k: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(128);
    if reps == 0 || k == 0 || !k.is_multiple_of(4) {
        eprintln!("repetitions must be at least 1 and k a positive multiple of 4");
        std::process::exit(2);
    }
    let dev = GpuDevice::new()?.with_matmul_kernel(MatmulKernel::Broadcast);
    println!("adapter: {}", dev.adapter_info().name);
    let m = 2048;
    let value = |i: usize| ((i * 7919) % 1000) as f32 / 500.0 - 1.0;
    let a = dev.upload(&(0..m * k).map(value).collect::<Vec<_>>(), [m, k])?;
    let widths = [76, 75];
    let bs = widths
        .iter()
        .map(|&n| dev.upload(&(0..k * n).map(value).collect::<Vec<_>>(), [k, n]))
        .collect::<wgtrain::Result<Vec<_>>>()?;
    let mut ms = vec![Vec::new(); widths.len()];
    let mut ratios = Vec::new();
    for rep in 0..=reps {
        let mut t_rep = Vec::new();
        for (b, times) in bs.iter().zip(&mut ms) {
            dev.synchronize()?;
            let t = Instant::now();
            for _ in 0..10 {
                dev.matmul(&a, b, None, MatmulSpec::NN)?;
            }
            dev.synchronize()?;
            let dt = t.elapsed().as_secs_f64() * 1e3 / 10.0;
            // The first repetition compiles the pipelines and pads B.
            if rep > 0 {
                times.push(dt);
                t_rep.push(dt);
            }
        }
        if rep > 0 {
            ratios.push(t_rep[1] / t_rep[0]);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (n, times) in widths.iter().zip(&mut ms) {
        println!("{m}x{k}·{k}x{n}: median {:.3} ms", median(times));
    }
    println!(
        "75 / 76, median of the repetitions' ratios: {:.2}",
        median(&mut ratios)
    );
    Ok(())
}
