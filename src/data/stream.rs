//! Splits kept on the host and streamed to the device in chunks: for data
//! larger than one device buffer (a storage binding is 128 MiB on some
//! adapters) or than device memory.
//!
//! A pass over a split visits its samples in an order (an epoch's shuffle,
//! or `0..n` for evaluation). A [`Stream`] cuts that order into chunks of
//! whole batches. The rows of the next chunk are gathered on a helper thread
//! while the device works through the current one, and uploaded once half
//! of the current chunk's batches have been recorded (a fixed point, so a
//! run does the same whatever the timing), so a pass holds at most two
//! chunks on the device. A gather nobody will use (a pass abandoned or
//! restarted) is cancelled. Within a chunk the
//! rows are already in batch order; a batch is gathered from it with the same
//! device op as a resident split's, which copies values exactly, so a
//! streamed run is bit-identical to a resident one
//! (`tests/streaming.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::device::{Rows, MAX_RESIDENT_SAMPLES};
use super::{Dataset, Features, Normalizer, TargetScaler};
use crate::device::Device;
use crate::error::{Error, Result};

/// How a split's rows are laid out; shared by all of its chunks.
pub(super) struct RowLayout {
    /// One sample's shape.
    pub sample_shape: Vec<usize>,
    /// Feature values per sample.
    pub width: usize,
    /// Targets per sample.
    pub per: usize,
    /// Byte features become `v · scale + shift` on the device.
    pub scale: f32,
    /// See `scale`.
    pub shift: f32,
}

impl RowLayout {
    /// The layout of `ds`'s rows normalised by `norm`.
    pub fn of(ds: &Dataset, norm: &Normalizer) -> Self {
        let (scale, shift) = norm.affine();
        RowLayout {
            sample_shape: ds.sample_shape.clone(),
            width: ds.sample_len(),
            per: ds.targets.per_sample(),
            scale,
            shift,
        }
    }
}

/// Feature values as the device takes them: f32 already normalised, or raw
/// bytes.
pub(super) enum HostFeatures {
    F32(Vec<f32>),
    U8(Vec<u8>),
}

/// Rows on the host, ready to upload.
pub(super) struct HostRows {
    pub features: HostFeatures,
    /// `len · per` targets, scaled as training uses them.
    pub targets: Vec<f32>,
    pub len: usize,
}

/// A whole split on the host, normalised, with its layout.
pub(super) struct HostSplit {
    pub rows: HostRows,
    pub layout: RowLayout,
}

impl HostSplit {
    /// `ds` as the device sees it: f32 features standardised by `norm` (bytes
    /// stay bytes, normalised while gathering) and regression targets scaled
    /// by `scaler`.
    pub fn new(ds: &Dataset, norm: &Normalizer, scaler: Option<&TargetScaler>) -> Result<Self> {
        norm.check(ds.sample_len())?;
        let layout = RowLayout::of(ds, norm);
        let features = match &ds.features {
            Features::F32(v) => {
                let mut v = v.clone();
                norm.apply(&mut v, layout.width);
                HostFeatures::F32(v)
            }
            Features::U8(v) => HostFeatures::U8(v.clone()),
        };
        Ok(HostSplit {
            rows: HostRows {
                features,
                targets: Self::targets_of(ds, scaler),
                len: ds.len(),
            },
            layout,
        })
    }

    /// `ds`'s targets as f32, regression targets scaled by `scaler`.
    pub fn targets_of(ds: &Dataset, scaler: Option<&TargetScaler>) -> Vec<f32> {
        let mut targets = ds.targets.as_f32();
        if let Some(s) = scaler {
            s.scale(&mut targets);
        }
        targets
    }

    /// Device bytes of `ds`'s features (as stored: f32 or bytes), and of
    /// its targets.
    pub fn bytes_of(ds: &Dataset) -> (u64, u64) {
        let features = match &ds.features {
            Features::F32(v) => v.len() as u64 * 4,
            Features::U8(v) => v.len() as u64,
        };
        (features, (ds.len() * ds.targets.per_sample()) as u64 * 4)
    }

    /// Device bytes of one sample's features and targets.
    pub fn row_bytes(&self) -> u64 {
        let feature = match self.rows.features {
            HostFeatures::F32(_) => 4,
            HostFeatures::U8(_) => 1,
        };
        (self.layout.width * feature + self.layout.per * 4) as u64
    }

    /// The rows at `order` (each below `len`), in that order; `None` once
    /// `cancel` is set (checked every few thousand rows).
    fn select(&self, order: &[u32], cancel: &AtomicBool) -> Option<HostRows> {
        let (w, per) = (self.layout.width, self.layout.per);
        fn pick<T: Copy>(
            src: &[T],
            order: &[u32],
            w: usize,
            cancel: &AtomicBool,
        ) -> Option<Vec<T>> {
            let mut out = Vec::with_capacity(order.len() * w);
            for rows in order.chunks(4096) {
                if cancel.load(Ordering::Relaxed) {
                    return None;
                }
                for &i in rows {
                    let i = i as usize * w;
                    out.extend_from_slice(&src[i..i + w]);
                }
            }
            Some(out)
        }
        Some(HostRows {
            features: match &self.rows.features {
                HostFeatures::F32(v) => HostFeatures::F32(pick(v, order, w, cancel)?),
                HostFeatures::U8(v) => HostFeatures::U8(pick(v, order, w, cancel)?),
            },
            targets: pick(&self.rows.targets, order, per, cancel)?,
            len: order.len(),
        })
    }

    /// The rows at `order`, gathered here and now.
    fn select_now(&self, order: &[u32]) -> HostRows {
        self.select(order, &AtomicBool::new(false))
            .expect("never cancelled")
    }
}

/// The chunk after the current one: being gathered, or on the device.
enum Next<D: Device> {
    Gathering(Gather),
    Ready(Rows<D>),
}

/// A chunk's rows being gathered on a helper thread; dropped unjoined, it
/// tells the thread to stop.
struct Gather {
    handle: Option<JoinHandle<Option<HostRows>>>,
    cancel: Arc<AtomicBool>,
}

impl Gather {
    /// The gathered rows (waiting for the thread if need be).
    fn join(mut self) -> Result<HostRows> {
        let handle = self.handle.take().expect("joined once");
        match handle.join() {
            Ok(Some(rows)) => Ok(rows),
            _ => Err(Error::Config(
                "the data thread gathering a chunk failed".into(),
            )),
        }
    }
}

impl Drop for Gather {
    fn drop(&mut self) {
        if self.handle.is_some() {
            self.cancel.store(true, Ordering::Relaxed);
        }
    }
}

/// One pass's position in a streamed split: the current chunk on the
/// device, and the next one on its way.
pub(super) struct Stream<D: Device> {
    split: Arc<HostSplit>,
    order: Arc<[u32]>,
    /// Samples per chunk: whole batches.
    chunk_rows: usize,
    /// `0..chunk_rows`: a batch is gathered from its chunk with this.
    index: D::Tensor,
    current: Option<(usize, Rows<D>)>,
    next: Option<(usize, Next<D>)>,
}

impl<D: Device> Stream<D> {
    /// A pass over `split` in `order` (indices checked by the caller),
    /// `batch` samples at a time, in chunks of about `chunk_bytes` on the
    /// device (at least one batch).
    pub fn new(
        dev: &D,
        split: Arc<HostSplit>,
        order: Arc<[u32]>,
        batch: usize,
        chunk_bytes: u64,
    ) -> Result<Self> {
        let batch = batch.max(1);
        let budget = (chunk_bytes / split.row_bytes().max(1)).min(usize::MAX as u64) as usize;
        // Whole batches, so no batch of this pass spans two chunks; no more
        // than the pass has, and few enough for exact f32 indices.
        let whole = |rows: usize| (rows / batch).max(1) * batch;
        let chunk_rows = whole(budget)
            .min(whole(MAX_RESIDENT_SAMPLES))
            .min(order.len().max(1));
        Ok(Stream {
            index: identity(dev, chunk_rows)?,
            split,
            order,
            chunk_rows,
            current: None,
            next: None,
        })
    }

    /// Samples per chunk.
    pub fn chunk_rows(&self) -> usize {
        self.chunk_rows
    }

    /// Features and targets of the samples at positions `start .. start +
    /// count` of the order (in range: checked by the caller).
    pub fn batch(&mut self, dev: &D, start: usize, count: usize) -> Result<(D::Tensor, D::Tensor)> {
        let (chunk, offset) = (start / self.chunk_rows, start % self.chunk_rows);
        if offset + count > self.chunk_rows {
            // Not a batch of this pass's size: gathered on its own.
            let rows = self.split.select_now(&self.order[start..start + count]);
            let rows = Rows::upload(dev, &rows, &self.split.layout)?;
            return rows.gather(dev, &identity(dev, count)?, 0, count);
        }
        self.enter(dev, chunk)?;
        let rows = &self.current.as_ref().expect("entered above").1;
        let out = rows.gather(dev, &self.index, offset, count)?;
        // The next chunk goes up once half of this one's batches are
        // recorded: its rows have had that long to be gathered, and the
        // device still has the other half to work through.
        // (A chunk of one batch waits for the next call's `enter`, after
        // its step is recorded.)
        let end = offset + count;
        let halfway = end >= self.chunk_rows.div_ceil(2) && end < self.chunk_rows;
        if halfway && matches!(self.next, Some((_, Next::Gathering(_)))) {
            let Some((k, Next::Gathering(g))) = self.next.take() else {
                unreachable!("matched above")
            };
            let rows = Rows::upload(dev, &g.join()?, &self.split.layout)?;
            self.next = Some((k, Next::Ready(rows)));
        }
        Ok(out)
    }

    /// Makes chunk `k` the current one, and starts gathering the one after.
    fn enter(&mut self, dev: &D, k: usize) -> Result<()> {
        if self.current.as_ref().is_some_and(|c| c.0 == k) {
            return Ok(());
        }
        // Dropped first: its buffers can take the next chunk's rows.
        self.current = None;
        let layout = &self.split.layout;
        let rows = match self.next.take() {
            Some((n, Next::Ready(rows))) if n == k => rows,
            Some((n, Next::Gathering(g))) if n == k => Rows::upload(dev, &g.join()?, layout)?,
            // The first chunk, or a pass that jumped (a resumed epoch): a
            // next chunk of no use is cancelled or freed before this one.
            stale => {
                drop(stale);
                Rows::upload(dev, &self.split.select_now(self.range(k)), layout)?
            }
        };
        self.current = Some((k, rows));
        if (k + 1) * self.chunk_rows < self.order.len() {
            let (split, order) = (self.split.clone(), self.order.clone());
            let chunk = k + 1;
            let rows = self.chunk_rows;
            let cancel = Arc::new(AtomicBool::new(false));
            let stop = cancel.clone();
            let gather = move || {
                let end = ((chunk + 1) * rows).min(order.len());
                split.select(&order[chunk * rows..end], &stop)
            };
            let handle = std::thread::Builder::new()
                .name("wgtrain-stream".into())
                .spawn(gather)
                .map_err(|e| Error::Config(format!("cannot start a data thread: {e}")))?;
            let gather = Gather {
                handle: Some(handle),
                cancel,
            };
            self.next = Some((chunk, Next::Gathering(gather)));
        }
        Ok(())
    }

    /// The order's positions in chunk `k`.
    fn range(&self, k: usize) -> &[u32] {
        let end = ((k + 1) * self.chunk_rows).min(self.order.len());
        &self.order[k * self.chunk_rows..end]
    }
}

/// `0..n` as an f32 index tensor (exact: `n` is at most 2^24).
fn identity<D: Device>(dev: &D, n: usize) -> Result<D::Tensor> {
    if n > MAX_RESIDENT_SAMPLES {
        return Err(Error::Config(format!(
            "a batch of {n} samples: at most {MAX_RESIDENT_SAMPLES} are supported"
        )));
    }
    let idx: Vec<f32> = (0..n).map(|i| i as f32).collect();
    dev.upload(&idx, [n])
}
