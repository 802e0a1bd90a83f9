//! Launchers for shaders/half.wgsl: tensors kept in f16 (`Device::Half`).
//! Its `pad_half` is launched from matmul.rs, with the other operand copies.

use std::sync::Arc;

use super::matmul::{f16_copy, PadParams, Source};
use super::{launch, u32_of};
use crate::device::gpu::{GpuDevice, GpuHalf, GpuTensor};
use crate::device::{Activation, Tensor};
use crate::error::Result;
use crate::shader;

/// `t` in f16: the copy a product made of it, read as `[rows, last
/// dimension]` unpadded, or a new one (which such a product will find).
pub(crate) fn to_half(dev: &GpuDevice, t: &GpuTensor) -> Result<GpuHalf> {
    let cols = t.shape().dims().last().copied().unwrap_or(1);
    let stored = (t.shape().numel().checked_div(cols).unwrap_or(0), cols);
    let buf = if t.shape().numel() == 0 {
        Arc::new(dev.ctx.alloc(4)?)
    } else {
        f16_copy(dev, Source::f32(t), stored, stored)?
    };
    Ok(GpuHalf {
        buf,
        shape: t.shape().clone(),
        origin: (t.buf.loan(), dev.copies().generation()),
    })
}

/// The f32 values of `t` (exact).
pub(crate) fn half_to_f32(dev: &GpuDevice, t: &GpuHalf) -> Result<GpuTensor> {
    let out = dev.empty(t.shape().clone())?;
    let n = t.shape().numel();
    if n > 0 {
        // One word, two values, per invocation.
        run(
            dev,
            "half_to_f32",
            n,
            n.div_ceil(2),
            0,
            &[(0, &t.buf), (2, out.buf())],
        )?;
    }
    Ok(out)
}

/// `dy · act'(y)` with `y` read from its halves in the same pass.
pub(crate) fn activation_backward_half(
    dev: &GpuDevice,
    y: &GpuHalf,
    dy: &GpuTensor,
    act: Activation,
) -> Result<GpuTensor> {
    super::elementwise::check_backward("activation_backward_half", y.shape(), dy.shape(), act)?;
    let out = dev.empty(dy.shape().clone())?;
    let n = dy.shape().numel();
    if n > 0 {
        // Four values (two words of y) per invocation.
        let bindings = [(0, &*y.buf), (3, dy.buf()), (4, out.buf())];
        run(
            dev,
            "activation_backward_half",
            n,
            n.div_ceil(4),
            act.code(),
            &bindings,
        )?;
    }
    Ok(out)
}

/// Launches `entry` over `threads` invocations for `n` values.
fn run(
    dev: &GpuDevice,
    entry: &'static str,
    n: usize,
    threads: usize,
    op: u32,
    bindings: &[(u32, &crate::device::gpu::context::PooledBuffer)],
) -> Result<()> {
    let n = u32_of(entry, n)?;
    // One row of n: the padded size is the size.
    let params = PadParams {
        rows: 1,
        cols: n,
        rows_p: 1,
        cols_p: n,
    };
    let grid = dev.ctx.grid_1d(entry, threads)?;
    launch(
        dev,
        shader!("half"),
        entry,
        &[("OP", op as f64)],
        bindings,
        &params,
        grid,
    );
    Ok(())
}
