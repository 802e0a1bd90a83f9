//! Launchers for shaders/data.wgsl.

use super::{launch, u32_of};
use crate::device::gpu::context::PooledBuffer;
use crate::device::gpu::{GpuBytes, GpuDevice, GpuTensor};
use crate::device::Tensor;
use crate::error::{Error, Result};
use crate::shader;
use crate::tensor::Shape;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    count: u32,
    row_len: u32,
    start: u32,
    src_rows: u32,
    scale: f32,
    shift: f32,
}

/// Records a gather of rows `idx[start .. start + count]` from `src` (of
/// `shape`, bound at `src_binding`) through `entry`.
#[allow(clippy::too_many_arguments)]
fn gather(
    dev: &GpuDevice,
    entry: &'static str,
    (src_binding, src): (u32, &PooledBuffer),
    shape: &Shape,
    idx: &GpuTensor,
    start: usize,
    count: usize,
    (scale, shift): (f32, f32),
) -> Result<GpuTensor> {
    if start + count > idx.shape().numel() {
        return Err(Error::shape(
            entry,
            format!(
                "indices {start}..{} of {}",
                start + count,
                idx.shape().numel()
            ),
        ));
    }
    if shape.rows() == 0 {
        return Err(Error::shape(entry, "gathering from an empty tensor"));
    }
    let row_len = shape.row_len();
    let out = dev.empty(shape.with_rows(count))?;
    let p = Params {
        count: u32_of(entry, count)?,
        row_len: u32_of(entry, row_len)?,
        start: u32_of(entry, start)?,
        src_rows: u32_of(entry, shape.rows())?,
        scale,
        shift,
    };
    u32_of(entry, shape.numel().max(count * row_len))?;
    if entry == "gather_rows" && dev.lane_rows() && row_len.is_multiple_of(4) {
        // A row per invocation, 64 to a workgroup (see data.wgsl).
        let grid = dev.ctx.grid_groups(entry, count.div_ceil(64) as u64)?;
        let bindings = [(6, src), (1, idx.buf()), (7, out.buf())];
        launch(
            dev,
            shader!("data"),
            "gather_rows_vec4",
            &[],
            &bindings,
            &p,
            grid,
        );
        return Ok(out);
    }
    let grid = dev.ctx.grid_1d(entry, count * row_len)?;
    let bindings = [(src_binding, src), (1, idx.buf()), (2, out.buf())];
    launch(dev, shader!("data"), entry, &[], &bindings, &p, grid);
    Ok(out)
}

pub(crate) fn gather_rows(
    dev: &GpuDevice,
    src: &GpuTensor,
    idx: &GpuTensor,
    start: usize,
    count: usize,
) -> Result<GpuTensor> {
    let s = (0, src.buf());
    gather(
        dev,
        "gather_rows",
        s,
        src.shape(),
        idx,
        start,
        count,
        (1.0, 0.0),
    )
}

pub(crate) fn gather_rows_u8(
    dev: &GpuDevice,
    src: &GpuBytes,
    idx: &GpuTensor,
    start: usize,
    count: usize,
    scale: f32,
    shift: f32,
) -> Result<GpuTensor> {
    let s = (3, src.buf());
    gather(
        dev,
        "gather_rows_u8",
        s,
        src.shape(),
        idx,
        start,
        count,
        (scale, shift),
    )
}

pub(crate) fn one_hot(dev: &GpuDevice, idx: &GpuTensor, depth: usize) -> Result<GpuTensor> {
    let m = idx.shape().numel();
    let out = dev.empty([m, depth])?;
    let p = Params {
        count: u32_of("one_hot", m)?,
        row_len: u32_of("one_hot", depth)?,
        start: 0,
        src_rows: 0,
        scale: 1.0,
        shift: 0.0,
    };
    u32_of("one_hot", m * depth)?;
    let grid = dev.ctx.grid_1d("one_hot", m * depth)?;
    launch(
        dev,
        shader!("data"),
        "one_hot",
        &[],
        &[(1, idx.buf()), (2, out.buf())],
        &p,
        grid,
    );
    Ok(out)
}

pub(crate) fn transpose(dev: &GpuDevice, x: &GpuTensor) -> Result<GpuTensor> {
    let Some((r, c)) = x.shape().as_matrix() else {
        return Err(Error::shape(
            "transpose",
            format!("expected a matrix, got {}", x.shape()),
        ));
    };
    let out = dev.empty([c, r])?;
    let p = Params {
        count: u32_of("transpose", r)?,
        row_len: u32_of("transpose", c)?,
        start: 0,
        src_rows: 0,
        scale: 1.0,
        shift: 0.0,
    };
    u32_of("transpose", r * c)?;
    let grid = dev.ctx.grid_1d("transpose", r * c)?;
    launch(
        dev,
        shader!("data"),
        "transpose",
        &[],
        &[(0, x.buf()), (2, out.buf())],
        &p,
        grid,
    );
    Ok(out)
}

/// `out[v, :] = Σ dy[r, :]` over the rows `r` with `idx[r] = v`, in row order.
pub(crate) fn scatter_add_rows(
    dev: &GpuDevice,
    dy: &GpuTensor,
    idx: &GpuTensor,
    rows: usize,
) -> Result<GpuTensor> {
    let entry = "scatter_add_rows";
    let n = idx.shape().numel();
    if dy.shape().rank() != 2 || dy.shape().dim(0) != n {
        return Err(Error::shape(
            entry,
            format!("a gradient of {} for {n} ids", dy.shape()),
        ));
    }
    let dim = dy.shape().dim(1);
    let out = dev.empty([rows, dim])?;
    let p = Params {
        count: u32_of(entry, n)?,
        row_len: u32_of(entry, dim)?,
        start: 0,
        src_rows: u32_of(entry, rows)?,
        scale: 1.0,
        shift: 0.0,
    };
    u32_of(entry, (rows * dim).max(n * dim))?;
    let grid = dev.ctx.grid_1d(entry, rows * dim)?;
    // Software adapters sort by counting in one invocation and sum a row
    // and vec4 of columns per invocation (see data.wgsl), which beats the
    // direct kernel at every vocabulary; others sort by a bitonic network
    // in one workgroup and sum an element per invocation.
    let software = dev.lane_rows();
    if !software && (rows < SORTED_SCATTER_MIN_ROWS || n > SORTED_SCATTER_MAX_IDS) {
        let bindings = [(0, dy.buf()), (1, idx.buf()), (2, out.buf())];
        launch(dev, shader!("data"), entry, &[], &bindings, &p, grid);
        return Ok(out);
    }
    // The (id, row) pairs, two u32 each: padded to a power of two for the
    // network, followed by a count per id for counting.
    let pairs = if software {
        n + rows + 1
    } else {
        n.max(1).next_power_of_two()
    };
    u32_of(entry, 2 * pairs)?;
    let keys = dev.empty([2 * pairs])?;
    let sort = if software {
        "sort_ids_counting"
    } else {
        "sort_ids"
    };
    let sort_bindings = [(1, idx.buf()), (3, keys.buf())];
    launch(
        dev,
        shader!("data"),
        sort,
        &[],
        &sort_bindings,
        &p,
        [1, 1, 1],
    );
    if software && dim.is_multiple_of(4) {
        let grid = dev
            .ctx
            .grid_groups(entry, (rows * dim / 4).div_ceil(64) as u64)?;
        let bindings = [(6, dy.buf()), (4, keys.buf()), (7, out.buf())];
        let add = "scatter_add_sorted_vec4";
        launch(dev, shader!("data"), add, &[], &bindings, &p, grid);
        return Ok(out);
    }
    let bindings = [(0, dy.buf()), (4, keys.buf()), (2, out.buf())];
    launch(
        dev,
        shader!("data"),
        "scatter_add_sorted",
        &[],
        &bindings,
        &p,
        grid,
    );
    Ok(out)
}

/// Vocabularies from this size on take the sorted scatter-add on hardware
/// adapters (one sort of the ids, then each output reads only its own
/// rows); smaller ones the direct kernel, whose every output reads every id
/// but which needs one dispatch and no scratch. The paths sum in the same
/// order, so the choice never changes a result. Measured on llvmpipe by
/// `cargo run --release --example scatter_timing` (2048 ids × 64 columns,
/// median of 7) when the sort was the bitonic network there too: direct
/// 0.84 ms at 2 rows, 5.6 at 32, 10.6 at 63; sorted 1.55 ms at 64 rows,
/// 1.9 at 255, 11 at 5000. Software adapters now sort by counting and take
/// the sorted path at every size (two runs: 0.53 and 1.17 ms at 2 rows,
/// 0.85 and 0.85 at 32, 0.60 and 1.13 at 64, 5.46 and 6.90 at 5000). On a
/// GPU with thousands of lanes the direct kernel stays cheap for longer
/// and the one-workgroup sort costs more, so this is a rule for the
/// autotuner (`super::super::tune`) to take over.
pub(crate) const SORTED_SCATTER_MIN_ROWS: usize = 64;

/// The sort runs in one workgroup, about n·log²n/512 compare-exchanges per
/// invocation: 35 thousand at 2^16 ids, but 860 thousand at 2^20, where one
/// dispatch could outlast a driver's watchdog. Batches with more ids than
/// this take the direct kernel on hardware adapters.
pub(crate) const SORTED_SCATTER_MAX_IDS: usize = 1 << 16;
