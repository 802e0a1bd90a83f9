//! Inverted dropout: in training, each element is zeroed with probability
//! `rate` and the rest scaled by `1/(1 − rate)`; in evaluation, nothing.

use super::{cached, Layer};
use crate::device::dropout::DropoutMask;
use crate::device::{Device, Tensor};
use crate::error::Result;

/// Dropout with a mask drawn from the layer's seed and the training step
/// (see [`crate::device::dropout`]): the same on every device and after a
/// resume.
pub struct Dropout<D: Device> {
    rate: f32,
    seed: u32,
    step: u64,
    mask: Option<D::Tensor>,
}

impl<D: Device> Dropout<D> {
    /// Dropout of `rate` (in `[0, 1)`) whose masks derive from `seed`.
    pub fn new(rate: f32, seed: u32) -> Self {
        Dropout {
            rate,
            seed,
            step: 0,
            mask: None,
        }
    }
}

impl<D: Device> Layer<D> for Dropout<D> {
    fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor> {
        if !train || self.rate == 0.0 {
            return Ok(x.clone());
        }
        let mask = dev.dropout_mask(
            x.shape().clone(),
            &DropoutMask {
                rate: self.rate,
                seed: self.seed,
                // Both halves of the step count, so masks do not repeat
                // after 2³² steps.
                step: (self.step ^ (self.step >> 32)) as u32,
            },
        )?;
        let y = dev.mul(x, &mask)?;
        self.mask = Some(mask);
        Ok(y)
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        if !need_dx {
            return Ok(None);
        }
        if self.rate == 0.0 {
            return Ok(Some(dy.clone()));
        }
        Ok(Some(dev.mul(dy, cached(&self.mask, "dropout")?)?))
    }

    fn set_step(&mut self, step: u64) {
        self.step = step;
    }
}
