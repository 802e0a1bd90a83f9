//! Launcher for shaders/matmul.wgsl.

use std::time::Instant;

use super::{launch, u32_of};
use crate::device::gpu::tune::{shape_class, MatmulVariant};
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
    // See shaders/matmul.wgsl for why each kernel suits which adapter.
    let aligned = m % 4 == 0 && n % 4 == 0 && k % 4 == 0 && m >= 8;
    let run = |variant: MatmulVariant| -> Result<()> {
        let (entry, bindings, grid) = match variant {
            MatmulVariant::Vec4 => (
                "matmul_vec4",
                [(4, a.buf()), (5, b.buf()), (2, bias_buf), (6, out.buf())],
                [n.div_ceil(64), m.div_ceil(128), 1],
            ),
            MatmulVariant::Blocked => (
                "matmul_blocked",
                [(0, a.buf()), (1, b.buf()), (2, bias_buf), (3, out.buf())],
                [n.div_ceil(64), m.div_ceil(64), 1],
            ),
            MatmulVariant::Tiled => (
                "matmul_tiled",
                [(0, a.buf()), (1, b.buf()), (2, bias_buf), (3, out.buf())],
                [n.div_ceil(64), m.div_ceil(64), 1],
            ),
        };
        let grid = dev.ctx.check_grid("matmul", grid.map(|g| g as u32))?;
        launch(
            dev,
            shader!("matmul"),
            entry,
            &constants,
            &bindings,
            &params,
            grid,
        );
        Ok(())
    };
    let variant = match (&dev.tuner, dev.matmul_kernel) {
        (Some(tuner), _) => {
            let class = shape_class((m, k, n), spec.trans_a, spec.trans_b, bias.is_some());
            // Timed on these operands, each launch alone on an idle GPU.
            tuner.choose(&class, MatmulVariant::candidates(aligned), |v| {
                dev.ctx.wait_idle()?;
                let t = Instant::now();
                run(v)?;
                dev.ctx.wait_idle()?;
                Ok(t.elapsed().as_secs_f64())
            })?
        }
        (None, MatmulKernel::Blocked) if aligned => MatmulVariant::Vec4,
        (None, MatmulKernel::Blocked) => MatmulVariant::Blocked,
        (None, MatmulKernel::Tiled) => MatmulVariant::Tiled,
    };
    run(variant)?;
    Ok(out)
}
