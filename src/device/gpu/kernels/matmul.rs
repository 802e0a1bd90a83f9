//! Launcher for shaders/matmul.wgsl.

use std::time::Instant;

use super::{launch, u32_of};
use crate::device::gpu::context::PooledBuffer;
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

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PadParams {
    rows: u32,
    cols: u32,
    rows_p: u32,
    cols_p: u32,
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
    let aligned = is_aligned(m, k, n);
    let run = |variant: MatmulVariant| -> Result<()> {
        let (entry, bindings, grid) = match variant {
            MatmulVariant::Padded => {
                return padded(dev, (a, b, bias_buf, &out), (m, k, n), spec, &constants)
            }
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
    // The padded copies can exceed a buffer the product itself fits.
    let (mp, kp, np) = padded_sizes(m, k, n);
    let padded_fits = [mp * kp, kp * np, mp * np]
        .iter()
        .all(|&elements| (elements * 4) as u64 <= dev.ctx.max_tensor_bytes());
    let candidates: Vec<MatmulVariant> = MatmulVariant::candidates(aligned)
        .iter()
        .copied()
        .filter(|&v| v != MatmulVariant::Padded || padded_fits)
        .collect();
    let variant = match (&dev.tuner, dev.matmul_kernel) {
        (Some(tuner), _) => {
            let class = shape_class((m, k, n), spec.trans_a, spec.trans_b, bias.is_some());
            // Timed on these operands, each launch alone on an idle GPU.
            tuner.choose(&class, &candidates, |v| {
                dev.ctx.wait_idle()?;
                let t = Instant::now();
                run(v)?;
                dev.ctx.wait_idle()?;
                Ok(t.elapsed().as_secs_f64())
            })?
        }
        (None, MatmulKernel::Blocked | MatmulKernel::Padded) if aligned => MatmulVariant::Vec4,
        (None, MatmulKernel::Blocked) => MatmulVariant::Blocked,
        (None, MatmulKernel::Padded) if padded_fits => MatmulVariant::Padded,
        (None, MatmulKernel::Padded) => MatmulVariant::Blocked,
        (None, MatmulKernel::Tiled) => MatmulVariant::Tiled,
    };
    run(variant)?;
    Ok(out)
}

/// Whether `matmul_vec4` takes these sizes as they are.
pub(crate) fn is_aligned(m: usize, k: usize, n: usize) -> bool {
    m.is_multiple_of(4) && n.is_multiple_of(4) && k.is_multiple_of(4) && m >= 8
}

/// `matmul_vec4` on zero-padded copies: every size rounded up to a multiple
/// of 4 (and m to at least 8). Zeros in k add exactly nothing; the extra
/// rows and columns of C are computed and cropped away. Operands already of
/// the padded size are used as they are, and C is written in place when it
/// is. The padded columns' bias reads stay inside the bias buffer (pool
/// sizes are multiples of 256 bytes) and only reach cropped columns.
fn padded(
    dev: &GpuDevice,
    (a, b, bias, out): (&GpuTensor, &GpuTensor, &PooledBuffer, &GpuTensor),
    (m, k, n): (usize, usize, usize),
    spec: MatmulSpec,
    constants: &[(&'static str, f64)],
) -> Result<()> {
    let (mp, kp, np) = padded_sizes(m, k, n);
    // Each operand as stored: [rows, cols], and its padded size.
    let stored = |t: bool, r: usize, c: usize, rp: usize, cp: usize| {
        if t {
            ((c, r), (cp, rp))
        } else {
            ((r, c), (rp, cp))
        }
    };
    let a_p = pad_to(dev, a, stored(spec.trans_a, m, k, mp, kp))?;
    let b_p = pad_to(dev, b, stored(spec.trans_b, k, n, kp, np))?;
    let c_p = if (mp, np) == (m, n) {
        None
    } else {
        Some(dev.empty([mp, np])?)
    };
    let c_buf = c_p.as_ref().unwrap_or(out).buf();
    let params = Params {
        m: u32_of("matmul", mp)?,
        n: u32_of("matmul", np)?,
        k: u32_of("matmul", kp)?,
        act: spec.act.code(),
    };
    let grid = [np.div_ceil(64) as u32, mp.div_ceil(128) as u32, 1];
    launch(
        dev,
        shader!("matmul"),
        "matmul_vec4",
        constants,
        &[
            (4, a_p.as_ref().unwrap_or(a).buf()),
            (5, b_p.as_ref().unwrap_or(b).buf()),
            (2, bias),
            (6, c_buf),
        ],
        &params,
        dev.ctx.check_grid("matmul", grid)?,
    );
    if let Some(c_p) = &c_p {
        copy_corner(dev, "crop", c_p, out, (m, n), (mp, np))?;
    }
    Ok(())
}

/// The padded product's sizes: each rounded up to a multiple of 4, m to at
/// least 8.
fn padded_sizes(m: usize, k: usize, n: usize) -> (usize, usize, usize) {
    let up = |v: usize| v.div_ceil(4) * 4;
    (up(m).max(8), up(k), up(n))
}

/// `t` (stored as `[rows, cols]`) zero-padded to `[rows_p, cols_p]`; `None`
/// where it already is that size.
fn pad_to(
    dev: &GpuDevice,
    t: &GpuTensor,
    ((rows, cols), (rows_p, cols_p)): ((usize, usize), (usize, usize)),
) -> Result<Option<GpuTensor>> {
    if (rows, cols) == (rows_p, cols_p) {
        return Ok(None);
    }
    let dst = dev.empty([rows_p, cols_p])?;
    copy_corner(dev, "pad", t, &dst, (rows, cols), (rows_p, cols_p))?;
    Ok(Some(dst))
}

/// Launches shaders/pad.wgsl's `entry` (`pad` or `crop`) from `src` to `dst`.
fn copy_corner(
    dev: &GpuDevice,
    entry: &'static str,
    src: &GpuTensor,
    dst: &GpuTensor,
    (rows, cols): (usize, usize),
    (rows_p, cols_p): (usize, usize),
) -> Result<()> {
    let params = PadParams {
        rows: u32_of("matmul", rows)?,
        cols: u32_of("matmul", cols)?,
        rows_p: u32_of("matmul", rows_p)?,
        cols_p: u32_of("matmul", cols_p)?,
    };
    let threads = if entry == "pad" {
        rows_p * cols_p
    } else {
        rows * cols
    };
    let grid = dev.ctx.grid_1d("matmul", threads)?;
    launch(
        dev,
        shader!("pad"),
        entry,
        &[],
        &[(0, src.buf()), (1, dst.buf())],
        &params,
        grid,
    );
    Ok(())
}
