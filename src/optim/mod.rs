//! Optimizers, each a struct that owns and names its own state, in the
//! style of candle-nn's `Optimizer` trait: [`Sgd`], [`Momentum`], [`Adam`]
//! (and AdamW, Adam with decoupled weight decay). Every update runs as
//! device kernels; gradient clipping computes its factor on the device too,
//! so a step never reads anything back.
//!
//! Adding an optimizer is a file here: a struct implementing [`Optimizer`],
//! and a variant of [`OptimizerKind`] that [`OptimConfig::build`] maps to it.

mod adam;
mod loss_scale;
mod momentum;
mod schedule;
mod sgd;
mod state;

pub use adam::Adam;
pub use loss_scale::{LossScale, LossScaler, DYNAMIC_GROWTH_INTERVAL, DYNAMIC_INITIAL_SCALE};
pub use momentum::Momentum;
pub use schedule::Schedule;
pub use sgd::Sgd;
pub use state::{GradScale, Slots};

use serde::{Deserialize, Serialize};

use crate::device::{Device, Precision};
use crate::error::{Error, Result};
use crate::nn::Param;
use crate::tensor::HostTensor;

/// An optimizer: updates parameters from their gradients and keeps whatever
/// state it needs between steps. An implementation provides [`name`],
/// [`update`] and access to its [`Common`] part (rate, step count, gradient
/// scale, named state); the rest is provided.
///
/// [`name`]: Optimizer::name
/// [`update`]: Optimizer::update
pub trait Optimizer<D: Device> {
    /// Its name (`adam`), for messages.
    fn name(&self) -> &'static str;
    /// Updates every parameter from its gradient times `scale` (a `[1]`
    /// tensor); `step` counts updates from 1, this one included.
    fn update(
        &mut self,
        dev: &D,
        params: &mut [&mut Param<D>],
        scale: &D::Tensor,
        step: u64,
    ) -> Result<()>;
    /// The state every optimizer has.
    fn common(&self) -> &Common<D>;
    /// The state every optimizer has, mutably.
    fn common_mut(&mut self) -> &mut Common<D>;

    /// One update of every parameter from its stored gradient. `params`
    /// must come in the same order at every step. Under loss scaling the
    /// gradients must have been scaled by [`Optimizer::loss_scale`]'s
    /// tensor (as [`Model::train_step`](crate::models::Model::train_step)
    /// does), and a step whose scale nobody asked for is refused; a step
    /// whose scaled gradients overflowed leaves parameters and state as
    /// they are, but counts as a step.
    fn step(&mut self, dev: &D, params: &mut [&mut Param<D>]) -> Result<()> {
        let common = self.common_mut();
        let scale = common.scale.factor(dev, params)?;
        common.steps += 1;
        let step = common.steps;
        self.update(dev, params, &scale, step)
    }
    /// Scales the loss by `setting` from the next step on.
    fn set_loss_scale(&mut self, setting: LossScale) {
        self.common_mut().scale.set_loss_scale(setting);
    }
    /// The `[1]` tensor this step's loss gradient is to be multiplied by,
    /// if the loss is scaled.
    fn loss_scale(&mut self, dev: &D) -> Result<Option<D::Tensor>> {
        match self.common_mut().scale.loss_scaler() {
            Some(s) => Ok(Some(s.scale(dev)?)),
            None => Ok(None),
        }
    }
    /// The learning rate the next step uses.
    fn learning_rate(&self) -> f32 {
        self.common().lr
    }
    /// Sets the learning rate (schedules call this before every step).
    fn set_learning_rate(&mut self, lr: f32) {
        self.common_mut().lr = lr;
    }
    /// Updates taken so far.
    fn steps(&self) -> u64 {
        self.common().steps
    }
    /// The state as named host tensors (`optimizer.<parameter>.<slot>`, and
    /// `optimizer.loss_scale` under loss scaling), for checkpoints. Empty
    /// before the first step.
    fn state(&self, dev: &D, params: &[&Param<D>]) -> Result<Vec<HostTensor>> {
        let common = self.common();
        let mut saved = common.slots.save(dev, params)?;
        if let Some(loss) = common.scale.loss_scaler_ref() {
            saved.extend(loss.save(dev)?);
        }
        Ok(saved)
    }
    /// Restores what [`Optimizer::state`] saved, after `steps` updates.
    /// Every tensor must be present with its parameter's shape.
    fn load_state(
        &mut self,
        dev: &D,
        params: &[&Param<D>],
        steps: u64,
        saved: &[HostTensor],
    ) -> Result<()> {
        let common = self.common_mut();
        common.slots.load(dev, params, saved)?;
        if let Some(loss) = common.scale.loss_scaler() {
            loss.load(dev, saved)?;
        }
        common.steps = steps;
        Ok(())
    }
}

/// What every optimizer keeps: its learning rate, the updates taken, the
/// gradient scale (clipping) and its per-parameter state slots.
pub struct Common<D: Device> {
    /// The learning rate of the next step.
    pub lr: f32,
    /// Updates taken.
    pub steps: u64,
    /// The factor gradients are multiplied by.
    pub scale: GradScale<D>,
    /// The optimizer's per-parameter state.
    pub slots: Slots<D>,
}

impl<D: Device> Common<D> {
    /// A fresh optimizer's common part: no steps, state slots `slots`.
    pub fn new(lr: f32, clip_norm: Option<f32>, slots: &'static [&'static str]) -> Self {
        Common {
            lr,
            steps: 0,
            scale: GradScale::new(clip_norm),
            slots: Slots::new(slots),
        }
    }
}

/// Which optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Plain gradient descent.
    Sgd,
    /// SGD with heavy-ball momentum.
    Momentum,
    /// Adam, with weight decay as an L2 penalty through the moments.
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter, 2019).
    #[serde(rename = "adamw")]
    AdamW,
}

impl OptimizerKind {
    /// The name on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Momentum => "momentum",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
        }
    }
}

/// An optimizer's settings (serialisable: part of every run's config).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// Which optimizer.
    pub kind: OptimizerKind,
    /// Base learning rate (a schedule moves it during a run).
    pub lr: f32,
    /// Weight decay on weights (biases are exempt): an L2 penalty whose
    /// gradient `wd·w` is added to every weight's gradient, or for AdamW
    /// the decoupled shrink `w -= lr·wd·w`.
    pub weight_decay: f32,
    /// μ for momentum; β1 for Adam.
    pub momentum: f32,
    /// Adam's β2.
    pub beta2: f32,
    /// Adam's ε.
    pub eps: f32,
    /// Rescale all gradients together when their global norm exceeds this;
    /// `None` (`"off"` in files, written out so that a file also turns off
    /// a preset's clipping) never clips.
    #[serde(default, with = "clip_norm_or_off")]
    pub clip_norm: Option<f32>,
    /// Loss scaling (see [`LossScale`]); unset means off, except that
    /// [`OptimConfig::for_precision`] makes it dynamic at f16 (as an
    /// [`Experiment`](crate::run::Experiment) does, whose config then
    /// records it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<LossScale>,
}

/// `clip_norm` as a number, or `"off"` for none.
mod clip_norm_or_off {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(c) => s.serialize_f32(*c),
            None => s.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Number(f64),
            Word(String),
        }
        match Form::deserialize(d)? {
            // Checked with the other numbers (`OptimConfig::validate`).
            Form::Number(c) => Ok(Some(c as f32)),
            Form::Word(w) if w == "off" => Ok(None),
            Form::Word(w) => Err(serde::de::Error::custom(format!(
                "clip_norm must be a number or \"off\", got \"{w}\""
            ))),
        }
    }
}

impl OptimConfig {
    /// `kind` at learning rate `lr`, with the usual defaults (μ = β1 = 0.9,
    /// β2 = 0.999, ε = 1e-8, no decay, no clipping).
    pub fn new(kind: OptimizerKind, lr: f32) -> Self {
        OptimConfig {
            kind,
            lr,
            weight_decay: 0.0,
            momentum: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip_norm: None,
            loss_scale: None,
        }
    }

    /// These settings for a device computing at `precision`: loss scaling,
    /// where not set, becomes dynamic under f16 (whose product operands
    /// would round small gradients) and stays off under f32.
    pub fn for_precision(mut self, precision: Precision) -> Self {
        if precision == Precision::F16 && self.loss_scale.is_none() {
            self.loss_scale = Some(LossScale::Dynamic);
        }
        self
    }

    /// Checks every number.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::Config(format!(
                "learning rate must be a positive finite number, got {}",
                self.lr
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::Config(format!(
                "weight decay must be a finite number ≥ 0, got {}",
                self.weight_decay
            )));
        }
        if !(0.0..1.0).contains(&self.momentum) || !(0.0..1.0).contains(&self.beta2) {
            return Err(Error::Config("momentum and β2 must lie in [0, 1)".into()));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::Config(format!(
                "ε must be a positive finite number, got {}",
                self.eps
            )));
        }
        if let Some(c) = self.clip_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::Config(format!(
                    "clip norm must be positive, got {c}"
                )));
            }
        }
        if let Some(s) = self.loss_scale {
            s.validate()?;
        }
        Ok(())
    }

    /// The optimizer these settings describe, with no state yet.
    pub fn build<D: Device + 'static>(&self) -> Result<Box<dyn Optimizer<D>>> {
        self.validate()?;
        let clip = self.clip_norm;
        let mut optimizer: Box<dyn Optimizer<D>> = match self.kind {
            OptimizerKind::Sgd => Box::new(Sgd::new(self.lr, self.weight_decay, clip)),
            OptimizerKind::Momentum => Box::new(Momentum::new(
                self.lr,
                self.momentum,
                self.weight_decay,
                clip,
            )),
            OptimizerKind::Adam | OptimizerKind::AdamW => Box::new(Adam::new(
                self.lr,
                (self.momentum, self.beta2, self.eps),
                self.weight_decay,
                self.kind == OptimizerKind::AdamW,
                clip,
            )),
        };
        optimizer.set_loss_scale(self.loss_scale.unwrap_or_default());
        Ok(optimizer)
    }
}

/// Parameter values to update in place, and their gradients.
type ValuesAndGrads<'a, D> = (
    Vec<&'a mut <D as Device>::Tensor>,
    Vec<&'a <D as Device>::Tensor>,
);

/// Each parameter's value, to update in place, beside its gradient.
pub(crate) fn values_and_grads<'a, D: Device>(
    params: &'a mut [&mut Param<D>],
) -> Result<ValuesAndGrads<'a, D>> {
    let mut values = Vec::with_capacity(params.len());
    let mut grads = Vec::with_capacity(params.len());
    for p in params.iter_mut() {
        let p: &mut Param<D> = p;
        let Some(grad) = p.grad.as_ref() else {
            return Err(no_gradient(p));
        };
        grads.push(grad);
        values.push(&mut p.value);
    }
    Ok((values, grads))
}

/// Each parameter's weight decay: `decay` for weights, 0 for biases.
pub(crate) fn decays<D: Device>(params: &[&mut Param<D>], decay: f32) -> Vec<f32> {
    params
        .iter()
        .map(|p| if p.decay { decay } else { 0.0 })
        .collect()
}

/// The error of a parameter whose backward pass has not run.
fn no_gradient<D: Device>(p: &Param<D>) -> Error {
    Error::Config(format!("{} has no gradient: call backward first", p.name))
}

/// The gradient of a parameter, or an error saying backward has not run.
pub(crate) fn grad_of<D: Device>(p: &Param<D>) -> Result<&D::Tensor> {
    p.grad.as_ref().ok_or_else(|| no_gradient(p))
}
