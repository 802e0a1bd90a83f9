//! Normalisation layers. Layer normalisation: each sample's features (each
//! step's, in a sequence) to mean 0 and variance 1, then scaled and shifted
//! by learned `gamma` and `beta`. Batch normalisation: each channel over
//! the batch (and an image's pixels), with running averages of the batch
//! statistics for evaluation.

use super::{cached, Buffer, Layer, Param};
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

/// PyTorch's defaults for batch normalisation: `eps` added to the variance,
/// and the weight of each batch in the running averages.
pub const BATCH_NORM_EPS: f32 = 1e-5;
/// See [`BATCH_NORM_EPS`].
pub const BATCH_NORM_MOMENTUM: f32 = 0.1;

/// Batch normalisation of features `[N, C]` or images `[N, C, H, W]`, per
/// channel (PyTorch's `BatchNorm1d` / `BatchNorm2d`): training normalises
/// with the batch's mean and biased variance and updates running averages
/// (`r ← (1 − m)·r + m·batch`, the variance unbiased, `m` =
/// [`BATCH_NORM_MOMENTUM`]); evaluation normalises with the running
/// averages, which checkpoints keep.
pub struct BatchNorm<D: Device> {
    /// `[C]` scale, `{name}.weight`, starting at 1.
    pub gamma: Param<D>,
    /// `[C]` shift, `{name}.bias`, starting at 0.
    pub beta: Param<D>,
    /// `[C]` running mean, `{name}.running_mean`, starting at 0.
    pub running_mean: Buffer<D>,
    /// `[C]` running variance, `{name}.running_var`, starting at 1.
    pub running_var: Buffer<D>,
    channels: usize,
    cache: Option<(D::Tensor, D::Tensor)>,
}

impl<D: Device> BatchNorm<D> {
    /// Batch normalisation over `channels` channels.
    pub fn new(dev: &D, name: &str, channels: usize) -> Result<Self> {
        Ok(BatchNorm {
            gamma: Param::new(format!("{name}.weight"), dev.full([channels], 1.0)?, false),
            beta: Param::new(format!("{name}.bias"), dev.zeros([channels])?, false),
            running_mean: Buffer::new(format!("{name}.running_mean"), dev.zeros([channels])?),
            running_var: Buffer::new(format!("{name}.running_var"), dev.full([channels], 1.0)?),
            channels,
            cache: None,
        })
    }
}

impl<D: Device> Layer<D> for BatchNorm<D> {
    fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor> {
        let c = self.channels;
        if !train {
            let mean = dev.reshape(&self.running_mean.value, [1, c])?;
            let var = dev.reshape(&self.running_var.value, [1, c])?;
            let stats = dev.concat_rows(&mean, &var)?;
            let (g, b) = (&self.gamma.value, &self.beta.value);
            return dev.batch_norm(x, &stats, g, b, BATCH_NORM_EPS);
        }
        let stats = dev.channel_stats(x)?;
        let (g, b) = (&self.gamma.value, &self.beta.value);
        let y = dev.batch_norm(x, &stats, g, b, BATCH_NORM_EPS)?;
        // A channel of one value (a last batch of one sample) has no
        // variance to learn from: its statistics stay out of the averages.
        let m = x.shape().numel() / c;
        self.cache = Some((x.clone(), stats.clone()));
        if m < 2 {
            return Ok(y);
        }
        // The running variance is unbiased, as PyTorch keeps it.
        let unbias = m as f32 / (m - 1) as f32;
        let keep = 1.0 - BATCH_NORM_MOMENTUM;
        let mean = dev.reshape(&dev.slice_rows(&stats, 0, 1)?, [c])?;
        let var = dev.reshape(&dev.slice_rows(&stats, 1, 1)?, [c])?;
        let rm = dev.scale(&self.running_mean.value, keep)?;
        self.running_mean.value = dev.axpy(BATCH_NORM_MOMENTUM, &mean, &rm)?;
        let rv = dev.scale(&self.running_var.value, keep)?;
        self.running_var.value = dev.axpy(BATCH_NORM_MOMENTUM * unbias, &var, &rv)?;
        Ok(y)
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        let (x, stats) = cached(&self.cache, "batchnorm")?;
        let (dx, dgamma, dbeta) =
            dev.batch_norm_backward(dy, x, stats, &self.gamma.value, BATCH_NORM_EPS)?;
        self.gamma.grad = Some(dgamma);
        self.beta.grad = Some(dbeta);
        Ok(need_dx.then_some(dx))
    }

    fn params(&self) -> Vec<&Param<D>> {
        vec![&self.gamma, &self.beta]
    }

    fn params_mut(&mut self) -> Vec<&mut Param<D>> {
        vec![&mut self.gamma, &mut self.beta]
    }

    fn buffers(&self) -> Vec<&Buffer<D>> {
        vec![&self.running_mean, &self.running_var]
    }

    fn buffers_mut(&mut self) -> Vec<&mut Buffer<D>> {
        vec![&mut self.running_mean, &mut self.running_var]
    }
}
