//! Launcher for shaders/peak.wgsl.

use std::time::Instant;

use super::launch;
use crate::device::gpu::GpuDevice;
use crate::device::Device;
use crate::error::Result;
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    iters: u32,
    seed: f32,
    n: u32,
}

/// FLOPs per invocation per loop iteration: 8 vec4 FMAs.
const FLOPS_PER_ITER: f64 = 8.0 * 4.0 * 2.0;

/// The best GFLOP/s of `reps` runs of the FMA kernel over `threads`
/// invocations of `iters` iterations each.
pub(crate) fn measure(dev: &GpuDevice, threads: usize, iters: u32, reps: usize) -> Result<f64> {
    let out = dev.empty([threads])?;
    let grid = dev.ctx.grid_1d("peak", threads)?;
    let mut best = 0.0f64;
    for rep in 0..reps + 1 {
        let t = Instant::now();
        let p = Params {
            iters,
            seed: rep as f32,
            n: threads as u32,
        };
        launch(
            dev,
            shader!("peak"),
            "peak",
            &[],
            &[(0, out.buf())],
            &p,
            grid,
        );
        dev.synchronize()?;
        let rate =
            threads as f64 * iters as f64 * FLOPS_PER_ITER / t.elapsed().as_secs_f64() * 1e-9;
        // The first run compiles the pipeline.
        if rep > 0 {
            best = best.max(rate);
        }
    }
    Ok(best)
}
