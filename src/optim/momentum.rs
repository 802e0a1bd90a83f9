//! SGD with heavy-ball momentum: `v = μ·v + s·g + wd·p; p -= lr·v`.

use super::{grad_of, Common, Optimizer};
use crate::device::Device;
use crate::error::Result;
use crate::nn::Param;

/// Momentum SGD; its state is one `velocity` per parameter.
pub struct Momentum<D: Device> {
    momentum: f32,
    weight_decay: f32,
    common: Common<D>,
}

impl<D: Device> Momentum<D> {
    /// Momentum SGD at `lr` with coefficient `momentum` (μ).
    pub fn new(lr: f32, momentum: f32, weight_decay: f32, clip_norm: Option<f32>) -> Self {
        Momentum {
            momentum,
            weight_decay,
            common: Common::new(lr, clip_norm, &["velocity"]),
        }
    }
}

impl<D: Device> Optimizer<D> for Momentum<D> {
    fn name(&self) -> &'static str {
        "momentum"
    }

    fn update(
        &mut self,
        dev: &D,
        params: &mut [&mut Param<D>],
        s: &D::Tensor,
        _: u64,
    ) -> Result<()> {
        let lr = self.common.lr;
        let slots = self.common.slots.get(dev, params)?;
        for (p, slot) in params.iter_mut().zip(slots.iter_mut()) {
            let wd = if p.decay { self.weight_decay } else { 0.0 };
            let g = grad_of(p)?.clone();
            dev.momentum_update(&mut p.value, &mut slot[0], &g, s, lr, self.momentum, wd)?;
        }
        Ok(())
    }

    fn common(&self) -> &Common<D> {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common<D> {
        &mut self.common
    }
}
