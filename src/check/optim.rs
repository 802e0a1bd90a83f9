//! Optimizer updates (in place, with the gradient scale read from the
//! device) and the clipping factor.

use super::{random, Case, ChaCha8Rng, Check, Tolerance};
use crate::device::{AdamStep, Device};
use crate::error::Result;

/// One SGD step with L2 decay.
#[derive(Clone, Debug)]
pub struct Sgd(usize);

impl Check for Sgd {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let mut p = random(dev, rng, [self.0], 1.0)?;
        let g = random(dev, rng, [self.0], 1.0)?;
        let s = dev.full([1], 0.5)?;
        dev.sgd_update(&mut p, &g, &s, 0.1, 0.01)?;
        Ok(vec![p])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::ROUNDING
    }
}

/// One momentum step: parameters and velocity.
#[derive(Clone, Debug)]
pub struct Momentum(usize);

impl Check for Momentum {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let mut p = random(dev, rng, [self.0], 1.0)?;
        let mut v = random(dev, rng, [self.0], 1.0)?;
        let g = random(dev, rng, [self.0], 1.0)?;
        let s = dev.full([1], 0.5)?;
        dev.momentum_update(&mut p, &mut v, &g, &s, 0.1, 0.9, 0.01)?;
        Ok(vec![p, v])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::ROUNDING
    }
}

/// Three Adam steps with both kinds of decay: parameters and both moments
/// (three, so the bias corrections and the second moment are exercised).
#[derive(Clone, Debug)]
pub struct Adam(usize);

impl Check for Adam {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let n = self.0;
        let mut p = random(dev, rng, [n], 1.0)?;
        let mut m = dev.zeros([n])?;
        let mut v = dev.zeros([n])?;
        let s = dev.full([1], 0.5)?;
        for step in 1..=3 {
            let g = random(dev, rng, [n], 1.0)?;
            let hp = AdamStep {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
                decoupled_decay: 0.02,
                step,
            };
            dev.adam_update(&mut p, &mut m, &mut v, &g, &s, &hp)?;
        }
        Ok(vec![p, m, v])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        // sqrt and division of small second moments.
        Tolerance::TRANSCENDENTAL
    }
}

/// The factor that scales gradients of squared norm `ss` to norm 5.
#[derive(Clone, Debug)]
pub struct ClipFactor(f32);

impl Check for ClipFactor {
    fn run<D: Device>(&self, dev: &D, _: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let s = dev.full([1], self.0)?;
        Ok(vec![dev.clip_factor(&s, 5.0)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::TRANSCENDENTAL
    }
}

pub(super) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for n in [1, 1000] {
        let shape = format!("[{n}]");
        v.push(Case::new("sgd update", &shape, Sgd(n)));
        v.push(Case::new("momentum update", &shape, Momentum(n)));
        v.push(Case::new("adam update ×3", shape, Adam(n)));
    }
    for ss in [4.0, 100.0] {
        v.push(Case::new(
            "clip factor",
            format!("‖g‖²={ss}"),
            ClipFactor(ss),
        ));
    }
    v
}
