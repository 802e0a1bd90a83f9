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
    let bindings = [(0, dy.buf()), (1, idx.buf()), (2, out.buf())];
    launch(dev, shader!("data"), entry, &[], &bindings, &p, grid);
    Ok(out)
}
