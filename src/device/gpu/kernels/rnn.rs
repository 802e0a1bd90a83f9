//! Launchers for shaders/rnn.wgsl: one dispatch per time step.

use super::{launch, u32_of};
use crate::device::gpu::{GpuDevice, GpuTensor};
use crate::device::{rnn_geom, same_shape, Tensor};
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

/// Invocations of the vec4 kernels: 4 batch rows × 4 hidden units each.
fn blocks(batch: usize, hidden: usize) -> usize {
    batch.div_ceil(4) * (hidden / 4)
}

fn params(op: &'static str, seq: &Shape, u: &Shape) -> Result<(usize, usize, usize, Params)> {
    let (t, b, h) = rnn_geom(seq, u)?;
    u32_of(op, seq.numel())?;
    let p = Params {
        t: 0,
        steps: t as u32,
        batch: b as u32,
        hidden: h as u32,
    };
    Ok((t, b, h, p))
}

pub(crate) fn forward(
    dev: &GpuDevice,
    xw: &GpuTensor,
    u: &GpuTensor,
    h0: &GpuTensor,
) -> Result<GpuTensor> {
    let (steps, b, h, p) = params("rnn_forward", xw.shape(), u.shape())?;
    same_shape("rnn_forward", h0.shape(), &Shape::new([b, h]))?;
    let hs = dev.empty(xw.shape().clone())?;
    let (entry, bindings, grid) = if h % 4 == 0 {
        let grid = dev
            .ctx
            .check_grid("rnn_forward", [blocks(b, h).div_ceil(64) as u32, 1, 1])?;
        (
            "rnn_step_forward4",
            [(5, xw.buf()), (6, u.buf()), (7, h0.buf()), (8, hs.buf())],
            grid,
        )
    } else {
        let grid = dev.ctx.grid_1d("rnn_forward", b * h)?;
        (
            "rnn_step_forward",
            [(0, xw.buf()), (1, u.buf()), (2, h0.buf()), (3, hs.buf())],
            grid,
        )
    };
    for t in 0..steps {
        let p = Params { t: t as u32, ..p };
        launch(dev, shader!("rnn"), entry, &[], &bindings, &p, grid);
    }
    Ok(hs)
}

pub(crate) fn backward(
    dev: &GpuDevice,
    h: &GpuTensor,
    u: &GpuTensor,
    dh: &GpuTensor,
) -> Result<(GpuTensor, GpuTensor)> {
    let (steps, b, hd, p) = params("rnn_backward", h.shape(), u.shape())?;
    same_shape("rnn_backward", h.shape(), dh.shape())?;
    let da = dev.empty(h.shape().clone())?;
    let dh0 = dev.empty([b, hd])?;
    let vec4 = hd % 4 == 0;
    let grid = if vec4 {
        dev.ctx
            .check_grid("rnn_backward", [blocks(b, hd).div_ceil(64) as u32, 1, 1])?
    } else {
        dev.ctx.grid_1d("rnn_backward", b * hd)?
    };
    let (step, step_bindings) = if vec4 {
        (
            "rnn_step_backward4",
            [(5, dh.buf()), (6, u.buf()), (7, h.buf()), (8, da.buf())],
        )
    } else {
        (
            "rnn_step_backward",
            [(0, dh.buf()), (1, u.buf()), (2, h.buf()), (3, da.buf())],
        )
    };
    for t in (0..steps).rev() {
        let p = Params { t: t as u32, ..p };
        launch(dev, shader!("rnn"), step, &[], &step_bindings, &p, grid);
    }
    let (initial, initial_bindings) = if vec4 {
        (
            "rnn_initial_grad4",
            [(6, u.buf()), (8, da.buf()), (9, dh0.buf())],
        )
    } else {
        (
            "rnn_initial_grad",
            [(1, u.buf()), (3, da.buf()), (4, dh0.buf())],
        )
    };
    launch(
        dev,
        shader!("rnn"),
        initial,
        &[],
        &initial_bindings,
        &p,
        grid,
    );
    Ok((da, dh0))
}
