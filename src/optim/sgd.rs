//! Plain stochastic gradient descent: `p -= lr·(s·g + wd·p)`.

use super::{grad_of, GradScale, Optimizer};
use crate::device::Device;
use crate::error::Result;
use crate::nn::Param;
use crate::tensor::HostTensor;

/// SGD with optional L2 weight decay; no state but the step count.
pub struct Sgd<D: Device> {
    lr: f32,
    weight_decay: f32,
    scale: GradScale<D>,
    steps: u64,
}

impl<D: Device> Sgd<D> {
    /// SGD at `lr`, decaying weights (not biases) by `weight_decay`.
    pub fn new(lr: f32, weight_decay: f32, scale: GradScale<D>) -> Self {
        Sgd {
            lr,
            weight_decay,
            scale,
            steps: 0,
        }
    }
}

impl<D: Device> Optimizer<D> for Sgd<D> {
    fn name(&self) -> &'static str {
        "sgd"
    }

    fn step(&mut self, dev: &D, params: &mut [&mut Param<D>]) -> Result<()> {
        let s = self.scale.factor(dev, params)?;
        for p in params.iter_mut() {
            let wd = if p.decay { self.weight_decay } else { 0.0 };
            let g = grad_of(p)?.clone();
            dev.sgd_update(&mut p.value, &g, &s, self.lr, wd)?;
        }
        self.steps += 1;
        Ok(())
    }

    fn learning_rate(&self) -> f32 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn state(&self, _dev: &D, _params: &[&Param<D>]) -> Result<Vec<HostTensor>> {
        Ok(Vec::new())
    }

    fn load_state(
        &mut self,
        _dev: &D,
        _params: &[&Param<D>],
        steps: u64,
        _saved: &[HostTensor],
    ) -> Result<()> {
        self.steps = steps;
        Ok(())
    }
}
