//! Launchers for shaders/reduce.wgsl.

use super::{launch, u32_of};
use crate::device::gpu::{GpuDevice, GpuTensor};
use crate::device::{same_shape, LossGrad, Reduce, Tensor};
use crate::error::{Error, Result};
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    op: u32,
    scale: f32,
}

/// Rows up to this long take the one-invocation-per-row kernels; longer
/// rows one workgroup each.
const SMALL_ROW: usize = 256;

/// Rows a software adapter needs for the vec4 one-invocation-per-row
/// kernels: two SIMD batches of 8 lanes, one per core of a small machine
/// (with fewer rows a workgroup per row spreads a row over more lanes).
const LANE_ROWS: usize = 16;

/// The kernels of a row-wise op, each one an entry of shaders/reduce.wgsl.
struct RowKernels {
    /// A workgroup per row, any length (reads x at binding 0).
    large: &'static str,
    /// One invocation per row, rows up to [`SMALL_ROW`] (binding 0).
    small: Option<&'static str>,
    /// One invocation per row with vec4 loads, rows a multiple of 4 long,
    /// on software adapters (reads x4 at binding 4).
    lane4: Option<&'static str>,
}

/// The kernel for a row-wise op over `r` rows of `c`, its grid, and
/// whether it reads vec4s. On a software adapter ([`GpuDevice::lane_rows`]),
/// rows a multiple of 4 long
/// take `lane4` when there are [`LANE_ROWS`] of them: no barriers and a
/// quarter of the loads (lavapipe, 128 rows of 4096,
/// `examples/rowwise_timing.rs`: softmax 4.2 → 1.2 ms, row sums 1.5 →
/// 0.3 ms). Otherwise short rows take `small`, long ones `large`.
fn rowwise(
    dev: &GpuDevice,
    what: &str,
    kernels: RowKernels,
    r: usize,
    c: usize,
) -> Result<(&'static str, [u32; 3], bool)> {
    // 64-invocation workgroups, folded into y past the x limit.
    let per_row = |entry| {
        Ok((
            entry,
            dev.ctx.grid_groups(what, r.div_ceil(64) as u64)?,
            false,
        ))
    };
    match kernels {
        RowKernels {
            lane4: Some(entry), ..
        } if dev.lane_rows() && c.is_multiple_of(4) && r >= LANE_ROWS => {
            per_row(entry).map(|(e, g, _)| (e, g, true))
        }
        RowKernels {
            small: Some(entry), ..
        } if c <= SMALL_ROW => per_row(entry),
        RowKernels { large, .. } => Ok((large, dev.ctx.grid_groups(what, r as u64)?, false)),
    }
}

/// Partials of the first pass of a whole-tensor reduction: enough workgroups
/// to fill a GPU, few enough that one workgroup finishes them quickly.
const MAX_PARTIALS: usize = 1024;

/// Whole-tensor reduction to `[1]`, times `scale`.
/// reduce.wgsl with its workgroup reduction: subgroup operations where the
/// device uses them, else the shared-memory tree.
fn reduce_shader(dev: &GpuDevice) -> crate::device::gpu::context::ShaderSource {
    if dev.subgroups {
        shader!("reduce_subgroup", "reduce")
    } else {
        shader!("reduce_tree", "reduce")
    }
}

pub(crate) fn reduce(dev: &GpuDevice, x: &GpuTensor, op: Reduce, scale: f32) -> Result<GpuTensor> {
    let n = x.shape().numel();
    let n32 = u32_of("reduce", n)?;
    let out = dev.empty([1])?;
    let run =
        |input: &GpuTensor, len: u32, op: Reduce, scale: f32, out: &GpuTensor, groups: usize| {
            let p = Params {
                rows: len,
                cols: 0,
                op: op.code(),
                scale,
            };
            launch(
                dev,
                reduce_shader(dev),
                "reduce_pass",
                &[],
                &[(0, input.buf()), (2, out.buf())],
                &p,
                [groups as u32, 1, 1],
            );
        };
    let groups = n.div_ceil(256 * 4).clamp(1, MAX_PARTIALS);
    if groups == 1 {
        run(x, n32, op, scale, &out, 1);
    } else {
        let partials = dev.empty([groups])?;
        run(x, n32, op, 1.0, &partials, groups);
        // Squares were taken in the first pass; the second only adds.
        let second = if op == Reduce::Max {
            Reduce::Max
        } else {
            Reduce::Sum
        };
        run(&partials, groups as u32, second, scale, &out, 1);
    }
    Ok(out)
}

fn matrix(op: &'static str, x: &GpuTensor) -> Result<(usize, usize, Params)> {
    let (r, c) = (x.shape().rows(), x.shape().row_len());
    u32_of(op, x.shape().numel())?;
    Ok((
        r,
        c,
        Params {
            rows: r as u32,
            cols: c as u32,
            op: 0,
            scale: 1.0,
        },
    ))
}

pub(crate) fn sum_rows(dev: &GpuDevice, x: &GpuTensor) -> Result<GpuTensor> {
    let (_, c, p) = matrix("sum_rows", x)?;
    let out = dev.empty([c])?;
    let grid = dev.ctx.grid_1d("sum_rows", c)?;
    launch(
        dev,
        reduce_shader(dev),
        "sum_rows",
        &[],
        &[(0, x.buf()), (2, out.buf())],
        &p,
        grid,
    );
    Ok(out)
}

pub(crate) fn sum_cols(dev: &GpuDevice, x: &GpuTensor) -> Result<GpuTensor> {
    let (r, c, p) = matrix("sum_cols", x)?;
    let out = dev.empty([r])?;
    let kernels = RowKernels {
        large: "sum_cols",
        small: None,
        lane4: Some("sum_cols_lane4"),
    };
    let (entry, grid, vec4) = rowwise(dev, "sum_cols", kernels, r, c)?;
    launch(
        dev,
        reduce_shader(dev),
        entry,
        &[],
        &[(if vec4 { 4 } else { 0 }, x.buf()), (2, out.buf())],
        &p,
        grid,
    );
    Ok(out)
}

pub(crate) fn softmax_rows(dev: &GpuDevice, x: &GpuTensor) -> Result<GpuTensor> {
    let (r, c, p) = matrix("softmax_rows", x)?;
    let out = dev.empty(x.shape().clone())?;
    let kernels = RowKernels {
        large: "softmax_rows",
        small: Some("softmax_small"),
        lane4: Some("softmax_lane4"),
    };
    let (entry, grid, vec4) = rowwise(dev, "softmax_rows", kernels, r, c)?;
    let bindings = if vec4 {
        [(4, x.buf()), (5, out.buf())]
    } else {
        [(0, x.buf()), (2, out.buf())]
    };
    launch(dev, reduce_shader(dev), entry, &[], &bindings, &p, grid);
    Ok(out)
}

pub(crate) fn softmax_cross_entropy(
    dev: &GpuDevice,
    logits: &GpuTensor,
    labels: &GpuTensor,
) -> Result<LossGrad<GpuTensor>> {
    let (r, c, p) = matrix("softmax_cross_entropy", logits)?;
    if labels.shape().numel() != r {
        return Err(Error::shape(
            "softmax_cross_entropy",
            format!(
                "{} labels for logits {}",
                labels.shape().numel(),
                logits.shape()
            ),
        ));
    }
    let grad = dev.empty(logits.shape().clone())?;
    let row_loss = dev.empty([r])?;
    let kernels = RowKernels {
        large: "softmax_xent_rows",
        small: Some("softmax_xent_small"),
        lane4: None,
    };
    let (entry, grid, _) = rowwise(dev, "softmax_cross_entropy", kernels, r, c)?;
    launch(
        dev,
        reduce_shader(dev),
        entry,
        &[],
        &[
            (0, logits.buf()),
            (1, labels.buf()),
            (2, grad.buf()),
            (3, row_loss.buf()),
        ],
        &p,
        grid,
    );
    let loss = reduce(dev, &row_loss, Reduce::Sum, 1.0 / r as f32)?;
    Ok(LossGrad { loss, grad })
}

/// A loss whose terms are per element (`mse_terms`, `bce_terms`): one pass
/// writes the gradient and the terms, a reduction averages the terms.
pub(crate) fn pointwise_loss(
    dev: &GpuDevice,
    entry: &'static str,
    pred: &GpuTensor,
    target: &GpuTensor,
) -> Result<LossGrad<GpuTensor>> {
    same_shape(entry, pred.shape(), target.shape())?;
    let n = pred.shape().numel();
    let p = Params {
        rows: u32_of(entry, n)?,
        cols: 0,
        op: 0,
        scale: 1.0,
    };
    let grad = dev.empty(pred.shape().clone())?;
    let terms = dev.empty(pred.shape().clone())?;
    let grid = dev.ctx.grid_1d(entry, n)?;
    launch(
        dev,
        reduce_shader(dev),
        entry,
        &[],
        &[
            (0, pred.buf()),
            (1, target.buf()),
            (2, grad.buf()),
            (3, terms.buf()),
        ],
        &p,
        grid,
    );
    let loss = reduce(dev, &terms, Reduce::Sum, 1.0 / n as f32)?;
    Ok(LossGrad { loss, grad })
}

pub(crate) fn argmax_rows(dev: &GpuDevice, x: &GpuTensor) -> Result<GpuTensor> {
    let (r, _, p) = matrix("argmax_rows", x)?;
    let out = dev.empty([r])?;
    let grid = dev.ctx.grid_1d("argmax_rows", r)?;
    launch(
        dev,
        reduce_shader(dev),
        "argmax_rows",
        &[],
        &[(0, x.buf()), (2, out.buf())],
        &p,
        grid,
    );
    Ok(out)
}

pub(crate) fn count_equal(dev: &GpuDevice, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
    let n = a.shape().numel();
    if n != b.shape().numel() {
        return Err(Error::shape(
            "count_equal",
            format!("{} vs {}", a.shape(), b.shape()),
        ));
    }
    let p = Params {
        rows: u32_of("count_equal", n)?,
        cols: 0,
        op: 0,
        scale: 1.0,
    };
    let eq = dev.empty([n])?;
    let grid = dev.ctx.grid_1d("count_equal", n)?;
    launch(
        dev,
        reduce_shader(dev),
        "equal_terms",
        &[],
        &[(0, a.buf()), (1, b.buf()), (2, eq.buf())],
        &p,
        grid,
    );
    reduce(dev, &eq, Reduce::Sum, 1.0)
}
