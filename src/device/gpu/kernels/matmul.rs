//! Launcher for shaders/matmul.wgsl.

use std::sync::Arc;

use super::{launch, u32_of};
use crate::device::gpu::context::{PooledBuffer, ShaderSource};
use crate::device::gpu::copies::CopyKey;
use crate::device::gpu::tune::{shape_class, time_launch, timed_dims, MatmulVariant};
use crate::device::gpu::{GpuDevice, GpuHalf, GpuTensor, MatmulKernel};
use crate::device::{MatmulSpec, Precision, Tensor};
use crate::error::{Error, Result};
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    c_rows: u32,
    c_cols: u32,
    step_at: u32,
}

/// The parameters of pad.wgsl, cast.wgsl and half.wgsl: a matrix and its
/// padded size.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct PadParams {
    pub rows: u32,
    pub cols: u32,
    pub rows_p: u32,
    pub cols_p: u32,
}

pub(crate) fn matmul(
    dev: &GpuDevice,
    a: &GpuTensor,
    b: &GpuTensor,
    bias: Option<&GpuTensor>,
    spec: MatmulSpec,
) -> Result<GpuTensor> {
    product(dev, Source::f32(a), b, bias, spec, None)
}

/// A recurrent step's epilogue (shaders/matmul.wgsl `STEP`), on the
/// m × n matrices at element `at` of these tensors: C = act(A·B + D),
/// times 1 − Y² where there is a `dtanh` Y, and C written to `copy` too.
#[derive(Clone, Copy)]
pub(crate) struct Step<'a> {
    /// Where the m × n matrices start in `add`, `dtanh` and `copy`
    /// (elements; a multiple of 4): step t of a [T, B, H] tensor.
    pub at: usize,
    /// D.
    pub add: &'a GpuTensor,
    /// Y.
    pub dtanh: Option<&'a GpuTensor>,
    /// Where C is written too (not one of the inputs).
    pub copy: &'a GpuTensor,
}

/// Whether [`matmul_step`] takes an `m × k` by `k × n` product: the
/// vec4-store kernels need every size a multiple of 4 (and m at least 8).
pub(crate) fn takes_step(m: usize, k: usize, n: usize) -> bool {
    is_aligned(m, k, n)
}

/// `act(A·B + D)` for an f32 `a`, with `step`'s addend and copy (see
/// [`Step`]), as one dispatch of a vec4-store kernel: the fastest of them
/// as tuned, or the fixed rule's where it is one (`vec4` where not).
/// Sizes as [`takes_step`] allows, offsets multiples of 4 and inside
/// their tensors.
pub(crate) fn matmul_step(
    dev: &GpuDevice,
    a: &GpuTensor,
    b: &GpuTensor,
    spec: MatmulSpec,
    step: Step<'_>,
) -> Result<GpuTensor> {
    let (m, k, n) = spec.dims(a.shape(), b.shape())?;
    let refuse = |why: String| Err(Error::shape("matmul step", why));
    if !takes_step(m, k, n) {
        return refuse(format!("{m}×{k}·{k}×{n}: sizes not multiples of 4"));
    }
    if dev.precision != Precision::F32 {
        return refuse("operands at f16 (a step's products are f32)".into());
    }
    let fits = |t: &GpuTensor| {
        step.at
            .checked_add(m * n)
            .is_some_and(|end| end <= t.shape().numel())
    };
    if !step.at.is_multiple_of(4) || !fits(step.add) || !fits(step.copy) {
        return refuse(format!(
            "{m}×{n} matrices at element {} of {} and {}",
            step.at,
            step.add.shape(),
            step.copy.shape()
        ));
    }
    if step.dtanh.is_some_and(|y| !fits(y)) {
        return refuse(format!("Y too short for element {}", step.at));
    }
    // The copy is written while the inputs are read: one buffer cannot be
    // both in one dispatch.
    let inputs = [Some(a), Some(b), Some(step.add), step.dtanh];
    if inputs
        .iter()
        .flatten()
        .any(|t| t.buf.loan() == step.copy.buf.loan())
    {
        return refuse("the copy's tensor is one of the inputs".into());
    }
    product(dev, Source::f32(a), b, None, spec, Some(step))
}

/// [`matmul`] with `a` in f16: read as it is under `Precision::F16` (the
/// f16 kernels read halves), through an f32 copy under `F32`.
pub(crate) fn matmul_half(
    dev: &GpuDevice,
    a: &GpuHalf,
    b: &GpuTensor,
    bias: Option<&GpuTensor>,
    spec: MatmulSpec,
) -> Result<GpuTensor> {
    match dev.precision {
        Precision::F16 => product(dev, Source::half(a), b, bias, spec, None),
        Precision::F32 => matmul(dev, &super::half::half_to_f32(dev, a)?, b, bias, spec),
    }
}

/// A product's first operand as stored: f32, or f16 ([`GpuHalf`]).
#[derive(Clone, Copy)]
pub(super) struct Source<'a> {
    buf: &'a Arc<PooledBuffer>,
    shape: &'a crate::tensor::Shape,
    half: bool,
    /// What its copies are keyed by: its own loan, or for halves the loan
    /// of the f32 tensor they came from and the copies' generation then
    /// (`GpuHalf::origin`); `None`, the current generation.
    key: (u64, Option<u64>),
}

impl<'a> Source<'a> {
    pub(super) fn f32(t: &'a GpuTensor) -> Self {
        Source {
            buf: &t.buf,
            shape: t.shape(),
            half: false,
            key: (t.buf.loan(), None),
        }
    }

    fn half(t: &'a GpuHalf) -> Self {
        Source {
            buf: &t.buf,
            shape: t.shape(),
            half: true,
            key: (t.origin.0, Some(t.origin.1)),
        }
    }
}

fn product(
    dev: &GpuDevice,
    a: Source<'_>,
    b: &GpuTensor,
    bias: Option<&GpuTensor>,
    spec: MatmulSpec,
    step: Option<Step<'_>>,
) -> Result<GpuTensor> {
    let (m, k, n) = spec.dims(a.shape, b.shape())?;
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
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let constants = [
        ("TRANS_A", flag(spec.trans_a)),
        ("TRANS_B", flag(spec.trans_b)),
        ("HAS_BIAS", flag(bias.is_some())),
        ("ACT", spec.act.code() as f64),
        ("STEP", flag(step.is_some())),
        ("STEP_DTANH", flag(step.is_some_and(|s| s.dtanh.is_some()))),
    ];
    let bias_buf = bias.map_or(&*dev.placeholder, |b| b.buf());
    let product = Product {
        a,
        b: Source::f32(b),
        bias: bias_buf,
        out: &out,
        dims: (m, k, n),
        spec,
        constants,
        step,
    };
    // See shaders/matmul.wgsl for why each kernel suits which adapter.
    let aligned = is_aligned(m, k, n);
    // The padded copies can exceed a buffer the product itself fits.
    let (mp, kp, np) = padded_sizes(m, k, n);
    let padded_fits = [mp * kp, kp * np, mp * np]
        .iter()
        .all(|&elements| (elements * 4) as u64 <= dev.ctx.max_tensor_bytes());
    let bcast = dev.has_bcast_matmul();
    let hardware = !matches!(dev.ctx.info.device_type, wgpu::DeviceType::Cpu);
    let candidates: Vec<MatmulVariant> =
        MatmulVariant::candidates(aligned, (m, n), bcast, hardware)
            .into_iter()
            .filter(|&v| !v.padded() || padded_fits)
            .filter(|&v| step.is_none() || (v.stores_vec4() && !v.padded()))
            .collect();
    let variant = match (&dev.tuner, dev.matmul_kernel) {
        (Some(tuner), _) => {
            let mut class = shape_class((m, k, n), spec.trans_a, spec.trans_b, bias.is_some());
            if dev.precision == Precision::F16 {
                class.push_str(" f16");
            }
            if step.is_some() {
                class.push_str(" step");
            }
            // Timed on these operands (a slice of them on a software
            // adapter, where large: `timed_dims`), on an idle GPU.
            let cores = (!hardware).then(crate::device::gpu::software_cores);
            let timed = Product {
                dims: timed_dims((m, k, n), spec.trans_a, cores),
                ..product
            };
            let rows = (timed.dims.0 < m).then_some(timed.dims.0);
            tuner.choose_on(&class, &candidates, rows, |v| {
                time_launch(&dev.ctx, || {
                    // Each launch makes its own operand copies, as the
                    // first product of a step does.
                    dev.forget_copies();
                    run(dev, v, &timed)
                })
            })?
        }
        (None, MatmulKernel::Broadcast) if aligned && bcast => {
            MatmulVariant::bcast_for(m, n, false)
        }
        (None, MatmulKernel::Broadcast) if bcast && padded_fits => {
            MatmulVariant::bcast_for(mp, np, true)
        }
        (None, MatmulKernel::Blocked | MatmulKernel::Padded | MatmulKernel::Broadcast)
            if aligned =>
        {
            MatmulVariant::Vec4
        }
        (None, MatmulKernel::Blocked | MatmulKernel::Broadcast) => MatmulVariant::Blocked,
        (None, MatmulKernel::Padded) if padded_fits => MatmulVariant::Padded,
        (None, MatmulKernel::Padded) => MatmulVariant::Blocked,
        (None, MatmulKernel::Tiled) => MatmulVariant::Tiled,
        (None, MatmulKernel::Tile128) if aligned => MatmulVariant::Tile128,
        (None, MatmulKernel::Tile128) => MatmulVariant::Tiled,
        (None, MatmulKernel::Rows) => MatmulVariant::Rows,
    };
    // A step's epilogue is in the vec4 stores only.
    let variant = match step {
        Some(_) if !variant.stores_vec4() => MatmulVariant::Vec4,
        _ => variant,
    };
    run(dev, variant, &product)?;
    Ok(out)
}

/// One product to record: its operands, output and settings.
struct Product<'a> {
    a: Source<'a>,
    b: Source<'a>,
    /// The bias, or the placeholder where there is none.
    bias: &'a PooledBuffer,
    out: &'a GpuTensor,
    dims: (usize, usize, usize),
    spec: MatmulSpec,
    constants: [(&'static str, f64); 6],
    step: Option<Step<'a>>,
}

/// An operand as a kernel reads it: the tensor itself, or a copy (zero
/// padded, or f16 and padded or not under `--precision f16`), made now or
/// kept from an earlier product (see `gpu/copies.rs`).
enum Operand<'a> {
    Given(&'a PooledBuffer),
    Copy(Arc<PooledBuffer>),
}

impl Operand<'_> {
    fn buf(&self) -> &PooledBuffer {
        match self {
            Operand::Given(b) => b,
            Operand::Copy(b) => b,
        }
    }
}

/// Records `variant`'s kernel for `p`. The padded variants run
/// `matmul_vec4` or `matmul_bcast` on copies with every size rounded up to
/// a multiple of 4 (and m to at
/// least 8): zeros in k add exactly nothing, and the extra rows and columns
/// of C are computed but not stored (`CROP`: the kernel writes C's corner
/// straight into C; their bias reads stay inside the bias buffer, whose
/// pool size is a multiple of 256 bytes). Under f16 both operands are
/// always copied (to f16, padded by the same copy where the variant wants
/// it); under f32 an operand already of the right size is used as it is.
fn run(dev: &GpuDevice, variant: MatmulVariant, p: &Product) -> Result<()> {
    let (m, k, n) = p.dims;
    let (mp, kp, np) = if variant.padded() {
        padded_sizes(m, k, n)
    } else {
        (m, k, n)
    };
    let block = variant.bcast_block();
    // Each operand as stored, [rows, cols], and at its padded size.
    let stored = |t: bool, (r, c): (usize, usize), (rp, cp): (usize, usize)| {
        if t {
            ((c, r), (cp, rp))
        } else {
            ((r, c), (rp, cp))
        }
    };
    let a = operand(dev, p.a, stored(p.spec.trans_a, (m, k), (mp, kp)))?;
    let b = operand(dev, p.b, stored(p.spec.trans_b, (k, n), (kp, np)))?;
    let crop = (mp, np) != (m, n);
    let tiles = |cols: usize, rows: usize| {
        let grid = [np.div_ceil(cols) as u32, mp.div_ceil(rows) as u32, 1];
        dev.ctx.check_grid("matmul", grid)
    };
    let mut constants = p.constants.to_vec();
    let (entry, [at_a, at_b, at_c], grid) = match variant {
        MatmulVariant::Bcast8x4
        | MatmulVariant::Bcast16x8
        | MatmulVariant::Bcast32x8
        | MatmulVariant::Bcast16x12
        | MatmulVariant::PaddedBcast8x4
        | MatmulVariant::PaddedBcast16x8
        | MatmulVariant::PaddedBcast32x8
        | MatmulVariant::PaddedBcast16x12 => {
            let (rows, cols) = block.expect("a bcast variant");
            // The kernel has accumulators for 12 columns in 16 rows only.
            debug_assert!(cols != 12 || rows <= 16);
            // Whole subgroups of 8, as few invocations past the last
            // column as that allows.
            let (wg, groups) = bcast_workgroups(np, cols);
            debug_assert_eq!(np.div_ceil(wg * cols), groups);
            constants.extend([
                ("BCAST_ROWS", rows as f64),
                ("BCAST_COLS", cols as f64),
                ("BCAST_WG", wg as f64),
            ]);
            ("matmul_bcast", [4, 5, 6], tiles(wg * cols, rows)?)
        }
        MatmulVariant::Vec4 | MatmulVariant::Padded => ("matmul_vec4", [4, 5, 6], tiles(64, 128)?),
        MatmulVariant::Blocked => ("matmul_blocked", [0, 1, 3], tiles(64, 64)?),
        MatmulVariant::Tiled => ("matmul_tiled", [0, 1, 3], tiles(64, 64)?),
        MatmulVariant::Tile128 => ("matmul_tile128", [4, 5, 6], tiles(128, 128)?),
        MatmulVariant::Rows => (
            "matmul_rows",
            [0, 1, 3],
            dev.ctx.grid_1d("matmul", mp * np.div_ceil(4))?,
        ),
    };
    let params = Params {
        m: u32_of("matmul", mp)?,
        n: u32_of("matmul", np)?,
        k: u32_of("matmul", kp)?,
        c_rows: u32_of("matmul", m)?,
        c_cols: u32_of("matmul", n)?,
        step_at: u32_of("matmul", p.step.map_or(0, |s| s.at))?,
    };
    let mut bindings = vec![(at_a, a.buf()), (at_b, b.buf()), (2, p.bias)];
    if at_c == 6 {
        // The vec4 kernels store through `c4` (binding 6), or with CROP
        // through `c` (3), and a step's copy through `copy4` (7); all are
        // bound, those not written to spare buffers (two: WebGPU lets no
        // two writable bindings share a buffer), and a step's D and Y
        // (`add4`, `y4`: 8, 9) to the placeholder where there are none.
        if p.step.is_some() && crop {
            return Err(Error::Gpu("a matmul step on padded operands".into()));
        }
        let spare = &*dev.spare;
        let (c3, c6) = if crop {
            (p.out.buf(), spare)
        } else {
            (spare, p.out.buf())
        };
        let placeholder = &*dev.placeholder;
        let c7 = p.step.map_or(&*dev.spare_copy, |s| s.copy.buf());
        let d8 = p.step.map_or(placeholder, |s| s.add.buf());
        let y9 = p
            .step
            .and_then(|s| s.dtanh)
            .map_or(placeholder, |y| y.buf());
        bindings.extend([(3, c3), (6, c6), (7, c7), (8, d8), (9, y9)]);
        constants.push(("CROP", if crop { 1.0 } else { 0.0 }));
    } else {
        debug_assert!(!crop, "only the vec4 kernels run padded");
        if p.step.is_some() {
            return Err(Error::Gpu(format!(
                "a matmul step through `{entry}`, which has no step epilogue"
            )));
        }
        bindings.push((3, p.out.buf()));
    }
    // matmul_bcast is in a module of its own: it needs subgroups.
    let shader = match (dev.precision, block.is_some()) {
        (Precision::F32, false) => shader!("matmul_f32", "matmul"),
        (Precision::F16, false) => shader!(enable_f16 "matmul_f16", "matmul"),
        (Precision::F32, true) => shader!("matmul_f32", "matmul", "matmul_bcast"),
        (Precision::F16, true) => shader!(enable_f16 "matmul_f16", "matmul", "matmul_bcast"),
    };
    launch(dev, shader, entry, &constants, &bindings, &params, grid);
    Ok(())
}

/// Operand `t`, stored as `[rows, cols]`, as the kernel reads it at
/// `[rows_p, cols_p]` and the device's precision (a half source only comes
/// under `F16`).
fn operand<'a>(
    dev: &GpuDevice,
    t: Source<'a>,
    (stored, padded): ((usize, usize), (usize, usize)),
) -> Result<Operand<'a>> {
    debug_assert!(
        !t.half || dev.precision == Precision::F16,
        "f16 read as f32"
    );
    if stored == padded && (t.half || dev.precision == Precision::F32) {
        return Ok(Operand::Given(t.buf));
    }
    if dev.precision == Precision::F16 {
        return Ok(Operand::Copy(f16_copy(dev, t, stored, padded)?));
    }
    let key = CopyKey {
        source: t.key.0,
        generation: dev.copies().generation(),
        precision: Precision::F32,
        stored,
        padded,
    };
    if let Some(kept) = dev.copies().get(&key) {
        return Ok(Operand::Copy(kept));
    }
    let dst = dev.empty([padded.0, padded.1])?;
    pad(dev, t.buf, dst.buf(), stored, padded)?;
    dev.copies().insert(key, dst.buf.clone());
    Ok(Operand::Copy(dst.buf))
}

/// The f16 copy of `t`, stored as `stored` (`[rows, cols]`), at `padded`:
/// kept from before (an earlier product, `to_half`, or an activation that
/// wrote it beside its output), or made now (cast from f32, or re-padded
/// from halves) and kept.
pub(super) fn f16_copy(
    dev: &GpuDevice,
    t: Source<'_>,
    stored: (usize, usize),
    padded: (usize, usize),
) -> Result<Arc<PooledBuffer>> {
    let key = f16_copy_key(dev, &t, stored, padded);
    if let Some(kept) = dev.copies().get(&key) {
        return Ok(kept);
    }
    // Two halves per word, one word per invocation.
    let words = (padded.0 * padded.1).div_ceil(2);
    let dst = dev.ctx.alloc(words as u64 * 4)?;
    let (shader, entry) = if t.half {
        (shader!("half", "f16_bits"), "pad_half")
    } else {
        (shader!("cast", "f16_bits"), "to_f16")
    };
    corner_launch(dev, shader, entry, t.buf, &dst, stored, padded, words)?;
    let copy = Arc::new(dst);
    dev.copies().insert(key, copy.clone());
    Ok(copy)
}

/// What the f16 copy of `t` stored as `stored`, read at `padded`, is kept
/// under: of `t`'s values now, or for halves of the f32 tensor they came
/// from when they were kept.
pub(super) fn f16_copy_key(
    dev: &GpuDevice,
    t: &Source<'_>,
    stored: (usize, usize),
    padded: (usize, usize),
) -> CopyKey {
    CopyKey {
        source: t.key.0,
        generation: t.key.1.unwrap_or_else(|| dev.copies().generation()),
        precision: Precision::F16,
        stored,
        padded,
    }
}

/// `matmul_bcast`'s invocations per workgroup and workgroups across for
/// `columns` columns of C at `per_lane` columns an invocation: as few
/// workgroups as hold one invocation per `per_lane` columns at up to 64
/// invocations each, and those as small as they can be in whole subgroups
/// of 8 (the kernel's broadcasts read lanes 0–7 of each subgroup), so that
/// few invocations run past the last column (at 76 columns and 4 an
/// invocation, 24 invocations where a power of two took 32).
pub(crate) fn bcast_workgroups(columns: usize, per_lane: usize) -> (usize, usize) {
    let lanes = columns.div_ceil(per_lane.max(1)).max(1);
    let groups = lanes.div_ceil(64);
    (lanes.div_ceil(groups).div_ceil(8) * 8, groups)
}

/// Whether `matmul_vec4` takes these sizes as they are.
pub(crate) fn is_aligned(m: usize, k: usize, n: usize) -> bool {
    m.is_multiple_of(4) && n.is_multiple_of(4) && k.is_multiple_of(4) && m >= 8
}

/// The padded product's sizes: each rounded up to a multiple of 4, m to at
/// least 8.
fn padded_sizes(m: usize, k: usize, n: usize) -> (usize, usize, usize) {
    let up = |v: usize| v.div_ceil(4) * 4;
    (up(m).max(8), up(k), up(n))
}

/// Launches shaders/pad.wgsl from `src` (`small`) to `dst` (`padded`).
fn pad(
    dev: &GpuDevice,
    src: &PooledBuffer,
    dst: &PooledBuffer,
    small: (usize, usize),
    padded: (usize, usize),
) -> Result<()> {
    // On software adapters one invocation per row (`pad_rows`), elsewhere
    // one per element.
    let (entry, threads) = if dev.lane_rows() {
        ("pad_rows", padded.0)
    } else {
        ("pad", padded.0 * padded.1)
    };
    corner_launch(dev, shader!("pad"), entry, src, dst, small, padded, threads)
}

/// Launches a kernel of pad.wgsl or cast.wgsl (same parameters: a matrix
/// `[rows, cols]` and its padded size) over `threads` invocations.
#[allow(clippy::too_many_arguments)]
fn corner_launch(
    dev: &GpuDevice,
    shader: ShaderSource,
    entry: &'static str,
    src: &PooledBuffer,
    dst: &PooledBuffer,
    (rows, cols): (usize, usize),
    (rows_p, cols_p): (usize, usize),
    threads: usize,
) -> Result<()> {
    let params = PadParams {
        rows: u32_of("matmul", rows)?,
        cols: u32_of("matmul", cols)?,
        rows_p: u32_of("matmul", rows_p)?,
        cols_p: u32_of("matmul", cols_p)?,
    };
    let grid = dev.ctx.grid_1d("matmul", threads)?;
    launch(
        dev,
        shader,
        entry,
        &[],
        &[(0, src), (1, dst)],
        &params,
        grid,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bcast_workgroups;

    #[test]
    fn bcast_workgroups_cover_the_columns_in_whole_subgroups() {
        for columns in (4..=2048).step_by(4) {
            for per_lane in [4, 8, 12] {
                let (wg, groups) = bcast_workgroups(columns, per_lane);
                assert!(wg % 8 == 0 && (8..=64).contains(&wg), "{columns}");
                let covered = wg * groups * per_lane;
                assert!(covered >= columns, "{columns}/{per_lane}");
                // Less than a subgroup per workgroup past the last column.
                assert!(
                    covered < columns + 8 * per_lane * groups,
                    "{columns}/{per_lane}"
                );
            }
        }
        assert_eq!(bcast_workgroups(76, 8), (16, 1));
        assert_eq!(bcast_workgroups(76, 4), (24, 1));
        assert_eq!(bcast_workgroups(76, 12), (8, 1));
        assert_eq!(bcast_workgroups(784, 8), (56, 2));
        assert_eq!(bcast_workgroups(1024, 8), (64, 2));
    }
}
