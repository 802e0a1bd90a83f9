//! Elman recurrent layer: `h_t = tanh(x_t·W + h_{t-1}·U + b)` over a whole
//! sequence, with full backpropagation through time.
//!
//! Input `[T, B, I]` (time-major), output every state `[T, B, H]`, so a
//! dense layer (per step) or another recurrent layer can follow. The input projections of all steps are
//! one matmul; only the recurrence itself runs step by step (one dispatch per
//! step on the GPU, see `Device::rnn_forward`).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{cached, init_weights, Kept, Layer, Param};
use crate::device::{Activation, Device, MatmulSpec, Tensor};
use crate::error::{Error, Result};

/// Elman recurrent layer over time-major sequences: `[T, B, I]` → every state `[T, B, H]`.
pub struct Rnn<D: Device> {
    /// `W [I, H]`: projects each input onto the hidden state.
    pub input_weight: Param<D>, // W [I, H]
    /// `U [H, H]`: carries the previous state into the next.
    pub recurrent_weight: Param<D>, // U [H, H]
    /// `b [H]`, added at every step.
    pub bias: Param<D>, // b [H]
    hidden: usize,
    input: RecurrentInput,
    /// Carry the last state into the next forward call (sampling text one
    /// step at a time); otherwise every sequence starts from zeros.
    carry_state: bool,
    state: Option<D::Tensor>,
    cache: Option<Cache<D>>,
}

struct Cache<D: Device> {
    x: Kept<D>,    // [T·B, I], or ids [T·B] (see `keep_inputs`)
    h0: D::Tensor, // [B, H]
    hs: Kept<D>,   // [T, B, H]
}

impl<D: Device> Rnn<D> {
    /// Parameters are named `{name}.input_weight`, `{name}.recurrent_weight`
    /// and `{name}.bias`.
    pub fn new(
        dev: &D,
        name: &str,
        inputs: usize,
        hidden: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let w = init_weights(rng, inputs * hidden, inputs, hidden, Activation::Tanh);
        // Recurrent weights uniform in ±1/√H: a spectral radius near 1, so
        // states neither vanish nor explode at the start.
        let bound = 1.0 / (hidden as f32).sqrt();
        let u: Vec<f32> = (0..hidden * hidden)
            .map(|_| rng.random_range(-bound..=bound))
            .collect();
        Ok(Rnn {
            input_weight: Param::new(
                format!("{name}.input_weight"),
                dev.upload(&w, [inputs, hidden])?,
                true,
            ),
            recurrent_weight: Param::new(
                format!("{name}.recurrent_weight"),
                dev.upload(&u, [hidden, hidden])?,
                true,
            ),
            bias: Param::new(format!("{name}.bias"), dev.zeros([hidden])?, false),
            hidden,
            input: RecurrentInput::Vectors,
            carry_state: false,
            state: None,
            cache: None,
        })
    }

    /// The same layer reading `input` (see [`RecurrentInput::Tokens`]).
    pub fn reading(self, input: RecurrentInput) -> Self {
        Rnn { input, ..self }
    }
}

/// What a recurrent layer reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecurrentInput {
    /// Vectors `[T, B, I]`.
    #[default]
    Vectors,
    /// Token ids `[T, B]` standing for their one-hot vectors over `vocab`
    /// ids: a `one_hot` layer folded into this one. `x·W` of a one-hot `x`
    /// is a row of `W`, so the input projection is a row lookup and `W`'s
    /// gradient a scatter-add of rows, where a one-hot matrix would cost two
    /// products with `vocab` columns of mostly zeros (and for a vocabulary
    /// not a multiple of 4, padded copies). The projections are the same
    /// values; only the order `W`'s gradient is summed in differs.
    Tokens {
        /// Ids below this; `W` has this many rows.
        vocab: usize,
    },
}

/// The batch size of what a layer reading `input` is given: `[T, B, I]`
/// vectors or `[T, B]` ids, or a shape error naming `layer`.
pub(super) fn batch_of<T: Tensor>(
    layer: &'static str,
    x: &T,
    input: RecurrentInput,
) -> Result<usize> {
    match (input, x.shape().dims()) {
        (RecurrentInput::Tokens { .. }, &[t, b]) if t > 0 => Ok(b),
        (RecurrentInput::Tokens { .. }, _) => Err(Error::shape(
            layer,
            format!("token ids must be [T,B] with T ≥ 1, got {}", x.shape()),
        )),
        (RecurrentInput::Vectors, _) => Ok(sequence_dims(layer, x)?.1),
    }
}

/// `(T, B, I)` of a time-major sequence, or a shape error naming `layer`.
pub(super) fn sequence_dims<T: Tensor>(
    layer: &'static str,
    x: &T,
) -> Result<(usize, usize, usize)> {
    match x.shape().dims()[..] {
        [t, b, i] if t > 0 => Ok((t, b, i)),
        _ => Err(Error::shape(
            layer,
            format!("input must be [T,B,I] with T ≥ 1, got {}", x.shape()),
        )),
    }
}

/// The inputs as rows `[T·B, I]` (ids: `[T·B]`), and their projections
/// `x·W + b` for all steps, as `[T, B, N]`: one matmul, or for ids a row
/// lookup of `W + b`.
pub(super) fn project_inputs<D: Device>(
    dev: &D,
    x: &D::Tensor,
    (weight, bias): (&Param<D>, &Param<D>),
    input: RecurrentInput,
) -> Result<(D::Tensor, D::Tensor)> {
    if let RecurrentInput::Tokens { vocab } = input {
        let (t, b) = (x.shape().dim(0), batch_of("recurrent layer", x, input)?);
        let n = weight.value.shape().dim(1);
        let ids = dev.reshape(x, [t * b])?;
        // W + b: the bias as a row repeated by a lookup of row 0, added to
        // every row of W (V·N values, not T·B·N).
        let rows = dev.reshape(&bias.value, [1, n])?;
        let repeated = dev.gather_rows(&rows, &dev.zeros([vocab])?, 0, vocab)?;
        let table = dev.add(&weight.value, &repeated)?;
        let xw = dev.gather_rows(&table, &ids, 0, t * b)?;
        return Ok((ids, dev.reshape(&xw, [t, b, n])?));
    }
    let (t, b, i) = sequence_dims("recurrent layer", x)?;
    let x2 = dev.reshape(x, [t * b, i])?;
    let xw = dev.matmul(&x2, &weight.value, Some(&bias.value), MatmulSpec::NN)?;
    let n = xw.shape().dim(1);
    Ok((x2, dev.reshape(&xw, [t, b, n])?))
}

/// What a recurrent layer keeps of its inputs `x2` (from
/// [`project_inputs`]) for `W`'s gradient: ids as they are (f16 would
/// not hold every id), vectors as the precision asks ([`Kept`]), like
/// the tensors the layer keeps for its recurrence's backward pass (its
/// states, and the gated layers' gates and cells).
pub(super) fn keep_inputs<D: Device>(
    dev: &D,
    x2: D::Tensor,
    input: RecurrentInput,
) -> Result<Kept<D>> {
    match input {
        RecurrentInput::Tokens { .. } => Ok(Kept::Full(x2)),
        RecurrentInput::Vectors => Kept::new(dev, x2),
    }
}

/// The state before each step as rows `[T·B, H]`: `h0`, then every state
/// but the last (`H_prev` in `dU = H_prevᵀ·dA`).
pub(super) fn previous_states<D: Device>(
    dev: &D,
    h0: &D::Tensor,
    hs: &D::Tensor,
) -> Result<D::Tensor> {
    let (t, b, h) = sequence_dims("recurrent layer", hs)?;
    if t == 1 {
        return Ok(h0.clone());
    }
    let hs2 = dev.reshape(hs, [t * b, h])?;
    dev.concat_rows(h0, &dev.slice_rows(&hs2, 0, (t - 1) * b)?)
}

/// The last state of `hs [T, B, H]`, `[B, H]` (what a layer carrying its
/// state starts its next call from).
pub(super) fn last_state<D: Device>(dev: &D, hs: &D::Tensor) -> Result<D::Tensor> {
    let (t, b, h) = sequence_dims("recurrent layer", hs)?;
    dev.slice_rows(&dev.reshape(hs, [t * b, h])?, (t - 1) * b, b)
}

/// The weight gradients every recurrent layer shares, given the gradients
/// of its pre-activations as rows `[T·B, G·H]`: on the input side `d_input`
/// (for `W`, `b` and the input), on the recurrent side `d_recurrent` (for
/// `U`; the same tensor except in the GRU), the inputs as rows `x [T·B, I]`
/// as [`keep_inputs`] kept them (ids `[T·B]` for
/// [`RecurrentInput::Tokens`]) and the states before each step
/// `h_prev [T·B, H]`. Stores them in the parameters and returns the input
/// gradient `[T, B, I]` when `need_dx` (ids have none).
#[allow(clippy::too_many_arguments)]
pub(super) fn input_and_recurrent_grads<D: Device>(
    dev: &D,
    (t, b): (usize, usize),
    (x, h_prev): (&Kept<D>, &D::Tensor),
    (d_input, d_recurrent): (&D::Tensor, &D::Tensor),
    (input_weight, recurrent_weight, bias): (&mut Param<D>, &mut Param<D>, &mut Param<D>),
    input: RecurrentInput,
    need_dx: bool,
) -> Result<Option<D::Tensor>> {
    // dU = Σ_t h_{t-1}ᵀ·da_t = H_prevᵀ·DA.
    recurrent_weight.grad = Some(dev.matmul(h_prev, d_recurrent, None, MatmulSpec::TN)?);
    bias.grad = Some(dev.sum_rows(d_input)?);
    if let RecurrentInput::Tokens { vocab } = input {
        // Row v of dW sums the rows of DA whose id is v.
        let ids = x.to_f32(dev)?;
        input_weight.grad = Some(dev.scatter_add_rows(d_input, &ids, vocab)?);
        if need_dx {
            return Err(Error::Config(
                "token ids have no input gradient: a recurrent layer reading them must be the first".into(),
            ));
        }
        return Ok(None);
    }
    input_weight.grad = Some(x.matmul(dev, d_input, None, MatmulSpec::TN)?);
    if !need_dx {
        return Ok(None);
    }
    let dx = dev.matmul(d_input, &input_weight.value, None, MatmulSpec::NT)?;
    Ok(Some(dev.reshape(&dx, [t, b, x.shape().dim(1)])?))
}

impl<D: Device> Layer<D> for Rnn<D> {
    fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor> {
        let b = batch_of("rnn", x, self.input)?;
        let h = self.hidden;
        let weights = (&self.input_weight, &self.bias);
        let (x2, xw) = project_inputs(dev, x, weights, self.input)?;
        let h0 = match self.state.take() {
            Some(s) if s.shape().dims() == [b, h] => s,
            _ => dev.zeros([b, h])?,
        };
        let hs = dev.rnn_forward(&xw, &self.recurrent_weight.value, &h0)?;
        if self.carry_state {
            self.state = Some(last_state(dev, &hs)?);
        }
        if train {
            self.cache = Some(Cache {
                x: keep_inputs(dev, x2, self.input)?,
                h0,
                hs: Kept::new(dev, hs.clone())?,
            });
        }
        Ok(hs)
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        let c = cached(&self.cache, "rnn")?;
        let hs = c.hs.to_f32(dev)?;
        let (t, b, h) = sequence_dims("rnn", &hs)?;
        let dh = dev.reshape(dy, [t, b, h])?;
        let (da, _dh0) = dev.rnn_backward(&hs, &self.recurrent_weight.value, &dh)?;
        let da = dev.reshape(&da, [t * b, h])?;
        let h_prev = previous_states(dev, &c.h0, &hs)?;
        let params = (
            &mut self.input_weight,
            &mut self.recurrent_weight,
            &mut self.bias,
        );
        let input = self.input;
        input_and_recurrent_grads(
            dev,
            (t, b),
            (&c.x, &h_prev),
            (&da, &da),
            params,
            input,
            need_dx,
        )
    }

    fn params(&self) -> Vec<&Param<D>> {
        vec![&self.input_weight, &self.recurrent_weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param<D>> {
        vec![
            &mut self.input_weight,
            &mut self.recurrent_weight,
            &mut self.bias,
        ]
    }

    fn set_carry_state(&mut self, on: bool) {
        self.carry_state = on;
        self.state = None;
    }
}
