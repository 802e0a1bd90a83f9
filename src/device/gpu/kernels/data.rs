//! Launchers for shaders/data.wgsl.

use super::{launch, u32_of};
use crate::device::gpu::{GpuDevice, GpuTensor};
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
