//! Launchers for shaders/half.wgsl: tensors kept in f16 (`Device::Half`).
//! Its `pad_half` is launched from matmul.rs, with the other operand copies.

use std::sync::Arc;

use super::matmul::{f16_copy, f16_copy_key, PadParams, Source};
use super::{launch, u32_of};
use crate::device::gpu::context::PooledBuffer;
use crate::device::gpu::{GpuDevice, GpuHalf, GpuTensor};
use crate::device::{Activation, Tensor};
use crate::error::Result;
use crate::shader;

/// `t` in f16: the copy a product (or an activation's pass) made of it,
/// read as `[rows, last dimension]` unpadded, or a new one (which such a
/// product will find).
pub(crate) fn to_half(dev: &GpuDevice, t: &GpuTensor) -> Result<GpuHalf> {
    let stored = stored_as(t);
    let buf = if t.shape().numel() == 0 {
        Arc::new(dev.ctx.alloc(4)?)
    } else {
        f16_copy(dev, Source::f32(t), stored, stored)?
    };
    Ok(half_of(dev, t, buf))
}

/// `t` as a product reads it unpadded: `[rows, last dimension]`.
fn stored_as(t: &GpuTensor) -> (usize, usize) {
    let cols = t.shape().dims().last().copied().unwrap_or(1);
    (t.shape().numel().checked_div(cols).unwrap_or(0), cols)
}

/// `buf`, the f16 copy of `t`, as a kept half.
fn half_of(dev: &GpuDevice, t: &GpuTensor, buf: Arc<PooledBuffer>) -> GpuHalf {
    GpuHalf {
        buf,
        shape: t.shape().clone(),
        origin: (t.buf.loan(), dev.copies().generation()),
    }
}

/// `act(x)` and the f16 copy of the tensor an activation layer keeps (`x`
/// where `act` [`Activation::keeps_input`], else the output), written in
/// one pass: the same values as `activation` then `to_half`, and the copy
/// is kept where `to_half` keeps its own, so a product reading the kept
/// tensor finds it.
pub(crate) fn activation_keeping_half(
    dev: &GpuDevice,
    x: &GpuTensor,
    act: Activation,
) -> Result<(GpuTensor, GpuHalf)> {
    let keep_input = act.keeps_input();
    let n = x.shape().numel();
    if keep_input {
        // A copy of the input kept before (by a product, or a layer that
        // kept it): only the activation is left to compute.
        let stored = stored_as(x);
        let key = f16_copy_key(dev, &Source::f32(x), stored, stored);
        // (Its own statement: the lock on the copies must be let go before
        // `half_of` takes it again.)
        let found = dev.copies().get(&key);
        if let Some(buf) = found {
            let y = super::elementwise::activation(dev, x, act)?;
            return Ok((y, half_of(dev, x, buf)));
        }
    }
    let y = dev.empty(x.shape().clone())?;
    let kept = if keep_input { x } else { &y };
    if n == 0 {
        let half = to_half(dev, kept)?;
        return Ok((y, half));
    }
    // Two words per invocation, which writes a whole vec4 of y.
    let dst = dev.ctx.alloc(n.div_ceil(4) as u64 * 8)?;
    let bindings = [(1, &dst), (3, x.buf()), (4, y.buf())];
    let constants = [
        ("OP", act.code() as f64),
        ("KEEP_INPUT", keep_input as u8 as f64),
    ];
    let entry = "activation_keeping_half";
    run(dev, entry, n, n.div_ceil(4), &constants, &bindings)?;
    let buf = Arc::new(dst);
    let stored = stored_as(kept);
    let key = f16_copy_key(dev, &Source::f32(kept), stored, stored);
    dev.copies().insert(key, buf.clone());
    let half = half_of(dev, kept, buf);
    Ok((y, half))
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
            &[],
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
            &[("OP", act.code() as f64)],
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
    constants: &[(&'static str, f64)],
    bindings: &[(u32, &PooledBuffer)],
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
        shader!("half", "f16_bits"),
        entry,
        constants,
        bindings,
        &params,
        grid,
    );
    Ok(())
}
