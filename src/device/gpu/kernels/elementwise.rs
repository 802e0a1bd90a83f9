//! Launchers for shaders/elementwise.wgsl.

use super::{launch, u32_of};
use crate::device::gpu::{GpuDevice, GpuTensor};
use crate::device::{same_shape, Activation, Binary, Tensor};
use crate::error::{Error, Result};
use crate::shader;
use crate::tensor::Shape;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// vec4s to process (see shaders/elementwise.wgsl).
    n4: u32,
    alpha: f32,
}

/// `out = entry(x[, y])` over every element; `op` (an activation's or a
/// binary op's code) is the pipeline constant `OP`.
fn run(
    dev: &GpuDevice,
    entry: &'static str,
    x: Option<&GpuTensor>,
    y: Option<&GpuTensor>,
    shape: Shape,
    op: u32,
    alpha: f32,
) -> Result<GpuTensor> {
    let n = shape.numel();
    let out = dev.empty(shape)?;
    let mut bindings = Vec::with_capacity(3);
    if let Some(x) = x {
        bindings.push((0, x.buf()));
    }
    if let Some(y) = y {
        bindings.push((1, y.buf()));
    }
    bindings.push((2, out.buf()));
    let n4 = n.div_ceil(4);
    let params = Params {
        n4: u32_of(entry, n4)?,
        alpha,
    };
    let grid = dev.ctx.grid_1d(entry, n4)?;
    launch(
        dev,
        shader!("elementwise"),
        entry,
        &[("OP", op as f64)],
        &bindings,
        &params,
        grid,
    );
    Ok(out)
}

pub(crate) fn fill(dev: &GpuDevice, shape: Shape, value: f32) -> Result<GpuTensor> {
    run(dev, "fill", None, None, shape, 0, value)
}

pub(crate) fn activation(dev: &GpuDevice, x: &GpuTensor, act: Activation) -> Result<GpuTensor> {
    run(
        dev,
        "activation",
        Some(x),
        None,
        x.shape().clone(),
        act.code(),
        0.0,
    )
}

pub(crate) fn activation_backward(
    dev: &GpuDevice,
    y: &GpuTensor,
    dy: &GpuTensor,
    act: Activation,
) -> Result<GpuTensor> {
    check_backward("activation_backward", y.shape(), dy.shape(), act)?;
    run(
        dev,
        "activation_backward",
        Some(y),
        Some(dy),
        y.shape().clone(),
        act.code(),
        0.0,
    )
}

/// What an activation's backward pass through its output needs: `y` and
/// `dy` of one shape, and an activation whose derivative `y` gives.
pub(super) fn check_backward(
    op: &'static str,
    y: &Shape,
    dy: &Shape,
    act: Activation,
) -> Result<()> {
    same_shape(op, y, dy)?;
    if act.keeps_input() {
        return Err(crate::device::cpu::needs_input(act));
    }
    Ok(())
}

pub(crate) fn activation_backward_from_input(
    dev: &GpuDevice,
    x: &GpuTensor,
    dy: &GpuTensor,
    act: Activation,
) -> Result<GpuTensor> {
    same_shape("activation_backward_from_input", x.shape(), dy.shape())?;
    run(
        dev,
        "activation_backward_x",
        Some(x),
        Some(dy),
        x.shape().clone(),
        act.code(),
        0.0,
    )
}

pub(crate) fn binary(
    dev: &GpuDevice,
    a: &GpuTensor,
    b: &GpuTensor,
    op: Binary,
) -> Result<GpuTensor> {
    same_shape("binary", a.shape(), b.shape())?;
    run(
        dev,
        "binary",
        Some(a),
        Some(b),
        a.shape().clone(),
        op.code(),
        0.0,
    )
}

pub(crate) fn scale(dev: &GpuDevice, x: &GpuTensor, alpha: f32) -> Result<GpuTensor> {
    run(dev, "scale", Some(x), None, x.shape().clone(), 0, alpha)
}

pub(crate) fn scale_by(dev: &GpuDevice, x: &GpuTensor, s: &GpuTensor) -> Result<GpuTensor> {
    if s.shape().numel() != 1 {
        return Err(Error::shape(
            "scale_by",
            format!("the scale must be [1], got {}", s.shape()),
        ));
    }
    run(dev, "scale_by", Some(x), Some(s), x.shape().clone(), 0, 0.0)
}

pub(crate) fn axpy(dev: &GpuDevice, alpha: f32, x: &GpuTensor, y: &GpuTensor) -> Result<GpuTensor> {
    same_shape("axpy", x.shape(), y.shape())?;
    run(dev, "axpy", Some(x), Some(y), x.shape().clone(), 0, alpha)
}
