//! Plain stochastic gradient descent: `p -= lr·(s·g + wd·p)`.

use super::{decays, values_and_grads, Common, Optimizer};
use crate::device::Device;
use crate::error::Result;
use crate::nn::Param;

/// SGD with optional L2 weight decay; no state but the step count.
pub struct Sgd<D: Device> {
    weight_decay: f32,
    common: Common<D>,
}

impl<D: Device> Sgd<D> {
    /// SGD at `lr`, decaying weights (not biases) by `weight_decay`,
    /// clipping gradients to `clip_norm` when given.
    pub fn new(lr: f32, weight_decay: f32, clip_norm: Option<f32>) -> Self {
        Sgd {
            weight_decay,
            common: Common::new(lr, clip_norm, &[]),
        }
    }
}

impl<D: Device> Optimizer<D> for Sgd<D> {
    fn name(&self) -> &'static str {
        "sgd"
    }

    fn update(
        &mut self,
        dev: &D,
        params: &mut [&mut Param<D>],
        s: &D::Tensor,
        _: u64,
    ) -> Result<()> {
        let decay = decays(params, self.weight_decay);
        let (mut values, grads) = values_and_grads(params)?;
        dev.sgd_update_many(&mut values, &grads, s, self.common.lr, &decay)
    }

    fn common(&self) -> &Common<D> {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common<D> {
        &mut self.common
    }
}
