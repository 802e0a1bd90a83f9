//! Optimizers: SGD, SGD with momentum, Adam; L2 weight decay on weights;
//! optional gradient clipping by global norm. Every update runs as device
//! kernels; the clipping factor is computed on the device too, so a step
//! never reads anything back.

use serde::{Deserialize, Serialize};

use crate::device::{AdamStep, Device, Reduce};
use crate::error::{Error, Result};
use crate::nn::Param;
use crate::profile::{self, Phase};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Sgd,
    Momentum,
    Adam,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    pub kind: OptimizerKind,
    pub lr: f32,
    /// L2 penalty coefficient: the gradient of `wd/2·‖w‖²` is added to every
    /// weight's gradient (biases are exempt).
    pub weight_decay: f32,
    /// μ for momentum; β1 for Adam.
    pub momentum: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Rescale all gradients together when their global norm exceeds this.
    pub clip_norm: Option<f32>,
}

impl OptimConfig {
    pub fn new(kind: OptimizerKind, lr: f32) -> Self {
        OptimConfig {
            kind,
            lr,
            weight_decay: 0.0,
            momentum: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip_norm: None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: f32| {
            Err(Error::Config(format!(
                "{what} must be a finite number ≥ 0, got {v}"
            )))
        };
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::Config(format!(
                "learning rate must be a positive finite number, got {}",
                self.lr
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight decay", self.weight_decay);
        }
        if !(0.0..1.0).contains(&self.momentum) || !(0.0..1.0).contains(&self.beta2) {
            return Err(Error::Config("momentum and β2 must lie in [0, 1)".into()));
        }
        if let Some(c) = self.clip_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::Config(format!(
                    "clip norm must be positive, got {c}"
                )));
            }
        }
        Ok(())
    }
}

/// Optimizer state for one set of parameters, in the order `step` gets them.
pub struct Optimizer<D: Device> {
    pub config: OptimConfig,
    /// Updates taken so far (Adam's bias correction uses it).
    pub steps: u32,
    /// Per parameter: momentum/velocity, then (Adam) the second moment.
    state: Vec<Vec<D::Tensor>>,
    unit: Option<D::Tensor>,
}

impl<D: Device> Optimizer<D> {
    pub fn new(config: OptimConfig) -> Self {
        Optimizer {
            config,
            steps: 0,
            state: Vec::new(),
            unit: None,
        }
    }

    fn slots(&self) -> usize {
        match self.config.kind {
            OptimizerKind::Sgd => 0,
            OptimizerKind::Momentum => 1,
            OptimizerKind::Adam => 2,
        }
    }

    /// One update of every parameter from its stored gradient.
    pub fn step(&mut self, dev: &D, params: Vec<&mut Param<D>>) -> Result<()> {
        let left = profile::phase(Phase::Optimizer);
        let result = self.update(dev, params);
        profile::phase(left);
        result
    }

    fn update(&mut self, dev: &D, mut params: Vec<&mut Param<D>>) -> Result<()> {
        let cfg = self.config;
        if self.state.is_empty() {
            for p in &params {
                let shape = crate::device::Tensor::shape(&p.value).clone();
                self.state.push(
                    (0..self.slots())
                        .map(|_| dev.zeros(shape.clone()))
                        .collect::<Result<_>>()?,
                );
            }
        }
        if self.state.len() != params.len() {
            return Err(Error::Config(format!(
                "optimizer holds state for {} parameters, got {}",
                self.state.len(),
                params.len()
            )));
        }
        self.steps += 1;
        let scale = match cfg.clip_norm {
            Some(max_norm) => {
                let mut total: Option<D::Tensor> = None;
                for p in &params {
                    let ss = dev.reduce(grad_of(p)?, Reduce::SumSquares)?;
                    total = Some(match total {
                        Some(t) => dev.add(&t, &ss)?,
                        None => ss,
                    });
                }
                match total {
                    Some(t) => dev.clip_factor(&t, max_norm)?,
                    None => return Ok(()),
                }
            }
            None => match &self.unit {
                Some(u) => u.clone(),
                None => self.unit.insert(dev.full([1], 1.0)?).clone(),
            },
        };
        for (p, state) in params.iter_mut().zip(self.state.iter_mut()) {
            let wd = if p.decay { cfg.weight_decay } else { 0.0 };
            let grad = grad_of(p)?.clone();
            match (cfg.kind, &mut state[..]) {
                (OptimizerKind::Sgd, _) => {
                    dev.sgd_update(&mut p.value, &grad, &scale, cfg.lr, wd)?
                }
                (OptimizerKind::Momentum, [v]) => {
                    dev.momentum_update(&mut p.value, v, &grad, &scale, cfg.lr, cfg.momentum, wd)?
                }
                (OptimizerKind::Adam, [m, v]) => {
                    let hp = AdamStep {
                        lr: cfg.lr,
                        beta1: cfg.momentum,
                        beta2: cfg.beta2,
                        eps: cfg.eps,
                        weight_decay: wd,
                        step: self.steps,
                    };
                    dev.adam_update(&mut p.value, m, v, &grad, &scale, &hp)?
                }
                _ => unreachable!("state slots match the optimizer kind"),
            }
        }
        Ok(())
    }

    /// The state tensors, flattened per parameter (for checkpoints).
    pub fn state(&self) -> &[Vec<D::Tensor>] {
        &self.state
    }

    /// Restores state saved by [`Optimizer::state`].
    pub fn set_state(&mut self, steps: u32, state: Vec<Vec<D::Tensor>>) -> Result<()> {
        if state.iter().any(|s| s.len() != self.slots()) {
            return Err(Error::Config(
                "optimizer state does not match the optimizer kind".into(),
            ));
        }
        self.steps = steps;
        self.state = state;
        Ok(())
    }
}

fn grad_of<D: Device>(p: &Param<D>) -> Result<&D::Tensor> {
    p.grad
        .as_ref()
        .ok_or_else(|| Error::Config(format!("{} has no gradient: call backward first", p.name)))
}
