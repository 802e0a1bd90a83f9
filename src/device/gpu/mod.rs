//! `GpuDevice`: the `Device` on wgpu.
//!
//! Each kernel family has a WGSL file in `shaders/` and a launcher module of
//! the same name in `kernels/` (shaders/matmul.wgsl ↔ kernels/matmul.rs).
//! `context` holds what every launch shares: caches, pool and recorder.

mod adapter;
pub(crate) mod context;
mod copies;
mod env;
mod kernels;
pub mod tune;

use std::sync::{Arc, Mutex, PoisonError};

pub use adapter::{list_adapters, software_cores, AdapterSummary};
pub use context::GpuStats;

use self::context::{Context, PooledBuffer};
use self::tune::{ConvVariant, RnnVariant};
use super::{
    same_count, Activation, AdamStep, Binary, ConvStep, Device, DropoutMask, LossGrad,
    LossScaleStep, MatmulSpec, PoolWindow, Precision, Reduce, Tensor,
};
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// A tensor in GPU memory: a pooled storage buffer (shared by clones) and a
/// shape. The buffer returns to the pool when the last clone is dropped.
#[derive(Clone)]
pub struct GpuTensor {
    buf: Arc<PooledBuffer>,
    shape: Shape,
}

impl Tensor for GpuTensor {
    fn shape(&self) -> &Shape {
        &self.shape
    }
}

impl std::fmt::Debug for GpuTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuTensor{} (buffer {})", self.shape, self.buf.id())
    }
}

/// Bytes in GPU memory (see [`Device::Bytes`]), packed four to a word.
#[derive(Clone)]
pub struct GpuBytes {
    buf: Arc<PooledBuffer>,
    shape: Shape,
}

impl Tensor for GpuBytes {
    fn shape(&self) -> &Shape {
        &self.shape
    }
}

/// f16 values on the GPU, two per 32-bit word (see [`Device::Half`]).
#[derive(Clone)]
pub struct GpuHalf {
    buf: Arc<PooledBuffer>,
    shape: Shape,
    /// The loan ([`PooledBuffer::loan`]) of the f32 tensor these halves
    /// were rounded from, and the copies' generation then: padded f16
    /// copies of either are the same bits while that tensor is not
    /// written in place, so they share its keys in the copies a product
    /// keeps.
    origin: (u64, u64),
}

impl Tensor for GpuHalf {
    fn shape(&self) -> &Shape {
        &self.shape
    }
}

impl std::fmt::Debug for GpuHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuHalf{}", self.shape)
    }
}

impl GpuBytes {
    pub(crate) fn buf(&self) -> &PooledBuffer {
        &self.buf
    }
}

impl GpuTensor {
    pub(crate) fn buf(&self) -> &PooledBuffer {
        &self.buf
    }
    fn bytes(&self) -> u64 {
        self.shape.numel() as u64 * 4
    }
}

/// Which matmul kernels a device uses (see shaders/matmul.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    /// Barrier-free register blocks (vec4 loads where the shape allows):
    /// the fixed rule on every adapter.
    Blocked,
    /// Shared-memory 64×64 tiles (on an H200 slower than
    /// [`MatmulKernel::Blocked`] everywhere it was measured).
    Tiled,
    /// The vec4 kernel for every shape: sizes that are not multiples of 4
    /// run on zero-padded copies (what tuning picks on lavapipe for them).
    Padded,
    /// One row of C per invocation for every shape (what tuning picks for
    /// products with few columns).
    Rows,
    /// Rows of A shared across a subgroup by broadcasts
    /// (shaders/matmul_bcast.wgsl), the block size by the number of rows
    /// (8×4 up to 8 rows, 16×8 up to 16, else 32×8; 16×12 past 8 rows
    /// where 12 columns an invocation take fewer subgroups: see
    /// [`tune::MatmulVariant::bcast_for`]), for sizes that are
    /// multiples of 4 on adapters whose subgroups have at least 8
    /// invocations ([`GpuDevice::has_bcast_matmul`]); other products take
    /// what [`MatmulKernel::Blocked`] takes.
    Broadcast,
    /// 128×128 shared-memory tiles with 8×8 outputs per invocation
    /// (`matmul_tile128`) for sizes that are multiples of 4, whatever
    /// their size; other products take [`MatmulKernel::Tiled`].
    Tile128,
}

impl MatmulKernel {
    /// Every family, for checks that run each.
    pub const ALL: [MatmulKernel; 6] = [
        MatmulKernel::Blocked,
        MatmulKernel::Tiled,
        MatmulKernel::Padded,
        MatmulKernel::Rows,
        MatmulKernel::Broadcast,
        MatmulKernel::Tile128,
    ];
}

/// The wgpu device. Cheap to clone; clones share the queue and caches.
#[derive(Clone)]
pub struct GpuDevice {
    ctx: Arc<Context>,
    /// Bound where a kernel's optional input is absent (it is never read).
    placeholder: Arc<PooledBuffer>,
    /// Bound at a kernel's writable output that this dispatch does not
    /// write (the vec4 matmuls' `c` or `c4`, see kernels/matmul.rs).
    spare: Arc<PooledBuffer>,
    /// The same for the vec4 matmuls' step copy (`copy4`), which is
    /// unwritten in the same dispatches as `spare`'s binding.
    spare_copy: Arc<PooledBuffer>,
    /// The fixed rule's kernel family, used where tuning is off.
    matmul_kernel: MatmulKernel,
    /// The matmul autotuner (see [`tune`]); `None` where tuning is off or a
    /// kernel is forced.
    tuner: Option<Arc<tune::Tuner>>,
    /// Workgroup reductions use subgroup operations: where the adapter has
    /// them, by default on hardware adapters (`WGTRAIN_SUBGROUPS=0|1`
    /// decides otherwise).
    subgroups: bool,
    /// Row-wise softmax and row sums give each row one invocation with
    /// vec4 loads where the rows allow (shaders/reduce.wgsl `softmax_lane4`,
    /// `sum_cols_lane4`): on software adapters, by default.
    lane_rows: bool,
    /// The kernel forced on the convolution passes that have two
    /// (`WGTRAIN_CONV`, [`GpuDevice::with_conv_kernel`]); `None`: tuned, or
    /// where tuning is off the fixed rule ([`GpuDevice::conv_kernel`]).
    conv_forced: Option<ConvVariant>,
    /// The way forced on the recurrences' steps
    /// ([`GpuDevice::with_rnn_kernel`]); `None`: tuned, or where tuning is
    /// off the fixed rule ([`GpuDevice::rnn_kernel`]).
    rnn_forced: Option<RnnVariant>,
    /// What matmul operands are rounded to (f16 needs `SHADER_F16`).
    precision: Precision,
    /// Optimizer updates take many tensors per dispatch
    /// (shaders/optim_many.wgsl): by default on hardware adapters. A
    /// software adapter runs every arm of the kernel's `switch` over the
    /// tensors, masked, so there one dispatch per tensor is faster
    /// (`examples/optim_timing.rs`).
    grouped_updates: bool,
    /// The many-tensor kernels' parameter tables by content, most recent
    /// last: a model's table is written at its first update, not at every
    /// step.
    tables: Arc<Mutex<Vec<Table>>>,
    /// Product operand copies (f16, padded) kept for the next product that
    /// reads the same tensor the same way (see `copies.rs`); shared by every
    /// clone, whatever its precision, as they share the tensors.
    copies: Arc<Mutex<copies::Copies>>,
}

/// A parameter table's bytes and the buffer holding them.
type Table = (Vec<u8>, Arc<PooledBuffer>);

/// Parameter tables [`GpuDevice`] keeps (a model's, and a few others').
const TABLES_KEPT: usize = 8;

/// The rates an SGD or momentum update shares across its tensors, in the
/// form the many-tensor kernels take.
fn shared_rates(lr: f32, momentum: f32) -> AdamStep {
    AdamStep {
        lr,
        beta1: momentum,
        beta2: 0.0,
        eps: 0.0,
        weight_decay: 0.0,
        decoupled_decay: 0.0,
        step: 1,
    }
}

impl GpuDevice {
    /// Records `entry` of shaders/optim_many.wgsl over `updates`, as many
    /// tensors per dispatch as the adapter's storage bindings allow (all of
    /// a model's on most adapters), each group at the rates of its tensors'
    /// `rates`. A group of one tensor, a group whose tensors' rates differ
    /// (decay aside), an adapter with too few storage bindings per stage,
    /// or updates not grouped ([`GpuDevice::grouped_updates`]) take
    /// `single(i)` for each tensor instead.
    fn update_in_groups(
        &self,
        entry: &'static str,
        updates: &[kernels::optim::Update<'_>],
        scale: &GpuTensor,
        rates: &[AdamStep],
        mut single: impl FnMut(usize) -> Result<()>,
    ) -> Result<()> {
        let per_tensor = 2 + updates.first().map_or(0, |u| u.state.len());
        let slots = kernels::optim::slots(self, per_tensor).max(1);
        let shared = |a: &AdamStep, b: &AdamStep| {
            (a.lr, a.beta1, a.beta2, a.eps, a.step) == (b.lr, b.beta1, b.beta2, b.eps, b.step)
        };
        for (g, group) in updates.chunks(slots).enumerate() {
            let first = g * slots;
            let r = &rates[first..first + group.len()];
            if self.grouped_updates && group.len() > 1 && r.iter().all(|x| shared(x, &r[0])) {
                kernels::optim::many(self, entry, group, scale, &r[0])?;
            } else {
                (first..first + group.len()).try_for_each(&mut single)?;
            }
        }
        Ok(())
    }

    /// A storage buffer holding `bytes`, kept for the next request of the
    /// same bytes (the many-tensor kernels' parameter tables).
    pub(crate) fn table(&self, bytes: &[u8]) -> Result<Arc<PooledBuffer>> {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = tables.iter().position(|(b, _)| b == bytes) {
            let hit = tables.remove(at);
            let buf = hit.1.clone();
            tables.push(hit);
            return Ok(buf);
        }
        let buf = Arc::new(self.ctx.alloc(bytes.len() as u64)?);
        self.ctx.write(&buf, bytes);
        if tables.len() == TABLES_KEPT {
            tables.remove(0);
        }
        tables.push((bytes.to_vec(), buf.clone()));
        Ok(buf)
    }

    /// Opens the adapter chosen by [`list_adapters`]'s rules
    /// (`WGTRAIN_ADAPTER`, `WGTRAIN_BACKENDS`, else the most capable).
    pub fn new() -> Result<Self> {
        // The switches are read before any adapter is looked for, so that a
        // misspelt one is reported on a machine without a GPU too.
        let forced = env::choice(
            "WGTRAIN_MATMUL",
            &[
                (&["tiled"], MatmulKernel::Tiled),
                (&["blocked"], MatmulKernel::Blocked),
                (&["padded"], MatmulKernel::Padded),
                (&["rows"], MatmulKernel::Rows),
                (&["bcast"], MatmulKernel::Broadcast),
                (&["tile128"], MatmulKernel::Tile128),
            ],
        )?;
        let conv_forced = env::choice(
            "WGTRAIN_CONV",
            &[
                (&["bcast"], ConvVariant::Bcast),
                (&["plain"], ConvVariant::Plain),
            ],
        )?;
        let tuning = env::switch("WGTRAIN_TUNE")?.unwrap_or(true);
        let subgroups_asked = env::switch("WGTRAIN_SUBGROUPS")?;
        let adapter = adapter::select_adapter()?;
        let ctx = Arc::new(Context::new(&adapter)?);
        let placeholder = Arc::new(ctx.alloc(16)?);
        let spare = Arc::new(ctx.alloc(16)?);
        let spare_copy = Arc::new(ctx.alloc(16)?);
        // The register-block kernels on every adapter: on an NVIDIA H200
        // too they beat the shared-memory ones by far (README "On a real
        // GPU": T3 301,351 samples/s untuned against 131,881 with
        // `matmul_tiled`, K1-4096 24.1 against 3.2 TFLOP/s).
        let matmul_kernel = forced.unwrap_or(MatmulKernel::Blocked);
        let tuner = (tuning && forced.is_none()).then(|| Arc::new(tune::Tuner::open(&ctx.info)));
        // On by default on hardware adapters. On software adapters they gain
        // nothing (llvmpipe: examples/reduce_timing.rs, a sum of 2^20
        // values 8.5 ms with them against 7.5 without, softmax
        // cross-entropy even), so the tree stays there unless asked for.
        let has = ctx.device.features().contains(wgpu::Features::SUBGROUP);
        let software = matches!(ctx.info.device_type, wgpu::DeviceType::Cpu);
        let subgroups = has && subgroups_asked.unwrap_or(!software);
        Ok(GpuDevice {
            ctx,
            placeholder,
            spare,
            spare_copy,
            matmul_kernel,
            tuner,
            subgroups,
            lane_rows: software,
            grouped_updates: !software,
            conv_forced,
            rnn_forced: None,
            precision: Precision::F32,
            tables: Arc::default(),
            copies: Arc::default(),
        })
    }

    /// The adapter in use.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.ctx.info
    }

    /// The limits the device was opened with: the adapter's own, not wgpu's defaults.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.ctx.limits
    }

    /// A snapshot of the buffer, pipeline, submit and dispatch counters.
    pub fn stats(&self) -> GpuStats {
        self.ctx.stats()
    }

    /// Checking mode: from now on every buffer of this device's context
    /// (shared by all its clones) is filled with NaN before a kernel gets
    /// it, so that an output element a kernel fails to write reads NaN
    /// instead of a stale value from the buffer pool (which is often the
    /// right answer, left by the same product computed another way).
    /// Returns the device with its autotuner, if tuning is on, keeping its
    /// table in memory only: the uploads skew the timings, which must not
    /// reach the cache file later runs read. `wgtrain check` and the test
    /// suite use it; it costs an upload per allocation.
    pub fn with_poisoned_allocations(&self) -> Self {
        self.ctx.set_poison(true);
        match self.tuner {
            Some(_) => self.with_tuning(None),
            None => self.clone(),
        }
    }

    /// The matmul kernel family the fixed rule picks for this adapter (what
    /// runs where tuning is off).
    pub fn matmul_kernel(&self) -> MatmulKernel {
        self.matmul_kernel
    }

    /// The same device using a different matmul kernel family, untuned (for
    /// tests and benchmarks that compare the two).
    pub fn with_matmul_kernel(&self, kernel: MatmulKernel) -> Self {
        GpuDevice {
            matmul_kernel: kernel,
            tuner: None,
            ..self.clone()
        }
    }

    /// Whether row-wise softmax and row sums use the vec4
    /// one-invocation-per-row kernels where the rows allow (by default on
    /// software adapters, where barriers and loads cost the most).
    pub fn lane_rows(&self) -> bool {
        self.lane_rows
    }

    /// The same device with those kernels on or off, for tests and
    /// benchmarks that compare the two (`examples/rowwise_timing.rs`).
    pub fn with_lane_rows(&self, on: bool) -> Self {
        GpuDevice {
            lane_rows: on,
            ..self.clone()
        }
    }

    /// Whether optimizer updates take many tensors per dispatch (by default
    /// on hardware adapters; see shaders/optim_many.wgsl).
    pub fn grouped_updates(&self) -> bool {
        self.grouped_updates
    }

    /// The same device with updates grouped or one dispatch per tensor,
    /// for tests and benchmarks that compare the two
    /// (`examples/optim_timing.rs`).
    pub fn with_grouped_updates(&self, on: bool) -> Self {
        GpuDevice {
            grouped_updates: on,
            ..self.clone()
        }
    }

    /// Product operand copies kept for reuse at the moment: an f16 copy or
    /// zero-padded copy of a tensor is made once and read again by the
    /// next product reading the tensor the same way, until an in-place
    /// update (every optimizer update, the loss-scale step) drops them all.
    pub fn kept_operand_copies(&self) -> usize {
        self.copies().len()
    }

    /// The kept operand copies (see [`GpuDevice::kept_operand_copies`]).
    pub(crate) fn copies(&self) -> std::sync::MutexGuard<'_, copies::Copies> {
        self.copies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the kept operand copies: called by every op that writes a
    /// tensor in place, before it writes, since a copy of the tensor would
    /// no longer match it.
    pub(crate) fn forget_copies(&self) {
        self.copies().clear();
    }

    /// The kernel the convolution's forward pass and input gradient use
    /// where they are not tuned: the forced one (`WGTRAIN_CONV=bcast|plain`,
    /// [`GpuDevice::with_conv_kernel`]), else the fixed rule: the kernels of
    /// shaders/conv2d_bcast.wgsl, which share each tap's weights across a
    /// subgroup by broadcasts, on software adapters that can run them
    /// ([`GpuDevice::has_bcast_matmul`]; llvmpipe: T4's forward passes 10 →
    /// 5 ms a step, its input gradient 7 → 3), the plain ones elsewhere.
    /// With tuning on, an unforced device times both per shape class.
    pub fn conv_kernel(&self) -> ConvVariant {
        let software = matches!(self.ctx.info.device_type, wgpu::DeviceType::Cpu);
        match self.conv_forced {
            _ if !self.has_bcast_matmul() => ConvVariant::Plain,
            Some(v) => v,
            None if software => ConvVariant::Bcast,
            None => ConvVariant::Plain,
        }
    }

    /// How the recurrences (Elman, LSTM, GRU) run their steps where they
    /// are not tuned: the forced way ([`GpuDevice::with_rnn_kernel`]), else
    /// the fixed rule: through the matmul kernels on software adapters,
    /// fused elsewhere.
    /// On llvmpipe, `cargo run --release --example rnn_timing` (T5's 32
    /// steps at batch 64, hidden 128, four rounds alternating) read
    /// 10.6–17.2 ms fused and 7.4–11.4 ms through matmuls forward, and
    /// 9.8–14.0 against 7.4–11.2 ms backward (when that way still took a
    /// second dispatch to finish each step): the broadcast matmul outruns
    /// the fused 4×4 blocks by more than that dispatch cost. With
    /// tuning on, an unforced device times the ways of
    /// `tune::RnnVariant::candidates` per class.
    pub fn rnn_kernel(&self) -> RnnVariant {
        let software = matches!(self.ctx.info.device_type, wgpu::DeviceType::Cpu);
        match self.rnn_forced {
            Some(v) => v,
            None if software => RnnVariant::Matmul,
            None => RnnVariant::Fused,
        }
    }

    /// The same device with the recurrences' steps run `kernel`'s way,
    /// untuned (where a cell or size has no such kernel, fused), for tests
    /// and benchmarks that compare the ways.
    pub fn with_rnn_kernel(&self, kernel: RnnVariant) -> Self {
        GpuDevice {
            rnn_forced: Some(kernel),
            ..self.clone()
        }
    }

    /// The same device with `kernel` forced on those passes, untuned
    /// (`Bcast` runs only where the adapter can run it; elsewhere `Plain`
    /// does), for tests and benchmarks that compare the two.
    pub fn with_conv_kernel(&self, kernel: ConvVariant) -> Self {
        GpuDevice {
            conv_forced: Some(kernel),
            ..self.clone()
        }
    }

    /// Whether the adapter can run `matmul_bcast`
    /// ([`MatmulKernel::Broadcast`]): it has subgroup operations, and its
    /// subgroups are never smaller than the 8 lanes that load A's rows.
    /// The broadcast convolutions ([`GpuDevice::conv_kernel`]) need the same.
    pub fn has_bcast_matmul(&self) -> bool {
        self.ctx
            .device
            .features()
            .contains(wgpu::Features::SUBGROUP)
            && self.ctx.info.subgroup_min_size >= 8
    }

    /// Whether workgroup reductions use subgroup operations.
    pub fn subgroups(&self) -> bool {
        self.subgroups
    }

    /// The same device with subgroup operations off (the shared-memory
    /// tree everywhere), or on where the adapter has them; for tests and
    /// benchmarks that compare the two.
    pub fn with_subgroups(&self, on: bool) -> Self {
        GpuDevice {
            subgroups: on
                && self
                    .ctx
                    .device
                    .features()
                    .contains(wgpu::Features::SUBGROUP),
            ..self.clone()
        }
    }

    /// The matmul autotuner, where tuning is on: its cache file and the
    /// table of what it has tuned.
    pub fn tuner(&self) -> Option<&tune::Tuner> {
        self.tuner.as_deref()
    }

    /// The same device with a fresh matmul autotuner whose table lives in
    /// `cache` (none: in memory only), whatever `WGTRAIN_TUNE` says.
    pub fn with_tuning(&self, cache: Option<std::path::PathBuf>) -> Self {
        GpuDevice {
            tuner: Some(Arc::new(tune::Tuner::with_cache(&self.ctx.info, cache))),
            ..self.clone()
        }
    }

    /// The adapter's practical FP32 peak in GFLOP/s, measured with a
    /// register-only FMA kernel sized to take a fraction of a second.
    pub fn measure_peak_gflops(&self) -> Result<f64> {
        // Calibrate on a small launch, then size one of about 0.2 s.
        let small = kernels::peak::measure(self, 1 << 14, 256, 1)?;
        let flops = (small * 1e9 * 0.2).max(1e9);
        let threads = ((flops / (256.0 * 64.0)) as usize).clamp(1 << 14, 1 << 24);
        kernels::peak::measure(self, threads, 256, 3)
    }

    /// An uninitialised tensor of `shape`.
    pub(crate) fn empty(&self, shape: impl Into<Shape>) -> Result<GpuTensor> {
        let shape = shape.into();
        let buf = self.ctx.alloc(shape.numel() as u64 * 4)?;
        Ok(GpuTensor {
            buf: Arc::new(buf),
            shape,
        })
    }
}

impl Device for GpuDevice {
    type Tensor = GpuTensor;
    type Bytes = GpuBytes;
    type Half = GpuHalf;

    fn name(&self) -> String {
        let i = &self.ctx.info;
        format!("{} ({:?})", i.name, i.backend)
    }

    fn max_tensor_bytes(&self) -> u64 {
        self.ctx.max_tensor_bytes()
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    fn with_precision(&self, precision: Precision) -> Result<Self> {
        let has_f16 = self
            .ctx
            .device
            .features()
            .contains(wgpu::Features::SHADER_F16);
        if precision == Precision::F16 && !has_f16 {
            return Err(Error::Config(format!(
                "adapter '{}' has no f16 shader support (SHADER_F16), which precision f16 needs; train at f32, or at f16 on --device cpu (emulated)",
                self.ctx.info.name
            )));
        }
        Ok(GpuDevice {
            precision,
            ..self.clone()
        })
    }

    fn upload(&self, data: &[f32], shape: impl Into<Shape>) -> Result<GpuTensor> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::shape(
                "upload",
                format!("{} values for shape {shape}", data.len()),
            ));
        }
        let t = self.empty(shape)?;
        self.ctx.write(&t.buf, bytemuck::cast_slice(data));
        Ok(t)
    }

    fn download(&self, t: &GpuTensor) -> Result<Vec<f32>> {
        let bytes = self.ctx.read(&t.buf, t.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    fn to_half(&self, t: &GpuTensor) -> Result<GpuHalf> {
        kernels::half::to_half(self, t)
    }

    fn half_to_f32(&self, t: &GpuHalf) -> Result<GpuTensor> {
        kernels::half::half_to_f32(self, t)
    }

    fn upload_u8(&self, data: &[u8], shape: impl Into<Shape>) -> Result<GpuBytes> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::shape(
                "upload_u8",
                format!("{} bytes for shape {shape}", data.len()),
            ));
        }
        let buf = self.ctx.alloc(data.len() as u64)?;
        // write_buffer needs a multiple of 4 bytes.
        let mut padded = data.to_vec();
        padded.resize(data.len().div_ceil(4) * 4, 0);
        self.ctx.write(&buf, &padded);
        Ok(GpuBytes {
            buf: Arc::new(buf),
            shape,
        })
    }

    fn full(&self, shape: impl Into<Shape>, value: f32) -> Result<GpuTensor> {
        kernels::elementwise::fill(self, shape.into(), value)
    }

    fn reshape(&self, t: &GpuTensor, shape: impl Into<Shape>) -> Result<GpuTensor> {
        let shape = shape.into();
        if shape.numel() != t.shape.numel() {
            return Err(Error::shape("reshape", format!("{} to {shape}", t.shape)));
        }
        Ok(GpuTensor {
            buf: t.buf.clone(),
            shape,
        })
    }

    fn slice_rows(&self, x: &GpuTensor, start: usize, count: usize) -> Result<GpuTensor> {
        if start + count > x.shape.rows() {
            return Err(Error::shape(
                "slice_rows",
                format!("rows {start}..{} of {}", start + count, x.shape),
            ));
        }
        let row_bytes = x.shape.row_len() as u64 * 4;
        let out = self.empty(x.shape.with_rows(count))?;
        self.ctx.copy(
            &x.buf,
            start as u64 * row_bytes,
            &out.buf,
            0,
            count as u64 * row_bytes,
        );
        Ok(out)
    }

    fn concat_rows(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        if a.shape.row_len() != b.shape.row_len() || a.shape.rank() != b.shape.rank() {
            return Err(Error::shape(
                "concat_rows",
                format!("{} and {}", a.shape, b.shape),
            ));
        }
        let out = self.empty(a.shape.with_rows(a.shape.rows() + b.shape.rows()))?;
        self.ctx.copy(&a.buf, 0, &out.buf, 0, a.bytes());
        self.ctx.copy(&b.buf, 0, &out.buf, a.bytes(), b.bytes());
        Ok(out)
    }

    fn synchronize(&self) -> Result<()> {
        self.ctx.wait_idle()
    }

    fn matmul(
        &self,
        a: &GpuTensor,
        b: &GpuTensor,
        bias: Option<&GpuTensor>,
        spec: MatmulSpec,
    ) -> Result<GpuTensor> {
        kernels::matmul::matmul(self, a, b, bias, spec)
    }

    fn matmul_half(
        &self,
        a: &GpuHalf,
        b: &GpuTensor,
        bias: Option<&GpuTensor>,
        spec: MatmulSpec,
    ) -> Result<GpuTensor> {
        kernels::matmul::matmul_half(self, a, b, bias, spec)
    }

    fn conv2d(
        &self,
        x: &GpuTensor,
        w: &GpuTensor,
        bias: Option<&GpuTensor>,
        step: ConvStep,
    ) -> Result<GpuTensor> {
        kernels::conv2d::forward(self, x, w, bias, step)
    }

    fn conv2d_input_grad(
        &self,
        dy: &GpuTensor,
        w: &GpuTensor,
        x_shape: &Shape,
        step: ConvStep,
    ) -> Result<GpuTensor> {
        kernels::conv2d::input_grad(self, dy, w, x_shape, step)
    }

    fn conv2d_weight_grad(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        step: ConvStep,
        kernel: (usize, usize),
    ) -> Result<GpuTensor> {
        kernels::conv2d::weight_grad(self, x, dy, step, kernel)
    }

    fn channel_sum(&self, x: &GpuTensor) -> Result<GpuTensor> {
        kernels::conv2d::channel_sum(self, x)
    }

    fn max_pool2d(&self, x: &GpuTensor, win: PoolWindow) -> Result<(GpuTensor, GpuTensor)> {
        kernels::pool::forward(self, x, win)
    }

    fn max_pool2d_backward(
        &self,
        dy: &GpuTensor,
        argmax: &GpuTensor,
        x_shape: &Shape,
        win: PoolWindow,
    ) -> Result<GpuTensor> {
        kernels::pool::backward(self, dy, argmax, x_shape, win)
    }

    fn avg_pool2d(&self, x: &GpuTensor, win: PoolWindow) -> Result<GpuTensor> {
        kernels::pool::avg_forward(self, x, win)
    }

    fn avg_pool2d_backward(
        &self,
        dy: &GpuTensor,
        x_shape: &Shape,
        win: PoolWindow,
    ) -> Result<GpuTensor> {
        kernels::pool::avg_backward(self, dy, x_shape, win)
    }

    fn activation(&self, x: &GpuTensor, act: Activation) -> Result<GpuTensor> {
        kernels::elementwise::activation(self, x, act)
    }

    fn activation_backward(
        &self,
        y: &GpuTensor,
        dy: &GpuTensor,
        act: Activation,
    ) -> Result<GpuTensor> {
        kernels::elementwise::activation_backward(self, y, dy, act)
    }

    fn activation_backward_half(
        &self,
        y: &GpuHalf,
        dy: &GpuTensor,
        act: Activation,
    ) -> Result<GpuTensor> {
        kernels::half::activation_backward_half(self, y, dy, act)
    }

    fn activation_keeping_half(
        &self,
        x: &GpuTensor,
        act: Activation,
    ) -> Result<(GpuTensor, GpuHalf)> {
        kernels::half::activation_keeping_half(self, x, act)
    }

    fn activation_backward_from_input(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        act: Activation,
    ) -> Result<GpuTensor> {
        kernels::elementwise::activation_backward_from_input(self, x, dy, act)
    }

    fn binary(&self, a: &GpuTensor, b: &GpuTensor, op: Binary) -> Result<GpuTensor> {
        kernels::elementwise::binary(self, a, b, op)
    }

    fn scale(&self, x: &GpuTensor, alpha: f32) -> Result<GpuTensor> {
        kernels::elementwise::scale(self, x, alpha)
    }

    fn scale_by(&self, x: &GpuTensor, s: &GpuTensor) -> Result<GpuTensor> {
        kernels::elementwise::scale_by(self, x, s)
    }

    fn axpy(&self, alpha: f32, x: &GpuTensor, y: &GpuTensor) -> Result<GpuTensor> {
        kernels::elementwise::axpy(self, alpha, x, y)
    }

    fn sum_rows(&self, x: &GpuTensor) -> Result<GpuTensor> {
        kernels::reduce::sum_rows(self, x)
    }

    fn sum_cols(&self, x: &GpuTensor) -> Result<GpuTensor> {
        kernels::reduce::sum_cols(self, x)
    }

    fn reduce(&self, x: &GpuTensor, op: Reduce) -> Result<GpuTensor> {
        kernels::reduce::reduce(self, x, op, 1.0)
    }

    fn softmax_rows(&self, x: &GpuTensor) -> Result<GpuTensor> {
        kernels::reduce::softmax_rows(self, x)
    }

    fn softmax_cross_entropy(
        &self,
        logits: &GpuTensor,
        labels: &GpuTensor,
    ) -> Result<LossGrad<GpuTensor>> {
        kernels::reduce::softmax_cross_entropy(self, logits, labels)
    }

    fn mse(&self, pred: &GpuTensor, target: &GpuTensor) -> Result<LossGrad<GpuTensor>> {
        kernels::reduce::pointwise_loss(self, "mse_terms", pred, target)
    }

    fn bce_with_logits(
        &self,
        logits: &GpuTensor,
        targets: &GpuTensor,
    ) -> Result<LossGrad<GpuTensor>> {
        kernels::reduce::pointwise_loss(self, "bce_terms", logits, targets)
    }

    fn argmax_rows(&self, x: &GpuTensor) -> Result<GpuTensor> {
        kernels::reduce::argmax_rows(self, x)
    }

    fn count_equal(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        kernels::reduce::count_equal(self, a, b)
    }

    fn gather_rows(
        &self,
        src: &GpuTensor,
        idx: &GpuTensor,
        start: usize,
        count: usize,
    ) -> Result<GpuTensor> {
        kernels::data::gather_rows(self, src, idx, start, count)
    }

    fn gather_rows_u8(
        &self,
        src: &GpuBytes,
        idx: &GpuTensor,
        start: usize,
        count: usize,
        scale: f32,
        shift: f32,
    ) -> Result<GpuTensor> {
        kernels::data::gather_rows_u8(self, src, idx, start, count, scale, shift)
    }

    fn transpose(&self, x: &GpuTensor) -> Result<GpuTensor> {
        kernels::data::transpose(self, x)
    }

    fn one_hot(&self, idx: &GpuTensor, depth: usize) -> Result<GpuTensor> {
        kernels::data::one_hot(self, idx, depth)
    }

    fn dropout_mask(&self, shape: Shape, mask: &DropoutMask) -> Result<GpuTensor> {
        kernels::dropout::mask(self, shape, mask)
    }

    fn layer_norm(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        eps: f32,
    ) -> Result<(GpuTensor, GpuTensor)> {
        kernels::norm::forward(self, x, gamma, beta, eps)
    }

    fn channel_stats(&self, x: &GpuTensor) -> Result<GpuTensor> {
        kernels::batchnorm::channel_stats(self, x)
    }

    fn batch_norm(
        &self,
        x: &GpuTensor,
        stats: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        eps: f32,
    ) -> Result<GpuTensor> {
        kernels::batchnorm::batch_norm(self, x, stats, gamma, beta, eps)
    }

    fn batch_norm_backward(
        &self,
        dy: &GpuTensor,
        x: &GpuTensor,
        stats: &GpuTensor,
        gamma: &GpuTensor,
        eps: f32,
    ) -> Result<(GpuTensor, GpuTensor, GpuTensor)> {
        kernels::batchnorm::batch_norm_backward(self, dy, x, stats, gamma, eps)
    }

    fn layer_norm_backward(
        &self,
        dy: &GpuTensor,
        x: &GpuTensor,
        stats: &GpuTensor,
        gamma: &GpuTensor,
    ) -> Result<(GpuTensor, GpuTensor, GpuTensor)> {
        kernels::norm::backward(self, dy, x, stats, gamma)
    }

    fn scatter_add_rows(&self, dy: &GpuTensor, idx: &GpuTensor, rows: usize) -> Result<GpuTensor> {
        kernels::data::scatter_add_rows(self, dy, idx, rows)
    }

    fn rnn_forward(&self, xw: &GpuTensor, u: &GpuTensor, h0: &GpuTensor) -> Result<GpuTensor> {
        kernels::rnn::forward(self, xw, u, h0)
    }

    fn rnn_backward(
        &self,
        h: &GpuTensor,
        u: &GpuTensor,
        dh: &GpuTensor,
    ) -> Result<(GpuTensor, GpuTensor)> {
        kernels::rnn::backward(self, h, u, dh)
    }

    fn lstm_forward(
        &self,
        xw: &GpuTensor,
        u: &GpuTensor,
        h0: &GpuTensor,
        c0: &GpuTensor,
    ) -> Result<(GpuTensor, GpuTensor, GpuTensor)> {
        kernels::gated::lstm_forward(self, xw, u, h0, c0)
    }

    fn lstm_backward(
        &self,
        gates: &GpuTensor,
        c: &GpuTensor,
        c0: &GpuTensor,
        u: &GpuTensor,
        dh: &GpuTensor,
    ) -> Result<GpuTensor> {
        kernels::gated::lstm_backward(self, gates, c, c0, u, dh)
    }

    fn gru_forward(
        &self,
        xw: &GpuTensor,
        u: &GpuTensor,
        ub: &GpuTensor,
        h0: &GpuTensor,
    ) -> Result<(GpuTensor, GpuTensor)> {
        kernels::gated::gru_forward(self, xw, u, ub, h0)
    }

    fn gru_backward(
        &self,
        gates: &GpuTensor,
        h_prev: &GpuTensor,
        u: &GpuTensor,
        dh: &GpuTensor,
    ) -> Result<(GpuTensor, GpuTensor)> {
        kernels::gated::gru_backward(self, gates, h_prev, u, dh)
    }

    fn sgd_update(
        &self,
        param: &mut GpuTensor,
        grad: &GpuTensor,
        grad_scale: &GpuTensor,
        lr: f32,
        weight_decay: f32,
    ) -> Result<()> {
        kernels::optim::sgd(self, param, grad, grad_scale, lr, weight_decay)
    }

    fn momentum_update(
        &self,
        param: &mut GpuTensor,
        velocity: &mut GpuTensor,
        grad: &GpuTensor,
        grad_scale: &GpuTensor,
        lr: f32,
        momentum: f32,
        weight_decay: f32,
    ) -> Result<()> {
        kernels::optim::momentum(
            self,
            param,
            velocity,
            grad,
            grad_scale,
            lr,
            momentum,
            weight_decay,
        )
    }

    fn adam_update(
        &self,
        param: &mut GpuTensor,
        m: &mut GpuTensor,
        v: &mut GpuTensor,
        grad: &GpuTensor,
        grad_scale: &GpuTensor,
        hp: &AdamStep,
    ) -> Result<()> {
        kernels::optim::adam(self, param, m, v, grad, grad_scale, hp)
    }

    fn sgd_update_many(
        &self,
        params: &mut [&mut GpuTensor],
        grads: &[&GpuTensor],
        grad_scale: &GpuTensor,
        lr: f32,
        weight_decay: &[f32],
    ) -> Result<()> {
        same_count(
            "sgd_update_many",
            params.len(),
            &[grads.len(), weight_decay.len()],
        )?;
        let updates = params
            .iter()
            .zip(grads)
            .zip(weight_decay)
            .map(|((p, g), &wd)| kernels::optim::Update {
                param: p,
                grad: g,
                state: Vec::new(),
                weight_decay: wd,
                decoupled_decay: 0.0,
            })
            .collect::<Vec<_>>();
        let rates = vec![shared_rates(lr, 0.0); updates.len()];
        self.update_in_groups("sgd_many", &updates, grad_scale, &rates, |i| {
            let u = &updates[i];
            self.sgd_update(&mut u.param.clone(), u.grad, grad_scale, lr, u.weight_decay)
        })
    }

    fn momentum_update_many(
        &self,
        params: &mut [&mut GpuTensor],
        velocities: &mut [&mut GpuTensor],
        grads: &[&GpuTensor],
        grad_scale: &GpuTensor,
        lr: f32,
        momentum: f32,
        weight_decay: &[f32],
    ) -> Result<()> {
        same_count(
            "momentum_update_many",
            params.len(),
            &[velocities.len(), grads.len(), weight_decay.len()],
        )?;
        let updates = params
            .iter()
            .zip(velocities.iter())
            .zip(grads)
            .zip(weight_decay)
            .map(|(((p, v), g), &wd)| kernels::optim::Update {
                param: p,
                grad: g,
                state: vec![v],
                weight_decay: wd,
                decoupled_decay: 0.0,
            })
            .collect::<Vec<_>>();
        let rates = vec![shared_rates(lr, momentum); updates.len()];
        self.update_in_groups("momentum_many", &updates, grad_scale, &rates, |i| {
            let u = &updates[i];
            let mut v = u.state[0].clone();
            self.momentum_update(
                &mut u.param.clone(),
                &mut v,
                u.grad,
                grad_scale,
                lr,
                momentum,
                u.weight_decay,
            )
        })
    }

    fn adam_update_many(
        &self,
        params: &mut [&mut GpuTensor],
        m: &mut [&mut GpuTensor],
        v: &mut [&mut GpuTensor],
        grads: &[&GpuTensor],
        grad_scale: &GpuTensor,
        hp: &[AdamStep],
    ) -> Result<()> {
        same_count(
            "adam_update_many",
            params.len(),
            &[m.len(), v.len(), grads.len(), hp.len()],
        )?;
        let updates = params
            .iter()
            .zip(m.iter())
            .zip(v.iter())
            .zip(grads)
            .zip(hp)
            .map(|((((p, m), v), g), hp)| kernels::optim::Update {
                param: p,
                grad: g,
                state: vec![m, v],
                weight_decay: hp.weight_decay,
                decoupled_decay: hp.decoupled_decay,
            })
            .collect::<Vec<_>>();
        self.update_in_groups("adam_many", &updates, grad_scale, hp, |i| {
            let u = &updates[i];
            let (mut m, mut v) = (u.state[0].clone(), u.state[1].clone());
            self.adam_update(
                &mut u.param.clone(),
                &mut m,
                &mut v,
                u.grad,
                grad_scale,
                &hp[i],
            )
        })
    }

    fn sum_squares_many(&self, tensors: &[&GpuTensor]) -> Result<GpuTensor> {
        let slots = kernels::optim::slots(self, 1);
        if tensors.len() < 2 || slots < 2 {
            return crate::device::sum_of(self, tensors, |t| self.reduce(t, Reduce::SumSquares));
        }
        let groups: Vec<&[&GpuTensor]> = tensors.chunks(slots).collect();
        crate::device::sum_of(self, &groups, |g| kernels::optim::sum_squares_many(self, g))
    }

    fn clip_factor(&self, sum_squares: &GpuTensor, max_norm: f32) -> Result<GpuTensor> {
        kernels::optim::clip_factor(self, sum_squares, max_norm)
    }

    fn loss_scale_step(
        &self,
        sum_squares: &GpuTensor,
        scale: &mut GpuTensor,
        good_steps: &mut GpuTensor,
        step: &LossScaleStep,
    ) -> Result<GpuTensor> {
        kernels::optim::loss_scale_step(self, sum_squares, scale, good_steps, step)
    }
}
