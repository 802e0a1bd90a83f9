//! Launchers for shaders/gated.wgsl: LSTM and GRU, one fused dispatch per
//! time step, each invocation one hidden unit of four batch rows.

use super::{launch, u32_of};
use crate::device::gpu::context::PooledBuffer;
use crate::device::gpu::{GpuDevice, GpuTensor};
use crate::device::{gated_geom, gru_backward_geom, same_shape, Tensor};
use crate::error::Result;
use crate::shader;
use crate::tensor::Shape;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    t: u32,
    steps: u32,
    batch: u32,
    hidden: u32,
}

/// Records `entry` once per step, in `steps` order: one invocation per
/// (batch row, hidden unit).
fn per_step(
    dev: &GpuDevice,
    op: &'static str,
    entry: &'static str,
    (t, b, h): (usize, usize, usize),
    steps: impl Iterator<Item = usize>,
    bindings: &[(u32, &PooledBuffer)],
) -> Result<()> {
    // The largest tensor a kernel indexes: the [T,B,4H] gates.
    u32_of(op, t * b * 4 * h)?;
    // One invocation per hidden unit of four batch rows, 64 to a workgroup.
    let invocations = u32_of(op, b.div_ceil(4) * h)?;
    let grid = dev.ctx.check_grid(op, [invocations.div_ceil(64), 1, 1])?;
    let p = Params {
        t: 0,
        steps: t as u32,
        batch: b as u32,
        hidden: h as u32,
    };
    for step in steps {
        let p = Params {
            t: step as u32,
            ..p
        };
        launch(dev, shader!("gated"), entry, &[], bindings, &p, grid);
    }
    Ok(())
}

pub(crate) fn lstm_forward(
    dev: &GpuDevice,
    xw: &GpuTensor,
    u: &GpuTensor,
    h0: &GpuTensor,
    c0: &GpuTensor,
) -> Result<(GpuTensor, GpuTensor, GpuTensor)> {
    let (t, b, h) = gated_geom("lstm_forward", xw.shape(), u.shape(), 4)?;
    same_shape("lstm_forward", h0.shape(), &Shape::new([b, h]))?;
    same_shape("lstm_forward", c0.shape(), &Shape::new([b, h]))?;
    let hs = dev.empty([t, b, h])?;
    let cs = dev.empty([t, b, h])?;
    let gates = dev.empty(xw.shape().clone())?;
    let bindings = [
        (0, xw.buf()),
        (1, u.buf()),
        (2, h0.buf()),
        (3, c0.buf()),
        (4, hs.buf()),
        (5, cs.buf()),
        (6, gates.buf()),
    ];
    per_step(
        dev,
        "lstm_forward",
        "lstm_step_forward",
        (t, b, h),
        0..t,
        &bindings,
    )?;
    Ok((hs, cs, gates))
}

pub(crate) fn lstm_backward(
    dev: &GpuDevice,
    gates: &GpuTensor,
    c: &GpuTensor,
    c0: &GpuTensor,
    u: &GpuTensor,
    dh: &GpuTensor,
) -> Result<GpuTensor> {
    let (t, b, h) = gated_geom("lstm_backward", gates.shape(), u.shape(), 4)?;
    same_shape("lstm_backward", c.shape(), &Shape::new([t, b, h]))?;
    same_shape("lstm_backward", dh.shape(), &Shape::new([t, b, h]))?;
    same_shape("lstm_backward", c0.shape(), &Shape::new([b, h]))?;
    let da = dev.empty(gates.shape().clone())?;
    let carry = dev.empty([b, h])?;
    let bindings = [
        (7, dh.buf()),
        (1, u.buf()),
        (3, c0.buf()),
        (5, c.buf()),
        (6, gates.buf()),
        (8, da.buf()),
        (9, carry.buf()),
    ];
    let steps = (0..t).rev();
    per_step(
        dev,
        "lstm_backward",
        "lstm_step_backward",
        (t, b, h),
        steps,
        &bindings,
    )?;
    Ok(da)
}

pub(crate) fn gru_forward(
    dev: &GpuDevice,
    xw: &GpuTensor,
    u: &GpuTensor,
    ub: &GpuTensor,
    h0: &GpuTensor,
) -> Result<(GpuTensor, GpuTensor)> {
    let (t, b, h) = gated_geom("gru_forward", xw.shape(), u.shape(), 3)?;
    same_shape("gru_forward", h0.shape(), &Shape::new([b, h]))?;
    same_shape("gru_forward", ub.shape(), &Shape::new([3 * h]))?;
    let hs = dev.empty([t, b, h])?;
    let gates = dev.empty([t, b, 4 * h])?;
    let bindings = [
        (0, xw.buf()),
        (1, u.buf()),
        (2, h0.buf()),
        (10, ub.buf()),
        (4, hs.buf()),
        (6, gates.buf()),
    ];
    per_step(
        dev,
        "gru_forward",
        "gru_step_forward",
        (t, b, h),
        0..t,
        &bindings,
    )?;
    Ok((hs, gates))
}

pub(crate) fn gru_backward(
    dev: &GpuDevice,
    gates: &GpuTensor,
    h_prev: &GpuTensor,
    u: &GpuTensor,
    dh: &GpuTensor,
) -> Result<(GpuTensor, GpuTensor)> {
    let (t, b, h) = gru_backward_geom(gates.shape(), h_prev.shape(), u.shape(), dh.shape())?;
    let dxw = dev.empty([t, b, 3 * h])?;
    let dhu = dev.empty([t, b, 3 * h])?;
    let carry = dev.empty([b, h])?;
    let bindings = [
        (7, dh.buf()),
        (1, u.buf()),
        (6, gates.buf()),
        (11, h_prev.buf()),
        (12, dxw.buf()),
        (8, dhu.buf()),
        (9, carry.buf()),
    ];
    let steps = (0..t).rev();
    per_step(
        dev,
        "gru_backward",
        "gru_step_backward",
        (t, b, h),
        steps,
        &bindings,
    )?;
    Ok((dxw, dhu))
}
