//! The machinery under every GPU kernel launch: the wgpu device and queue, the
//! pipeline and bind-group caches, the buffer pool, and the recorder that
//! batches dispatches into one command encoder until somebody needs a result.
//!
//! Why it is shaped this way (README "What makes the GPU path fast"):
//! - ops never wait: they record into an open compute pass; the encoder is
//!   submitted when a download needs the data, or every
//!   [`DISPATCHES_PER_SUBMIT`] dispatches so the GPU starts early;
//! - per-dispatch parameters travel as *immediates* (push constants), so no
//!   uniform buffer is rewritten between dispatches of one submission;
//! - buffers come from a pool keyed by size and keep a stable id, so the bind
//!   groups built over them can be cached and reused every training step.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::profile::{self, Phase};

/// Dispatches recorded before the encoder is submitted without being asked.
const DISPATCHES_PER_SUBMIT: usize = 512;
/// Bind groups cached before the cache is cleared (bounds memory if buffer
/// combinations never repeat).
const BIND_GROUP_CACHE_LIMIT: usize = 8192;
/// Threads per workgroup of every one-dimensional kernel (`linear_id` in
/// shaders/common.wgsl assumes it).
pub(crate) const WORKGROUP: u32 = 256;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// One WGSL file: a name for errors and caching, and its source (with the
/// shared prelude prepended by [`shader!`](crate::shader)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShaderSource {
    pub name: &'static str,
    pub source: &'static str,
}

/// `shader!("pad")` is the source of shaders/pad.wgsl preceded by
/// shaders/common.wgsl (WGSL has no includes); `shader!("reduce_tree",
/// "reduce")` puts shaders/reduce_tree.wgsl between the two (and a third
/// file, as in `shader!("matmul_f32", "matmul", "matmul_bcast")`, after
/// them), and `shader!(enable_f16 "matmul_f16", "matmul")` also begins with
/// `enable f16;` (which must come first in a module).
#[macro_export]
#[doc(hidden)]
macro_rules! shader {
    (enable_f16 $part:literal, $name:literal) => {
        $crate::shader!(@parts "enable f16;\n", "f16+", $part, $name)
    };
    (enable_f16 $part:literal, $name:literal, $tail:literal) => {
        $crate::shader!(@parts "enable f16;\n", "f16+", $part, $name, $tail)
    };
    ($part:literal, $name:literal) => {
        $crate::shader!(@parts "", "", $part, $name)
    };
    ($part:literal, $name:literal, $tail:literal) => {
        $crate::shader!(@parts "", "", $part, $name, $tail)
    };
    // `prelude` goes before everything (an `enable` must come first), and
    // `tag` before the name, so the two forms never share a pipeline.
    (@parts $prelude:literal, $tag:literal, $first:literal $(, $rest:literal)*) => {
        $crate::device::gpu::context::ShaderSource {
            name: concat!($tag, $first $(, "+", $rest)*),
            source: concat!(
                $prelude,
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/common.wgsl")),
                include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/shaders/",
                    $first,
                    ".wgsl"
                ))
                $(, include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/shaders/",
                    $rest,
                    ".wgsl"
                )))*
            ),
        }
    };
    ($name:literal) => {
        $crate::device::gpu::context::ShaderSource {
            name: $name,
            source: concat!(
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/common.wgsl")),
                include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/shaders/",
                    $name,
                    ".wgsl"
                ))
            ),
        }
    };
}

/// A compiled pipeline with its (auto-derived) bind group layout.
pub(crate) struct Kernel {
    id: u64,
    entry: &'static str,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct PipelineKey {
    shader: &'static str,
    entry: &'static str,
    constants: Vec<(&'static str, u64)>,
}

/// A bind group is identified by its kernel and (binding, buffer id) pairs.
type BindKey = (u64, Vec<(u32, u64)>);

/// A storage buffer on loan from the pool; returned to it on drop.
pub(crate) struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    id: u64,
    /// This loan's own number: a buffer back from the pool keeps its `id`
    /// (bind groups are cached by it) but gets a new `loan`.
    loan: u64,
    size: u64,
    pool: Arc<Mutex<FreeList>>,
}

impl PooledBuffer {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("present until drop")
    }
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Unique to this loan of the buffer (and so to the values a tensor
    /// put in it): what a copy of its contents is keyed by.
    pub fn loan(&self) -> u64 {
        self.loan
    }
    /// Bytes on loan (the pool's size class, at least what was asked).
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            if let Ok(mut pool) = self.pool.lock() {
                pool.give_back(self.size, self.id, b);
            }
        }
    }
}

/// Free buffers kept for reuse never exceed this many bytes, or twice the
/// most the device has had in use at once if that is more: a training loop
/// (which frees only what it used) never evicts, while a long session of
/// ever-different shapes cannot grow the pool without bound.
/// Distinct download sizes whose staging buffers are kept.
const STAGING_SIZES: usize = 16;

pub(crate) const POOL_FLOOR_BYTES: u64 = 256 << 20;

/// Free buffers by size. Reusing a buffer that commands still in the open
/// encoder read is safe: the later dispatch is recorded after them, and wgpu
/// orders dispatches that touch the same buffer.
#[derive(Default)]
pub(crate) struct FreeList {
    free: HashMap<u64, Vec<(u64, wgpu::Buffer)>>,
    /// When each size class was last handed out (a counter), for eviction.
    last_used: HashMap<u64, u64>,
    clock: u64,
    free_bytes: u64,
    live_bytes: u64,
    peak_live_bytes: u64,
    /// Ids of evicted buffers, whose cached bind groups must go too.
    evicted: Vec<u64>,
}

impl FreeList {
    /// A free buffer of `size`, if there is one.
    fn take(&mut self, size: u64) -> Option<(u64, wgpu::Buffer)> {
        self.clock += 1;
        self.last_used.insert(size, self.clock);
        let found = self.free.get_mut(&size).and_then(Vec::pop);
        if found.is_some() {
            self.free_bytes -= size;
        }
        self.live_bytes += size;
        self.peak_live_bytes = self.peak_live_bytes.max(self.live_bytes);
        found
    }

    /// Takes a buffer back, then evicts the least recently used size
    /// classes while free bytes exceed the cap.
    fn give_back(&mut self, size: u64, id: u64, buffer: wgpu::Buffer) {
        self.live_bytes = self.live_bytes.saturating_sub(size);
        self.free.entry(size).or_default().push((id, buffer));
        self.free_bytes += size;
        let cap = POOL_FLOOR_BYTES.max(2 * self.peak_live_bytes);
        while self.free_bytes > cap {
            let oldest = self
                .free
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(&s, _)| s)
                .min_by_key(|s| self.last_used.get(s).copied().unwrap_or(0));
            let Some(s) = oldest else { break };
            // Dropped, not destroyed: commands already recorded may still
            // use it, and wgpu keeps it alive until they have run.
            if let Some((id, _buffer)) = self.free.get_mut(&s).and_then(Vec::pop) {
                self.free_bytes -= s;
                self.evicted.push(id);
            }
            if self.free.get(&s).is_some_and(Vec::is_empty) {
                self.free.remove(&s);
                self.last_used.remove(&s);
            }
        }
    }
}

/// Counters that tests and benchmarks read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuStats {
    /// Storage buffers created since the device was made (not reuses).
    pub buffers_created: u64,
    /// Pipelines compiled.
    pub pipelines_compiled: u64,
    /// Bind groups created (cache misses).
    pub bind_groups_created: u64,
    /// Command buffers submitted.
    pub submits: u64,
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Bytes of free buffers the pool keeps for reuse now.
    pub pool_free_bytes: u64,
    /// Bytes of buffers on loan now: live tensors, kept operand copies.
    pub live_bytes: u64,
    /// Buffers dropped from the pool to keep it under its cap.
    pub buffers_evicted: u64,
}

struct Recorder {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    pending: usize,
    /// Profiling: the phase and kernel of each timestamped dispatch in the
    /// open encoder, in query order.
    timed: Vec<(Phase, &'static str)>,
}

/// Timestamp queries around every dispatch while profiling (see
/// crate::profile), resolved and read back when the encoder is submitted.
struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Nanoseconds per tick.
    period: f64,
}

/// The wgpu objects and caches behind a `GpuDevice`.
pub(crate) struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<Kernel>>>,
    bind_groups: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
    recorder: Mutex<Recorder>,
    pool: Arc<Mutex<FreeList>>,
    staging: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    stats: Mutex<GpuStats>,
    /// The first error wgpu reported asynchronously (validation, out of
    /// memory, device lost); surfaced by the next download or wait.
    error: Arc<Mutex<Option<String>>>,
    timestamps: Option<Timestamps>,
    /// Checking mode: every buffer handed out is first filled with
    /// [`POISON`] (see [`Context::set_poison`]).
    poison: std::sync::atomic::AtomicBool,
}

/// What a poisoned buffer holds in every word: a NaN read as one f32
/// (0xFFC0FFC0) and as two f16 (0xFFC0 each).
const POISON: u32 = 0xFFC0_FFC0;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain caches behind,
    // which stay valid; carry on rather than poisoning the device.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Context {
    pub fn new(adapter: &wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let features = adapter.features();
        if !features.contains(wgpu::Features::IMMEDIATES) {
            return Err(Error::Gpu(format!(
                "adapter '{}' lacks immediates (push constants), which wgtrain's kernels use",
                info.name
            )));
        }
        // The adapter's own limits, not wgpu's conservative defaults (which cap
        // a storage binding at 128 MiB).
        let limits = adapter.limits();
        let timing =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        // Subgroup operations where the adapter has them (reduce_subgroup.wgsl),
        // and f16 (matmul_f16.wgsl, `--precision f16`).
        let optional = timing | wgpu::Features::SUBGROUP | wgpu::Features::SHADER_F16;
        let required_features = wgpu::Features::IMMEDIATES | (features & optional);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgtrain"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Gpu(format!("cannot open adapter '{}': {e}", info.name)))?;
        // wgpu's default handler panics; record the error and return it from
        // the next call that waits on the GPU instead.
        let error: Arc<Mutex<Option<String>>> = Arc::default();
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            lock(&sink).get_or_insert_with(|| describe(&e));
        }));
        let sink = error.clone();
        device.set_device_lost_callback(move |reason, msg| {
            lock(&sink).get_or_insert_with(|| format!("device lost ({reason:?}): {msg}"));
        });
        let timestamps = features.contains(timing).then(|| {
            let bytes = 2 * DISPATCHES_PER_SUBMIT as u64 * 8;
            Timestamps {
                set: device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * DISPATCHES_PER_SUBMIT as u32,
                }),
                resolve: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("profile resolve"),
                    size: bytes,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                readback: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("profile readback"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                period: queue.get_timestamp_period() as f64,
            }
        });
        Ok(Context {
            device,
            queue,
            info,
            limits,
            modules: Mutex::default(),
            pipelines: Mutex::default(),
            bind_groups: Mutex::default(),
            recorder: Mutex::new(Recorder {
                encoder: None,
                pass: None,
                pending: 0,
                timed: Vec::new(),
            }),
            pool: Arc::default(),
            staging: Mutex::default(),
            stats: Mutex::default(),
            error,
            timestamps,
            poison: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The first asynchronous wgpu error since the device was made, if any.
    fn check_errors(&self) -> Result<()> {
        match lock(&self.error).clone() {
            Some(msg) => Err(Error::Gpu(msg)),
            None => Ok(()),
        }
    }

    pub fn stats(&self) -> GpuStats {
        let mut s = *lock(&self.stats);
        let pool = lock(&self.pool);
        s.pool_free_bytes = pool.free_bytes;
        s.live_bytes = pool.live_bytes;
        s
    }

    // ---- pipelines --------------------------------------------------------

    /// The pipeline for `entry` of `shader` with the given override constants,
    /// compiled on first use and cached for the life of the device.
    pub fn kernel(
        &self,
        shader: ShaderSource,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Arc<Kernel> {
        let key = PipelineKey {
            shader: shader.name,
            entry,
            constants: constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
        };
        if let Some(k) = lock(&self.pipelines).get(&key) {
            return k.clone();
        }
        let started = std::time::Instant::now();
        let module = {
            let mut modules = lock(&self.modules);
            modules
                .entry(shader.name)
                .or_insert_with(|| {
                    self.device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(shader.name),
                            source: wgpu::ShaderSource::Wgsl(shader.source.into()),
                        })
                })
                .clone()
        };
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        let layout = pipeline.get_bind_group_layout(0);
        let kernel = Arc::new(Kernel {
            id: next_id(),
            entry,
            pipeline,
            layout,
        });
        log::debug!(
            "compiled {entry} of {} {constants:?} in {:.1} ms",
            shader.name,
            started.elapsed().as_secs_f64() * 1e3
        );
        lock(&self.stats).pipelines_compiled += 1;
        lock(&self.pipelines).insert(key, kernel.clone());
        kernel
    }

    // ---- buffers ----------------------------------------------------------

    /// The most bytes a tensor may hold: the smallest limit, rounded down
    /// to [`Context::alloc`]'s 256-byte size classes.
    pub fn max_tensor_bytes(&self) -> u64 {
        let limit = self.size_limits().iter().map(|l| l.1).min().unwrap_or(0);
        limit / 256 * 256
    }

    /// Each limit on one storage buffer, named.
    fn size_limits(&self) -> [(&'static str, u64); 3] {
        [
            // Kernels index elements with u32 arithmetic; 2^31 elements keeps
            // every index expression clear of overflow.
            ("32-bit index range of wgtrain's kernels", 1u64 << 33),
            ("adapter's max_buffer_size", self.limits.max_buffer_size),
            (
                "adapter's max_storage_buffer_binding_size",
                self.limits.max_storage_buffer_binding_size,
            ),
        ]
    }

    /// Checks a storage buffer request against the adapter's limits.
    pub fn check_size(&self, what: &dyn Fn() -> String, bytes: u64) -> Result<()> {
        for (limit_name, limit) in self.size_limits() {
            if bytes > limit {
                return Err(Error::TooLarge {
                    what: what(),
                    bytes,
                    limit_name,
                    limit,
                });
            }
        }
        Ok(())
    }

    /// A storage buffer of at least `bytes`, reused from the pool when one of
    /// that size class is free. Contents are unspecified.
    pub fn alloc(&self, bytes: u64) -> Result<PooledBuffer> {
        // Size classes: multiples of 256 bytes (never zero: wgpu cannot bind an
        // empty buffer).
        let size = bytes.max(4).div_ceil(256) * 256;
        self.check_size(&|| "a tensor".to_string(), size)?;
        let reused = lock(&self.pool).take(size);
        let (id, buffer) = match reused {
            Some(entry) => entry,
            None => {
                lock(&self.stats).buffers_created += 1;
                let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                (next_id(), buffer)
            }
        };
        let pooled = PooledBuffer {
            buffer: Some(buffer),
            id,
            loan: next_id(),
            size,
            pool: self.pool.clone(),
        };
        if self.poison.load(std::sync::atomic::Ordering::Relaxed) {
            let words = vec![POISON; (size / 4) as usize];
            self.write(&pooled, bytemuck::cast_slice(&words));
        }
        Ok(pooled)
    }

    /// Checking mode on or off: while on, every buffer [`Context::alloc`]
    /// hands out, new or reused, is first filled with NaN ([`POISON`]), so
    /// that a kernel leaving part of its output unwritten shows NaN rather
    /// than what the pool's last user left there (often the right answer,
    /// from the same product by another kernel). Costs an upload per
    /// allocation.
    pub fn set_poison(&self, on: bool) {
        self.poison.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes host data into `dst`. The pending encoder is submitted first,
    /// under the same lock: `queue.write_buffer` lands before the *next*
    /// submission, so commands already recorded (by any thread) against a
    /// recycled buffer would otherwise read the new data.
    pub fn write(&self, dst: &PooledBuffer, bytes: &[u8]) {
        let mut rec = lock(&self.recorder);
        self.submit_locked(&mut rec);
        if !bytes.is_empty() {
            self.queue.write_buffer(dst.buffer(), 0, bytes);
        }
    }

    // ---- recording --------------------------------------------------------

    fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut rec = lock(&self.recorder);
        rec.pass = None; // end the open compute pass, if any
        let enc = rec.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        f(enc)
    }

    /// Records a buffer-to-buffer copy (byte offsets and size multiples of 4).
    pub fn copy(&self, src: &PooledBuffer, src_off: u64, dst: &PooledBuffer, dst_off: u64, n: u64) {
        if n > 0 {
            self.with_encoder(|enc| {
                enc.copy_buffer_to_buffer(src.buffer(), src_off, dst.buffer(), dst_off, n)
            });
        }
    }

    /// The grid for `threads` invocations of a 1-D kernel of [`WORKGROUP`]
    /// threads, folded into y when x would exceed the adapter's limit.
    pub fn grid_1d(&self, what: &str, threads: usize) -> Result<[u32; 3]> {
        self.grid_groups(what, (threads as u64).div_ceil(WORKGROUP as u64))
    }

    /// `groups` workgroups laid out as x·y within the per-dimension limit.
    pub fn grid_groups(&self, what: &str, groups: u64) -> Result<[u32; 3]> {
        let max = self.limits.max_compute_workgroups_per_dimension as u64;
        let groups = groups.max(1);
        if groups <= max {
            return Ok([groups as u32, 1, 1]);
        }
        let y = groups.div_ceil(max);
        if y > max {
            return Err(Error::TooManyWorkgroups {
                what: what.to_string(),
                groups,
                limit: max,
            });
        }
        Ok([groups.div_ceil(y) as u32, y as u32, 1])
    }

    /// Checks a 2-D/3-D grid against the per-dimension limit.
    pub fn check_grid(&self, what: &str, grid: [u32; 3]) -> Result<[u32; 3]> {
        let max = self.limits.max_compute_workgroups_per_dimension;
        match grid.iter().find(|&&g| g > max) {
            Some(&g) => Err(Error::TooManyWorkgroups {
                what: what.to_string(),
                groups: g as u64,
                limit: max as u64,
            }),
            None => Ok(grid),
        }
    }

    /// Records one dispatch of `kernel` over `bindings` (binding number and
    /// buffer) with `params` as its immediates.
    pub fn dispatch(
        &self,
        kernel: &Kernel,
        bindings: &[(u32, &PooledBuffer)],
        params: &[u8],
        grid: [u32; 3],
    ) {
        let bind_group = self.bind_group(kernel, bindings);
        let mut rec = lock(&self.recorder);
        if rec.pass.is_none() {
            let enc = rec.encoder.get_or_insert_with(|| {
                self.device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
            });
            let pass = enc
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                })
                .forget_lifetime();
            rec.pass = Some(pass);
        }
        let profiling = profile::is_enabled();
        let query = match (&self.timestamps, profiling) {
            (Some(ts), true) => Some((&ts.set, 2 * rec.timed.len() as u32)),
            _ => None,
        };
        let pass = rec.pass.as_mut().expect("just opened");
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        if !params.is_empty() {
            pass.set_immediates(0, params);
        }
        if let Some((set, q)) = query {
            pass.write_timestamp(set, q);
        }
        pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
        if let Some((set, q)) = query {
            pass.write_timestamp(set, q + 1);
            rec.timed.push((profile::current(), kernel.entry));
        }
        rec.pending += 1;
        if rec.pending >= DISPATCHES_PER_SUBMIT {
            // Submitted under the lock, so the timestamp slots of one
            // encoder never exceed the query set.
            self.submit_locked(&mut rec);
        }
        drop(rec);
        lock(&self.stats).dispatches += 1;
        if profiling && self.timestamps.is_none() {
            // No timestamp queries: time the dispatch by waiting for it.
            let t = std::time::Instant::now();
            let _ = self.wait_idle();
            profile::record_device_time(
                profile::current(),
                kernel.entry,
                t.elapsed().as_secs_f64(),
                "a wait after every dispatch",
            );
        }
    }

    fn bind_group(&self, kernel: &Kernel, bindings: &[(u32, &PooledBuffer)]) -> wgpu::BindGroup {
        let key = (
            kernel.id,
            bindings
                .iter()
                .map(|(b, buf)| (*b, buf.id()))
                .collect::<Vec<_>>(),
        );
        let mut cache = lock(&self.bind_groups);
        let evicted = std::mem::take(&mut lock(&self.pool).evicted);
        if !evicted.is_empty() {
            // Their bind groups would keep the evicted buffers alive.
            lock(&self.stats).buffers_evicted += evicted.len() as u64;
            cache.retain(|(_, bound), _| !bound.iter().any(|(_, id)| evicted.contains(id)));
        }
        if let Some(bg) = cache.get(&key) {
            return bg.clone();
        }
        if cache.len() >= BIND_GROUP_CACHE_LIMIT {
            cache.clear();
        }
        let entries: Vec<wgpu::BindGroupEntry> = bindings
            .iter()
            .map(|(binding, buf)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: buf.buffer().as_entire_binding(),
            })
            .collect();
        let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &kernel.layout,
            entries: &entries,
        });
        lock(&self.stats).bind_groups_created += 1;
        cache.insert(key, bg.clone());
        bg
    }

    /// Submits everything recorded so far without waiting for it.
    pub fn flush(&self) {
        let mut rec = lock(&self.recorder);
        self.submit_locked(&mut rec);
    }

    fn submit_locked(&self, rec: &mut Recorder) {
        rec.pass = None;
        rec.pending = 0;
        let timed = std::mem::take(&mut rec.timed);
        if let Some(mut enc) = rec.encoder.take() {
            if let (Some(ts), false) = (&self.timestamps, timed.is_empty()) {
                let n = 2 * timed.len() as u32;
                enc.resolve_query_set(&ts.set, 0..n, &ts.resolve, 0);
                enc.copy_buffer_to_buffer(&ts.resolve, 0, &ts.readback, 0, n as u64 * 8);
            }
            self.queue.submit([enc.finish()]);
            lock(&self.stats).submits += 1;
            if !timed.is_empty() {
                self.collect_timestamps(&timed);
            }
            // Let wgpu retire finished work without blocking.
            let _ = self.device.poll(wgpu::PollType::Poll);
        }
    }

    /// Reads the timestamps of a submitted encoder (profiling only: waits).
    fn collect_timestamps(&self, timed: &[(Phase, &'static str)]) {
        let Some(ts) = &self.timestamps else { return };
        let slice = ts.readback.slice(..timed.len() as u64 * 16);
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        if !matches!(pollster::block_on(rx.receive()), Some(Ok(()))) {
            return; // not mapped: nothing to read or unmap
        }
        if let Ok(view) = slice.get_mapped_range() {
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&view);
            for (i, (phase, kernel)) in timed.iter().enumerate() {
                let dt = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * ts.period * 1e-9;
                profile::record_device_time(*phase, kernel, dt, "timestamp queries");
            }
        }
        ts.readback.unmap();
    }

    /// Submits pending work and blocks until the GPU has finished all of it.
    pub fn wait_idle(&self) -> Result<()> {
        self.flush();
        let left = profile::phase(Phase::HostWait);
        let waited = self
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")));
        profile::phase(left);
        waited?;
        self.check_errors()
    }

    /// Copies the first `bytes` of `src` to the host. Besides
    /// [`Context::wait_idle`] (explicit synchronisation, and the
    /// autotuner's timings of each new shape class), this is the only
    /// place the host waits on the GPU.
    pub fn read(&self, src: &PooledBuffer, bytes: u64) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        // Staging buffers are kept per size and lent to one reader at a time
        // (another thread must not submit a copy into a mapped buffer):
        // reading the loss every N steps reuses one small buffer.
        let size = bytes.div_ceil(4) * 4;
        let reused = lock(&self.staging).get_mut(&size).and_then(Vec::pop);
        let staging = reused.unwrap_or_else(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        self.with_encoder(|enc| enc.copy_buffer_to_buffer(src.buffer(), 0, &staging, 0, size));
        self.flush();
        let left = profile::phase(Phase::HostWait);
        let slice = staging.slice(..size);
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        let waited = self
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for a download: {e}")));
        let mapped = pollster::block_on(rx.receive());
        profile::phase(left);
        waited?;
        self.check_errors()?;
        mapped
            .ok_or_else(|| Error::Gpu("download callback dropped".into()))?
            .map_err(|e| Error::Gpu(format!("mapping a download buffer: {e}")))?;
        let data = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("reading a download buffer: {e:?}")))?;
            view[..bytes as usize].to_vec()
        };
        staging.unmap();
        // Kept for the next read of this size, two per size and a few sizes
        // at most (reads of odd sizes are rare: losses, evaluations).
        let mut kept = lock(&self.staging);
        if kept.len() >= STAGING_SIZES && !kept.contains_key(&size) {
            kept.clear();
        }
        let per_size = kept.entry(size).or_default();
        if per_size.len() < 2 {
            per_size.push(staging);
        }
        Ok(data)
    }
}

/// An error and its chain of causes on one line.
fn describe(e: &wgpu::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}
