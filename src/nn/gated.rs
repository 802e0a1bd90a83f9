//! Gated recurrent layers, LSTM and GRU, with PyTorch's equations and gate
//! order (so weights move between the two with a transpose), over
//! time-major sequences `[T, B, I]` → every state `[T, B, H]`, starting from
//! zero states, with full backpropagation through time.
//!
//! LSTM, gates `i, f, g, o` side by side in `W [I,4H]`, `U [H,4H]`, `b [4H]`:
//! ```text
//! i = σ(x·W_i + h_{t−1}·U_i + b_i)      f = σ(x·W_f + h_{t−1}·U_f + b_f)
//! g = tanh(x·W_g + h_{t−1}·U_g + b_g)   o = σ(x·W_o + h_{t−1}·U_o + b_o)
//! c_t = f ⊙ c_{t−1} + i ⊙ g             h_t = o ⊙ tanh(c_t)
//! ```
//! (PyTorch's two biases `b_ih + b_hh` are one `b` here; export writes it
//! as `b_ih` and zeros.)
//!
//! GRU, gates `r, z, n` in `W [I,3H]`, `U [H,3H]`, input bias `b [3H]` and
//! recurrent bias `b_h [3H]` (kept apart: `b_hn` sits inside the reset
//! product, as in PyTorch and ONNX's `linear_before_reset = 1`):
//! ```text
//! r = σ(x·W_r + b_r + h_{t−1}·U_r + b_hr)
//! z = σ(x·W_z + b_z + h_{t−1}·U_z + b_hz)
//! n = tanh(x·W_n + b_n + r ⊙ (h_{t−1}·U_n + b_hn))
//! h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
//! ```
//!
//! As in the Elman layer, the input projections of all steps are one
//! matmul and the weight gradients are one matmul each over all steps;
//! only the recurrence runs step by step, one fused dispatch per step on
//! the GPU ([`Device::lstm_forward`], [`Device::gru_forward`]).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::rnn::{
    batch_of, input_and_recurrent_grads, keep_inputs, last_state, previous_states, project_inputs,
    sequence_dims, RecurrentInput,
};
use super::{cached, init_weights, Kept, Layer, Param};
use crate::device::{Activation, Device, Tensor};
use crate::error::Result;

/// Input weights (Glorot per gate block) and recurrent weights (uniform in
/// ±1/√H, PyTorch's choice) for `gates` gate blocks.
fn gate_weights(
    rng: &mut ChaCha8Rng,
    inputs: usize,
    hidden: usize,
    gates: usize,
) -> (Vec<f32>, Vec<f32>) {
    let w = init_weights(
        rng,
        inputs * gates * hidden,
        inputs,
        hidden,
        Activation::Tanh,
    );
    let bound = 1.0 / (hidden as f32).sqrt();
    let u = (0..hidden * gates * hidden)
        .map(|_| rng.random_range(-bound..=bound))
        .collect();
    (w, u)
}

/// Long short-term memory over time-major sequences: `[T, B, I]` → every
/// hidden state `[T, B, H]`.
pub struct Lstm<D: Device> {
    /// `W [I, 4H]`, gate blocks `i, f, g, o`.
    pub input_weight: Param<D>,
    /// `U [H, 4H]`, the same blocks.
    pub recurrent_weight: Param<D>,
    /// `b [4H]`.
    pub bias: Param<D>,
    hidden: usize,
    input: RecurrentInput,
    carry_state: bool,
    /// The last `(h, c)` when carrying state between calls.
    state: Option<(D::Tensor, D::Tensor)>,
    cache: Option<LstmCache<D>>,
}

/// What the backward pass reads; the step tensors in f16 under
/// `Precision::F16` ([`Kept`]).
struct LstmCache<D: Device> {
    x: Kept<D>,     // [T·B, I]
    h0: D::Tensor,  // [B, H]
    c0: D::Tensor,  // [B, H]
    hs: Kept<D>,    // [T, B, H]
    cs: Kept<D>,    // [T, B, H]
    gates: Kept<D>, // [T, B, 4H]
}

impl<D: Device> Lstm<D> {
    /// Parameters are named `{name}.input_weight`, `{name}.recurrent_weight`
    /// and `{name}.bias`. The forget gate's bias starts at 1, so cells keep
    /// their contents until training says otherwise (Jozefowicz et al.,
    /// 2015); the other biases start at 0.
    pub fn new(
        dev: &D,
        name: &str,
        inputs: usize,
        hidden: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let (w, u) = gate_weights(rng, inputs, hidden, 4);
        let mut b = vec![0.0f32; 4 * hidden];
        b[hidden..2 * hidden].fill(1.0);
        Ok(Lstm {
            input_weight: Param::new(
                format!("{name}.input_weight"),
                dev.upload(&w, [inputs, 4 * hidden])?,
                true,
            ),
            recurrent_weight: Param::new(
                format!("{name}.recurrent_weight"),
                dev.upload(&u, [hidden, 4 * hidden])?,
                true,
            ),
            bias: Param::new(format!("{name}.bias"), dev.upload(&b, [4 * hidden])?, false),
            hidden,
            input: RecurrentInput::Vectors,
            carry_state: false,
            state: None,
            cache: None,
        })
    }

    /// The same layer reading `input` (see [`RecurrentInput::Tokens`]).
    pub fn reading(self, input: RecurrentInput) -> Self {
        Lstm { input, ..self }
    }
}

impl<D: Device> Layer<D> for Lstm<D> {
    fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor> {
        let b = batch_of("lstm", x, self.input)?;
        let h = self.hidden;
        let weights = (&self.input_weight, &self.bias);
        let (x2, xw) = project_inputs(dev, x, weights, self.input)?;
        let (h0, c0) = match self.state.take() {
            Some((h0, c0)) if h0.shape().dims() == [b, h] => (h0, c0),
            _ => (dev.zeros([b, h])?, dev.zeros([b, h])?),
        };
        let (hs, cs, gates) = dev.lstm_forward(&xw, &self.recurrent_weight.value, &h0, &c0)?;
        if self.carry_state {
            self.state = Some((last_state(dev, &hs)?, last_state(dev, &cs)?));
        }
        if train {
            self.cache = Some(LstmCache {
                x: keep_inputs(dev, x2, self.input)?,
                h0,
                c0,
                hs: Kept::new(dev, hs.clone())?,
                cs: Kept::new(dev, cs)?,
                gates: Kept::new(dev, gates)?,
            });
        }
        Ok(hs)
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        let c = cached(&self.cache, "lstm")?;
        let (hs, cs, gates) = (c.hs.to_f32(dev)?, c.cs.to_f32(dev)?, c.gates.to_f32(dev)?);
        let (t, b, h) = sequence_dims("lstm", &hs)?;
        let dh = dev.reshape(dy, [t, b, h])?;
        let da = dev.lstm_backward(&gates, &cs, &c.c0, &self.recurrent_weight.value, &dh)?;
        let da = dev.reshape(&da, [t * b, 4 * h])?;
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

/// Gated recurrent unit over time-major sequences: `[T, B, I]` → every
/// state `[T, B, H]`.
pub struct Gru<D: Device> {
    /// `W [I, 3H]`, gate blocks `r, z, n`.
    pub input_weight: Param<D>,
    /// `U [H, 3H]`, the same blocks.
    pub recurrent_weight: Param<D>,
    /// `b [3H]`, added to the input projections.
    pub bias: Param<D>,
    /// `b_h [3H]`, added to the recurrent products (its `n` block inside
    /// the reset product).
    pub recurrent_bias: Param<D>,
    hidden: usize,
    input: RecurrentInput,
    carry_state: bool,
    state: Option<D::Tensor>,
    cache: Option<GruCache<D>>,
}

/// What the backward pass reads; the step tensors in f16 under
/// `Precision::F16` ([`Kept`]).
struct GruCache<D: Device> {
    x: Kept<D>,     // [T·B, I]
    h0: D::Tensor,  // [B, H]
    hs: Kept<D>,    // [T, B, H]
    gates: Kept<D>, // [T, B, 4H]: r, z, n, h_{t−1}·U_n + b_hn
}

impl<D: Device> Gru<D> {
    /// Parameters are named `{name}.input_weight`, `{name}.recurrent_weight`,
    /// `{name}.bias` and `{name}.recurrent_bias`; the biases start at 0.
    pub fn new(
        dev: &D,
        name: &str,
        inputs: usize,
        hidden: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let (w, u) = gate_weights(rng, inputs, hidden, 3);
        Ok(Gru {
            input_weight: Param::new(
                format!("{name}.input_weight"),
                dev.upload(&w, [inputs, 3 * hidden])?,
                true,
            ),
            recurrent_weight: Param::new(
                format!("{name}.recurrent_weight"),
                dev.upload(&u, [hidden, 3 * hidden])?,
                true,
            ),
            bias: Param::new(format!("{name}.bias"), dev.zeros([3 * hidden])?, false),
            recurrent_bias: Param::new(
                format!("{name}.recurrent_bias"),
                dev.zeros([3 * hidden])?,
                false,
            ),
            hidden,
            input: RecurrentInput::Vectors,
            carry_state: false,
            state: None,
            cache: None,
        })
    }

    /// The same layer reading `input` (see [`RecurrentInput::Tokens`]).
    pub fn reading(self, input: RecurrentInput) -> Self {
        Gru { input, ..self }
    }
}

impl<D: Device> Layer<D> for Gru<D> {
    fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor> {
        let b = batch_of("gru", x, self.input)?;
        let h = self.hidden;
        let weights = (&self.input_weight, &self.bias);
        let (x2, xw) = project_inputs(dev, x, weights, self.input)?;
        let h0 = match self.state.take() {
            Some(s) if s.shape().dims() == [b, h] => s,
            _ => dev.zeros([b, h])?,
        };
        let (hs, gates) = dev.gru_forward(
            &xw,
            &self.recurrent_weight.value,
            &self.recurrent_bias.value,
            &h0,
        )?;
        if self.carry_state {
            self.state = Some(last_state(dev, &hs)?);
        }
        if train {
            self.cache = Some(GruCache {
                x: keep_inputs(dev, x2, self.input)?,
                h0,
                hs: Kept::new(dev, hs.clone())?,
                gates: Kept::new(dev, gates)?,
            });
        }
        Ok(hs)
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        let c = cached(&self.cache, "gru")?;
        let (hs, gates) = (c.hs.to_f32(dev)?, c.gates.to_f32(dev)?);
        let (t, b, h) = sequence_dims("gru", &hs)?;
        let dh = dev.reshape(dy, [t, b, h])?;
        let h_prev = previous_states(dev, &c.h0, &hs)?;
        let (dxw, dhu) = dev.gru_backward(
            &gates,
            &dev.reshape(&h_prev, [t, b, h])?,
            &self.recurrent_weight.value,
            &dh,
        )?;
        let (dxw, dhu) = (
            dev.reshape(&dxw, [t * b, 3 * h])?,
            dev.reshape(&dhu, [t * b, 3 * h])?,
        );
        self.recurrent_bias.grad = Some(dev.sum_rows(&dhu)?);
        let params = (
            &mut self.input_weight,
            &mut self.recurrent_weight,
            &mut self.bias,
        );
        let input = self.input;
        let grads = (&dxw, &dhu);
        input_and_recurrent_grads(dev, (t, b), (&c.x, &h_prev), grads, params, input, need_dx)
    }

    fn params(&self) -> Vec<&Param<D>> {
        vec![
            &self.input_weight,
            &self.recurrent_weight,
            &self.bias,
            &self.recurrent_bias,
        ]
    }

    fn params_mut(&mut self) -> Vec<&mut Param<D>> {
        vec![
            &mut self.input_weight,
            &mut self.recurrent_weight,
            &mut self.bias,
            &mut self.recurrent_bias,
        ]
    }

    fn set_carry_state(&mut self, on: bool) {
        self.carry_state = on;
        self.state = None;
    }
}
