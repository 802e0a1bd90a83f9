//! Adam (Kingma & Ba) and AdamW (Loshchilov & Hutter): bias-corrected first
//! and second moments; weight decay either as an L2 term through the moments
//! (Adam) or as a decoupled shrink `p -= lr·wd·p` (AdamW).

use super::{grad_of, GradScale, Optimizer, Slots};
use crate::device::{AdamStep, Device};
use crate::error::Result;
use crate::nn::Param;
use crate::tensor::HostTensor;

/// Adam or AdamW; its state is the moments `m` and `v` of every parameter.
pub struct Adam<D: Device> {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    decoupled: bool,
    scale: GradScale<D>,
    moments: Slots<D>,
    steps: u64,
}

impl<D: Device> Adam<D> {
    /// Adam at `lr` with `(β1, β2, ε)`; `decoupled` makes it AdamW.
    pub fn new(
        lr: f32,
        (beta1, beta2, eps): (f32, f32, f32),
        weight_decay: f32,
        decoupled: bool,
        scale: GradScale<D>,
    ) -> Self {
        Adam {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
            scale,
            moments: Slots::new(&["m", "v"]),
            steps: 0,
        }
    }
}

impl<D: Device> Optimizer<D> for Adam<D> {
    fn name(&self) -> &'static str {
        if self.decoupled {
            "adamw"
        } else {
            "adam"
        }
    }

    fn step(&mut self, dev: &D, params: &mut [&mut Param<D>]) -> Result<()> {
        let s = self.scale.factor(dev, params)?;
        self.steps += 1;
        let slots = self.moments.get(dev, params)?;
        for (p, slot) in params.iter_mut().zip(slots.iter_mut()) {
            let wd = if p.decay { self.weight_decay } else { 0.0 };
            let (l2, decoupled) = if self.decoupled { (0.0, wd) } else { (wd, 0.0) };
            let hp = AdamStep {
                lr: self.lr,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: l2,
                decoupled_decay: decoupled,
                // β^t underflows to 0 long before t reaches u32::MAX.
                step: u32::try_from(self.steps).unwrap_or(u32::MAX),
            };
            let g = grad_of(p)?.clone();
            let [m, v] = &mut slot[..] else {
                unreachable!("Adam has two slots")
            };
            dev.adam_update(&mut p.value, m, v, &g, &s, &hp)?;
        }
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
        self.moments.save(dev, params)
    }

    fn load_state(
        &mut self,
        dev: &D,
        params: &[&Param<D>],
        steps: u64,
        saved: &[HostTensor],
    ) -> Result<()> {
        self.moments.load(dev, params, saved)?;
        self.steps = steps;
        Ok(())
    }
}
