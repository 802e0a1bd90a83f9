//! Launchers for shaders/gated.wgsl: LSTM and GRU, each invocation one
//! hidden unit of four batch rows. A time step runs one of three ways
//! (`tune::RnnVariant`, chosen as for the Elman cell in kernels/rnn.rs):
//! one fused dispatch, or the step's recurrent product through the matmul
//! kernels and a `_finish_` kernel, or the fused steps of a whole pass in
//! one dispatch (`_seq_`) per [`RnnVariant::SEQUENCE_STEPS`] steps.

use super::rnn::{choose, f32_products, sequence_chunks, sequence_grid};
use super::{launch, matmul::matmul, u32_of};
use crate::device::gpu::context::PooledBuffer;
use crate::device::gpu::tune::RnnVariant;
use crate::device::gpu::{GpuDevice, GpuTensor};
use crate::device::{gated_geom, gru_backward_geom, same_shape, MatmulSpec, Tensor};
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

/// The parameters and grid of a step kernel: one invocation per hidden unit
/// of four batch rows, 64 to a workgroup.
fn step_launch(
    dev: &GpuDevice,
    op: &'static str,
    (t, b, h): (usize, usize, usize),
) -> Result<(Params, [u32; 3])> {
    // The largest tensor a kernel indexes: the [T,B,4H] gates.
    u32_of(op, t * b * 4 * h)?;
    let invocations = u32_of(op, b.div_ceil(4) * h)?;
    let grid = dev.ctx.check_grid(op, [invocations.div_ceil(64), 1, 1])?;
    let p = Params {
        t: 0,
        steps: t as u32,
        batch: b as u32,
        hidden: h as u32,
        count: 0,
    };
    Ok((p, grid))
}

/// Records `entry` once per step, in `steps` order.
fn per_step(
    dev: &GpuDevice,
    op: &'static str,
    entry: &'static str,
    dims: (usize, usize, usize),
    steps: impl Iterator<Item = usize>,
    bindings: &[(u32, &PooledBuffer)],
) -> Result<()> {
    let (p, grid) = step_launch(dev, op, dims)?;
    for step in steps {
        let p = Params {
            t: step as u32,
            ..p
        };
        launch(dev, shader!("gated"), entry, &[], bindings, &p, grid);
    }
    Ok(())
}

/// The whole pass by `entry` (a `_seq_` kernel), up to
/// [`RnnVariant::SEQUENCE_STEPS`] steps per dispatch, upwards from step 0
/// or (`backward`) downwards from the last.
fn per_sequence(
    dev: &GpuDevice,
    op: &'static str,
    entry: &'static str,
    (t, b, h): (usize, usize, usize),
    backward: bool,
    bindings: &[(u32, &PooledBuffer)],
) -> Result<()> {
    let (p, _) = step_launch(dev, op, (t, b, h))?;
    let (grid, row_blocks) = sequence_grid(dev, op, b, h)?;
    let constants = [("SEQ_ROW_BLOCKS", row_blocks as f64)];
    for (first, count) in sequence_chunks(t, backward) {
        let p = Params {
            t: first as u32,
            count: count as u32,
            ..p
        };
        launch(dev, shader!("gated"), entry, &constants, bindings, &p, grid);
    }
    Ok(())
}

/// The steps through matmuls, in `steps` order: the previous step's
/// `state` (`first` before the first step) times `u` (`spec`: NN forward,
/// NT backward) into `rec`, then `entry` with `bindings`, `rec` and a fresh
/// `state` of `state_cols` columns. Without `first` (backward) the first
/// step has no product and its kernel reads none.
#[allow(clippy::too_many_arguments)]
fn per_step_by_matmul(
    dev: &GpuDevice,
    op: &'static str,
    entry: &'static str,
    dims: (usize, usize, usize),
    steps: impl Iterator<Item = usize>,
    (first, u, spec): (Option<&GpuTensor>, &GpuTensor, MatmulSpec),
    state_cols: usize,
    bindings: &[(u32, &PooledBuffer)],
) -> Result<()> {
    let (p, grid) = step_launch(dev, op, dims)?;
    let f32_dev = f32_products(dev);
    let mut state = first.cloned();
    for step in steps {
        let rec = match &state {
            Some(s) => Some(matmul(&f32_dev, s, u, None, spec)?),
            None => None,
        };
        let next = dev.empty([dims.1, state_cols])?;
        let rec_buf = rec.as_ref().map_or(&*dev.placeholder, |r| r.buf());
        let mut all = bindings.to_vec();
        all.extend([(13, rec_buf), (14, next.buf())]);
        let p = Params {
            t: step as u32,
            ..p
        };
        launch(dev, shader!("gated"), entry, &[], &all, &p, grid);
        state = Some(next);
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
    let shared = [
        (0, xw.buf()),
        (3, c0.buf()),
        (4, hs.buf()),
        (5, cs.buf()),
        (6, gates.buf()),
    ];
    let op = "lstm_forward";
    let run = |v: RnnVariant| match v {
        RnnVariant::Fused => {
            let bindings = [shared.as_slice(), &[(1, u.buf()), (2, h0.buf())]].concat();
            per_step(dev, op, "lstm_step_forward", (t, b, h), 0..t, &bindings)
        }
        RnnVariant::Sequence => {
            let bindings = [shared.as_slice(), &[(1, u.buf()), (2, h0.buf())]].concat();
            per_sequence(dev, op, "lstm_seq_forward", (t, b, h), false, &bindings)
        }
        RnnVariant::Matmul => per_step_by_matmul(
            dev,
            op,
            "lstm_finish_forward",
            (t, b, h),
            0..t,
            (Some(h0), u, MatmulSpec::NN),
            h,
            &shared,
        ),
    };
    run(choose(dev, ("lstm", "fwd"), (b, h), h > 0, run)?)?;
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
    let shared = [
        (7, dh.buf()),
        (3, c0.buf()),
        (5, c.buf()),
        (6, gates.buf()),
        (8, da.buf()),
        (9, carry.buf()),
    ];
    let op = "lstm_backward";
    let run = |v: RnnVariant| match v {
        RnnVariant::Fused => {
            let bindings = [shared.as_slice(), &[(1, u.buf())]].concat();
            per_step(
                dev,
                op,
                "lstm_step_backward",
                (t, b, h),
                (0..t).rev(),
                &bindings,
            )
        }
        RnnVariant::Sequence => {
            let bindings = [shared.as_slice(), &[(1, u.buf())]].concat();
            per_sequence(dev, op, "lstm_seq_backward", (t, b, h), true, &bindings)
        }
        RnnVariant::Matmul => per_step_by_matmul(
            dev,
            op,
            "lstm_finish_backward",
            (t, b, h),
            (0..t).rev(),
            (None, u, MatmulSpec::NT),
            4 * h,
            &shared,
        ),
    };
    run(choose(dev, ("lstm", "bwd"), (b, h), h > 0, run)?)?;
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
    let shared = [
        (0, xw.buf()),
        (2, h0.buf()),
        (10, ub.buf()),
        (4, hs.buf()),
        (6, gates.buf()),
    ];
    let op = "gru_forward";
    let run = |v: RnnVariant| match v {
        RnnVariant::Fused => {
            let bindings = [shared.as_slice(), &[(1, u.buf())]].concat();
            per_step(dev, op, "gru_step_forward", (t, b, h), 0..t, &bindings)
        }
        RnnVariant::Sequence => {
            let bindings = [shared.as_slice(), &[(1, u.buf())]].concat();
            per_sequence(dev, op, "gru_seq_forward", (t, b, h), false, &bindings)
        }
        RnnVariant::Matmul => per_step_by_matmul(
            dev,
            op,
            "gru_finish_forward",
            (t, b, h),
            0..t,
            (Some(h0), u, MatmulSpec::NN),
            h,
            &shared,
        ),
    };
    run(choose(dev, ("gru", "fwd"), (b, h), h > 0, run)?)?;
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
    let shared = [
        (7, dh.buf()),
        (6, gates.buf()),
        (11, h_prev.buf()),
        (12, dxw.buf()),
        (8, dhu.buf()),
        (9, carry.buf()),
    ];
    let op = "gru_backward";
    let run = |v: RnnVariant| match v {
        RnnVariant::Fused => {
            let bindings = [shared.as_slice(), &[(1, u.buf())]].concat();
            per_step(
                dev,
                op,
                "gru_step_backward",
                (t, b, h),
                (0..t).rev(),
                &bindings,
            )
        }
        RnnVariant::Sequence => {
            let bindings = [shared.as_slice(), &[(1, u.buf())]].concat();
            per_sequence(dev, op, "gru_seq_backward", (t, b, h), true, &bindings)
        }
        RnnVariant::Matmul => per_step_by_matmul(
            dev,
            op,
            "gru_finish_backward",
            (t, b, h),
            (0..t).rev(),
            (None, u, MatmulSpec::NT),
            3 * h,
            &shared,
        ),
    };
    run(choose(dev, ("gru", "bwd"), (b, h), h > 0, run)?)?;
    Ok((dxw, dhu))
}
