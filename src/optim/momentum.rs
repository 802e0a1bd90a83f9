//! SGD with heavy-ball momentum: `v = μ·v + s·g + wd·p; p -= lr·v`.

use super::{grad_of, GradScale, Optimizer, Slots};
use crate::device::Device;
use crate::error::Result;
use crate::nn::Param;
use crate::tensor::HostTensor;

/// Momentum SGD; its state is one velocity per parameter.
pub struct Momentum<D: Device> {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    scale: GradScale<D>,
    velocity: Slots<D>,
    steps: u64,
}

impl<D: Device> Momentum<D> {
    /// Momentum SGD at `lr` with coefficient `momentum` (μ).
    pub fn new(lr: f32, momentum: f32, weight_decay: f32, scale: GradScale<D>) -> Self {
        Momentum {
            lr,
            momentum,
            weight_decay,
            scale,
            velocity: Slots::new(&["velocity"]),
            steps: 0,
        }
    }
}

impl<D: Device> Optimizer<D> for Momentum<D> {
    fn name(&self) -> &'static str {
        "momentum"
    }

    fn step(&mut self, dev: &D, params: &mut [&mut Param<D>]) -> Result<()> {
        let s = self.scale.factor(dev, params)?;
        let slots = self.velocity.get(dev, params)?;
        for (p, slot) in params.iter_mut().zip(slots.iter_mut()) {
            let wd = if p.decay { self.weight_decay } else { 0.0 };
            let g = grad_of(p)?.clone();
            dev.momentum_update(
                &mut p.value,
                &mut slot[0],
                &g,
                &s,
                self.lr,
                self.momentum,
                wd,
            )?;
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

    fn state(&self, dev: &D, params: &[&Param<D>]) -> Result<Vec<HostTensor>> {
        self.velocity.save(dev, params)
    }

    fn load_state(
        &mut self,
        dev: &D,
        params: &[&Param<D>],
        steps: u64,
        saved: &[HostTensor],
    ) -> Result<()> {
        self.velocity.load(dev, params, saved)?;
        self.steps = steps;
        Ok(())
    }
}
