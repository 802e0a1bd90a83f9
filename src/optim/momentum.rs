//! SGD with heavy-ball momentum: `v = μ·v + s·g + wd·p; p -= lr·v`.

use super::{decays, values_and_grads, Common, Optimizer};
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
        let decay = decays(params, self.weight_decay);
        let slots = self.common.slots.get(dev, params)?;
        let mut velocities: Vec<_> = slots.iter_mut().map(|s| &mut s[0]).collect();
        let (mut values, grads) = values_and_grads(params)?;
        dev.momentum_update_many(
            &mut values,
            &mut velocities,
            &grads,
            s,
            lr,
            self.momentum,
            &decay,
        )
    }

    fn common(&self) -> &Common<D> {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common<D> {
        &mut self.common
    }
}
