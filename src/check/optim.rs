//! Optimizer updates (in place, with the gradient scale read from the
//! device), the clipping factor and the loss-scaling step.

use super::{random, Case, ChaCha8Rng, Check, Tolerance};
use crate::device::{AdamStep, Device, LossScaleStep};
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

/// Weight decay of tensor `i` of a many-tensor case: some tensors (biases)
/// have none, the others each their own.
fn decay_of(i: usize) -> f32 {
    if i % 3 == 1 {
        0.0
    } else {
        0.01 * (i + 1) as f32
    }
}

/// One SGD step over tensors of these sizes at once (the GPU: as many per
/// dispatch as the adapter binds, a lone last one by the single-tensor kernel).
#[derive(Clone, Debug)]
pub struct SgdMany(Vec<usize>);

impl Check for SgdMany {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let mut ps = self
            .0
            .iter()
            .map(|&n| random(dev, rng, [n], 1.0))
            .collect::<Result<Vec<_>>>()?;
        let gs = self
            .0
            .iter()
            .map(|&n| random(dev, rng, [n], 1.0))
            .collect::<Result<Vec<_>>>()?;
        let wd: Vec<f32> = (0..ps.len()).map(decay_of).collect();
        let s = dev.full([1], 0.5)?;
        let mut refs: Vec<&mut D::Tensor> = ps.iter_mut().collect();
        dev.sgd_update_many(&mut refs, &gs.iter().collect::<Vec<_>>(), &s, 0.1, &wd)?;
        Ok(ps)
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::ROUNDING
    }
}

/// One momentum step over tensors of these sizes at once: parameters, then
/// velocities.
#[derive(Clone, Debug)]
pub struct MomentumMany(Vec<usize>);

impl Check for MomentumMany {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let mut tensors = |scale| {
            self.0
                .iter()
                .map(|&n| random(dev, rng, [n], scale))
                .collect::<Result<Vec<_>>>()
        };
        let (mut ps, mut vs, gs) = (tensors(1.0)?, tensors(1.0)?, tensors(1.0)?);
        let wd: Vec<f32> = (0..ps.len()).map(decay_of).collect();
        let s = dev.full([1], 0.5)?;
        let mut p_refs: Vec<&mut D::Tensor> = ps.iter_mut().collect();
        let mut v_refs: Vec<&mut D::Tensor> = vs.iter_mut().collect();
        let g_refs: Vec<&D::Tensor> = gs.iter().collect();
        dev.momentum_update_many(&mut p_refs, &mut v_refs, &g_refs, &s, 0.1, 0.9, &wd)?;
        ps.extend(vs);
        Ok(ps)
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::ROUNDING
    }
}

/// Three Adam steps over tensors of these sizes at once, each tensor with
/// its own L2 and decoupled decay: parameters, then both moments.
#[derive(Clone, Debug)]
pub struct AdamMany(Vec<usize>);

impl Check for AdamMany {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let zeros = |dev: &D| {
            self.0
                .iter()
                .map(|&n| dev.zeros([n]))
                .collect::<Result<Vec<_>>>()
        };
        let mut ps = self
            .0
            .iter()
            .map(|&n| random(dev, rng, [n], 1.0))
            .collect::<Result<Vec<_>>>()?;
        let (mut ms, mut vs) = (zeros(dev)?, zeros(dev)?);
        let s = dev.full([1], 0.5)?;
        for step in 1..=3 {
            let gs = self
                .0
                .iter()
                .map(|&n| random(dev, rng, [n], 1.0))
                .collect::<Result<Vec<_>>>()?;
            let hp: Vec<AdamStep> = (0..ps.len())
                .map(|i| AdamStep {
                    lr: 0.01,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: decay_of(i),
                    // Nonzero and different for every tensor.
                    decoupled_decay: 0.005 * (i + 2) as f32,
                    step,
                })
                .collect();
            let mut p_refs: Vec<&mut D::Tensor> = ps.iter_mut().collect();
            let mut m_refs: Vec<&mut D::Tensor> = ms.iter_mut().collect();
            let mut v_refs: Vec<&mut D::Tensor> = vs.iter_mut().collect();
            let g_refs: Vec<&D::Tensor> = gs.iter().collect();
            dev.adam_update_many(&mut p_refs, &mut m_refs, &mut v_refs, &g_refs, &s, &hp)?;
        }
        ps.extend(ms);
        ps.extend(vs);
        Ok(ps)
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        // As for one tensor: sqrt and division of small second moments.
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

/// Every update at a gradient scale of 0, which skips it: one tensor at a
/// time and `sizes` at once (grouped or not), with nonzero decay and state
/// that a step would move. Returns parameters and state, untouched.
#[derive(Clone, Debug)]
pub struct SkippedUpdates(Vec<usize>);

impl Check for SkippedUpdates {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let mut tensors = || {
            self.0
                .iter()
                .map(|&n| random(dev, rng, [n], 1.0))
                .collect::<Result<Vec<_>>>()
        };
        let k = self.0.len();
        // Parameters, gradients, velocities or first moments, second moments.
        let (mut ps, gs, mut ms, mut vs) = (tensors()?, tensors()?, tensors()?, tensors()?);
        let zero = dev.zeros([1])?;
        let hp: Vec<AdamStep> = (0..k)
            .map(|_| AdamStep {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
                decoupled_decay: 0.02,
                step: 2,
            })
            .collect();
        let wd = vec![0.01; k];
        dev.sgd_update(&mut ps[0], &gs[0], &zero, 0.1, 0.01)?;
        dev.momentum_update(&mut ps[0], &mut ms[0], &gs[0], &zero, 0.1, 0.9, 0.01)?;
        dev.adam_update(&mut ps[0], &mut ms[0], &mut vs[0], &gs[0], &zero, &hp[0])?;
        let g_refs: Vec<&D::Tensor> = gs.iter().collect();
        {
            let mut p_refs: Vec<&mut D::Tensor> = ps.iter_mut().collect();
            dev.sgd_update_many(&mut p_refs, &g_refs, &zero, 0.1, &wd)?;
        }
        {
            let mut p_refs: Vec<&mut D::Tensor> = ps.iter_mut().collect();
            let mut m_refs: Vec<&mut D::Tensor> = ms.iter_mut().collect();
            dev.momentum_update_many(&mut p_refs, &mut m_refs, &g_refs, &zero, 0.1, 0.9, &wd)?;
        }
        let mut p_refs: Vec<&mut D::Tensor> = ps.iter_mut().collect();
        let mut m_refs: Vec<&mut D::Tensor> = ms.iter_mut().collect();
        let mut v_refs: Vec<&mut D::Tensor> = vs.iter_mut().collect();
        dev.adam_update_many(&mut p_refs, &mut m_refs, &mut v_refs, &g_refs, &zero, &hp)?;
        ps.extend(ms);
        ps.extend(vs);
        Ok(ps)
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        // Both devices return their inputs, which are the same values.
        Tolerance::EXACT
    }
}

/// One loss-scaling step from summed squares `ss` at scale `scale` after
/// `good` good steps: the factor, the next scale and good-step count.
#[derive(Clone, Debug)]
pub struct LossScaleStepOf {
    ss: f32,
    scale: f32,
    good: f32,
    step: LossScaleStep,
}

impl Check for LossScaleStepOf {
    fn run<D: Device>(&self, dev: &D, _: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let ss = dev.full([1], self.ss)?;
        let mut scale = dev.full([1], self.scale)?;
        let mut good = dev.full([1], self.good)?;
        let factor = dev.loss_scale_step(&ss, &mut scale, &mut good, &self.step)?;
        Ok(vec![factor, scale, good])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        // A square root and two divisions.
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
    // Five tensors (one of 5,000 values: over the 4 · 256 vec4s a
    // workgroup of the many-tensor kernel takes, so its invocations take
    // all four of theirs), eight (on an adapter of 32 storage bindings per
    // stage Adam's dispatch takes seven: a lone eighth takes the
    // single-tensor kernel), and 17 (SGD's takes 15 there: then a dispatch
    // of two).
    let seventeen = (0..17).map(|i| 1 + (i * 29) % 70).collect::<Vec<_>>();
    for sizes in [
        vec![1, 5, 5000, 3, 64],
        vec![7, 2, 130, 9, 33, 1, 40, 6],
        seventeen,
    ] {
        let shape = if sizes.len() > 8 {
            format!(
                "{} tensors, {} values",
                sizes.len(),
                sizes.iter().sum::<usize>()
            )
        } else {
            format!("{sizes:?}")
        };
        v.push(Case::new(
            "sgd update (many)",
            &shape,
            SgdMany(sizes.clone()),
        ));
        v.push(Case::new(
            "momentum update (many)",
            &shape,
            MomentumMany(sizes.clone()),
        ));
        v.push(Case::new("adam update ×3 (many)", shape, AdamMany(sizes)));
    }
    for ss in [4.0, 100.0] {
        v.push(Case::new(
            "clip factor",
            format!("‖g‖²={ss}"),
            ClipFactor(ss),
        ));
    }
    for sizes in [vec![1000], vec![7, 2, 5000, 9, 33, 1, 40, 6]] {
        v.push(Case::new(
            "updates skipped at scale 0",
            format!("{sizes:?}"),
            SkippedUpdates(sizes),
        ));
    }
    let dynamic = |max_norm| LossScaleStep {
        max_norm,
        growth_interval: 4,
    };
    let fixed = LossScaleStep {
        max_norm: None,
        growth_interval: 0,
    };
    for (what, ss, scale, good, step) in [
        ("finite", 3.0e6, 1024.0, 1.0, dynamic(None)),
        ("finite, grows", 3.0e6, 1024.0, 3.0, dynamic(None)),
        ("finite, clipped", 3.0e8, 1024.0, 0.0, dynamic(Some(2.0))),
        ("overflow", f32::INFINITY, 1024.0, 2.0, dynamic(None)),
        ("NaN", f32::NAN, 1024.0, 2.0, dynamic(Some(2.0))),
        ("fixed, finite", 3.0e6, 1024.0, 0.0, fixed),
        ("fixed, overflow", f32::INFINITY, 1024.0, 0.0, fixed),
    ] {
        v.push(Case::new(
            "loss scale step",
            what,
            LossScaleStepOf {
                ss,
                scale,
                good,
                step,
            },
        ));
    }
    v
}
