//! Launcher for shaders/dropout.wgsl.

use super::{launch, u32_of};
use crate::device::dropout::DropoutMask;
use crate::device::gpu::{GpuDevice, GpuTensor};
use crate::error::Result;
use crate::shader;
use crate::tensor::Shape;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    key: u32,
    threshold: u32,
    scale: f32,
}

pub(crate) fn mask(dev: &GpuDevice, shape: Shape, m: &DropoutMask) -> Result<GpuTensor> {
    let n = shape.numel();
    let out = dev.empty(shape)?;
    let p = Params {
        n: u32_of("dropout_mask", n)?,
        key: m.key(),
        threshold: m.threshold(),
        scale: m.scale(),
    };
    let grid = dev.ctx.grid_1d("dropout_mask", n)?;
    launch(
        dev,
        shader!("dropout"),
        "dropout_mask",
        &[],
        &[(0, out.buf())],
        &p,
        grid,
    );
    Ok(out)
}
