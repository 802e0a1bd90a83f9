//! Launchers for shaders/batchnorm.wgsl.

use super::{launch, u32_of};
use crate::device::gpu::{GpuDevice, GpuTensor};
use crate::device::{channel_geom, same_shape, Tensor};
use crate::error::Result;
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    c: u32,
    s: u32,
    eps: f32,
}

fn params(
    op: &'static str,
    x: &GpuTensor,
    (n, c, s): (usize, usize, usize),
    eps: f32,
) -> Result<Params> {
    u32_of(op, x.shape().numel())?;
    Ok(Params {
        n: n as u32,
        c: c as u32,
        s: s as u32,
        eps,
    })
}

/// One workgroup per channel.
fn per_channel(dev: &GpuDevice, op: &'static str, c: usize) -> Result<[u32; 3]> {
    dev.ctx.check_grid(op, [u32_of(op, c)?, 1, 1])
}

pub(crate) fn channel_stats(dev: &GpuDevice, x: &GpuTensor) -> Result<GpuTensor> {
    let geom = channel_geom("channel_stats", x.shape(), None, &[])?;
    let p = params("channel_stats", x, geom, 0.0)?;
    let stats = dev.empty([2, geom.1])?;
    let grid = per_channel(dev, "channel_stats", geom.1)?;
    let bindings = [(0, x.buf()), (3, stats.buf())];
    launch(
        dev,
        shader!("batchnorm"),
        "bn_stats",
        &[],
        &bindings,
        &p,
        grid,
    );
    Ok(stats)
}

pub(crate) fn batch_norm(
    dev: &GpuDevice,
    x: &GpuTensor,
    stats: &GpuTensor,
    gamma: &GpuTensor,
    beta: &GpuTensor,
    eps: f32,
) -> Result<GpuTensor> {
    let geom = channel_geom(
        "batch_norm",
        x.shape(),
        Some(stats.shape()),
        &[gamma.shape(), beta.shape()],
    )?;
    let p = params("batch_norm", x, geom, eps)?;
    let y = dev.empty(x.shape().clone())?;
    let grid = dev.ctx.grid_1d("batch_norm", x.shape().numel())?;
    let bindings = [
        (0, x.buf()),
        (1, gamma.buf()),
        (2, beta.buf()),
        (3, stats.buf()),
        (4, y.buf()),
    ];
    launch(
        dev,
        shader!("batchnorm"),
        "bn_apply",
        &[],
        &bindings,
        &p,
        grid,
    );
    Ok(y)
}

pub(crate) fn batch_norm_backward(
    dev: &GpuDevice,
    dy: &GpuTensor,
    x: &GpuTensor,
    stats: &GpuTensor,
    gamma: &GpuTensor,
    eps: f32,
) -> Result<(GpuTensor, GpuTensor, GpuTensor)> {
    same_shape("batch_norm_backward", x.shape(), dy.shape())?;
    let geom = channel_geom(
        "batch_norm_backward",
        x.shape(),
        Some(stats.shape()),
        &[gamma.shape()],
    )?;
    let p = params("batch_norm_backward", x, geom, eps)?;
    let c = geom.1;
    let (dgamma, dbeta) = (dev.empty([c])?, dev.empty([c])?);
    let grid = per_channel(dev, "batch_norm_backward", c)?;
    let bindings = [
        (0, x.buf()),
        (2, dy.buf()),
        (3, stats.buf()),
        (4, dgamma.buf()),
        (5, dbeta.buf()),
    ];
    launch(
        dev,
        shader!("batchnorm"),
        "bn_grad_sums",
        &[],
        &bindings,
        &p,
        grid,
    );
    let dx = dev.empty(x.shape().clone())?;
    let grid = dev.ctx.grid_1d("batch_norm_backward", x.shape().numel())?;
    let bindings = [
        (0, x.buf()),
        (1, gamma.buf()),
        (2, dy.buf()),
        (3, stats.buf()),
        (4, dx.buf()),
        (6, dgamma.buf()),
        (7, dbeta.buf()),
    ];
    launch(dev, shader!("batchnorm"), "bn_dx", &[], &bindings, &p, grid);
    Ok((dx, dgamma, dbeta))
}
