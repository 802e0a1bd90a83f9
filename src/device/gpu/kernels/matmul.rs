//! Launcher for shaders/matmul.wgsl.

use super::{launch, u32_of};
use crate::device::gpu::{GpuDevice, GpuTensor, MatmulKernel};
use crate::device::{MatmulSpec, Tensor};
use crate::error::{Error, Result};
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
}

pub(crate) fn matmul(
    dev: &GpuDevice,
    a: &GpuTensor,
    b: &GpuTensor,
    bias: Option<&GpuTensor>,
    spec: MatmulSpec,
) -> Result<GpuTensor> {
    let (m, k, n) = spec.dims(a.shape(), b.shape())?;
    if let Some(bias) = bias {
        if bias.shape().numel() != n {
            return Err(Error::shape(
                "matmul",
                format!("bias {} for {n} output columns", bias.shape()),
            ));
        }
    }
    let out = dev.empty([m, n])?;
    if m == 0 || n == 0 {
        return Ok(out);
    }
    let params = Params {
        m: u32_of("matmul", m)?,
        n: u32_of("matmul", n)?,
        k: u32_of("matmul", k)?,
        act: spec.act.code(),
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let constants = [
        ("TRANS_A", flag(spec.trans_a)),
        ("TRANS_B", flag(spec.trans_b)),
        ("HAS_BIAS", flag(bias.is_some())),
    ];
    let bias_buf = bias.map_or(&*dev.placeholder, |b| b.buf());
    let bindings = [(0, a.buf()), (1, b.buf()), (2, bias_buf), (3, out.buf())];
    // Blocked: 16×16 invocations × 4×4 outputs; tiled: 64×64 outputs per group.
    let (entry, tile) = match dev.matmul_kernel {
        MatmulKernel::Blocked => ("matmul_blocked", 64),
        MatmulKernel::Tiled => ("matmul_tiled", 64),
    };
    let grid = dev.ctx.check_grid(
        "matmul",
        [n.div_ceil(tile) as u32, m.div_ceil(tile) as u32, 1],
    )?;
    launch(
        dev,
        shader!("matmul"),
        entry,
        &constants,
        &bindings,
        &params,
        grid,
    );
    Ok(out)
}
