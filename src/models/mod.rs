//! The five model families, each a stack of [`crate::nn`] layers and a
//! [`Loss`], built from a serialisable [`ModelConfig`] (saved with every
//! checkpoint) and a seed.
//!
//! | kind | layers | loss |
//! |---|---|---|
//! | linear | dense | MSE |
//! | logistic | dense | BCE (2 classes) or softmax CE |
//! | mlp | (dense + tanh)* + dense | softmax CE (MSE for regression) |
//! | cnn | (conv3×3 + tanh + maxpool2)* + dense | softmax CE |
//! | rnn | one-hot + Elman RNN + dense at every step | softmax CE per step |

mod sample;

pub use sample::sample_text;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::device::{Activation, Device, Tensor};
use crate::error::{Error, Result};
use crate::loss::Loss;
use crate::nn::{Act, Conv2d, Dense, Flatten, Layer, MaxPool2d, OneHot, Param, Rnn};
use crate::profile::{self, Phase};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Linear,
    Logistic,
    Mlp,
    Cnn,
    Rnn,
}

impl ModelKind {
    pub const ALL: [ModelKind; 5] = [
        ModelKind::Linear,
        ModelKind::Logistic,
        ModelKind::Mlp,
        ModelKind::Cnn,
        ModelKind::Rnn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Linear => "linear",
            ModelKind::Logistic => "logistic",
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn => "cnn",
            ModelKind::Rnn => "rnn",
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ModelKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown model '{s}' (expected one of: linear, logistic, mlp, cnn, rnn)"
                ))
            })
    }
}

/// What the model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Real-valued targets.
    Regression,
    /// One class per sample.
    Classification,
    /// The next token at every position of a sequence.
    Text,
}

/// Everything needed to rebuild a model's architecture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub kind: ModelKind,
    pub task: Task,
    /// One sample: `[features]`, `[channels, height, width]`, or `[seq_len]`.
    pub input_shape: Vec<usize>,
    /// Classes, regression targets per sample, or vocabulary size.
    pub outputs: usize,
    /// MLP hidden layer sizes; RNN: `[hidden]`.
    pub hidden: Vec<usize>,
    /// CNN channels per conv stage.
    pub channels: Vec<usize>,
}

impl ModelConfig {
    /// The loss this configuration trains with.
    pub fn loss(&self) -> Loss {
        match self.task {
            Task::Regression => Loss::Mse,
            Task::Classification if self.outputs == 2 && self.kind == ModelKind::Logistic => {
                Loss::BinaryCrossEntropy
            }
            Task::Classification | Task::Text => Loss::SoftmaxCrossEntropy,
        }
    }

    /// Logits per sample (per step for text).
    pub fn logit_width(&self) -> usize {
        match self.loss() {
            Loss::BinaryCrossEntropy => 1,
            _ => self.outputs,
        }
    }

    fn features(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Checks that the architecture fits the data it is configured for.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(Error::Config(m));
        if self.outputs == 0 || self.features() == 0 {
            return fail(format!(
                "{}: input {:?} and {} outputs must be non-empty",
                self.kind.name(),
                self.input_shape,
                self.outputs
            ));
        }
        match (self.kind, self.task) {
            (ModelKind::Rnn, Task::Text) => {}
            (ModelKind::Rnn, _) | (_, Task::Text) => {
                return fail("the rnn model trains on text, and text needs the rnn model".into())
            }
            (ModelKind::Linear, Task::Classification) => {
                return fail(
                    "linear regression needs real-valued targets; use logistic for classes".into(),
                )
            }
            (ModelKind::Logistic, Task::Regression) => {
                return fail(
                    "logistic regression needs class labels; use linear for real values".into(),
                )
            }
            (ModelKind::Cnn, Task::Regression) => {
                return fail("the cnn model classifies images; its data needs class labels".into())
            }
            _ => {}
        }
        if self.task == Task::Classification && self.outputs < 2 {
            return fail(format!(
                "classification needs at least 2 classes, got {}",
                self.outputs
            ));
        }
        if self.hidden.contains(&0) || self.channels.contains(&0) {
            return fail("layer sizes must be positive".into());
        }
        match self.kind {
            ModelKind::Cnn => {
                let [_, h, w] = self.input_shape[..] else {
                    return fail(format!(
                        "cnn needs image input [channels, height, width], got {:?}",
                        self.input_shape
                    ));
                };
                let shrink = 1usize << self.channels.len();
                if self.channels.is_empty() || h < shrink || w < shrink {
                    return fail(format!(
                        "cnn with {} conv stages needs images of at least {shrink}×{shrink}, got {h}×{w}",
                        self.channels.len()
                    ));
                }
            }
            ModelKind::Rnn if self.hidden.len() != 1 => {
                return fail(format!("rnn takes one hidden size, got {:?}", self.hidden))
            }
            _ => {}
        }
        Ok(())
    }
}

/// A model on a device: its configuration and its layers.
pub struct Model<D: Device> {
    pub config: ModelConfig,
    layers: Vec<Box<dyn Layer<D>>>,
}

impl<D: Device + 'static> Model<D> {
    /// Builds the architecture with weights drawn from `seed`: the same seed
    /// gives the same weights on every device.
    pub fn new(dev: &D, config: ModelConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let rng = &mut ChaCha8Rng::seed_from_u64(seed);
        let c = &config;
        let out = c.logit_width();
        let mut layers: Vec<Box<dyn Layer<D>>> = Vec::new();
        match c.kind {
            ModelKind::Linear | ModelKind::Logistic => {
                layers.push(Box::new(Dense::new(
                    dev,
                    "dense.0",
                    c.features(),
                    out,
                    Activation::Identity,
                    rng,
                )?));
            }
            ModelKind::Mlp => {
                let mut width = c.features();
                for (i, &h) in c.hidden.iter().enumerate() {
                    layers.push(Box::new(Dense::new(
                        dev,
                        &format!("dense.{i}"),
                        width,
                        h,
                        Activation::Tanh,
                        rng,
                    )?));
                    width = h;
                }
                let name = format!("dense.{}", c.hidden.len());
                layers.push(Box::new(Dense::new(
                    dev,
                    &name,
                    width,
                    out,
                    Activation::Identity,
                    rng,
                )?));
            }
            ModelKind::Cnn => {
                let (mut ch, mut h, mut w) = (c.input_shape[0], c.input_shape[1], c.input_shape[2]);
                for (i, &co) in c.channels.iter().enumerate() {
                    layers.push(Box::new(Conv2d::new(
                        dev,
                        &format!("conv.{i}"),
                        (ch, co),
                        3,
                        1,
                        rng,
                    )?));
                    layers.push(Box::new(Act::new(Activation::Tanh)));
                    layers.push(Box::new(MaxPool2d::new(2)));
                    (ch, h, w) = (co, h / 2, w / 2);
                }
                layers.push(Box::new(Flatten::new()));
                layers.push(Box::new(Dense::new(
                    dev,
                    "dense.0",
                    ch * h * w,
                    out,
                    Activation::Identity,
                    rng,
                )?));
            }
            ModelKind::Rnn => {
                let vocab = c.outputs;
                layers.push(Box::new(OneHot::new(vocab)));
                layers.push(Box::new(Rnn::new(dev, vocab, c.hidden[0], rng)?));
                layers.push(Box::new(Dense::new(
                    dev,
                    "dense.0",
                    c.hidden[0],
                    vocab,
                    Activation::Identity,
                    rng,
                )?));
            }
        }
        Ok(Model { config, layers })
    }
}

impl<D: Device> Model<D> {
    pub fn loss(&self) -> Loss {
        self.config.loss()
    }

    /// Logits for a batch: `[B, logit_width]`, or `[T·B, vocab]` (time-major)
    /// for text, whose input is `[B, T]` token ids.
    pub fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor> {
        let mut h = if self.config.task == Task::Text {
            dev.transpose(x)?
        } else {
            x.clone()
        };
        for layer in &mut self.layers {
            h = layer.forward(dev, &h, train)?;
        }
        Ok(h)
    }

    /// Targets in the layout of [`Model::forward`]'s logits.
    pub fn arrange_targets(&self, dev: &D, y: &D::Tensor) -> Result<D::Tensor> {
        if self.config.task == Task::Text {
            let t = dev.transpose(y)?;
            dev.reshape(&t, [t.shape().numel()])
        } else {
            Ok(y.clone())
        }
    }

    /// Forward, loss and backward for one batch; gradients land in the
    /// parameters. Returns the mean loss as a `[1]` tensor on the device.
    pub fn loss_and_grads(&mut self, dev: &D, x: &D::Tensor, y: &D::Tensor) -> Result<D::Tensor> {
        profile::phase(Phase::Forward);
        let logits = self.forward(dev, x, true)?;
        profile::phase(Phase::Loss);
        let targets = self.arrange_targets(dev, y)?;
        let lg = self.loss().apply(dev, &logits, &targets)?;
        profile::phase(Phase::Backward);
        let mut grad = lg.grad;
        let n = self.layers.len();
        for (i, layer) in self.layers.iter_mut().enumerate().rev() {
            match layer.backward(dev, &grad, i > 0)? {
                Some(g) => grad = g,
                None if i == 0 => {}
                None => unreachable!("layer {i} of {n} returned no input gradient"),
            }
        }
        profile::phase(Phase::Other);
        Ok(lg.loss)
    }

    pub fn params(&self) -> Vec<&Param<D>> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    pub fn params_mut(&mut self) -> Vec<&mut Param<D>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }

    /// Trainable scalars.
    pub fn param_count(&self) -> usize {
        self.params().iter().map(|p| p.numel()).sum()
    }

    /// The recurrent layer of an rnn model.
    pub fn rnn_mut(&mut self) -> Option<&mut Rnn<D>> {
        self.layers.iter_mut().find_map(|l| l.as_rnn())
    }

    /// Replaces every parameter's value (checkpoint loading), by name.
    pub fn set_params(&mut self, mut values: Vec<(String, D::Tensor)>) -> Result<()> {
        for p in self.params_mut() {
            let i = values
                .iter()
                .position(|(n, _)| *n == p.name)
                .ok_or_else(|| Error::Config(format!("checkpoint has no tensor '{}'", p.name)))?;
            let (name, v) = values.swap_remove(i);
            if v.shape() != p.value.shape() {
                return Err(Error::Config(format!(
                    "checkpoint tensor '{name}' has shape {}, the model expects {}",
                    v.shape(),
                    p.value.shape()
                )));
            }
            p.value = v;
        }
        Ok(())
    }
}
