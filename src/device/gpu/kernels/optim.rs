//! Launchers for shaders/optim.wgsl.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{launch, u32_of};
use crate::device::gpu::context::{PooledBuffer, ShaderSource, WORKGROUP};
use crate::device::gpu::{GpuDevice, GpuTensor};
use crate::device::{same_shape, AdamStep, Device, LossScaleStep, Reduce, Tensor};
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
    dev.forget_copies();
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
    dev.forget_copies();
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
    dev.forget_copies();
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

/// See `Device::loss_scale_step`: one invocation reads the summed squares
/// and updates the scale and the count of good steps in place.
pub(crate) fn loss_scale_step(
    dev: &GpuDevice,
    sum_squares: &GpuTensor,
    scale: &mut GpuTensor,
    good_steps: &mut GpuTensor,
    step: &LossScaleStep,
) -> Result<GpuTensor> {
    dev.forget_copies();
    for t in [sum_squares, &*scale, &*good_steps] {
        check_scale(t)?;
    }
    let out = dev.empty([1])?;
    let p = Params {
        n: step.growth_interval,
        lr: step.max_norm.unwrap_or(0.0),
        ..Default::default()
    };
    launch(
        dev,
        shader!("optim"),
        "loss_scale_step",
        &[],
        &[
            (5, sum_squares.buf()),
            (6, out.buf()),
            (7, scale.buf()),
            (8, good_steps.buf()),
        ],
        &p,
        [1, 1, 1],
    );
    Ok(out)
}

// ---- shaders/optim_many.wgsl: many tensors per dispatch -------------------

/// Invocations per workgroup of optim_many.wgsl, and the vec4s each takes
/// (its `VEC4S`).
const WG: usize = WORKGROUP as usize;
const VEC4S: usize = 4;

/// Most tensors one many-tensor dispatch takes on any adapter: it bounds the
/// size of the generated module (a binding per role and tensor).
const MAX_SLOTS: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct ManyParams {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    correction1: f32,
    correction2: f32,
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

/// How many tensors of `per_tensor` storage bindings each one dispatch of
/// optim_many.wgsl takes here: the adapter's storage bindings per stage,
/// less the table and the scale (or the partial sums), at most
/// [`MAX_SLOTS`]. Below 2 the single-tensor kernels are used instead.
pub(crate) fn slots(dev: &GpuDevice, per_tensor: usize) -> usize {
    let bindings = dev.ctx.limits.max_storage_buffers_per_shader_stage as usize;
    (bindings.saturating_sub(2) / per_tensor.max(1)).min(MAX_SLOTS)
}

/// The module of `entry` over `slots` tensors: optim_many.wgsl completed as
/// its header says. Each (entry, count) pair is made once and kept for the
/// process, as the pipeline cache keys modules by a `'static` name; a
/// process meets a handful of counts (one per model's parameter count).
fn many_shader(entry: &'static str, slots: usize) -> Result<ShaderSource> {
    type Made = BTreeMap<(&'static str, usize), ShaderSource>;
    static MADE: Mutex<Made> = Mutex::new(BTreeMap::new());
    let mut made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(s) = made.get(&(entry, slots)) {
        return Ok(*s);
    }
    let base = shader!("optim_many");
    let tagged = |tag: &str| {
        let prefix = format!("// @{tag} {entry} ");
        let colon = format!("// @{tag} {entry}:");
        base.source.lines().find_map(|l| {
            l.strip_prefix(&prefix)
                .or_else(|| l.strip_prefix(&colon).map(|rest| rest.trim_start()))
        })
    };
    let (roles, statement) = tagged("slot")
        .and_then(|l| l.split_once(':'))
        .ok_or_else(|| Error::Gpu(format!("optim_many.wgsl has no @slot line for {entry}")))?;
    let start = tagged("start").unwrap_or("");
    let finish = tagged("finish").unwrap_or("");
    let mut src = format!("{}\nconst SLOTS: u32 = {slots}u;\n", base.source);
    for (r, role) in roles.split_whitespace().enumerate() {
        let access = if matches!(role, "g" | "x") {
            "read"
        } else {
            "read_write"
        };
        for s in 0..slots {
            let binding = 3 + r * slots + s;
            src += &format!(
                "@group(0) @binding({binding}) var<storage, {access}> {role}{s}: array<vec4<f32>>;\n"
            );
        }
    }
    let cases: String = (0..slots)
        .map(|s| {
            format!(
                "            case {s}u: {{ {} }}\n",
                statement.trim().replace('#', &s.to_string())
            )
        })
        .collect();
    src += &format!(
        "@compute @workgroup_size(256)
fn {entry}(@builtin(workgroup_id) wid: vec3<u32>,
           @builtin(local_invocation_index) lid: u32,
           @builtin(num_workgroups) nwg: vec3<u32>) {{
    {start}
    let group = wid.x + wid.y * nwg.x;
    let i = 256u * group + lid;
    let s = slot_of(group);
    let t = table[s];
    var acc = 0.0;
    for (var r = 0u; r < VEC4S; r++) {{
        let j = (group - t.first_group) * 256u * VEC4S + 256u * r + lid;
        if (j >= (t.len + 3u) / 4u) {{
            break;
        }}
        switch s {{
{cases}            default: {{}}
        }}
    }}
    {finish}
}}
"
    );
    let made_now = ShaderSource {
        name: Box::leak(format!("optim_many/{entry}/{slots}").into_boxed_str()),
        source: Box::leak(src.into_boxed_str()),
    };
    made.insert((entry, slots), made_now);
    Ok(made_now)
}

/// The parameter table of `tensors` (first workgroup, length, decays per
/// tensor; see optim_many.wgsl) and the workgroups they span, in a buffer
/// kept by the device for the next dispatch over the same tensors.
fn table(
    dev: &GpuDevice,
    op: &'static str,
    tensors: &[(&GpuTensor, f32, f32)],
) -> Result<(Arc<PooledBuffer>, u64)> {
    let mut rows: Vec<u32> = Vec::with_capacity(4 * tensors.len());
    let mut groups = 0u64;
    for (t, wd, dd) in tensors {
        let len = t.shape().numel();
        rows.extend([
            u32_of(op, groups as usize)?,
            u32_of(op, len)?,
            wd.to_bits(),
            dd.to_bits(),
        ]);
        groups += len.div_ceil(4).div_ceil(WG * VEC4S).max(1) as u64;
    }
    // Invocation indices stay 32-bit.
    u32_of(op, groups as usize * WG)?;
    Ok((dev.table(bytemuck::cast_slice(&rows))?, groups))
}

/// Records `entry` (`sgd_many`, `momentum_many`, `adam_many`) over
/// `updates` (at most [`slots`] of them), which share `shared`'s rates.
pub(crate) fn many(
    dev: &GpuDevice,
    entry: &'static str,
    updates: &[Update<'_>],
    scale: &GpuTensor,
    shared: &AdamStep,
) -> Result<()> {
    dev.forget_copies();
    check_scale(scale)?;
    let states = updates.first().map_or(0, |u| u.state.len());
    let n = updates.len();
    if n == 0 || n > slots(dev, 2 + states) {
        return Err(Error::shape(
            entry,
            format!(
                "{n} tensors in one dispatch (1 to {})",
                slots(dev, 2 + states)
            ),
        ));
    }
    let mut p = ManyParams {
        lr: shared.lr,
        beta1: shared.beta1,
        beta2: shared.beta2,
        eps: shared.eps,
        ..Default::default()
    };
    (p.correction1, p.correction2) = shared.corrections();
    for u in updates {
        same_shape(entry, u.param.shape(), u.grad.shape())?;
        if u.state.len() != states {
            return Err(Error::shape(entry, "tensors with different state"));
        }
        for t in &u.state {
            same_shape(entry, u.param.shape(), t.shape())?;
        }
    }
    let rows: Vec<_> = updates
        .iter()
        .map(|u| (u.param, u.weight_decay, u.decoupled_decay))
        .collect();
    let (table, groups) = table(dev, entry, &rows)?;
    // Bindings: 0 the table, 1 the scale, then per role (parameters,
    // gradients, the state tensors) one per tensor.
    let mut bindings = vec![(0, &*table), (1, scale.buf())];
    let roles = 2 + states;
    for (s, u) in updates.iter().enumerate() {
        let bufs = [u.param, u.grad].into_iter().chain(u.state.iter().copied());
        for (r, t) in bufs.enumerate() {
            bindings.push(((3 + r * n + s) as u32, t.buf()));
        }
    }
    debug_assert_eq!(bindings.len(), 2 + roles * n);
    let grid = dev.ctx.grid_groups(entry, groups)?;
    launch(dev, many_shader(entry, n)?, entry, &[], &bindings, &p, grid);
    Ok(())
}

/// `Σ x²` over every element of `tensors` (at most [`slots`]`(dev, 1)` of
/// them): one dispatch writes a partial sum per invocation, which the
/// whole-tensor sum then reduces.
pub(crate) fn sum_squares_many(dev: &GpuDevice, tensors: &[&GpuTensor]) -> Result<GpuTensor> {
    const OP: &str = "sum_squares_many";
    let n = tensors.len();
    if n == 0 || n > slots(dev, 1) {
        return Err(Error::shape(
            OP,
            format!("{n} tensors in one dispatch (1 to {})", slots(dev, 1)),
        ));
    }
    let rows: Vec<_> = tensors.iter().map(|&t| (t, 0.0, 0.0)).collect();
    let (table, groups) = table(dev, OP, &rows)?;
    let partial = dev.empty([groups as usize * WG])?;
    let mut bindings = vec![(0, &*table), (2, partial.buf())];
    for (s, t) in tensors.iter().enumerate() {
        bindings.push(((3 + s) as u32, t.buf()));
    }
    let grid = dev.ctx.grid_groups(OP, groups)?;
    launch(
        dev,
        many_shader(OP, n)?,
        OP,
        &[],
        &bindings,
        &ManyParams::default(),
        grid,
    );
    dev.reduce(&partial, Reduce::Sum)
}
