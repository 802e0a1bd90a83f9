//! A split on a device. A resident split is uploaded once and its
//! minibatches are gathered there from an index tensor, so no sample crosses
//! the bus during training. A split too large for one device buffer stays on
//! the host and is streamed in chunks (`stream.rs`); both give the
//! same batches, bit for bit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::stream::{HostFeatures, HostRows, HostSplit, RowLayout, Stream};
use super::{Dataset, Features, Normalizer, TargetScaler};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::profile::{self, Phase};

/// Most samples of a resident split: sample indices travel to the device as
/// f32, exact up to 2^24. A streamed split indexes only within a chunk, and
/// may have up to 2^32 − 1.
pub const MAX_RESIDENT_SAMPLES: usize = 1 << 24;

/// A streamed split's chunk size unless asked otherwise (or half the
/// device's largest tensor, when that is smaller).
pub const DEFAULT_CHUNK_BYTES: u64 = 64 << 20;

/// Where a split's samples live while a model uses them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Residency {
    /// Resident when the features and the targets each fit the device's
    /// largest tensor ([`Device::max_tensor_bytes`]) and there are at most
    /// [`MAX_RESIDENT_SAMPLES`]; streamed in chunks of
    /// [`DEFAULT_CHUNK_BYTES`] otherwise.
    #[default]
    Auto,
    /// Uploaded whole; an error when it does not fit.
    Resident,
    /// Kept on the host and streamed in chunks of about `chunk_bytes` on
    /// the device (at least one batch).
    Streamed {
        /// Device bytes of one chunk's features and targets.
        chunk_bytes: u64,
    },
}

impl Residency {
    /// Streamed in chunks of the default size for `dev`.
    pub fn streamed<D: Device>(dev: &D) -> Self {
        Residency::Streamed {
            chunk_bytes: DEFAULT_CHUNK_BYTES.min(dev.max_tensor_bytes() / 2),
        }
    }
}

/// Feature values on the host, borrowed.
enum Values<'a> {
    F32(&'a [f32]),
    U8(&'a [u8]),
}

enum DeviceFeatures<D: Device> {
    F32(D::Tensor),
    /// Raw bytes, normalised by `x·scale + shift` in the gather.
    U8 {
        bytes: D::Bytes,
        scale: f32,
        shift: f32,
    },
}

/// Rows on the device: features `[n, ..sample_shape]` and f32 targets, `[n]`
/// or `[n, k]` for `k` targets per sample (class ids as whole numbers).
pub(super) struct Rows<D: Device> {
    features: DeviceFeatures<D>,
    targets: D::Tensor,
}

impl<D: Device> Rows<D> {
    /// Uploads host rows laid out as `layout`.
    pub(super) fn upload(dev: &D, rows: &HostRows, layout: &RowLayout) -> Result<Self> {
        let features = match &rows.features {
            HostFeatures::F32(v) => Values::F32(v),
            HostFeatures::U8(v) => Values::U8(v),
        };
        Self::upload_values(dev, features, &rows.targets, rows.len, layout)
    }

    /// Uploads all of `ds`: f32 features standardised on a copy, bytes
    /// straight from the dataset.
    fn upload_dataset(
        dev: &D,
        ds: &Dataset,
        norm: &Normalizer,
        scaler: Option<&TargetScaler>,
    ) -> Result<Self> {
        let layout = RowLayout::of(ds, norm);
        let targets = HostSplit::targets_of(ds, scaler);
        match &ds.features {
            Features::F32(v) => {
                let mut v = v.clone();
                norm.apply(&mut v, layout.width);
                Self::upload_values(dev, Values::F32(&v), &targets, ds.len(), &layout)
            }
            Features::U8(v) => Self::upload_values(dev, Values::U8(v), &targets, ds.len(), &layout),
        }
    }

    fn upload_values(
        dev: &D,
        features: Values<'_>,
        targets: &[f32],
        len: usize,
        layout: &RowLayout,
    ) -> Result<Self> {
        let mut shape = vec![len];
        shape.extend_from_slice(&layout.sample_shape);
        let features = match features {
            Values::F32(v) => DeviceFeatures::F32(dev.upload(v, shape)?),
            Values::U8(v) => DeviceFeatures::U8 {
                bytes: dev.upload_u8(v, shape)?,
                scale: layout.scale,
                shift: layout.shift,
            },
        };
        let y_shape = match layout.per {
            1 => vec![len],
            per => vec![len, per],
        };
        Ok(Rows {
            features,
            targets: dev.upload(targets, y_shape)?,
        })
    }

    /// Features and targets of rows `idx[start .. start + count]`.
    pub(super) fn gather(
        &self,
        dev: &D,
        idx: &D::Tensor,
        start: usize,
        count: usize,
    ) -> Result<(D::Tensor, D::Tensor)> {
        let x = match &self.features {
            DeviceFeatures::F32(t) => dev.gather_rows(t, idx, start, count)?,
            DeviceFeatures::U8 {
                bytes,
                scale,
                shift,
            } => dev.gather_rows_u8(bytes, idx, start, count, *scale, *shift)?,
        };
        let y = dev.gather_rows(&self.targets, idx, start, count)?;
        Ok((x, y))
    }
}

enum Store<D: Device> {
    Resident(Rows<D>),
    Streamed {
        split: Arc<HostSplit>,
        chunk_bytes: u64,
    },
}

/// A split ready for a device: features (f32 standardised on the host, or
/// raw bytes normalised while gathering) and f32 targets, resident or
/// streamed ([`Residency`]). Passes over it go through a [`SampleOrder`].
pub struct DeviceData<D: Device> {
    store: Store<D>,
    len: usize,
    /// Tells this split's orders from other splits'.
    id: u64,
}

/// Ids of [`DeviceData`]s, unique within the process.
static NEXT_SPLIT: AtomicU64 = AtomicU64::new(1);

/// The order one pass visits a split's samples in (a shuffled epoch, or
/// `0..n`), made by [`DeviceData::order`] for that split; a streamed split's
/// order also carries the pass's chunks.
pub struct SampleOrder<D: Device> {
    kind: OrderKind<D>,
    /// The split it was made for.
    split: u64,
    len: usize,
}

enum OrderKind<D: Device> {
    Resident(D::Tensor),
    Streamed(Box<Stream<D>>),
}

impl<D: Device> SampleOrder<D> {
    /// Positions in the order.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the order is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Samples per chunk of a streamed split's pass; `None` when resident.
    pub fn chunk_rows(&self) -> Option<usize> {
        match &self.kind {
            OrderKind::Resident(_) => None,
            OrderKind::Streamed(s) => Some(s.chunk_rows()),
        }
    }
}

impl<D: Device> DeviceData<D> {
    /// `ds` on `dev`, resident when it fits ([`Residency::Auto`]).
    pub fn upload(
        dev: &D,
        ds: &Dataset,
        norm: &Normalizer,
        scaler: Option<&TargetScaler>,
    ) -> Result<Self> {
        Self::upload_with(dev, ds, norm, scaler, Residency::Auto)
    }

    /// `ds` on `dev`, with f32 features (and regression targets)
    /// standardised on the host first; bytes stay bytes. A streamed split
    /// keeps that copy on the host.
    pub fn upload_with(
        dev: &D,
        ds: &Dataset,
        norm: &Normalizer,
        scaler: Option<&TargetScaler>,
        residency: Residency,
    ) -> Result<Self> {
        let n = ds.len();
        if u32::try_from(n).is_err() {
            return Err(Error::data(
                &ds.name,
                format!("{n} samples: at most {} per split are supported", u32::MAX),
            ));
        }
        norm.check(ds.sample_len())?;
        let (feature_bytes, target_bytes) = HostSplit::bytes_of(ds);
        let limit = dev.max_tensor_bytes();
        let fits = n <= MAX_RESIDENT_SAMPLES && feature_bytes <= limit && target_bytes <= limit;
        // A chunk must fit one tensor too.
        let streamed = |chunk_bytes: u64| -> Result<Store<D>> {
            Ok(Store::Streamed {
                split: Arc::new(HostSplit::new(ds, norm, scaler)?),
                chunk_bytes: chunk_bytes.min(limit),
            })
        };
        let store = match residency {
            Residency::Auto if !fits => {
                let Residency::Streamed { chunk_bytes } = Residency::streamed(dev) else {
                    unreachable!("streamed() is Streamed")
                };
                streamed(chunk_bytes)?
            }
            Residency::Auto | Residency::Resident => {
                if n > MAX_RESIDENT_SAMPLES {
                    return Err(Error::data(
                        &ds.name,
                        format!(
                            "{n} samples: at most {MAX_RESIDENT_SAMPLES} per split can be resident on a device (streaming has no such limit)"
                        ),
                    ));
                }
                Store::Resident(Rows::upload_dataset(dev, ds, norm, scaler)?)
            }
            Residency::Streamed { chunk_bytes } => streamed(chunk_bytes)?,
        };
        Ok(DeviceData {
            store,
            len: n,
            id: NEXT_SPLIT.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the samples stay on the host and go to the device in chunks.
    pub fn is_streamed(&self) -> bool {
        matches!(self.store, Store::Streamed { .. })
    }

    /// A pass over the samples at `order` (each below [`DeviceData::len`]),
    /// `batch` at a time: a streamed split's chunks hold whole batches of
    /// this size.
    pub fn order(&self, dev: &D, order: Vec<u32>, batch: usize) -> Result<SampleOrder<D>> {
        if let Some(&i) = order.iter().find(|&&i| i as usize >= self.len) {
            return Err(Error::Config(format!(
                "a sample order names sample {i} of a split of {}",
                self.len
            )));
        }
        let len = order.len();
        let kind =
            match &self.store {
                Store::Resident(_) => {
                    let idx: Vec<f32> = order.iter().map(|&i| i as f32).collect();
                    OrderKind::Resident(dev.upload(&idx, [len])?)
                }
                Store::Streamed { split, chunk_bytes } => OrderKind::Streamed(Box::new(
                    Stream::new(dev, split.clone(), order.into(), batch, *chunk_bytes)?,
                )),
            };
        Ok(SampleOrder {
            kind,
            split: self.id,
            len,
        })
    }

    /// A pass over every sample in order, `batch` at a time.
    pub fn in_order(&self, dev: &D, batch: usize) -> Result<SampleOrder<D>> {
        self.order(dev, (0..self.len as u32).collect(), batch)
    }

    /// Features and targets of the samples at positions `start .. start +
    /// count` of `order`.
    pub fn batch(
        &self,
        dev: &D,
        order: &mut SampleOrder<D>,
        start: usize,
        count: usize,
    ) -> Result<(D::Tensor, D::Tensor)> {
        if order.split != self.id {
            return Err(Error::Config(
                "a sample order made for a different split".into(),
            ));
        }
        if start.checked_add(count).is_none_or(|e| e > order.len) {
            return Err(Error::Config(format!(
                "batch {start}..+{count} of an order of {} samples",
                order.len
            )));
        }
        let left = profile::phase(Phase::Data);
        let out = match (&self.store, &mut order.kind) {
            (Store::Resident(rows), OrderKind::Resident(idx)) => {
                rows.gather(dev, idx, start, count)
            }
            (Store::Streamed { .. }, OrderKind::Streamed(stream)) => {
                stream.batch(dev, start, count)
            }
            _ => unreachable!("an order is made by its split"),
        };
        profile::phase(left);
        out
    }
}
