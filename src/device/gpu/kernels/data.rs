//! Launchers for shaders/data.wgsl.

use super::{launch, u32_of};
use crate::device::gpu::{GpuBytes, GpuDevice, GpuTensor};
use crate::device::Tensor;
use crate::error::{Error, Result};
use crate::shader;

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

pub(crate) fn gather_rows(
    dev: &GpuDevice,
    src: &GpuTensor,
    idx: &GpuTensor,
    start: usize,
    count: usize,
) -> Result<GpuTensor> {
    if start + count > idx.shape().numel() {
        return Err(Error::shape(
            "gather_rows",
            format!(
                "indices {start}..{} of {}",
                start + count,
                idx.shape().numel()
            ),
        ));
    }
    if src.shape().rows() == 0 {
        return Err(Error::shape(
            "gather_rows",
            "gathering from an empty tensor",
        ));
    }
    let row_len = src.shape().row_len();
    let out = dev.empty(src.shape().with_rows(count))?;
    let p = Params {
        count: u32_of("gather_rows", count)?,
        row_len: u32_of("gather_rows", row_len)?,
        start: u32_of("gather_rows", start)?,
        src_rows: u32_of("gather_rows", src.shape().rows())?,
        scale: 1.0,
        shift: 0.0,
    };
    u32_of("gather_rows", src.shape().numel().max(count * row_len))?;
    let grid = dev.ctx.grid_1d("gather_rows", count * row_len)?;
    launch(
        dev,
        shader!("data"),
        "gather_rows",
        &[],
        &[(0, src.buf()), (1, idx.buf()), (2, out.buf())],
        &p,
        grid,
    );
    Ok(out)
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

pub(crate) fn gather_rows_u8(
    dev: &GpuDevice,
    src: &GpuBytes,
    idx: &GpuTensor,
    start: usize,
    count: usize,
    scale: f32,
    shift: f32,
) -> Result<GpuTensor> {
    if start + count > idx.shape().numel() {
        return Err(Error::shape(
            "gather_rows_u8",
            format!(
                "indices {start}..{} of {}",
                start + count,
                idx.shape().numel()
            ),
        ));
    }
    if src.shape().rows() == 0 {
        return Err(Error::shape(
            "gather_rows_u8",
            "gathering from an empty tensor",
        ));
    }
    let row_len = src.shape().row_len();
    let out = dev.empty(src.shape().with_rows(count))?;
    let p = Params {
        count: u32_of("gather_rows_u8", count)?,
        row_len: u32_of("gather_rows_u8", row_len)?,
        start: u32_of("gather_rows_u8", start)?,
        src_rows: u32_of("gather_rows_u8", src.shape().rows())?,
        scale,
        shift,
    };
    u32_of("gather_rows_u8", src.shape().numel().max(count * row_len))?;
    let grid = dev.ctx.grid_1d("gather_rows_u8", count * row_len)?;
    launch(
        dev,
        shader!("data"),
        "gather_rows_u8",
        &[],
        &[(3, src.buf()), (1, idx.buf()), (2, out.buf())],
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
