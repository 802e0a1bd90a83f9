//! Rust launchers, one module per WGSL file in `shaders/` (same name; the
//! padded matmul's pad.wgsl is launched from matmul.rs, as are cast.wgsl and
//! half.wgsl's `pad_half`; optim_many.wgsl from
//! optim.rs). Each
//! function validates shapes, allocates its output from the pool, and records
//! one or more dispatches; none of them waits for the GPU, except a matmul
//! of a shape class the autotuner has not seen yet (`super::tune`), which
//! times each candidate kernel on an idle GPU once.

pub(super) mod batchnorm;
pub(super) mod conv2d;
pub(super) mod data;
pub(super) mod dropout;
pub(super) mod elementwise;
pub(super) mod gated;
pub(super) mod half;
pub(super) mod matmul;
pub(super) mod norm;
pub(super) mod optim;
pub(super) mod peak;
pub(super) mod pool;
pub(super) mod reduce;
pub(super) mod rnn;

use super::context::{PooledBuffer, ShaderSource};
use super::GpuDevice;

/// Records one dispatch: the pipeline for `entry` (with override
/// `constants`), `bindings` as binding number and buffer, `params` as the
/// kernel's immediates.
fn launch<P: bytemuck::Pod>(
    dev: &GpuDevice,
    shader: ShaderSource,
    entry: &'static str,
    constants: &[(&'static str, f64)],
    bindings: &[(u32, &PooledBuffer)],
    params: &P,
    grid: [u32; 3],
) {
    let kernel = dev.ctx.kernel(shader, entry, constants);
    dev.ctx
        .dispatch(&kernel, bindings, bytemuck::bytes_of(params), grid);
}

/// Converts a size to the u32 the kernels index with, or a shape error.
fn u32_of(op: &'static str, v: usize) -> crate::error::Result<u32> {
    u32::try_from(v).map_err(|_| {
        crate::error::Error::shape(op, format!("size {v} exceeds the GPU's 32-bit indexing"))
    })
}
