//! Layer normalisation: each sample's features (each step's, in a
//! sequence) to mean 0 and variance 1, then scaled and shifted by learned
//! `gamma` and `beta`.

use super::{cached, Layer, Param};
use crate::device::{Device, Tensor};
use crate::error::Result;

/// PyTorch's default: added to the variance before the square root.
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// Normalises over the last dimension; `gamma` starts at 1 and `beta` at
/// 0, neither decayed (scales and shifts, not weights).
pub struct LayerNorm<D: Device> {
    /// `[features]` scale, named `{name}.weight` (PyTorch's).
    pub gamma: Param<D>,
    /// `[features]` shift, named `{name}.bias`.
    pub beta: Param<D>,
    cache: Option<(D::Tensor, D::Tensor)>,
}

impl<D: Device> LayerNorm<D> {
    /// Layer normalisation over `features` values.
    pub fn new(dev: &D, name: &str, features: usize) -> Result<Self> {
        Ok(LayerNorm {
            gamma: Param::new(format!("{name}.weight"), dev.full([features], 1.0)?, false),
            beta: Param::new(format!("{name}.bias"), dev.zeros([features])?, false),
            cache: None,
        })
    }
}

impl<D: Device> Layer<D> for LayerNorm<D> {
    fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor> {
        let features = x.shape().dims().last().copied().unwrap_or(1);
        let rows = dev.reshape(x, [x.shape().numel() / features.max(1), features])?;
        let (y, stats) =
            dev.layer_norm(&rows, &self.gamma.value, &self.beta.value, LAYER_NORM_EPS)?;
        if train {
            self.cache = Some((rows, stats));
        }
        dev.reshape(&y, x.shape().clone())
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        let (x, stats) = cached(&self.cache, "layernorm")?;
        let dy2 = dev.reshape(dy, x.shape().clone())?;
        let (dx, dgamma, dbeta) = dev.layer_norm_backward(&dy2, x, stats, &self.gamma.value)?;
        self.gamma.grad = Some(dgamma);
        self.beta.grad = Some(dbeta);
        Ok(if need_dx {
            Some(dev.reshape(&dx, dy.shape().clone())?)
        } else {
            None
        })
    }

    fn params(&self) -> Vec<&Param<D>> {
        vec![&self.gamma, &self.beta]
    }

    fn params_mut(&mut self) -> Vec<&mut Param<D>> {
        vec![&mut self.gamma, &mut self.beta]
    }
}
