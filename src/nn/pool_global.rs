//! Global average pooling: each channel of an image to its mean, `[N, C, H,
//! W]` → `[N, C]`. Built from device ops the other layers use (a row sum
//! forward; backward, the gradient spread evenly by a rank-1 matmul), so it
//! needs no kernel of its own.

use super::{cached, Layer};
use crate::device::{Activation, Device, MatmulSpec, Tensor};
use crate::error::Result;
use crate::tensor::Shape;

/// `[N, C, H, W]` → `[N, C]`, the mean over each channel's plane.
pub struct GlobalAvgPool<D: Device> {
    shape: Option<Shape>,
    /// A `[1, H·W]` row of ones, made once per plane size, not every step.
    ones: Option<D::Tensor>,
}

impl<D: Device> GlobalAvgPool<D> {
    /// A global average pooling layer (no parameters).
    pub fn new() -> Self {
        GlobalAvgPool {
            shape: None,
            ones: None,
        }
    }
}

impl<D: Device> Default for GlobalAvgPool<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Device> Layer<D> for GlobalAvgPool<D> {
    fn forward(&mut self, dev: &D, x: &D::Tensor, _train: bool) -> Result<D::Tensor> {
        let s = x.shape().clone();
        let (n, c, plane) = (s.dim(0), s.dim(1), s.dim(2) * s.dim(3));
        let planes = dev.reshape(x, [n * c, plane])?;
        let means = dev.scale(&dev.sum_cols(&planes)?, 1.0 / plane as f32)?;
        self.shape = Some(s);
        dev.reshape(&means, [n, c])
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        if !need_dx {
            return Ok(None);
        }
        let s = cached(&self.shape, "global_avgpool")?.clone();
        let (n, c, plane) = (s.dim(0), s.dim(1), s.dim(2) * s.dim(3));
        // dx[n, c, :, :] = dy[n, c] / (H·W): a column times a row of ones.
        let col = dev.scale(&dev.reshape(dy, [n * c, 1])?, 1.0 / plane as f32)?;
        if self.ones.as_ref().map(|o| o.shape().numel()) != Some(plane) {
            self.ones = Some(dev.full([1, plane], 1.0)?);
        }
        let ones = self.ones.as_ref().expect("just made");
        let spec = MatmulSpec {
            trans_a: false,
            trans_b: false,
            act: Activation::Identity,
        };
        let dx = dev.matmul(&col, ones, None, spec)?;
        Ok(Some(dev.reshape(&dx, s)?))
    }
}
