//! Launchers for shaders/conv2d.wgsl.

use super::{launch, u32_of};
use crate::device::gpu::context::PooledBuffer;
use crate::device::gpu::tune::{conv_class, ConvVariant};
use crate::device::gpu::{GpuDevice, GpuTensor};
use crate::device::{ConvGeom, ConvStep, Device, Tensor};
use crate::error::{Error, Result};
use crate::shader;
use crate::tensor::Shape;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    ci: u32,
    h: u32,
    w: u32,
    co: u32,
    kh: u32,
    kw: u32,
    ho: u32,
    wo: u32,
    pad: u32,
    chunk: u32,
}

/// Output pixels per partial sum of the weight gradient: enough partial
/// sums to keep every core busy, few enough to add up cheaply.
const WEIGHT_GRAD_CHUNK: u32 = 128;

/// Invocations per workgroup of shaders/conv2d_bcast.wgsl's kernels. On
/// llvmpipe the forward pass of T4 took 5.7–5.8 ms a step with 8, 6.8–6.9
/// with 32 and 6.5–6.9 with 64 (`wgtrain bench --workloads T4 --profile`):
/// an image's rows of 4-pixel blocks fill small workgroups with fewer idle
/// invocations.
const BCAST_WG: usize = 8;

/// The grid of a kernel of shaders/conv2d_bcast.wgsl over `blocks` 4-pixel
/// blocks per image, `channels` channels and `n` images, or `None` where
/// the adapter cannot run those kernels or the grid exceeds its limits
/// (the plain kernels then run, whose grid is one-dimensional).
fn bcast_grid(dev: &GpuDevice, blocks: usize, channels: usize, n: usize) -> Option<[u32; 3]> {
    if !dev.has_bcast_matmul() {
        return None;
    }
    let dims = [blocks.div_ceil(BCAST_WG), channels.div_ceil(8), n];
    let grid = dims.map(|d| u32::try_from(d).unwrap_or(u32::MAX));
    dev.ctx.check_grid("conv2d", grid).ok()
}

/// A convolution pass with a plain kernel (shaders/conv2d.wgsl) and a
/// broadcast one (shaders/conv2d_bcast.wgsl), over the same bindings.
struct TwoKernels<'a> {
    /// The pass in the tuner's classes (`fwd`, `dx`).
    pass: &'static str,
    /// The plain and the broadcast kernel's entry points.
    entries: (&'static str, &'static str),
    /// Pipeline constants both take.
    constants: &'a [(&'static str, f64)],
    bindings: &'a [(u32, &'a PooledBuffer)],
    /// The plain kernel's grid.
    plain: [u32; 3],
    /// The broadcast kernel's grid, where it can run ([`bcast_grid`]).
    bcast: Option<[u32; 3]>,
}

impl TwoKernels<'_> {
    /// Records the pass with the kernel [`choose`] picks for `g`.
    fn run(&self, dev: &GpuDevice, g: &ConvGeom) -> Result<()> {
        let params = Params::new(g)?;
        let mut bcast_constants = self.constants.to_vec();
        bcast_constants.extend([
            ("CONV_WG", BCAST_WG as f64),
            ("KH", g.kh as f64),
            ("KW", g.kw as f64),
        ]);
        let launch_one = |v: ConvVariant| {
            match (v, self.bcast) {
                (ConvVariant::Bcast, Some(grid)) => launch(
                    dev,
                    shader!("conv2d", "conv2d_bcast"),
                    self.entries.1,
                    &bcast_constants,
                    self.bindings,
                    &params,
                    grid,
                ),
                _ => launch(
                    dev,
                    shader!("conv2d"),
                    self.entries.0,
                    self.constants,
                    self.bindings,
                    &params,
                    self.plain,
                ),
            }
            Ok(())
        };
        let v = choose(dev, self.pass, g, self.bcast.is_some(), launch_one)?;
        launch_one(v)
    }
}

/// The kernel for pass `pass` (`fwd`, `dx`) of `g`: the plain one where the
/// broadcast one cannot run (`bcast_fits` false), else the forced one
/// ([`GpuDevice::with_conv_kernel`]), else the faster of the two as the
/// tuner timed `run` on these operands, on an idle GPU,
/// else (tuning off) the fixed rule ([`GpuDevice::conv_kernel`]).
fn choose(
    dev: &GpuDevice,
    pass: &str,
    g: &ConvGeom,
    bcast_fits: bool,
    run: impl Fn(ConvVariant) -> Result<()>,
) -> Result<ConvVariant> {
    if !bcast_fits {
        return Ok(ConvVariant::Plain);
    }
    if let Some(v) = dev.conv_forced {
        return Ok(v);
    }
    let Some(tuner) = &dev.tuner else {
        return Ok(dev.conv_kernel());
    };
    tuner.choose(&conv_class(pass, g), &ConvVariant::ALL, |v| {
        crate::device::gpu::tune::time_launch(&dev.ctx, || run(v))
    })
}

/// Invocations of a kernel blocked 8 channels × 4 positions.
fn blocked(channels: usize, rows: usize, cols: usize, n: usize) -> usize {
    n * channels.div_ceil(8) * rows * cols.div_ceil(4)
}

/// The stride as the kernels' override constant. A stride past the padded
/// input's larger side gives the same single window per axis, so it is
/// clamped there to stay a u32.
fn stride_constant(g: &ConvGeom) -> Result<f64> {
    let stride = g.stride.min(g.h.max(g.w) + 2 * g.pad);
    Ok(u32_of("conv2d", stride)? as f64)
}

impl Params {
    fn new(g: &ConvGeom) -> Result<Self> {
        let c = |v| u32_of("conv2d", v);
        // Flat indices must fit u32 too.
        u32_of(
            "conv2d",
            g.n * g.ci.max(g.co) * g.h.max(g.ho) * g.w.max(g.wo),
        )?;
        Ok(Params {
            n: c(g.n)?,
            ci: c(g.ci)?,
            h: c(g.h)?,
            w: c(g.w)?,
            co: c(g.co)?,
            kh: c(g.kh)?,
            kw: c(g.kw)?,
            ho: c(g.ho)?,
            wo: c(g.wo)?,
            pad: c(g.pad)?,
            chunk: WEIGHT_GRAD_CHUNK,
        })
    }
}

pub(crate) fn forward(
    dev: &GpuDevice,
    x: &GpuTensor,
    w: &GpuTensor,
    bias: Option<&GpuTensor>,
    step: ConvStep,
) -> Result<GpuTensor> {
    let g = ConvGeom::forward(x.shape(), w.shape(), step)?;
    if let Some(b) = bias {
        if b.shape().numel() != g.co {
            return Err(Error::shape(
                "conv2d",
                format!("bias {} for {} channels", b.shape(), g.co),
            ));
        }
    }
    let out = dev.empty(g.out_shape())?;
    let bias_buf = bias.map_or(&*dev.placeholder, |b| b.buf());
    let has_bias = if bias.is_some() { 1.0 } else { 0.0 };
    TwoKernels {
        pass: "fwd",
        entries: ("conv2d_forward", "conv2d_forward_bcast"),
        constants: &[("HAS_BIAS", has_bias), ("STRIDE", stride_constant(&g)?)],
        bindings: &[(0, x.buf()), (1, w.buf()), (2, bias_buf), (3, out.buf())],
        plain: dev.ctx.grid_1d("conv2d", blocked(g.co, g.ho, g.wo, g.n))?,
        bcast: bcast_grid(dev, g.ho * g.wo.div_ceil(4), g.co, g.n),
    }
    .run(dev, &g)?;
    Ok(out)
}

pub(crate) fn input_grad(
    dev: &GpuDevice,
    dy: &GpuTensor,
    w: &GpuTensor,
    x_shape: &Shape,
    step: ConvStep,
) -> Result<GpuTensor> {
    let g = ConvGeom::backward("conv2d_input_grad", x_shape, w.shape(), dy.shape(), step)?;
    let out = dev.empty(g.in_shape())?;
    TwoKernels {
        pass: "dx",
        entries: ("conv2d_input_grad", "conv2d_input_grad_bcast"),
        constants: &[("STRIDE", stride_constant(&g)?)],
        bindings: &[(0, dy.buf()), (1, w.buf()), (3, out.buf())],
        plain: dev
            .ctx
            .grid_1d("conv2d_input_grad", blocked(g.ci, g.h, g.w, g.n))?,
        bcast: bcast_grid(dev, g.h * g.w.div_ceil(4), g.ci, g.n),
    }
    .run(dev, &g)?;
    Ok(out)
}

pub(crate) fn weight_grad(
    dev: &GpuDevice,
    x: &GpuTensor,
    dy: &GpuTensor,
    step: ConvStep,
    kernel: (usize, usize),
) -> Result<GpuTensor> {
    let g = ConvGeom::weight_grad(x.shape(), dy.shape(), step, kernel)?;
    let taps = g.ci * g.kh * g.kw;
    let chunks = (g.n * g.ho * g.wo).div_ceil(WEIGHT_GRAD_CHUNK as usize);
    let partial = dev.empty([chunks, g.co * taps])?;
    let invocations = chunks * g.co.div_ceil(8) * taps.div_ceil(8);
    let grid = dev.ctx.grid_1d("conv2d_weight_grad", invocations)?;
    launch(
        dev,
        shader!("conv2d"),
        "conv2d_weight_grad",
        &[("STRIDE", stride_constant(&g)?)],
        &[(0, x.buf()), (1, dy.buf()), (3, partial.buf())],
        &Params::new(&g)?,
        grid,
    );
    let sums = super::reduce::sum_rows(dev, &partial)?;
    dev.reshape(&sums, g.weight_shape())
}

pub(crate) fn channel_sum(dev: &GpuDevice, x: &GpuTensor) -> Result<GpuTensor> {
    let Some((n, c, h, w)) = x.shape().as_nchw() else {
        return Err(Error::shape(
            "channel_sum",
            format!("input must be 4-d, got {}", x.shape()),
        ));
    };
    let out = dev.empty([c])?;
    let g = ConvGeom {
        n,
        ci: c,
        h,
        w,
        co: c,
        kh: 1,
        kw: 1,
        ho: h,
        wo: w,
        pad: 0,
        stride: 1,
    };
    let grid = dev.ctx.check_grid("channel_sum", [c as u32, 1, 1])?;
    launch(
        dev,
        shader!("conv2d"),
        "channel_sum",
        &[],
        &[(0, x.buf()), (3, out.buf())],
        &Params::new(&g)?,
        grid,
    );
    Ok(out)
}
