//! What every optimizer shares: per-parameter state tensors named by slot,
//! and the gradient scale (1, the clipping factor, or loss scaling's).

use crate::device::{Device, Tensor};
use crate::error::{Error, Result};
use crate::nn::Param;
use crate::tensor::HostTensor;

use super::grad_of;
use super::loss_scale::{LossScale, LossScaler};

/// Per-parameter state tensors, one per named slot (`m`, `v`), created as
/// zeros at the first step. Saved as `optimizer.<parameter>.<slot>`.
pub struct Slots<D: Device> {
    names: &'static [&'static str],
    /// `tensors[i][s]`: slot `s` of parameter `i`.
    tensors: Vec<Vec<D::Tensor>>,
}

impl<D: Device> Slots<D> {
    /// Slots called `names` for every parameter.
    pub fn new(names: &'static [&'static str]) -> Self {
        Slots {
            names,
            tensors: Vec::new(),
        }
    }

    /// The slots of every parameter, created on first use; fails if the
    /// parameters are not the ones the state was made for.
    pub fn get(&mut self, dev: &D, params: &[&mut Param<D>]) -> Result<&mut [Vec<D::Tensor>]> {
        if self.tensors.is_empty() {
            for p in params {
                let shape = p.value.shape().clone();
                self.tensors.push(
                    self.names
                        .iter()
                        .map(|_| dev.zeros(shape.clone()))
                        .collect::<Result<_>>()?,
                );
            }
        }
        if self.tensors.len() != params.len() {
            return Err(Error::Config(format!(
                "optimizer holds state for {} parameters, got {}",
                self.tensors.len(),
                params.len()
            )));
        }
        Ok(&mut self.tensors)
    }

    /// Copies the state to the host, named.
    pub fn save(&self, dev: &D, params: &[&Param<D>]) -> Result<Vec<HostTensor>> {
        let mut out = Vec::new();
        for (p, slots) in params.iter().zip(&self.tensors) {
            for (slot, t) in self.names.iter().zip(slots) {
                out.push(HostTensor {
                    name: format!("optimizer.{}.{slot}", p.name),
                    shape: t.shape().dims().to_vec(),
                    values: dev.download(t)?,
                });
            }
        }
        Ok(out)
    }

    /// Puts saved state back, checking every tensor is present and shaped
    /// like its parameter.
    pub fn load(&mut self, dev: &D, params: &[&Param<D>], saved: &[HostTensor]) -> Result<()> {
        let mut tensors = Vec::with_capacity(params.len());
        for p in params {
            let mut per = Vec::with_capacity(self.names.len());
            for slot in self.names {
                let name = format!("optimizer.{}.{slot}", p.name);
                let t = saved.iter().find(|t| t.name == name).ok_or_else(|| {
                    Error::Config(format!("checkpoint lacks optimizer state '{name}'"))
                })?;
                if t.shape != p.value.shape().dims() {
                    return Err(Error::Config(format!(
                        "optimizer state '{name}' has shape {:?}, its parameter {}",
                        t.shape,
                        p.value.shape()
                    )));
                }
                per.push(dev.upload(&t.values, t.shape.clone())?);
            }
            tensors.push(per);
        }
        self.tensors = tensors;
        Ok(())
    }
}

/// The factor every gradient is multiplied by in an update: 1, or with
/// clipping `min(1, max_norm / ‖g‖)` over all gradients together, or under
/// loss scaling that divided by the scale (0 to skip an overflowed step),
/// always computed on the device.
pub struct GradScale<D: Device> {
    clip_norm: Option<f32>,
    unit: Option<D::Tensor>,
    loss: Option<LossScaler<D>>,
}

impl<D: Device> GradScale<D> {
    /// Clipping to `clip_norm` when given; no loss scaling.
    pub fn new(clip_norm: Option<f32>) -> Self {
        GradScale {
            clip_norm,
            unit: None,
            loss: None,
        }
    }

    /// Scales the loss by `setting` from the next step on (a fresh state).
    pub fn set_loss_scale(&mut self, setting: LossScale) {
        self.loss = LossScaler::new(setting, self.clip_norm);
    }

    /// The loss scaling state, if the loss is scaled.
    pub fn loss_scaler(&mut self) -> Option<&mut LossScaler<D>> {
        self.loss.as_mut()
    }

    /// The loss scaling state, if the loss is scaled, to read.
    pub fn loss_scaler_ref(&self) -> Option<&LossScaler<D>> {
        self.loss.as_ref()
    }

    /// The `[1]` factor for this step's gradients.
    pub fn factor(&mut self, dev: &D, params: &[&mut Param<D>]) -> Result<D::Tensor> {
        if self.clip_norm.is_none() && self.loss.is_none() {
            return match &self.unit {
                Some(u) => Ok(u.clone()),
                None => Ok(self.unit.insert(dev.full([1], 1.0)?).clone()),
            };
        }
        if params.is_empty() {
            return dev.full([1], 1.0);
        }
        let grads = params
            .iter()
            .map(|p| grad_of(p))
            .collect::<Result<Vec<_>>>()?;
        let sum_squares = dev.sum_squares_many(&grads)?;
        match (&mut self.loss, self.clip_norm) {
            (Some(loss), _) => loss.factor(dev, &sum_squares),
            (None, Some(max_norm)) => dev.clip_factor(&sum_squares, max_norm),
            (None, None) => unreachable!("returned above"),
        }
    }
}
