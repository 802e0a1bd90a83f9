//! `CpuDevice`: the reference implementation on ndarray.
//!
//! Every GPU kernel is judged against it, and it is itself checked against
//! the naive loops of `device/reference.rs`. Matrix products go through the
//! `gemm` crate (`gemm.rs`), elementwise loops are compiled per SIMD level
//! (`simd.rs`), and convolutions
//! are written as im2col + that product so the reference is not painfully
//! slow on machines without a GPU.

mod gated;
mod gemm;
pub mod math;
mod norm;
mod simd;

use std::sync::Arc;

use rayon::prelude::*;

use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Zip};

use super::{
    pool_geom, rnn_geom, same_shape, window_geom, Activation, AdamStep, Binary, ConvGeom, ConvStep,
    Device, DropoutMask, LossGrad, LossScaleStep, MatmulSpec, PoolWindow, Precision, Reduce,
    Tensor, LEAKY_SLOPE,
};
use crate::error::{Error, Result};
use crate::profile;
use crate::tensor::Shape;

/// A host tensor: shared, immutable storage plus a shape. In-place updates
/// (optimizers) copy on write if the storage is shared.
#[derive(Clone, Debug)]
pub struct CpuTensor {
    data: Arc<Vec<f32>>,
    shape: Shape,
}

impl Tensor for CpuTensor {
    fn shape(&self) -> &Shape {
        &self.shape
    }
}

impl CpuTensor {
    /// A tensor of `data` in row-major order; fails unless its length is `shape`'s
    /// element count.
    pub fn new(data: Vec<f32>, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::shape(
                "upload",
                format!("{} values for shape {shape}", data.len()),
            ));
        }
        Ok(CpuTensor {
            data: Arc::new(data),
            shape,
        })
    }

    /// The values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    fn data_mut(&mut self) -> &mut [f32] {
        Arc::make_mut(&mut self.data).as_mut_slice()
    }

    /// The tensor as a matrix `[rows, row_len]`.
    fn mat(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape((self.shape.rows(), self.shape.row_len()), &self.data)
            .expect("shape and data agree by construction")
    }

    fn vec(&self) -> ArrayView1<'_, f32> {
        ArrayView1::from(&self.data[..])
    }

    fn map(&self, f: impl Fn(f32) -> f32 + Sync) -> CpuTensor {
        let mut out = vec![0.0f32; self.data.len()];
        par_chunks(&mut out, |start, chunk| {
            simd::map_into(chunk, &self.data[start..], &f)
        });
        CpuTensor {
            data: Arc::new(out),
            shape: self.shape.clone(),
        }
    }

    /// `act` applied elementwise.
    fn activate(&self, act: Activation) -> CpuTensor {
        match act {
            Activation::Identity => self.clone(),
            Activation::Tanh => self.map(math::tanh),
            _ => {
                let mut out = self.clone();
                activate_in_place(out.data_mut(), act);
                out
            }
        }
    }

    fn zip(&self, other: &CpuTensor, f: impl Fn(f32, f32) -> f32 + Sync) -> CpuTensor {
        let mut out = vec![0.0f32; self.data.len()];
        par_chunks(&mut out, |start, chunk| {
            simd::zip_into(chunk, &self.data[start..], &other.data[start..], &f)
        });
        CpuTensor {
            data: Arc::new(out),
            shape: self.shape.clone(),
        }
    }
}

/// Host bytes (see [`Device::Bytes`]).
#[derive(Clone, Debug)]
pub struct CpuBytes {
    data: Arc<Vec<u8>>,
    shape: Shape,
}

impl Tensor for CpuBytes {
    fn shape(&self) -> &Shape {
        &self.shape
    }
}

/// f16 values on the host (see [`Device::Half`]): kept as the f32 values
/// they round to, which is all the CPU's f16 emulation needs.
#[derive(Clone, Debug)]
pub struct CpuHalf(CpuTensor);

impl Tensor for CpuHalf {
    fn shape(&self) -> &Shape {
        &self.0.shape
    }
}

/// Elements per parallel task of elementwise work: below this, threads cost
/// more than they save.
const PAR_CHUNK: usize = 16 * 1024;

/// Runs `f(start, chunk)` over fixed-size chunks of `out`, in parallel when
/// there is more than one. Each element is written by exactly one call, so
/// results do not depend on scheduling.
fn par_chunks(out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    if out.len() <= PAR_CHUNK {
        f(0, out);
    } else {
        out.par_chunks_mut(PAR_CHUNK)
            .enumerate()
            .for_each(|(i, chunk)| f(i * PAR_CHUNK, chunk));
    }
}

/// Applies `act` to every value, one specialised loop per activation so each
/// is a straight-line body the compiler vectorises.
fn activate_in_place(data: &mut [f32], act: Activation) {
    fn apply(data: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
        par_chunks(data, |_, chunk| simd::map_in_place(chunk, &f));
    }
    match act {
        Activation::Identity => {}
        Activation::Tanh => apply(data, math::tanh),
        Activation::Sigmoid => apply(data, math::sigmoid),
        Activation::Relu => apply(data, |v| v.max(0.0)),
        Activation::LeakyRelu => apply(data, super::leaky_relu),
        Activation::Softplus => apply(data, super::softplus),
        Activation::Gelu => apply(data, super::gelu),
    }
}

/// The error for an activation whose derivative the output does not give.
pub(crate) fn needs_input(act: Activation) -> Error {
    Error::Config(format!(
        "{}'s derivative needs its input: use activation_backward_from_input",
        act.name()
    ))
}

fn from_array2(a: Array2<f32>) -> CpuTensor {
    let shape = Shape::new([a.nrows(), a.ncols()]);
    let data = if a.is_standard_layout() {
        a.into_raw_vec_and_offset().0
    } else {
        a.iter().copied().collect()
    };
    CpuTensor {
        data: Arc::new(data),
        shape,
    }
}

/// Fails unless `t` holds one value (a `[1]` scale).
fn one_value(op: &'static str, t: &CpuTensor) -> Result<()> {
    if t.shape.numel() == 1 {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("expected a [1] tensor, got {}", t.shape),
        ))
    }
}

fn scalar(v: f32) -> CpuTensor {
    CpuTensor {
        data: Arc::new(vec![v]),
        shape: Shape::new([1]),
    }
}

/// Converts an index stored as f32 to usize, checking it against `bound`.
fn index(v: f32, bound: usize, op: &'static str) -> Result<usize> {
    if v >= 0.0 && v.fract() == 0.0 && (v as usize) < bound {
        Ok(v as usize)
    } else {
        Err(Error::shape(
            op,
            format!("index {v} out of range 0..{bound}"),
        ))
    }
}

/// The CPU reference device.
#[derive(Clone, Debug, Default)]
pub struct CpuDevice {
    /// Under f16, product operands are rounded before the f32 product: the
    /// reference the GPU's f16 kernels are checked against.
    precision: Precision,
}

impl CpuDevice {
    /// The reference device, in f32.
    pub fn new() -> Self {
        CpuDevice::default()
    }

    /// The widest vector instructions the device's matrix products use on
    /// this processor: `"AVX-512"`, `"AVX2 + FMA"`, `"NEON"`, or
    /// `"baseline"` (SSE2 on x86-64; scalar elsewhere). The elementwise loops
    /// use the same, except AVX-512 before Ice Lake (`multiversion` asks for
    /// its later extensions), where they use AVX2. Chosen at run time, so
    /// one binary is fast on a newer processor and still runs on an older
    /// one.
    pub fn instruction_set() -> &'static str {
        simd::widest()
    }

    /// `t` with every element rounded to this device's precision.
    fn rounded(&self, t: &CpuTensor) -> CpuTensor {
        let p = self.precision;
        CpuTensor {
            data: Arc::new(t.data.iter().map(|&x| p.round(x)).collect()),
            shape: t.shape.clone(),
        }
    }

    /// im2col for one image: `[Ci·KH·KW, Ho·Wo]`, zero where the window
    /// reaches into the padding.
    fn im2col(x: &[f32], img: usize, g: &ConvGeom) -> Array2<f32> {
        let plane = g.ho * g.wo;
        let src = &x[img * g.ci * g.h * g.w..(img + 1) * g.ci * g.h * g.w];
        let mut cols = vec![0.0f32; g.ci * g.kh * g.kw * plane];
        let s = g.stride;
        for_each_window_run(g, |row, out, inp, len| {
            let dst = &mut cols[row * plane + out..row * plane + out + len];
            if s == 1 {
                dst.copy_from_slice(&src[inp..inp + len]);
            } else {
                for (d, v) in dst.iter_mut().zip(src[inp..].iter().step_by(s)) {
                    *d = *v;
                }
            }
        });
        Array2::from_shape_vec((g.ci * g.kh * g.kw, plane), cols).expect("sized above")
    }
}

/// The copies between an image `[Ci, H, W]` and its im2col matrix
/// `[Ci·KH·KW, Ho·Wo]`: for each tap row and output row, the run of output
/// columns whose input pixels lie inside the image (the rest is padding).
/// Calls `f(tap_row, column_offset, input_offset, len)`; the run's input
/// pixels are `g.stride` apart.
fn for_each_window_run(g: &ConvGeom, mut f: impl FnMut(usize, usize, usize, usize)) {
    let s = g.stride;
    for c in 0..g.ci {
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = (c * g.kh + i) * g.kw + j;
                // ox·s + j − pad must lie in 0..w.
                let lo = g.pad.saturating_sub(j).div_ceil(s);
                let hi = g.wo.min((g.w + g.pad).saturating_sub(j).div_ceil(s));
                if lo >= hi {
                    continue;
                }
                for oy in 0..g.ho {
                    let iy = oy * s + i;
                    if iy < g.pad || iy - g.pad >= g.h {
                        continue;
                    }
                    let inp = (c * g.h + iy - g.pad) * g.w + lo * s + j - g.pad;
                    f(row, oy * g.wo + lo, inp, hi - lo);
                }
            }
        }
    }
}

/// The windows of `win` along one axis (of `outputs`) that cover input
/// position `i`: those `o` with `o·stride ≤ i < o·stride + size`.
fn window_range(i: usize, win: PoolWindow, outputs: usize) -> std::ops::Range<usize> {
    let first = (i + 1).saturating_sub(win.size).div_ceil(win.stride);
    let last = (i / win.stride + 1).min(outputs);
    first..last.max(first)
}

impl Device for CpuDevice {
    type Tensor = CpuTensor;
    type Bytes = CpuBytes;
    type Half = CpuHalf;

    fn name(&self) -> String {
        "cpu".into()
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    /// Always possible: f16 is emulated by rounding (for reference, not speed).
    fn with_precision(&self, precision: Precision) -> Result<Self> {
        Ok(CpuDevice { precision })
    }

    fn upload(&self, data: &[f32], shape: impl Into<Shape>) -> Result<CpuTensor> {
        CpuTensor::new(data.to_vec(), shape)
    }

    fn download(&self, t: &CpuTensor) -> Result<Vec<f32>> {
        Ok(t.data.to_vec())
    }

    fn to_half(&self, t: &CpuTensor) -> Result<CpuHalf> {
        let data = t.data.iter().map(|&x| Precision::F16.round(x)).collect();
        Ok(CpuHalf(CpuTensor {
            data: Arc::new(data),
            shape: t.shape.clone(),
        }))
    }

    fn half_to_f32(&self, t: &CpuHalf) -> Result<CpuTensor> {
        Ok(t.0.clone())
    }

    fn upload_u8(&self, data: &[u8], shape: impl Into<Shape>) -> Result<CpuBytes> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::shape(
                "upload_u8",
                format!("{} bytes for shape {shape}", data.len()),
            ));
        }
        Ok(CpuBytes {
            data: Arc::new(data.to_vec()),
            shape,
        })
    }

    fn full(&self, shape: impl Into<Shape>, value: f32) -> Result<CpuTensor> {
        let shape = shape.into();
        CpuTensor::new(vec![value; shape.numel()], shape)
    }

    fn reshape(&self, t: &CpuTensor, shape: impl Into<Shape>) -> Result<CpuTensor> {
        let shape = shape.into();
        if shape.numel() != t.shape.numel() {
            return Err(Error::shape("reshape", format!("{} to {shape}", t.shape)));
        }
        Ok(CpuTensor {
            data: t.data.clone(),
            shape,
        })
    }

    fn slice_rows(&self, x: &CpuTensor, start: usize, count: usize) -> Result<CpuTensor> {
        let _t = profile::op_timer("slice_rows");
        if start + count > x.shape.rows() {
            return Err(Error::shape(
                "slice_rows",
                format!("rows {start}..{} of {}", start + count, x.shape),
            ));
        }
        let rl = x.shape.row_len();
        CpuTensor::new(
            x.data[start * rl..(start + count) * rl].to_vec(),
            x.shape.with_rows(count),
        )
    }

    fn concat_rows(&self, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor> {
        let _t = profile::op_timer("concat_rows");
        if a.shape.row_len() != b.shape.row_len() || a.shape.rank() != b.shape.rank() {
            return Err(Error::shape(
                "concat_rows",
                format!("{} and {}", a.shape, b.shape),
            ));
        }
        let mut data = Vec::with_capacity(a.data.len() + b.data.len());
        data.extend_from_slice(&a.data);
        data.extend_from_slice(&b.data);
        CpuTensor::new(data, a.shape.with_rows(a.shape.rows() + b.shape.rows()))
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn matmul(
        &self,
        a: &CpuTensor,
        b: &CpuTensor,
        bias: Option<&CpuTensor>,
        spec: MatmulSpec,
    ) -> Result<CpuTensor> {
        let _t = profile::op_timer("matmul");
        let (_, _, n) = spec.dims(&a.shape, &b.shape)?;
        let (a, b) = &match self.precision {
            Precision::F32 => (a.clone(), b.clone()),
            Precision::F16 => (self.rounded(a), self.rounded(b)),
        };
        let am = if spec.trans_a {
            a.mat().reversed_axes()
        } else {
            a.mat()
        };
        let bm = if spec.trans_b {
            b.mat().reversed_axes()
        } else {
            b.mat()
        };
        let mut c = gemm::dot(&am, &bm);
        if let Some(bias) = bias {
            if bias.shape.numel() != n {
                return Err(Error::shape(
                    "matmul",
                    format!("bias {} for {n} output columns", bias.shape),
                ));
            }
            c += &bias.vec();
        }
        let mut c = from_array2(c);
        activate_in_place(c.data_mut(), spec.act);
        Ok(c)
    }

    fn conv2d(
        &self,
        x: &CpuTensor,
        w: &CpuTensor,
        bias: Option<&CpuTensor>,
        step: ConvStep,
    ) -> Result<CpuTensor> {
        let _t = profile::op_timer("conv2d");
        let g = ConvGeom::forward(&x.shape, &w.shape, step)?;
        if let Some(b) = bias {
            if b.shape.numel() != g.co {
                return Err(Error::shape(
                    "conv2d",
                    format!("bias {} for {} channels", b.shape, g.co),
                ));
            }
        }
        let wm = ArrayView2::from_shape((g.co, g.ci * g.kh * g.kw), &w.data[..]).unwrap();
        let plane = g.ho * g.wo;
        let mut out = vec![0.0f32; g.n * g.co * plane];
        // Images in parallel; each is one small GEMM over its im2col matrix.
        out.par_chunks_mut(g.co * plane)
            .enumerate()
            .for_each(|(img, chunk)| {
                let y = gemm::dot(&wm, &Self::im2col(&x.data, img, &g).view());
                let mut dst = ArrayViewMut2::from_shape((g.co, plane), chunk).unwrap();
                dst.assign(&y);
                if let Some(b) = bias {
                    for (mut row, &bv) in dst.rows_mut().into_iter().zip(b.data.iter()) {
                        row += bv;
                    }
                }
            });
        CpuTensor::new(out, g.out_shape())
    }

    fn conv2d_input_grad(
        &self,
        dy: &CpuTensor,
        w: &CpuTensor,
        x_shape: &Shape,
        step: ConvStep,
    ) -> Result<CpuTensor> {
        let _t = profile::op_timer("conv2d_input_grad");
        let g = ConvGeom::backward("conv2d_input_grad", x_shape, &w.shape, &dy.shape, step)?;
        let wm = ArrayView2::from_shape((g.co, g.ci * g.kh * g.kw), &w.data[..]).unwrap();
        let plane = g.ho * g.wo;
        let mut dx = vec![0.0f32; g.n * g.ci * g.h * g.w];
        dx.par_chunks_mut(g.ci * g.h * g.w)
            .enumerate()
            .for_each(|(img, dx)| {
                let dyi = ArrayView2::from_shape(
                    (g.co, plane),
                    &dy.data[img * g.co * plane..(img + 1) * g.co * plane],
                )
                .unwrap();
                // col2im of Wᵀ·dy: add each column entry back onto its pixel.
                let cols = gemm::dot(&wm.t(), &dyi);
                let cols = cols.as_slice().expect("a fresh product is contiguous");
                let s = g.stride;
                for_each_window_run(&g, |row, out, inp, len| {
                    let src = &cols[row * plane + out..row * plane + out + len];
                    for (d, v) in dx[inp..].iter_mut().step_by(s).zip(src) {
                        *d += v;
                    }
                });
            });
        CpuTensor::new(dx, g.in_shape())
    }

    fn conv2d_weight_grad(
        &self,
        x: &CpuTensor,
        dy: &CpuTensor,
        step: ConvStep,
        kernel: (usize, usize),
    ) -> Result<CpuTensor> {
        let _t = profile::op_timer("conv2d_weight_grad");
        let g = ConvGeom::weight_grad(&x.shape, &dy.shape, step, kernel)?;
        let plane = g.ho * g.wo;
        // Partial sums over fixed groups of images, computed in parallel and
        // added in order: the result does not depend on thread scheduling.
        const IMAGES_PER_TASK: usize = 8;
        let partials: Vec<Array2<f32>> = (0..g.n.div_ceil(IMAGES_PER_TASK))
            .into_par_iter()
            .map(|task| {
                let mut dw = Array2::<f32>::zeros((g.co, g.ci * g.kh * g.kw));
                for img in task * IMAGES_PER_TASK..((task + 1) * IMAGES_PER_TASK).min(g.n) {
                    let dyi = ArrayView2::from_shape(
                        (g.co, plane),
                        &dy.data[img * g.co * plane..(img + 1) * g.co * plane],
                    )
                    .unwrap();
                    gemm::add_dot(
                        &mut dw.view_mut(),
                        &dyi,
                        &Self::im2col(&x.data, img, &g).t(),
                    );
                }
                dw
            })
            .collect();
        let mut dw = Array2::<f32>::zeros((g.co, g.ci * g.kh * g.kw));
        for p in &partials {
            dw += p;
        }
        let mut t = from_array2(dw);
        t.shape = g.weight_shape();
        Ok(t)
    }

    fn channel_sum(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let _t = profile::op_timer("channel_sum");
        let Some((n, c, h, w)) = x.shape.as_nchw() else {
            return Err(Error::shape(
                "channel_sum",
                format!("input must be 4-d, got {}", x.shape),
            ));
        };
        let plane = h * w;
        // Channels in parallel; within one, images in order.
        let out = (0..c)
            .into_par_iter()
            .map(|ch| {
                (0..n)
                    .map(|img| {
                        let at = (img * c + ch) * plane;
                        simd::sum_f64(&x.data[at..at + plane])
                    })
                    .sum::<f64>() as f32
            })
            .collect();
        CpuTensor::new(out, [c])
    }

    fn max_pool2d(&self, x: &CpuTensor, win: PoolWindow) -> Result<(CpuTensor, CpuTensor)> {
        let _t = profile::op_timer("max_pool2d");
        let (n, c, h, w, ho, wo) = pool_geom(&x.shape, win)?;
        let PoolWindow { size: k, stride: s } = win;
        let (plane_in, plane_out) = (h * w, ho * wo);
        let mut y = vec![0.0f32; n * c * plane_out];
        let mut arg = vec![0.0f32; n * c * plane_out];
        // Planes in parallel; within one, windows in order.
        y.par_chunks_mut(plane_out)
            .zip(arg.par_chunks_mut(plane_out))
            .enumerate()
            .for_each(|(nc, (y, arg))| {
                let src = &x.data[nc * plane_in..(nc + 1) * plane_in];
                for oy in 0..ho {
                    for ox in 0..wo {
                        let first = oy * s * w + ox * s;
                        let (mut best, mut best_i) = (src[first], first);
                        for i in 0..k {
                            let row = first + i * w;
                            for (j, &v) in src[row..row + k].iter().enumerate() {
                                // Strict `>` keeps the first maximum.
                                if v > best {
                                    best = v;
                                    best_i = row + j;
                                }
                            }
                        }
                        y[oy * wo + ox] = best;
                        arg[oy * wo + ox] = (nc * plane_in + best_i) as f32;
                    }
                }
            });
        let shape = Shape::new([n, c, ho, wo]);
        Ok((
            CpuTensor::new(y, shape.clone())?,
            CpuTensor::new(arg, shape)?,
        ))
    }

    fn max_pool2d_backward(
        &self,
        dy: &CpuTensor,
        argmax: &CpuTensor,
        x_shape: &Shape,
        win: PoolWindow,
    ) -> Result<CpuTensor> {
        let _t = profile::op_timer("max_pool2d_backward");
        same_shape("max_pool2d_backward", &dy.shape, &argmax.shape)?;
        let (n, c, _, _, ho, wo) = pool_geom(x_shape, win)?;
        same_shape(
            "max_pool2d_backward",
            &dy.shape,
            &Shape::new([n, c, ho, wo]),
        )?;
        // Planes in parallel; within one, in output order, so an input that
        // is the maximum of several overlapping windows sums them in the
        // order the GPU does. A window's maximum lies in its own plane.
        let (plane_in, plane_out) = (x_shape.numel() / (n * c).max(1), ho * wo);
        let total = x_shape.numel();
        let mut dx = vec![0.0f32; total];
        dx.par_chunks_mut(plane_in.max(1))
            .zip(dy.data.par_chunks(plane_out.max(1)))
            .zip(argmax.data.par_chunks(plane_out.max(1)))
            .enumerate()
            .map(|(nc, ((dx, dy), arg))| {
                let start = nc * plane_in;
                for (&g, &a) in dy.iter().zip(arg) {
                    let i = index(a, total, "max_pool2d_backward")?;
                    let Some(at) = i.checked_sub(start).filter(|&at| at < plane_in) else {
                        return Err(Error::shape(
                            "max_pool2d_backward",
                            format!("index {i} outside its plane {start}..{}", start + plane_in),
                        ));
                    };
                    dx[at] += g;
                }
                Ok(())
            })
            // Collected in plane order, so the error reported is the first.
            .collect::<Vec<Result<()>>>()
            .into_iter()
            .collect::<Result<()>>()?;
        CpuTensor::new(dx, x_shape.clone())
    }

    fn avg_pool2d(&self, x: &CpuTensor, win: PoolWindow) -> Result<CpuTensor> {
        let _t = profile::op_timer("avg_pool2d");
        let (n, c, h, w, ho, wo) = window_geom("avg_pool2d", &x.shape, win)?;
        let PoolWindow {
            size: k,
            stride: st,
        } = win;
        let inv = 1.0 / (k * k) as f32;
        let mut y = vec![0.0f32; n * c * ho * wo];
        for (nc, out) in y.chunks_mut(ho * wo).enumerate() {
            let src = &x.data[nc * h * w..(nc + 1) * h * w];
            for oy in 0..ho {
                for ox in 0..wo {
                    // Row by row in order, as the GPU sums.
                    let mut s = 0.0f32;
                    for i in 0..k {
                        let row = (oy * st + i) * w + ox * st;
                        for &v in &src[row..row + k] {
                            s += v;
                        }
                    }
                    out[oy * wo + ox] = s * inv;
                }
            }
        }
        CpuTensor::new(y, [n, c, ho, wo])
    }

    fn avg_pool2d_backward(
        &self,
        dy: &CpuTensor,
        x_shape: &Shape,
        win: PoolWindow,
    ) -> Result<CpuTensor> {
        let _t = profile::op_timer("avg_pool2d_backward");
        let (n, c, h, w, ho, wo) = window_geom("avg_pool2d_backward", x_shape, win)?;
        same_shape(
            "avg_pool2d_backward",
            &dy.shape,
            &Shape::new([n, c, ho, wo]),
        )?;
        let inv = 1.0 / (win.size * win.size) as f32;
        let mut dx = vec![0.0f32; x_shape.numel()];
        for (nc, plane) in dx.chunks_mut(h * w).enumerate() {
            let dy = &dy.data[nc * ho * wo..(nc + 1) * ho * wo];
            for iy in 0..h {
                let rows = window_range(iy, win, ho);
                for ix in 0..w {
                    // Each covering window in output order, as the GPU adds.
                    let mut g = 0.0f32;
                    for oy in rows.clone() {
                        for ox in window_range(ix, win, wo) {
                            g += dy[oy * wo + ox] * inv;
                        }
                    }
                    plane[iy * w + ix] = g;
                }
            }
        }
        CpuTensor::new(dx, x_shape.clone())
    }

    fn activation(&self, x: &CpuTensor, act: Activation) -> Result<CpuTensor> {
        let _t = profile::op_timer("activation");
        Ok(x.activate(act))
    }

    fn activation_backward(
        &self,
        y: &CpuTensor,
        dy: &CpuTensor,
        act: Activation,
    ) -> Result<CpuTensor> {
        let _t = profile::op_timer("activation_backward");
        same_shape("activation_backward", &y.shape, &dy.shape)?;
        // One loop per activation, so each is a straight-line vectorisable body.
        Ok(match act {
            Activation::Identity => dy.clone(),
            Activation::Tanh => y.zip(dy, |y, g| g * (1.0 - y * y)),
            Activation::Sigmoid => y.zip(dy, |y, g| g * y * (1.0 - y)),
            Activation::Relu => y.zip(dy, |y, g| if y > 0.0 { g } else { 0.0 }),
            Activation::LeakyRelu => y.zip(dy, |y, g| if y > 0.0 { g } else { g * LEAKY_SLOPE }),
            Activation::Softplus => y.zip(dy, |y, g| -g * (-y).exp_m1()),
            Activation::Gelu => return Err(needs_input(act)),
        })
    }

    fn activation_backward_from_input(
        &self,
        x: &CpuTensor,
        dy: &CpuTensor,
        act: Activation,
    ) -> Result<CpuTensor> {
        let _t = profile::op_timer("activation_backward_from_input");
        same_shape("activation_backward_from_input", &x.shape, &dy.shape)?;
        Ok(x.zip(dy, |x, g| g * act.derivative_at(x)))
    }

    fn binary(&self, a: &CpuTensor, b: &CpuTensor, op: Binary) -> Result<CpuTensor> {
        let _t = profile::op_timer("binary");
        same_shape("binary", &a.shape, &b.shape)?;
        Ok(a.zip(b, |x, y| op.apply(x, y)))
    }

    fn scale(&self, x: &CpuTensor, alpha: f32) -> Result<CpuTensor> {
        let _t = profile::op_timer("scale");
        Ok(x.map(|v| alpha * v))
    }

    fn scale_by(&self, x: &CpuTensor, s: &CpuTensor) -> Result<CpuTensor> {
        let _t = profile::op_timer("scale_by");
        one_value("scale_by", s)?;
        let alpha = s.data[0];
        Ok(x.map(|v| alpha * v))
    }

    fn axpy(&self, alpha: f32, x: &CpuTensor, y: &CpuTensor) -> Result<CpuTensor> {
        let _t = profile::op_timer("axpy");
        same_shape("axpy", &x.shape, &y.shape)?;
        Ok(x.zip(y, |a, b| alpha * a + b))
    }

    // Reductions accumulate in f64: the reference should be the accurate
    // side of every comparison.
    fn sum_rows(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let _t = profile::op_timer("sum_rows");
        let mut acc = vec![0.0f64; x.shape.row_len()];
        if !acc.is_empty() {
            simd::add_rows_f64(&mut acc, &x.data);
        }
        CpuTensor::new(
            acc.into_iter().map(|v| v as f32).collect(),
            [x.shape.row_len()],
        )
    }

    fn sum_cols(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let _t = profile::op_timer("sum_cols");
        let m = x.mat();
        let sums = m.rows().into_iter().map(|row| sum_f64(row.iter().copied()));
        CpuTensor::new(sums.collect(), [x.shape.rows()])
    }

    fn reduce(&self, x: &CpuTensor, op: Reduce) -> Result<CpuTensor> {
        let _t = profile::op_timer("reduce");
        let d = x.data.iter().copied();
        Ok(scalar(match op {
            Reduce::Sum => sum_f64(d),
            Reduce::SumSquares => sum_f64(d.map(|v| v * v)),
            Reduce::Max => d.fold(f32::NEG_INFINITY, f32::max),
        }))
    }

    fn softmax_rows(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let _t = profile::op_timer("softmax_rows");
        let mut out = x.data.to_vec();
        out.par_chunks_mut(x.shape.row_len().max(1))
            .for_each(|row| {
                let (_, sum) = exp_shifted(row);
                simd::map_in_place(row, &|e| e / sum);
            });
        CpuTensor::new(out, x.shape.clone())
    }

    fn softmax_cross_entropy(
        &self,
        logits: &CpuTensor,
        labels: &CpuTensor,
    ) -> Result<LossGrad<CpuTensor>> {
        let _t = profile::op_timer("softmax_cross_entropy");
        let (r, c) = (logits.shape.rows(), logits.shape.row_len());
        if labels.shape.numel() != r {
            return Err(Error::shape(
                "softmax_cross_entropy",
                format!(
                    "{} labels for logits {}",
                    labels.shape.numel(),
                    logits.shape
                ),
            ));
        }
        let ys = labels
            .data
            .iter()
            .map(|&label| index(label, c, "softmax_cross_entropy"))
            .collect::<Result<Vec<usize>>>()?;
        let mut grad = logits.data.to_vec();
        let mut losses = vec![0.0f64; r];
        // Rows in parallel; their losses are added in order below.
        grad.par_chunks_mut(c.max(1))
            .zip(losses.par_iter_mut())
            .zip(ys.par_iter())
            .for_each(|((row, loss), &y)| {
                let target = row[y];
                let (max, sum) = exp_shifted(row);
                *loss = (max + sum.ln() - target) as f64;
                simd::map_in_place(row, &|e| e / sum / r as f32);
                row[y] -= 1.0 / r as f32;
            });
        let loss: f64 = losses.iter().sum();
        Ok(LossGrad {
            loss: scalar((loss / r as f64) as f32),
            grad: CpuTensor::new(grad, logits.shape.clone())?,
        })
    }

    fn mse(&self, pred: &CpuTensor, target: &CpuTensor) -> Result<LossGrad<CpuTensor>> {
        let _t = profile::op_timer("mse");
        same_shape("mse", &pred.shape, &target.shape)?;
        let n = pred.shape.numel() as f32;
        let loss: f64 = pred
            .data
            .iter()
            .zip(target.data.iter())
            .map(|(&p, &t)| ((p - t) * (p - t)) as f64)
            .sum();
        Ok(LossGrad {
            loss: scalar((loss / n as f64) as f32),
            grad: pred.zip(target, |p, t| 2.0 * (p - t) / n),
        })
    }

    fn bce_with_logits(
        &self,
        logits: &CpuTensor,
        targets: &CpuTensor,
    ) -> Result<LossGrad<CpuTensor>> {
        let _t = profile::op_timer("bce_with_logits");
        same_shape("bce_with_logits", &logits.shape, &targets.shape)?;
        let n = logits.shape.numel() as f32;
        // log(1 + e^z) - t·z, written as max(z,0) - t·z + log(1 + e^-|z|).
        let loss: f64 = logits
            .data
            .iter()
            .zip(targets.data.iter())
            .map(|(&z, &t)| (z.max(0.0) - t * z + (-z.abs()).exp().ln_1p()) as f64)
            .sum();
        Ok(LossGrad {
            loss: scalar((loss / n as f64) as f32),
            grad: logits.zip(targets, |z, t| (super::sigmoid(z) - t) / n),
        })
    }

    fn argmax_rows(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let _t = profile::op_timer("argmax_rows");
        let out: Vec<f32> = x
            .mat()
            .rows()
            .into_iter()
            .map(|row| {
                let mut best = 0;
                for (i, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = i;
                    }
                }
                best as f32
            })
            .collect();
        CpuTensor::new(out, [x.shape.rows()])
    }

    fn count_equal(&self, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor> {
        if a.shape.numel() != b.shape.numel() {
            return Err(Error::shape(
                "count_equal",
                format!("{} vs {}", a.shape, b.shape),
            ));
        }
        let n = a
            .data
            .iter()
            .zip(b.data.iter())
            .filter(|(x, y)| x == y)
            .count();
        Ok(scalar(n as f32))
    }

    fn gather_rows(
        &self,
        src: &CpuTensor,
        idx: &CpuTensor,
        start: usize,
        count: usize,
    ) -> Result<CpuTensor> {
        let _t = profile::op_timer("gather_rows");
        let out = gather(
            "gather_rows",
            &src.data,
            &src.shape,
            idx,
            start,
            count,
            |v| v,
        )?;
        CpuTensor::new(out, src.shape.with_rows(count))
    }

    fn gather_rows_u8(
        &self,
        src: &CpuBytes,
        idx: &CpuTensor,
        start: usize,
        count: usize,
        scale: f32,
        shift: f32,
    ) -> Result<CpuTensor> {
        let _t = profile::op_timer("gather_rows_u8");
        let convert = |b: u8| b as f32 * scale + shift;
        let out = gather(
            "gather_rows_u8",
            &src.data,
            &src.shape,
            idx,
            start,
            count,
            convert,
        )?;
        CpuTensor::new(out, src.shape.with_rows(count))
    }

    fn transpose(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let _t = profile::op_timer("transpose");
        let Some((r, c)) = x.shape.as_matrix() else {
            return Err(Error::shape(
                "transpose",
                format!("expected a matrix, got {}", x.shape),
            ));
        };
        let t = x.mat().t().as_standard_layout().into_owned();
        CpuTensor::new(t.into_raw_vec_and_offset().0, [c, r])
    }

    fn one_hot(&self, idx: &CpuTensor, depth: usize) -> Result<CpuTensor> {
        let _t = profile::op_timer("one_hot");
        let m = idx.shape.numel();
        let mut out = vec![0.0f32; m * depth];
        for (row, &i) in idx.data.iter().enumerate() {
            out[row * depth + index(i, depth, "one_hot")?] = 1.0;
        }
        CpuTensor::new(out, [m, depth])
    }

    fn dropout_mask(&self, shape: Shape, mask: &DropoutMask) -> Result<CpuTensor> {
        let _t = profile::op_timer("dropout_mask");
        let n = u32::try_from(shape.numel())
            .map_err(|_| Error::shape("dropout_mask", format!("{shape}: over 2³² elements")))?;
        let key = mask.key();
        let data = (0..n).map(|i| mask.value(key, i)).collect();
        CpuTensor::new(data, shape)
    }

    fn channel_stats(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let _t = profile::op_timer("channel_stats");
        norm::channel_stats(x)
    }

    fn batch_norm(
        &self,
        x: &CpuTensor,
        stats: &CpuTensor,
        gamma: &CpuTensor,
        beta: &CpuTensor,
        eps: f32,
    ) -> Result<CpuTensor> {
        let _t = profile::op_timer("batch_norm");
        norm::batch_norm(x, stats, gamma, beta, eps)
    }

    fn batch_norm_backward(
        &self,
        dy: &CpuTensor,
        x: &CpuTensor,
        stats: &CpuTensor,
        gamma: &CpuTensor,
        eps: f32,
    ) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
        let _t = profile::op_timer("batch_norm_backward");
        norm::batch_norm_backward(dy, x, stats, gamma, eps)
    }

    fn layer_norm(
        &self,
        x: &CpuTensor,
        gamma: &CpuTensor,
        beta: &CpuTensor,
        eps: f32,
    ) -> Result<(CpuTensor, CpuTensor)> {
        let _t = profile::op_timer("layer_norm");
        norm::forward(x, gamma, beta, eps)
    }

    fn layer_norm_backward(
        &self,
        dy: &CpuTensor,
        x: &CpuTensor,
        stats: &CpuTensor,
        gamma: &CpuTensor,
    ) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
        let _t = profile::op_timer("layer_norm_backward");
        norm::backward(dy, x, stats, gamma)
    }

    fn scatter_add_rows(&self, dy: &CpuTensor, idx: &CpuTensor, rows: usize) -> Result<CpuTensor> {
        let _t = profile::op_timer("scatter_add_rows");
        let n = idx.shape.numel();
        if dy.shape.rank() != 2 || dy.shape.dim(0) != n {
            return Err(Error::shape(
                "scatter_add_rows",
                format!("a gradient of {} for {n} ids", dy.shape),
            ));
        }
        let dim = dy.shape.dim(1);
        let mut out = vec![0.0f32; rows * dim];
        // Row by row in index order: the order the GPU sums in too.
        for (r, &i) in idx.data.iter().enumerate() {
            let v = index(i, rows, "scatter_add_rows")?;
            let src = &dy.data[r * dim..(r + 1) * dim];
            for (o, g) in out[v * dim..(v + 1) * dim].iter_mut().zip(src) {
                *o += g;
            }
        }
        CpuTensor::new(out, [rows, dim])
    }

    fn rnn_forward(&self, xw: &CpuTensor, u: &CpuTensor, h0: &CpuTensor) -> Result<CpuTensor> {
        let _t = profile::op_timer("rnn_forward");
        let (t, b, h) = rnn_geom(&xw.shape, &u.shape)?;
        same_shape("rnn_forward", &h0.shape, &Shape::new([b, h]))?;
        let um = u.mat();
        let mut out = Array2::<f32>::zeros((t * b, h));
        let mut prev = h0.mat().to_owned();
        let xw = xw.mat().into_shape_with_order((t * b, h)).unwrap();
        for step in 0..t {
            let rows = s![step * b..(step + 1) * b, ..];
            let mut a = gemm::dot(&prev.view(), &um);
            a += &xw.slice(rows);
            simd::map_in_place(
                a.as_slice_mut().expect("a fresh product is contiguous"),
                &math::tanh,
            );
            out.slice_mut(rows).assign(&a);
            prev = a;
        }
        let mut r = from_array2(out);
        r.shape = xw_shape(t, b, h);
        Ok(r)
    }

    fn rnn_backward(
        &self,
        h: &CpuTensor,
        u: &CpuTensor,
        dh: &CpuTensor,
    ) -> Result<(CpuTensor, CpuTensor)> {
        let _t = profile::op_timer("rnn_backward");
        let (t, b, hd) = rnn_geom(&h.shape, &u.shape)?;
        same_shape("rnn_backward", &h.shape, &dh.shape)?;
        let hs = h.mat().into_shape_with_order((t * b, hd)).unwrap();
        let dhs = dh.mat().into_shape_with_order((t * b, hd)).unwrap();
        let um = u.mat();
        let mut da = Array2::<f32>::zeros((t * b, hd));
        // Gradient flowing into h_t from step t+1 (zero after the last step).
        let mut carry = Array2::<f32>::zeros((b, hd));
        for step in (0..t).rev() {
            let rows = s![step * b..(step + 1) * b, ..];
            let mut g = &dhs.slice(rows) + &carry;
            Zip::from(&mut g)
                .and(&hs.slice(rows))
                .for_each(|g, &y| *g *= 1.0 - y * y);
            carry = gemm::dot(&g.view(), &um.t());
            da.slice_mut(rows).assign(&g);
        }
        let mut da = from_array2(da);
        da.shape = xw_shape(t, b, hd);
        Ok((da, from_array2(carry)))
    }

    fn lstm_forward(
        &self,
        xw: &CpuTensor,
        u: &CpuTensor,
        h0: &CpuTensor,
        c0: &CpuTensor,
    ) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
        let _t = profile::op_timer("lstm_forward");
        gated::lstm_forward(xw, u, h0, c0)
    }

    fn lstm_backward(
        &self,
        gates: &CpuTensor,
        c: &CpuTensor,
        c0: &CpuTensor,
        u: &CpuTensor,
        dh: &CpuTensor,
    ) -> Result<CpuTensor> {
        let _t = profile::op_timer("lstm_backward");
        gated::lstm_backward(gates, c, c0, u, dh)
    }

    fn gru_forward(
        &self,
        xw: &CpuTensor,
        u: &CpuTensor,
        ub: &CpuTensor,
        h0: &CpuTensor,
    ) -> Result<(CpuTensor, CpuTensor)> {
        let _t = profile::op_timer("gru_forward");
        gated::gru_forward(xw, u, ub, h0)
    }

    fn gru_backward(
        &self,
        gates: &CpuTensor,
        h_prev: &CpuTensor,
        u: &CpuTensor,
        dh: &CpuTensor,
    ) -> Result<(CpuTensor, CpuTensor)> {
        let _t = profile::op_timer("gru_backward");
        gated::gru_backward(gates, h_prev, u, dh)
    }

    fn sgd_update(
        &self,
        param: &mut CpuTensor,
        grad: &CpuTensor,
        grad_scale: &CpuTensor,
        lr: f32,
        weight_decay: f32,
    ) -> Result<()> {
        let _t = profile::op_timer("sgd_update");
        same_shape("sgd_update", &param.shape, &grad.shape)?;
        one_value("sgd_update", grad_scale)?;
        let s = grad_scale.data[0];
        if s == 0.0 {
            return Ok(());
        }
        for (p, &g) in param.data_mut().iter_mut().zip(grad.data.iter()) {
            *p -= lr * (g * s + weight_decay * *p);
        }
        Ok(())
    }

    fn momentum_update(
        &self,
        param: &mut CpuTensor,
        velocity: &mut CpuTensor,
        grad: &CpuTensor,
        grad_scale: &CpuTensor,
        lr: f32,
        momentum: f32,
        weight_decay: f32,
    ) -> Result<()> {
        let _t = profile::op_timer("momentum_update");
        same_shape("momentum_update", &param.shape, &grad.shape)?;
        same_shape("momentum_update", &param.shape, &velocity.shape)?;
        one_value("momentum_update", grad_scale)?;
        let s = grad_scale.data[0];
        if s == 0.0 {
            return Ok(());
        }
        let v = velocity.data_mut();
        for ((p, v), &g) in param
            .data_mut()
            .iter_mut()
            .zip(v.iter_mut())
            .zip(grad.data.iter())
        {
            *v = momentum * *v + g * s + weight_decay * *p;
            *p -= lr * *v;
        }
        Ok(())
    }

    fn adam_update(
        &self,
        param: &mut CpuTensor,
        m: &mut CpuTensor,
        v: &mut CpuTensor,
        grad: &CpuTensor,
        grad_scale: &CpuTensor,
        hp: &AdamStep,
    ) -> Result<()> {
        let _t = profile::op_timer("adam_update");
        same_shape("adam_update", &param.shape, &grad.shape)?;
        same_shape("adam_update", &param.shape, &m.shape)?;
        same_shape("adam_update", &param.shape, &v.shape)?;
        one_value("adam_update", grad_scale)?;
        let s = grad_scale.data[0];
        if s == 0.0 {
            return Ok(());
        }
        let (c1, c2) = hp.corrections();
        let (m, v) = (m.data_mut(), v.data_mut());
        for (((p, m), v), &g) in param
            .data_mut()
            .iter_mut()
            .zip(m.iter_mut())
            .zip(v.iter_mut())
            .zip(grad.data.iter())
        {
            let g = g * s + hp.weight_decay * *p;
            *m = hp.beta1 * *m + (1.0 - hp.beta1) * g;
            *v = hp.beta2 * *v + (1.0 - hp.beta2) * g * g;
            *p -= hp.lr * (*m / c1) / ((*v / c2).sqrt() + hp.eps) + hp.lr * hp.decoupled_decay * *p;
        }
        Ok(())
    }

    fn clip_factor(&self, sum_squares: &CpuTensor, max_norm: f32) -> Result<CpuTensor> {
        one_value("clip_factor", sum_squares)?;
        Ok(scalar(clip_factor(sum_squares.data[0], max_norm)))
    }

    fn loss_scale_step(
        &self,
        sum_squares: &CpuTensor,
        scale: &mut CpuTensor,
        good_steps: &mut CpuTensor,
        step: &LossScaleStep,
    ) -> Result<CpuTensor> {
        for t in [sum_squares, &*scale, &*good_steps] {
            one_value("loss_scale_step", t)?;
        }
        let o = step.apply(sum_squares.data[0], scale.data[0], good_steps.data[0]);
        scale.data_mut()[0] = o.scale;
        good_steps.data_mut()[0] = o.good_steps;
        Ok(scalar(o.factor))
    }
}

/// The clipping rule both devices implement: scale down to `max_norm` when the
/// global norm exceeds it, never scale up.
pub(crate) fn clip_factor(sum_squares: f32, max_norm: f32) -> f32 {
    let norm = sum_squares.sqrt();
    if norm > max_norm {
        max_norm / norm
    } else {
        1.0
    }
}

/// Rows `idx[start .. start + count]` of `src` (of `shape`), each value
/// converted by `f`.
fn gather<T: Copy>(
    op: &'static str,
    src: &[T],
    shape: &Shape,
    idx: &CpuTensor,
    start: usize,
    count: usize,
    f: impl Fn(T) -> f32,
) -> Result<Vec<f32>> {
    if start + count > idx.shape.numel() {
        return Err(Error::shape(
            op,
            format!(
                "indices {start}..{} of {}",
                start + count,
                idx.shape.numel()
            ),
        ));
    }
    let rl = shape.row_len();
    let mut out = Vec::with_capacity(count * rl);
    for &i in &idx.data[start..start + count] {
        let r = index(i, shape.rows(), op)?;
        out.extend(src[r * rl..(r + 1) * rl].iter().map(|&v| f(v)));
    }
    Ok(out)
}

/// Replaces each value of a row by e^(v − max) and returns `max` and the
/// sum of the new values (a softmax before its division).
fn exp_shifted(row: &mut [f32]) -> (f32, f32) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    simd::map_in_place(row, &|v| math::exp(v - max));
    (max, row.iter().sum())
}

fn sum_f64(values: impl Iterator<Item = f32>) -> f32 {
    values.map(f64::from).sum::<f64>() as f32
}

fn xw_shape(t: usize, b: usize, h: usize) -> Shape {
    Shape::new([t, b, h])
}
