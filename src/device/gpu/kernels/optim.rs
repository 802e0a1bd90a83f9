//! Launchers for shaders/optim.wgsl.

use super::{launch, u32_of};
use crate::device::gpu::context::PooledBuffer;
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

// ---- shaders/optim_many.wgsl: up to four tensors per dispatch -------------

/// Tensors per dispatch of the many-tensor kernels.
pub(crate) const SLOTS: usize = 4;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct ManyParams {
    end: [u32; 4],
    weight_decay: [f32; 4],
    decoupled_decay: [f32; 4],
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    correction1: f32,
    correction2: f32,
    // WGSL rounds the struct up to a multiple of 16 bytes.
    _pad: [f32; 2],
}

/// One tensor's update: the parameter, its gradient, the optimizer's state
/// tensors (none, the velocity, or Adam's two moments), its L2 and
/// decoupled decay.
pub(crate) struct Update<'a> {
    pub param: &'a GpuTensor,
    pub grad: &'a GpuTensor,
    pub state: Vec<&'a GpuTensor>,
    pub weight_decay: f32,
    pub decoupled_decay: f32,
}

/// Whether `entry` of optim_many.wgsl can run here: it binds the scale and
/// four tensors of `per_tensor` buffers each.
pub(crate) fn many_fits(dev: &GpuDevice, per_tensor: usize) -> bool {
    let needed = 1 + SLOTS * per_tensor;
    dev.ctx.limits.max_storage_buffers_per_shader_stage as usize >= needed
}

/// Records `entry` (`sgd_many`, `momentum_many`, `adam_many`) over up to
/// [`SLOTS`] updates, which share `shared`'s rates; slots left empty bind
/// spare buffers that nothing reads.
pub(crate) fn many(
    dev: &GpuDevice,
    entry: &'static str,
    updates: &[Update<'_>],
    scale: &GpuTensor,
    shared: &AdamStep,
) -> Result<()> {
    check_scale(scale)?;
    if updates.is_empty() || updates.len() > SLOTS {
        return Err(Error::shape(
            entry,
            format!("{} tensors in one dispatch (1 to {SLOTS})", updates.len()),
        ));
    }
    let states = updates[0].state.len();
    let mut p = ManyParams {
        lr: shared.lr,
        beta1: shared.beta1,
        beta2: shared.beta2,
        eps: shared.eps,
        ..Default::default()
    };
    (p.correction1, p.correction2) = shared.corrections();
    let mut total = 0usize;
    for (s, u) in updates.iter().enumerate() {
        same_shape(entry, u.param.shape(), u.grad.shape())?;
        if u.state.len() != states {
            return Err(Error::shape(entry, "tensors with different state"));
        }
        for t in &u.state {
            same_shape(entry, u.param.shape(), t.shape())?;
        }
        total += u.param.shape().numel().div_ceil(4);
        p.weight_decay[s] = u.weight_decay;
        p.decoupled_decay[s] = u.decoupled_decay;
    }
    let total32 = u32_of(entry, total)?;
    let mut ends = updates
        .iter()
        .scan(0u32, |end, u| {
            *end += u.param.shape().numel().div_ceil(4) as u32;
            Some(*end)
        })
        .collect::<Vec<_>>();
    ends.resize(SLOTS, total32);
    p.end.copy_from_slice(&ends);
    // Bindings: 0 the scale, 1–4 parameters, 5–8 gradients, 9–12 and
    // 13–16 the state tensors.
    let spares = (updates.len()..SLOTS)
        .map(|_| {
            (0..2 + states)
                .map(|_| dev.ctx.alloc(16))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let mut bindings = vec![(0, scale.buf())];
    for slot in 0..SLOTS {
        let bufs: Vec<&PooledBuffer> = match updates.get(slot) {
            Some(u) => [u.param, u.grad]
                .into_iter()
                .chain(u.state.iter().copied())
                .map(GpuTensor::buf)
                .collect(),
            None => spares[slot - updates.len()].iter().collect(),
        };
        for (kind, buf) in bufs.into_iter().enumerate() {
            bindings.push((1 + (kind * SLOTS + slot) as u32, buf));
        }
    }
    let grid = dev.ctx.grid_1d(entry, total)?;
    launch(dev, shader!("optim_many"), entry, &[], &bindings, &p, grid);
    Ok(())
}
