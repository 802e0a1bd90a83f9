//! Layers: each a forward and a backward pass over any [`Device`], keeping on
//! the device whatever its backward pass needs (inputs, outputs, pool
//! arg-max). Nothing here downloads.

mod activation;
mod conv;
mod dense;
mod dropout;
mod embedding;
mod gated;
mod kept;
mod norm;
mod pool_global;
mod rnn;

pub use activation::{Act, Flatten, LastStep, OneHot};
pub use conv::{AvgPool2d, Conv2d, MaxPool2d};
pub use dense::Dense;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use gated::{Gru, Lstm};
pub use kept::Kept;
pub use norm::{BatchNorm, LayerNorm, BATCH_NORM_EPS, BATCH_NORM_MOMENTUM, LAYER_NORM_EPS};
pub use pool_global::GlobalAvgPool;
pub use rnn::{RecurrentInput, Rnn};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::device::{Activation, Device, Tensor};
use crate::error::{Error, Result};

/// A trainable tensor, its latest gradient, and whether L2 weight decay
/// applies to it (weights yes, biases no).
pub struct Param<D: Device> {
    /// Stable name from the layer's position, used as the tensor name in
    /// checkpoints (`layers.0.weight`).
    pub name: String,
    /// The current values; optimizers update them in place.
    pub value: D::Tensor,
    /// Gradient from the latest backward pass, the shape of `value`; `None` before it.
    pub grad: Option<D::Tensor>,
    /// Whether weight decay applies (weights yes, biases no).
    pub decay: bool,
}

impl<D: Device> Param<D> {
    fn new(name: String, value: D::Tensor, decay: bool) -> Self {
        Param {
            name,
            value,
            grad: None,
            decay,
        }
    }

    /// Number of elements in `value`.
    pub fn numel(&self) -> usize {
        self.value.shape().numel()
    }
}

/// A layer's state that is not trained by gradients but saved with it
/// (batch normalisation's running averages).
pub struct Buffer<D: Device> {
    /// Stable name from the layer's position, as for [`Param`]
    /// (`layers.2.running_mean`).
    pub name: String,
    /// The current values.
    pub value: D::Tensor,
}

impl<D: Device> Buffer<D> {
    fn new(name: String, value: D::Tensor) -> Self {
        Buffer { name, value }
    }
}

/// One step of a network. `forward` with `train = true` keeps what
/// `backward` needs; `backward` stores parameter gradients in the layer's
/// [`Param`]s and returns the input gradient only when asked (the first layer
/// of a network never needs it).
pub trait Layer<D: Device> {
    /// Output for the input `x`; with `train`, also keeps what `backward` needs.
    fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor>;
    /// Given `dy`, the gradient at the latest training forward's output: stores the
    /// parameter gradients, and returns the input gradient when `need_dx`.
    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>>;
    /// The layer's trainable parameters (none by default).
    fn params(&self) -> Vec<&Param<D>> {
        Vec::new()
    }
    /// The same parameters, mutably (for the optimizer).
    fn params_mut(&mut self) -> Vec<&mut Param<D>> {
        Vec::new()
    }
    /// State saved with the parameters but not trained (none by default).
    fn buffers(&self) -> Vec<&Buffer<D>> {
        Vec::new()
    }
    /// The same state, mutably (for loading a checkpoint).
    fn buffers_mut(&mut self) -> Vec<&mut Buffer<D>> {
        Vec::new()
    }
    /// Recurrent layers: carry the last state into the next forward call
    /// (generating a sequence one step at a time), or, when `on` is false,
    /// forget it and start every sequence from zeros again. Other layers
    /// have no state.
    fn set_carry_state(&mut self, _on: bool) {}
    /// The training step the next forward pass belongs to (dropout draws
    /// its mask from it). Other layers ignore it.
    fn set_step(&mut self, _step: u64) {}
    /// Told by the model when this layer's input is the model's own input,
    /// which the caller holds for the whole step: a layer that keeps its
    /// input then keeps that tensor as it is rather than a copy (a
    /// convolution under f16, which would otherwise keep a half copy). Other
    /// layers ignore it.
    fn set_input_outlives_step(&mut self, _outlives: bool) {}
}

/// What a layer cached in `forward`, or a clear error if `backward` comes
/// without a training-mode forward.
pub(crate) fn cached<'a, T>(slot: &'a Option<T>, layer: &str) -> Result<&'a T> {
    slot.as_ref().ok_or_else(|| {
        Error::Config(format!(
            "{layer}: backward called without a training forward pass"
        ))
    })
}

/// Seeded initialisation: Glorot/Xavier uniform for tanh, sigmoid and
/// linear layers, He uniform for ReLU. Drawn on the host so the same seed
/// gives the same weights on every device.
pub fn init_weights(
    rng: &mut ChaCha8Rng,
    n: usize,
    fan_in: usize,
    fan_out: usize,
    act: Activation,
) -> Vec<f32> {
    let bound = match act {
        // He-uniform for the rectifiers, Glorot-uniform otherwise.
        Activation::Relu | Activation::LeakyRelu | Activation::Softplus | Activation::Gelu => {
            (6.0 / fan_in as f64).sqrt()
        }
        _ => (6.0 / (fan_in + fan_out) as f64).sqrt(),
    } as f32;
    (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
}
