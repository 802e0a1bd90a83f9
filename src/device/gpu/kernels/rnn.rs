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
    let grid = dev.ctx.grid_1d("rnn_forward", b * h)?;
    for t in 0..steps {
        launch(
            dev,
            shader!("rnn"),
            "rnn_step_forward",
            &[],
            &[(0, xw.buf()), (1, u.buf()), (2, h0.buf()), (3, hs.buf())],
            &Params { t: t as u32, ..p },
            grid,
        );
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
    let grid = dev.ctx.grid_1d("rnn_backward", b * hd)?;
    for t in (0..steps).rev() {
        launch(
            dev,
            shader!("rnn"),
            "rnn_step_backward",
            &[],
            &[(0, dh.buf()), (1, u.buf()), (2, h.buf()), (3, da.buf())],
            &Params { t: t as u32, ..p },
            grid,
        );
    }
    launch(
        dev,
        shader!("rnn"),
        "rnn_initial_grad",
        &[],
        &[(1, u.buf()), (3, da.buf()), (4, dh0.buf())],
        &p,
        grid,
    );
    Ok((da, dh0))
}
