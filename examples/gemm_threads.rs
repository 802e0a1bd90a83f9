//! Times the CPU device's matrix products (the `gemm` crate) on one thread
//! and on all of rayon's, for the shapes behind `THREADED_FROM` in
//! src/device/cpu/gemm.rs. `cargo run --release --example gemm_threads`

use std::time::Instant;

use gemm::Parallelism;

/// GFLOP/s of `c = a·b` (row-major, `b` read transposed when `trans_b`),
/// the median of 5 timings of 30 GFLOP each (at least 3 products).
fn rate(m: usize, k: usize, n: usize, trans_b: bool, threads: Parallelism) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.73).sin()).collect();
    let mut c = vec![0.0f32; m * n];
    let (b_rs, b_cs) = if trans_b {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let flops = 2.0 * (m * n * k) as f64;
    let reps = ((3e10 / flops) as usize).max(3);
    let mut rates: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                // SAFETY: every slice holds the elements its dimensions and
                // strides address, and `c` aliases neither input.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        a.as_ptr(),
                        1,
                        k as isize,
                        b.as_ptr(),
                        b_cs,
                        b_rs,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        threads,
                    );
                }
            }
            flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[2]
}

fn main() {
    println!("CPU: {}", wgtrain::CpuDevice::instruction_set());
    println!(
        "{:<22} {:>12} {:>12} {:>10}",
        "m×k·k×n", "one thread", "threads", "mul-adds"
    );
    for (m, k, n, trans_b) in [
        (64, 128, 128, false),
        (64, 128, 512, true),
        (128, 256, 128, false),
        (128, 256, 256, true),
        (128, 256, 256, false),
        (2048, 128, 64, false),
        (256, 256, 256, false),
        (1024, 1024, 1024, false),
    ] {
        let shape = format!("{m}×{k}·{k}×{n}{}", if trans_b { " (Bᵀ)" } else { "" });
        println!(
            "{shape:<22} {:>12.0} {:>12.0} {:>10}",
            rate(m, k, n, trans_b, Parallelism::None),
            rate(m, k, n, trans_b, Parallelism::Rayon(0)),
            m * n * k
        );
    }
}
