//! Models as data: a [`ModelSpec`] (a checked list of [`LayerSpec`]s, see
//! [`spec`]) built into a stack of [`crate::nn`] layers on any device. The
//! five classic families are [`Preset`]s of that list.
//!
//! Nothing here knows which layers a model has: the trainer, checkpoints and
//! evaluation work for any stack.

pub mod presets;
mod sample;
pub mod spec;

pub use presets::Preset;
pub use sample::sample_text;
pub use spec::{format_layers, parse_layers, Cell, FeatureShape, LayerSpec, ModelSpec, Output};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::device::{Activation, ConvStep, Device, PoolWindow, Tensor};
use crate::error::{Error, Result};
use crate::loss::Loss;
use crate::nn::{
    Act, AvgPool2d, BatchNorm, Buffer, Conv2d, Dense, Dropout, Embedding, Flatten, GlobalAvgPool,
    Gru, LastStep, Layer, LayerNorm, Lstm, MaxPool2d, OneHot, Param, RecurrentInput, Rnn,
};
use crate::optim::Optimizer;
use crate::profile::{self, Phase};
use crate::tensor::Shape;

/// A model on a device: its architecture and its layers.
pub struct Model<D: Device> {
    /// The architecture it was built from.
    pub spec: ModelSpec,
    layers: Vec<Box<dyn Layer<D>>>,
    /// The training step of the next `loss_and_grads`.
    step: u64,
    /// Numeric sequences: the gather order that makes a batch time-major,
    /// for the batch size it was made for (uploaded once, not every step).
    time_order: Option<(usize, D::Tensor)>,
}

/// Builds the layer for `spec.layers[i]`. A dense layer directly followed by
/// an activation takes it into its matmul epilogue (`fused` is then true and
/// the activation layer is skipped), and a `one_hot` layer directly followed
/// by a recurrent one becomes that layer reading the ids (`fused` too); dense and conv layers draw their
/// initial weights for the activation that follows them (He for ReLU,
/// Glorot otherwise). Parameters are named after the position:
/// `layers.{i}.weight`.
fn build_layer<D: Device + 'static>(
    dev: &D,
    spec: &ModelSpec,
    i: usize,
    input: FeatureShape,
    rng: &mut ChaCha8Rng,
) -> Result<(Box<dyn Layer<D>>, bool)> {
    let name = format!("layers.{i}");
    // The activation that follows picks the initialisation; a dense layer
    // fuses it only when its derivative comes from the output (a dense
    // layer keeps only that), so GELU then runs as a layer of its own.
    let follows = match spec.layers.get(i + 1) {
        Some(LayerSpec::Activation(a)) => Some(*a),
        _ => None,
    };
    let next_act = follows.filter(|a| !a.keeps_input());
    let last_dim = *input.dims().last().expect("shapes have a dimension");
    let layer: Box<dyn Layer<D>> = match spec.layers[i] {
        LayerSpec::Dense { units } => {
            let act = next_act.unwrap_or(Activation::Identity);
            let init = follows.unwrap_or(Activation::Identity);
            let dense = Dense::with_init(dev, &name, (last_dim, units), act, init, rng)?;
            return Ok((Box::new(dense), next_act.is_some()));
        }
        LayerSpec::Conv2d {
            channels,
            kernel,
            stride,
            padding,
        } => {
            let init = follows.unwrap_or(Activation::Identity);
            let ci = input.dims()[0];
            Box::new(Conv2d::new(
                dev,
                &name,
                (ci, channels),
                kernel,
                ConvStep {
                    stride,
                    pad: padding,
                },
                init,
                rng,
            )?)
        }
        LayerSpec::MaxPool { size, stride } => {
            Box::new(MaxPool2d::new(PoolWindow::new(size, stride)))
        }
        LayerSpec::AvgPool { size, stride } => {
            Box::new(AvgPool2d::new(PoolWindow::new(size, stride)))
        }
        LayerSpec::Activation(a) => Box::new(Act::new(a)),
        LayerSpec::Flatten => Box::new(Flatten::new()),
        LayerSpec::Last => Box::new(LastStep::new()),
        LayerSpec::GlobalAvgPool => Box::new(GlobalAvgPool::new()),
        LayerSpec::LayerNorm => Box::new(LayerNorm::new(dev, &name, last_dim)?),
        // Channels: the features of [C], the planes of [C, H, W].
        LayerSpec::BatchNorm => Box::new(BatchNorm::new(dev, &name, input.dims()[0])?),
        LayerSpec::OneHot { depth } => {
            let depth =
                depth.ok_or_else(|| Error::Config(format!("layer {i} (one_hot) has no depth")))?;
            // A recurrent layer right after reads the ids themselves (see
            // RecurrentInput::Tokens): it is built here, under its own
            // position's name, and the one-hot layer is skipped.
            if let Some(&LayerSpec::Recurrent { cell, hidden }) = spec.layers.get(i + 1) {
                let name = format!("layers.{}", i + 1);
                let input = RecurrentInput::Tokens { vocab: depth };
                let layer = recurrent(dev, &name, (cell, depth, hidden), input, rng)?;
                return Ok((layer, true));
            }
            Box::new(OneHot::new(depth))
        }
        LayerSpec::Recurrent { cell, hidden } => {
            let input = RecurrentInput::Vectors;
            recurrent(dev, &name, (cell, last_dim, hidden), input, rng)?
        }
        LayerSpec::Embedding { dim, vocab } => {
            let vocab = vocab.ok_or_else(|| {
                Error::Config(format!("layer {i} (embedding) has no vocabulary size"))
            })?;
            Box::new(Embedding::new(dev, &name, vocab, dim, rng)?)
        }
        // Its own seed, drawn here so masks differ between layers.
        LayerSpec::Dropout { rate } => Box::new(Dropout::new(rate, rng.random())),
    };
    Ok((layer, false))
}

/// A recurrent layer of `cell` from `inputs` features (or ids) to `hidden`.
fn recurrent<D: Device + 'static>(
    dev: &D,
    name: &str,
    (cell, inputs, hidden): (Cell, usize, usize),
    input: RecurrentInput,
    rng: &mut ChaCha8Rng,
) -> Result<Box<dyn Layer<D>>> {
    Ok(match cell {
        Cell::Elman => Box::new(Rnn::new(dev, name, inputs, hidden, rng)?.reading(input)),
        Cell::Lstm => Box::new(Lstm::new(dev, name, inputs, hidden, rng)?.reading(input)),
        Cell::Gru => Box::new(Gru::new(dev, name, inputs, hidden, rng)?.reading(input)),
    })
}

impl<D: Device + 'static> Model<D> {
    /// Builds `spec` with weights drawn from `seed`: the same seed gives the
    /// same weights on every device. The spec is checked first.
    pub fn new(dev: &D, spec: &ModelSpec, seed: u64) -> Result<Self> {
        spec.validate()?;
        let shapes = spec.shapes()?;
        let rng = &mut ChaCha8Rng::seed_from_u64(seed);
        let mut layers = Vec::with_capacity(spec.layers.len());
        let mut i = 0;
        while i < spec.layers.len() {
            let input = if i == 0 { spec.input } else { shapes[i - 1] };
            let (layer, fused) = build_layer(dev, spec, i, input, rng)?;
            layers.push(layer);
            i += if fused { 2 } else { 1 };
        }
        // Token and sequence inputs reach the first layer rearranged (a new
        // tensor); others as the caller's tensor (`Model::forward`).
        let rearranged = matches!(
            spec.input,
            FeatureShape::Tokens { .. } | FeatureShape::Sequence { .. }
        );
        if let Some(first) = layers.first_mut() {
            first.set_input_outlives_step(!rearranged);
        }
        Ok(Model {
            spec: spec.clone(),
            layers,
            step: 0,
            time_order: None,
        })
    }
}

/// Sequences stored one per row, `[B, len·features]`, as the recurrent
/// layers read them: time-major `[len, B, features]`. `order` caches the
/// gather order per batch size.
fn time_major<D: Device>(
    dev: &D,
    x: &D::Tensor,
    (len, features): (usize, usize),
    order: &mut Option<(usize, D::Tensor)>,
) -> Result<D::Tensor> {
    let b = x.shape().rows();
    if features == 1 {
        let x = dev.reshape(x, [b, len])?;
        return dev.reshape(&dev.transpose(&x)?, [len, b, 1]);
    }
    // Row (t, b) of the result is row b·len + t of the steps; the indices
    // travel as f32, exact below 2^24.
    if b.saturating_mul(len) > 1 << 24 {
        return Err(Error::Config(format!(
            "a batch of {b} sequences of {len} steps is over 2^24 steps: use a smaller --batch-size"
        )));
    }
    let idx = match order {
        Some((batch, idx)) if *batch == b => idx.clone(),
        _ => {
            let o: Vec<f32> = (0..len)
                .flat_map(|t| (0..b).map(move |i| (i * len + t) as f32))
                .collect();
            let idx = dev.upload(&o, [len * b])?;
            *order = Some((b, idx.clone()));
            idx
        }
    };
    let steps = dev.reshape(x, [b * len, features])?;
    let rows = dev.gather_rows(&steps, &idx, 0, len * b)?;
    dev.reshape(&rows, [len, b, features])
}

impl<D: Device> Model<D> {
    /// The loss this model trains with.
    pub fn loss(&self) -> Loss {
        self.spec.loss()
    }

    /// Logits for a batch as a matrix: `[B, width]`, or `[T·B, vocab]`
    /// (time-major) for token input `[B, T]`.
    pub fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor> {
        let mut h = match self.spec.input {
            FeatureShape::Tokens { .. } => dev.transpose(x)?,
            FeatureShape::Sequence { len, features } => {
                time_major(dev, x, (len, features), &mut self.time_order)?
            }
            // (The first layer is told so: `set_input_outlives_step`.)
            _ => x.clone(),
        };
        for layer in &mut self.layers {
            h = layer.forward(dev, &h, train)?;
        }
        let width = self.spec.output.width();
        if h.shape().rank() == 2 {
            Ok(h)
        } else {
            dev.reshape(&h, [h.shape().numel() / width, width])
        }
    }

    /// Targets in the layout of [`Model::forward`]'s logits.
    pub fn arrange_targets(&self, dev: &D, y: &D::Tensor) -> Result<D::Tensor> {
        if self.spec.predicts_every_step() {
            let t = dev.transpose(y)?;
            dev.reshape(&t, [t.shape().numel()])
        } else {
            Ok(y.clone())
        }
    }

    /// One training step on a batch: forward, loss, backward and the
    /// optimizer's update, with the loss scaled by the optimizer's loss
    /// scale where it has one. Returns the mean loss (unscaled) as a `[1]`
    /// tensor on the device; nothing is read back.
    pub fn train_step(
        &mut self,
        dev: &D,
        x: &D::Tensor,
        y: &D::Tensor,
        optimizer: &mut (impl Optimizer<D> + ?Sized),
    ) -> Result<D::Tensor> {
        let seed = optimizer.loss_scale(dev)?;
        let loss = self.loss_and_scaled_grads(dev, x, y, seed.as_ref())?;
        let left = profile::phase(Phase::Optimizer);
        let stepped = optimizer.step(dev, &mut self.params_mut());
        profile::phase(left);
        stepped?;
        Ok(loss)
    }

    /// Forward, loss and backward for one batch; gradients land in the
    /// parameters. Returns the mean loss as a `[1]` tensor on the device.
    pub fn loss_and_grads(&mut self, dev: &D, x: &D::Tensor, y: &D::Tensor) -> Result<D::Tensor> {
        self.loss_and_scaled_grads(dev, x, y, None)
    }

    /// [`Model::loss_and_grads`] with the loss gradient multiplied by
    /// `loss_scale` (a `[1]` tensor) when given, so every gradient is too;
    /// the returned loss is not scaled.
    pub fn loss_and_scaled_grads(
        &mut self,
        dev: &D,
        x: &D::Tensor,
        y: &D::Tensor,
        loss_scale: Option<&D::Tensor>,
    ) -> Result<D::Tensor> {
        for l in &mut self.layers {
            l.set_step(self.step);
        }
        self.step += 1;
        profile::phase(Phase::Forward);
        let logits = self.forward(dev, x, true)?;
        profile::phase(Phase::Loss);
        let targets = self.arrange_targets(dev, y)?;
        let lg = self.loss().apply(dev, &logits, &targets)?;
        profile::phase(Phase::Backward);
        let mut grad = match loss_scale {
            Some(s) => dev.scale_by(&lg.grad, s)?,
            None => lg.grad,
        };
        let n = self.layers.len();
        // Layers before the first with parameters (a flatten, say) have
        // nothing to learn: the gradient stops at the first trained layer,
        // which then skips its input gradient (for an MLP on images, the
        // largest product of the step).
        let first = self
            .layers
            .iter()
            .position(|l| !l.params().is_empty())
            .unwrap_or(n);
        for (i, layer) in self.layers.iter_mut().enumerate().skip(first).rev() {
            match layer.backward(dev, &grad, i > first)? {
                Some(g) => grad = g,
                None if i == first => {}
                None => unreachable!("layer {i} of {n} returned no input gradient"),
            }
        }
        profile::phase(Phase::Other);
        Ok(lg.loss)
    }

    /// Every parameter, in layer order.
    pub fn params(&self) -> Vec<&Param<D>> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    /// Every parameter, mutably, in layer order.
    pub fn params_mut(&mut self) -> Vec<&mut Param<D>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }

    /// Every buffer (state saved but not trained), in layer order.
    pub fn buffers(&self) -> Vec<&Buffer<D>> {
        self.layers.iter().flat_map(|l| l.buffers()).collect()
    }

    /// Trainable scalars.
    pub fn param_count(&self) -> usize {
        self.params().iter().map(|p| p.numel()).sum()
    }

    /// Sets the training step the next [`Model::loss_and_grads`] belongs to
    /// (dropout draws its mask from it); the training loop sets it from the
    /// optimizer's count, which checkpoints keep, so a resumed run draws
    /// the same masks. Each `loss_and_grads` advances it by one.
    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    /// Makes recurrent layers carry their state from one forward call to the
    /// next (generating a sequence a step at a time), or stop and forget it.
    pub fn set_carry_state(&mut self, on: bool) {
        for l in &mut self.layers {
            l.set_carry_state(on);
        }
    }

    /// Replaces every parameter's and buffer's value (checkpoint loading),
    /// by name. Every one must be present with its exact shape.
    pub fn set_params(&mut self, mut values: Vec<(String, D::Tensor)>) -> Result<()> {
        let mut take = |name: &str, want: &Shape| -> Result<D::Tensor> {
            let i = values
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| Error::Config(format!("checkpoint has no tensor '{name}'")))?;
            let (_, v) = values.swap_remove(i);
            if v.shape() != want {
                return Err(Error::Config(format!(
                    "checkpoint tensor '{name}' has shape {}, the model expects {want}",
                    v.shape()
                )));
            }
            Ok(v)
        };
        for layer in &mut self.layers {
            for p in layer.params_mut() {
                p.value = take(&p.name, p.value.shape())?;
            }
            for b in layer.buffers_mut() {
                b.value = take(&b.name, b.value.shape())?;
            }
        }
        Ok(())
    }
}
