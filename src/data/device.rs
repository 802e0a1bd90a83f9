//! A split uploaded to a device once; minibatches are gathered there from an
//! index tensor, so no sample crosses the bus during training.

use super::{Dataset, Features, Normalizer, TargetScaler, Targets};
use crate::device::Device;
use crate::error::Result;
use crate::profile::{self, Phase};
use crate::tensor::Shape;

enum DeviceFeatures<D: Device> {
    F32(D::Tensor),
    /// Raw bytes, normalised by `x·scale + shift` in the gather.
    U8 {
        bytes: D::Bytes,
        scale: f32,
        shift: f32,
    },
}

/// A split resident on a device: features `[n, ..sample_shape]` (f32, or raw
/// bytes normalised while gathering) and f32 targets, `[n]` or `[n, k]` for `k`
/// targets per sample (class ids as whole numbers).
pub struct DeviceData<D: Device> {
    features: DeviceFeatures<D>,
    targets: D::Tensor,
    len: usize,
}

impl<D: Device> DeviceData<D> {
    /// Uploads `ds`, standardising f32 features (and regression targets) on
    /// the host first; bytes stay bytes.
    pub fn upload(
        dev: &D,
        ds: &Dataset,
        norm: &Normalizer,
        scaler: Option<&TargetScaler>,
    ) -> Result<Self> {
        let n = ds.len();
        // Sample indices travel as f32, exact up to 2^24.
        if n > 1 << 24 {
            return Err(crate::error::Error::data(
                &ds.name,
                format!("{n} samples: at most 16,777,216 per split are supported"),
            ));
        }
        let width = ds.sample_len();
        norm.check(width)?;
        let mut shape = vec![n];
        shape.extend_from_slice(&ds.sample_shape);
        let features = match &ds.features {
            Features::F32(v) => {
                let mut v = v.clone();
                norm.apply(&mut v, width);
                DeviceFeatures::F32(dev.upload(&v, Shape::new(shape))?)
            }
            Features::U8(v) => {
                let (scale, shift) = norm.affine();
                DeviceFeatures::U8 {
                    bytes: dev.upload_u8(v, Shape::new(shape))?,
                    scale,
                    shift,
                }
            }
        };
        let mut y = ds.targets.as_f32();
        if let Some(s) = scaler {
            s.scale(&mut y);
        }
        let per = match &ds.targets {
            Targets::Classes { per_sample, .. } => *per_sample,
            Targets::Values { dims, .. } => *dims,
        };
        let y_shape = if per == 1 { vec![n] } else { vec![n, per] };
        Ok(DeviceData {
            features,
            targets: dev.upload(&y, y_shape)?,
            len: n,
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

    /// Features and targets of samples `idx[start .. start + count]`.
    pub fn batch(
        &self,
        dev: &D,
        idx: &D::Tensor,
        start: usize,
        count: usize,
    ) -> Result<(D::Tensor, D::Tensor)> {
        let left = profile::phase(Phase::Data);
        let x = match &self.features {
            DeviceFeatures::F32(t) => dev.gather_rows(t, idx, start, count)?,
            DeviceFeatures::U8 {
                bytes,
                scale,
                shift,
            } => dev.gather_rows_u8(bytes, idx, start, count, *scale, *shift)?,
        };
        let y = dev.gather_rows(&self.targets, idx, start, count)?;
        profile::phase(left);
        Ok((x, y))
    }
}
