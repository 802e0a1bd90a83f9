//! Launchers for shaders/pool.wgsl.

use super::{launch, u32_of};
use crate::device::gpu::{GpuDevice, GpuTensor};
use crate::device::{pool_geom, same_shape, window_geom, PoolWindow, Tensor};
use crate::error::Result;
use crate::shader;
use crate::tensor::Shape;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    nc: u32,
    h: u32,
    w: u32,
    ho: u32,
    wo: u32,
}

/// A pooling kernel's launch: its parameters and the window's pipeline
/// constants (`K`, `S`).
struct Pooling {
    params: Params,
    window: [(&'static str, f64); 2],
    /// Whether the windows tile the input exactly (stride = size, both
    /// sides multiples of it): the backward passes then run one invocation
    /// per window (the `_tiles` kernels of shaders/pool.wgsl).
    tiles: bool,
}

impl Pooling {
    /// The backward kernel `entry` (or its `_tiles` form where the windows
    /// tile the input) and its grid, for an input of `numel` values.
    fn backward(
        &self,
        dev: &GpuDevice,
        entry: &'static str,
        tiles_entry: &'static str,
        numel: usize,
    ) -> Result<(&'static str, [u32; 3])> {
        let p = &self.params;
        let (entry, count) = if self.tiles {
            (tiles_entry, p.nc as usize * p.ho as usize * p.wo as usize)
        } else {
            (entry, numel)
        };
        Ok((entry, dev.ctx.grid_1d(entry, count)?))
    }
}

/// The kernels' parameters for pooling an input of `x_shape` (max pooling
/// has the arg-max's size limit, `op` names the operation in errors).
fn params(op: &'static str, x_shape: &Shape, win: PoolWindow) -> Result<(Pooling, Shape)> {
    let (n, c, h, w, ho, wo) = if op.starts_with("max") {
        pool_geom(x_shape, win)?
    } else {
        window_geom(op, x_shape, win)?
    };
    u32_of(op, x_shape.numel())?;
    // The window fits the input, so its size fits u32; a stride past the
    // input's larger side gives the same single window per axis, so it is
    // clamped there (the kernels then never overflow u32).
    let params = Params {
        nc: (n * c) as u32,
        h: h as u32,
        w: w as u32,
        ho: ho as u32,
        wo: wo as u32,
    };
    let stride = u32_of(op, win.stride.min(h.max(w)))?;
    let window = [("K", win.size as f64), ("S", stride as f64)];
    let tiles = win.stride == win.size && h == ho * win.size && w == wo * win.size;
    let pooling = Pooling {
        params,
        window,
        tiles,
    };
    Ok((pooling, Shape::new([n, c, ho, wo])))
}

pub(crate) fn forward(
    dev: &GpuDevice,
    x: &GpuTensor,
    win: PoolWindow,
) -> Result<(GpuTensor, GpuTensor)> {
    let (p, out_shape) = params("max_pool2d", x.shape(), win)?;
    let y = dev.empty(out_shape.clone())?;
    let arg = dev.empty(out_shape.clone())?;
    let grid = dev.ctx.grid_1d("max_pool2d", out_shape.numel())?;
    launch(
        dev,
        shader!("pool"),
        "max_pool_forward",
        &p.window,
        &[(0, x.buf()), (2, y.buf()), (3, arg.buf())],
        &p.params,
        grid,
    );
    Ok((y, arg))
}

pub(crate) fn backward(
    dev: &GpuDevice,
    dy: &GpuTensor,
    argmax: &GpuTensor,
    x_shape: &Shape,
    win: PoolWindow,
) -> Result<GpuTensor> {
    same_shape("max_pool2d_backward", dy.shape(), argmax.shape())?;
    let (p, pooled) = params("max_pool2d_backward", x_shape, win)?;
    same_shape("max_pool2d_backward", dy.shape(), &pooled)?;
    let dx = dev.empty(x_shape.clone())?;
    let (entry, grid) = p.backward(
        dev,
        "max_pool_backward",
        "max_pool_backward_tiles",
        x_shape.numel(),
    )?;
    launch(
        dev,
        shader!("pool"),
        entry,
        &p.window,
        &[(0, dy.buf()), (1, argmax.buf()), (2, dx.buf())],
        &p.params,
        grid,
    );
    Ok(dx)
}

pub(crate) fn avg_forward(dev: &GpuDevice, x: &GpuTensor, win: PoolWindow) -> Result<GpuTensor> {
    let (p, out_shape) = params("avg_pool2d", x.shape(), win)?;
    let y = dev.empty(out_shape.clone())?;
    let grid = dev.ctx.grid_1d("avg_pool2d", out_shape.numel())?;
    let bindings = [(0, x.buf()), (2, y.buf())];
    launch(
        dev,
        shader!("pool"),
        "avg_pool_forward",
        &p.window,
        &bindings,
        &p.params,
        grid,
    );
    Ok(y)
}

pub(crate) fn avg_backward(
    dev: &GpuDevice,
    dy: &GpuTensor,
    x_shape: &Shape,
    win: PoolWindow,
) -> Result<GpuTensor> {
    let (p, pooled) = params("avg_pool2d_backward", x_shape, win)?;
    same_shape("avg_pool2d_backward", dy.shape(), &pooled)?;
    let dx = dev.empty(x_shape.clone())?;
    let (entry, grid) = p.backward(
        dev,
        "avg_pool_backward",
        "avg_pool_backward_tiles",
        x_shape.numel(),
    )?;
    let bindings = [(0, dy.buf()), (2, dx.buf())];
    launch(
        dev,
        shader!("pool"),
        entry,
        &p.window,
        &bindings,
        &p.params,
        grid,
    );
    Ok(dx)
}
