//! Launchers for shaders/rnn.wgsl. A time step runs one of three ways
//! (`tune::RnnVariant`): one fused dispatch, or the step's product through
//! the matmul kernels, finished in the product's epilogue (batch and hidden
//! size multiples of 4, the batch at least 8) or by a second dispatch, or
//! (hidden sizes multiples of 4) within one dispatch for the whole pass.
//! The tuner times them per batch and hidden size, as it does the matmul
//! kernels.

use super::matmul::{matmul, matmul_step, takes_step, Step};
use super::{launch, u32_of};
use crate::device::gpu::context::PooledBuffer;
use crate::device::gpu::tune::{rnn_class, RnnVariant};
use crate::device::gpu::{GpuDevice, GpuTensor};
use crate::device::{rnn_geom, same_shape, Activation, Device, MatmulSpec, Precision, Tensor};
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
    /// Steps of one `Sequence` dispatch (from `t`).
    count: u32,
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
        count: 0,
    };
    Ok((t, b, h, p))
}

/// The way to run pass `pass` (`fwd`, `bwd`) of a recurrence of cell `cell`
/// (`rnn`, `lstm`, `gru`), batch `b` and hidden size `h`, whose cell has
/// (`sequence`) or has not a whole-pass kernel at that size: the forced
/// one ([`GpuDevice::with_rnn_kernel`]; `Fused` for `Sequence` where there
/// is none), else the fastest as the tuner timed `run` (the whole pass, on
/// these operands, on an idle GPU) among [`RnnVariant::candidates`] (the
/// only one, untimed, where there is one), else (tuning off) the fixed
/// rule ([`GpuDevice::rnn_kernel`]).
pub(super) fn choose(
    dev: &GpuDevice,
    (cell, pass): (&str, &str),
    (b, h): (usize, usize),
    sequence: bool,
    run: impl Fn(RnnVariant) -> Result<()>,
) -> Result<RnnVariant> {
    if let Some(v) = dev.rnn_forced {
        return Ok(if v == RnnVariant::Sequence && !sequence {
            RnnVariant::Fused
        } else {
            v
        });
    }
    let Some(tuner) = &dev.tuner else {
        return Ok(dev.rnn_kernel());
    };
    let hardware = !matches!(dev.ctx.info.device_type, wgpu::DeviceType::Cpu);
    let candidates = RnnVariant::candidates(cell != "rnn", sequence, hardware);
    if let [only] = candidates {
        return Ok(*only);
    }
    tuner.choose(&rnn_class(cell, pass, b, h), candidates, |v| {
        crate::device::gpu::tune::time_launch(&dev.ctx, || run(v))
    })
}

/// Whether the Elman cell has a whole-pass kernel at hidden size `h`
/// (the vec4 blocks need a multiple of 4).
fn has_sequence(h: usize) -> bool {
    h > 0 && h.is_multiple_of(4)
}

/// The grid and `SEQ_ROW_BLOCKS` of a `Sequence` dispatch for batch `b`,
/// where each block of 4 batch rows is `items` work items (4×4 blocks of
/// the Elman cell, units of a gated cell): workgroups of 64 invocations,
/// each taking as many blocks of rows as gives one item per invocation
/// (at least one block of rows).
pub(super) fn sequence_grid(
    dev: &GpuDevice,
    op: &'static str,
    b: usize,
    items: usize,
) -> Result<([u32; 3], usize)> {
    let row_blocks = (64 / items.max(1)).max(1);
    let groups = b.div_ceil(4).div_ceil(row_blocks);
    let grid = dev.ctx.check_grid(op, [u32_of(op, groups)?, 1, 1])?;
    Ok((grid, row_blocks))
}

/// The dispatches of a `Sequence` pass over `steps` steps, as (first step,
/// steps) with at most [`RnnVariant::SEQUENCE_STEPS`] each: upwards from
/// step 0, or (`backward`) downwards from the last, each dispatch's first
/// step its highest.
pub(super) fn sequence_chunks(
    steps: usize,
    backward: bool,
) -> impl Iterator<Item = (usize, usize)> {
    (0..steps)
        .step_by(RnnVariant::SEQUENCE_STEPS)
        .map(move |done| {
            let count = RnnVariant::SEQUENCE_STEPS.min(steps - done);
            (if backward { steps - 1 - done } else { done }, count)
        })
}

/// Records the `Sequence` kernel `entry` over `steps` steps, up to
/// [`RnnVariant::SEQUENCE_STEPS`] per dispatch, upwards from step 0 or
/// (`backward`) downwards from the last.
fn sequence_pass(
    dev: &GpuDevice,
    (entry, backward): (&'static str, bool),
    bindings: &[(u32, &PooledBuffer)],
    steps: usize,
    p: Params,
) -> Result<()> {
    let (grid, row_blocks) = sequence_grid(dev, "rnn", p.batch as usize, p.hidden as usize / 4)?;
    let constants = [("SEQ_ROW_BLOCKS", row_blocks as f64)];
    for (first, count) in sequence_chunks(steps, backward) {
        let p = Params {
            t: first as u32,
            count: count as u32,
            ..p
        };
        launch(dev, shader!("rnn"), entry, &constants, bindings, &p, grid);
    }
    Ok(())
}

/// The forward pass by `rnn_seq_forward4`.
fn forward_sequence(
    dev: &GpuDevice,
    (xw, u, h0, hs): (&GpuTensor, &GpuTensor, &GpuTensor, &GpuTensor),
    steps: usize,
    p: Params,
) -> Result<()> {
    let bindings = [(5, xw.buf()), (6, u.buf()), (7, h0.buf()), (8, hs.buf())];
    sequence_pass(dev, ("rnn_seq_forward4", false), &bindings, steps, p)
}

/// The backward pass by `rnn_seq_backward4`, which also makes `dh0` in
/// the dispatch that reaches step 0; returns `dh0`.
fn backward_sequence(
    dev: &GpuDevice,
    (h, u, dh, da): (&GpuTensor, &GpuTensor, &GpuTensor, &GpuTensor),
    steps: usize,
    p: Params,
) -> Result<GpuTensor> {
    let (b, hd) = (p.batch as usize, p.hidden as usize);
    if steps == 0 {
        return dev.zeros([b, hd]);
    }
    let dh0 = dev.empty([b, hd])?;
    let bindings = [
        (5, dh.buf()),
        (6, u.buf()),
        (7, h.buf()),
        (8, da.buf()),
        (9, dh0.buf()),
    ];
    sequence_pass(dev, ("rnn_seq_backward4", true), &bindings, steps, p)?;
    Ok(dh0)
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
    let run = |v: RnnVariant| match v {
        RnnVariant::Fused => forward_fused(dev, (xw, u, h0, &hs), steps, p),
        RnnVariant::Matmul => forward_by_matmul(dev, (xw, u, h0, &hs), steps, p),
        RnnVariant::Sequence => forward_sequence(dev, (xw, u, h0, &hs), steps, p),
    };
    run(choose(
        dev,
        ("rnn", "fwd"),
        (b, h),
        h.is_multiple_of(4),
        run,
    )?)?;
    Ok(hs)
}

/// The forward pass one fused dispatch per step.
fn forward_fused(
    dev: &GpuDevice,
    (xw, u, h0, hs): (&GpuTensor, &GpuTensor, &GpuTensor, &GpuTensor),
    steps: usize,
    p: Params,
) -> Result<()> {
    let (b, h) = (p.batch as usize, p.hidden as usize);
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
    Ok(())
}

/// `dev` with f32 products: the recurrence stays f32 under
/// `Precision::F16`, whichever way its steps run (see `Precision`).
pub(super) fn f32_products(dev: &GpuDevice) -> GpuDevice {
    GpuDevice {
        precision: Precision::F32,
        ..dev.clone()
    }
}

/// A kernel that finishes a step, its grid, and the binding slots of what
/// it reads and writes.
struct Finish {
    entry: &'static str,
    grid: [u32; 3],
    /// The step input: `xw`, or `dh` backward.
    input: u32,
    /// `h` (backward only).
    h: u32,
    /// The output over all steps: `hs`, or `da`.
    all: u32,
    /// The step's product.
    z: u32,
    /// The step's own output, the next step's product's operand.
    state: u32,
}

/// The kernel that finishes a step of B·H = `bh` elements: `scalar`, one
/// invocation per element, or where `bh` is a multiple of 4 `vec4`, four
/// elements an invocation (through the vec4 views of the same buffers).
fn finish(
    dev: &GpuDevice,
    (scalar, vec4): (&'static str, &'static str),
    bh: usize,
) -> Result<Finish> {
    Ok(if bh.is_multiple_of(4) {
        Finish {
            entry: vec4,
            grid: dev.ctx.grid_1d(vec4, bh / 4)?,
            input: 5,
            h: 7,
            all: 8,
            z: 12,
            state: 13,
        }
    } else {
        Finish {
            entry: scalar,
            grid: dev.ctx.grid_1d(scalar, bh)?,
            input: 0,
            h: 2,
            all: 3,
            z: 10,
            state: 11,
        }
    })
}

/// The forward pass with each step's product `h_{t-1}·U` through the
/// matmul kernels: with the step's sum and tanh in the product's epilogue
/// ([`matmul_step`]) where [`takes_step`] (sizes multiples of 4, the batch
/// at least 8), else finished by `rnn_finish_forward`.
fn forward_by_matmul(
    dev: &GpuDevice,
    (xw, u, h0, hs): (&GpuTensor, &GpuTensor, &GpuTensor, &GpuTensor),
    steps: usize,
    p: Params,
) -> Result<()> {
    let (b, h) = (p.batch as usize, p.hidden as usize);
    let f32_dev = f32_products(dev);
    let mut state = h0.clone();
    if takes_step(b, h, h) {
        // The step's sum and tanh in the product's own epilogue: one
        // dispatch a step.
        let spec = MatmulSpec::NN.with_act(Activation::Tanh);
        for t in 0..steps {
            let step = Step {
                at: t * b * h,
                add: xw,
                dtanh: None,
                copy: hs,
            };
            state = matmul_step(&f32_dev, &state, u, spec, step)?;
        }
        return Ok(());
    }
    let entries = ("rnn_finish_forward", "rnn_finish_forward4");
    let f = finish(dev, entries, b * h)?;
    for t in 0..steps {
        let z = matmul(&f32_dev, &state, u, None, MatmulSpec::NN)?;
        let next = dev.empty([b, h])?;
        let bindings = [
            (f.input, xw.buf()),
            (f.all, hs.buf()),
            (f.z, z.buf()),
            (f.state, next.buf()),
        ];
        let p = Params { t: t as u32, ..p };
        launch(dev, shader!("rnn"), f.entry, &[], &bindings, &p, f.grid);
        state = next;
    }
    Ok(())
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
    let run = |v: RnnVariant| match v {
        RnnVariant::Fused => backward_fused(dev, (h, u, dh, &da), steps, p),
        RnnVariant::Matmul => backward_by_matmul(dev, (h, u, dh, &da), steps, p),
        RnnVariant::Sequence => backward_sequence(dev, (h, u, dh, &da), steps, p),
    };
    let chosen = choose(dev, ("rnn", "bwd"), (b, hd), has_sequence(hd), |v| {
        run(v).map(drop)
    })?;
    let dh0 = run(chosen)?;
    Ok((da, dh0))
}

/// The backward pass one fused dispatch per step; returns `dh0`.
fn backward_fused(
    dev: &GpuDevice,
    (h, u, dh, da): (&GpuTensor, &GpuTensor, &GpuTensor, &GpuTensor),
    steps: usize,
    p: Params,
) -> Result<GpuTensor> {
    let (b, hd) = (p.batch as usize, p.hidden as usize);
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
    Ok(dh0)
}

/// The backward pass with each step's product `da_{t+1}·Uᵀ` through the
/// matmul kernels: with the step's sum and tanh derivative in the
/// product's epilogue ([`matmul_step`]) where [`takes_step`], else
/// finished by `rnn_finish_backward` (the last step, which has no
/// product, always is); returns `dh0 = da_0·Uᵀ`.
fn backward_by_matmul(
    dev: &GpuDevice,
    (h, u, dh, da): (&GpuTensor, &GpuTensor, &GpuTensor, &GpuTensor),
    steps: usize,
    p: Params,
) -> Result<GpuTensor> {
    let (b, hd) = (p.batch as usize, p.hidden as usize);
    let entries = ("rnn_finish_backward", "rnn_finish_backward4");
    let f = finish(dev, entries, b * hd)?;
    let f32_dev = f32_products(dev);
    let fused = takes_step(b, hd, hd);
    let mut state: Option<GpuTensor> = None;
    for t in (0..steps).rev() {
        if fused {
            if let Some(next_da) = &state {
                // The step's sum and tanh derivative in the product's
                // epilogue.
                let step = Step {
                    at: t * b * hd,
                    add: dh,
                    dtanh: Some(h),
                    copy: da,
                };
                state = Some(matmul_step(&f32_dev, next_da, u, MatmulSpec::NT, step)?);
                continue;
            }
        }
        let z = match &state {
            Some(next_da) => Some(matmul(&f32_dev, next_da, u, None, MatmulSpec::NT)?),
            None => None,
        };
        let da_t = dev.empty([b, hd])?;
        // At the last step there is no product, and the kernel reads none:
        // dh stands in for it.
        let bindings = [
            (f.input, dh.buf()),
            (f.h, h.buf()),
            (f.all, da.buf()),
            (f.z, z.as_ref().unwrap_or(dh).buf()),
            (f.state, da_t.buf()),
        ];
        let p = Params { t: t as u32, ..p };
        launch(dev, shader!("rnn"), f.entry, &[], &bindings, &p, f.grid);
        state = Some(da_t);
    }
    match state {
        Some(da_0) => matmul(&f32_dev, &da_0, u, None, MatmulSpec::NT),
        None => dev.zeros([b, hd]),
    }
}
