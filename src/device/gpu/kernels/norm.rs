//! Launchers for shaders/norm.wgsl.

use super::{launch, u32_of};
use crate::device::gpu::{GpuDevice, GpuTensor};
use crate::device::{same_shape, Tensor};
use crate::error::{Error, Result};
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

fn params(op: &'static str, x: &GpuTensor, gammas: &[&GpuTensor], eps: f32) -> Result<Params> {
    let (rows, cols) = (x.shape().rows(), x.shape().row_len());
    for g in gammas {
        if g.shape().numel() != cols {
            return Err(Error::shape(
                op,
                format!("a parameter of {} for rows of {cols}", g.shape()),
            ));
        }
    }
    u32_of(op, x.shape().numel())?;
    Ok(Params {
        rows: u32_of(op, rows)?,
        cols: u32_of(op, cols)?,
        eps,
        _pad: 0,
    })
}

pub(crate) fn forward(
    dev: &GpuDevice,
    x: &GpuTensor,
    gamma: &GpuTensor,
    beta: &GpuTensor,
    eps: f32,
) -> Result<(GpuTensor, GpuTensor)> {
    let p = params("layer_norm", x, &[gamma, beta], eps)?;
    let y = dev.empty(x.shape().clone())?;
    let stats = dev.empty([x.shape().rows(), 2])?;
    let grid = dev.ctx.grid_1d("layer_norm", x.shape().rows())?;
    let bindings = [
        (0, x.buf()),
        (1, gamma.buf()),
        (2, beta.buf()),
        (3, stats.buf()),
        (4, y.buf()),
    ];
    launch(dev, shader!("norm"), "layer_norm", &[], &bindings, &p, grid);
    Ok((y, stats))
}

pub(crate) fn backward(
    dev: &GpuDevice,
    dy: &GpuTensor,
    x: &GpuTensor,
    stats: &GpuTensor,
    gamma: &GpuTensor,
) -> Result<(GpuTensor, GpuTensor, GpuTensor)> {
    same_shape("layer_norm_backward", x.shape(), dy.shape())?;
    let p = params("layer_norm_backward", x, &[gamma], 0.0)?;
    if stats.shape().numel() != 2 * x.shape().rows() {
        return Err(Error::shape(
            "layer_norm_backward",
            format!("statistics {} for {} rows", stats.shape(), x.shape().rows()),
        ));
    }
    let cols = x.shape().row_len();
    let dx = dev.empty(x.shape().clone())?;
    let (dgamma, dbeta) = (dev.empty([cols])?, dev.empty([cols])?);
    let grid = dev.ctx.grid_1d("layer_norm_dx", x.shape().rows())?;
    let bindings = [
        (0, x.buf()),
        (1, gamma.buf()),
        (2, dy.buf()),
        (3, stats.buf()),
        (4, dx.buf()),
    ];
    launch(
        dev,
        shader!("norm"),
        "layer_norm_dx",
        &[],
        &bindings,
        &p,
        grid,
    );
    let grid = dev.ctx.grid_1d("layer_norm_params", cols)?;
    let bindings = [
        (0, x.buf()),
        (2, dy.buf()),
        (3, stats.buf()),
        (4, dgamma.buf()),
        (5, dbeta.buf()),
    ];
    launch(
        dev,
        shader!("norm"),
        "layer_norm_params",
        &[],
        &bindings,
        &p,
        grid,
    );
    Ok((dx, dgamma, dbeta))
}
