//! Launchers for shaders/optim.wgsl.

use super::{launch, u32_of};
use crate::device::gpu::{GpuDevice, GpuTensor};
use crate::device::{same_shape, AdamStep, Tensor};
use crate::error::{Error, Result};
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    lr: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    correction1: f32,
    correction2: f32,
    decoupled_decay: f32,
}

fn check_scale(scale: &GpuTensor) -> Result<()> {
    if scale.shape().numel() == 1 {
        Ok(())
    } else {
        Err(Error::shape(
            "optimizer",
            format!("gradient scale must be [1], got {}", scale.shape()),
        ))
    }
}

pub(crate) fn sgd(
    dev: &GpuDevice,
    param: &mut GpuTensor,
    grad: &GpuTensor,
    scale: &GpuTensor,
    lr: f32,
    weight_decay: f32,
) -> Result<()> {
    same_shape("sgd_update", param.shape(), grad.shape())?;
    check_scale(scale)?;
    let n = param.shape().numel();
    let p = Params {
        n: u32_of("sgd_update", n.div_ceil(4))?,
        lr,
        weight_decay,
        ..Default::default()
    };
    let grid = dev.ctx.grid_1d("sgd_update", n.div_ceil(4))?;
    launch(
        dev,
        shader!("optim"),
        "sgd_update",
        &[],
        &[(0, grad.buf()), (1, scale.buf()), (2, param.buf())],
        &p,
        grid,
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn momentum(
    dev: &GpuDevice,
    param: &mut GpuTensor,
    velocity: &mut GpuTensor,
    grad: &GpuTensor,
    scale: &GpuTensor,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
) -> Result<()> {
    same_shape("momentum_update", param.shape(), grad.shape())?;
    same_shape("momentum_update", param.shape(), velocity.shape())?;
    check_scale(scale)?;
    let n = param.shape().numel();
    let p = Params {
        n: u32_of("momentum_update", n.div_ceil(4))?,
        lr,
        weight_decay,
        beta1: momentum,
        ..Default::default()
    };
    let grid = dev.ctx.grid_1d("momentum_update", n.div_ceil(4))?;
    launch(
        dev,
        shader!("optim"),
        "momentum_update",
        &[],
        &[
            (0, grad.buf()),
            (1, scale.buf()),
            (2, param.buf()),
            (3, velocity.buf()),
        ],
        &p,
        grid,
    );
    Ok(())
}

pub(crate) fn adam(
    dev: &GpuDevice,
    param: &mut GpuTensor,
    m: &mut GpuTensor,
    v: &mut GpuTensor,
    grad: &GpuTensor,
    scale: &GpuTensor,
    hp: &AdamStep,
) -> Result<()> {
    same_shape("adam_update", param.shape(), grad.shape())?;
    same_shape("adam_update", param.shape(), m.shape())?;
    same_shape("adam_update", param.shape(), v.shape())?;
    check_scale(scale)?;
    let n = param.shape().numel();
    let (correction1, correction2) = hp.corrections();
    let p = Params {
        n: u32_of("adam_update", n.div_ceil(4))?,
        lr: hp.lr,
        weight_decay: hp.weight_decay,
        beta1: hp.beta1,
        beta2: hp.beta2,
        eps: hp.eps,
        correction1,
        correction2,
        decoupled_decay: hp.decoupled_decay,
    };
    let grid = dev.ctx.grid_1d("adam_update", n.div_ceil(4))?;
    launch(
        dev,
        shader!("optim"),
        "adam_update",
        &[],
        &[
            (0, grad.buf()),
            (1, scale.buf()),
            (2, param.buf()),
            (3, m.buf()),
            (4, v.buf()),
        ],
        &p,
        grid,
    );
    Ok(())
}

pub(crate) fn clip_factor(
    dev: &GpuDevice,
    sum_squares: &GpuTensor,
    max_norm: f32,
) -> Result<GpuTensor> {
    check_scale(sum_squares)?;
    let out = dev.empty([1])?;
    let p = Params {
        n: 1,
        lr: max_norm,
        ..Default::default()
    };
    launch(
        dev,
        shader!("optim"),
        "clip_factor",
        &[],
        &[(5, sum_squares.buf()), (6, out.buf())],
        &p,
        [1, 1, 1],
    );
    Ok(out)
}
