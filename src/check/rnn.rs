//! The recurrences over a sequence (Elman, LSTM, GRU), forward and back
//! through time.

use rand::Rng;

use super::{random, Case, ChaCha8Rng, Check, Tolerance};
use crate::device::Device;
use crate::error::Result;

/// `h_t = tanh(xw_t + h_{t−1}·U)` for `T` steps of a batch of `B`, hidden
/// size `H`.
#[derive(Clone, Debug)]
pub struct RnnForward {
    t: usize,
    b: usize,
    h: usize,
}

impl Check for RnnForward {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let RnnForward { t, b, h } = *self;
        let xw = random(dev, rng, [t, b, h], 1.0)?;
        let u = random(dev, rng, [h, h], 0.5)?;
        let h0 = random(dev, rng, [b, h], 1.0)?;
        Ok(vec![dev.rnn_forward(&xw, &u, &h0)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::RECURRENCE
    }
}

/// Backpropagation through time: the pre-activation gradients and the
/// gradient of the initial state.
#[derive(Clone, Debug)]
pub struct RnnBackward {
    t: usize,
    b: usize,
    h: usize,
}

impl Check for RnnBackward {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let RnnBackward { t, b, h } = *self;
        // States are tanh outputs: inside (−1, 1).
        let hs = random(dev, rng, [t, b, h], 0.99)?;
        let u = random(dev, rng, [h, h], 0.5)?;
        let dh = random(dev, rng, [t, b, h], 1.0)?;
        let (da, dh0) = dev.rnn_backward(&hs, &u, &dh)?;
        Ok(vec![da, dh0])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::RECURRENCE
    }
}

/// Which gated recurrence a case runs.
#[derive(Clone, Copy, Debug)]
pub enum Gated {
    /// [`Device::lstm_forward`] / [`Device::lstm_backward`].
    Lstm,
    /// [`Device::gru_forward`] / [`Device::gru_backward`].
    Gru,
}

/// A gated recurrence forward over `T` steps of a batch of `B`, hidden
/// size `H`: the states (and the LSTM's cell states) and the gates kept for
/// the backward pass.
#[derive(Clone, Debug)]
pub struct GatedForward {
    cell: Gated,
    t: usize,
    b: usize,
    h: usize,
}

impl Check for GatedForward {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let GatedForward { cell, t, b, h } = *self;
        let h0 = random(dev, rng, [b, h], 1.0)?;
        Ok(match cell {
            Gated::Lstm => {
                let xw = random(dev, rng, [t, b, 4 * h], 1.0)?;
                let u = random(dev, rng, [h, 4 * h], 0.5)?;
                let c0 = random(dev, rng, [b, h], 1.0)?;
                let (hs, cs, gates) = dev.lstm_forward(&xw, &u, &h0, &c0)?;
                vec![hs, cs, gates]
            }
            Gated::Gru => {
                let xw = random(dev, rng, [t, b, 3 * h], 1.0)?;
                let u = random(dev, rng, [h, 3 * h], 0.5)?;
                let ub = random(dev, rng, [3 * h], 0.5)?;
                let (hs, gates) = dev.gru_forward(&xw, &u, &ub, &h0)?;
                vec![hs, gates]
            }
        })
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::RECURRENCE
    }
}

/// Gate values as the forward pass leaves them: sigmoid gates in (0, 1),
/// tanh ones in (−1, 1); `tanh_blocks` lists the latter.
fn gate_values<D: Device>(
    dev: &D,
    rng: &mut ChaCha8Rng,
    (t, b, h): (usize, usize, usize),
    blocks: usize,
    tanh_blocks: &[usize],
) -> Result<D::Tensor> {
    let mut v = Vec::with_capacity(t * b * blocks * h);
    for _ in 0..t * b {
        for k in 0..blocks {
            for _ in 0..h {
                v.push(if tanh_blocks.contains(&k) {
                    rng.random_range(-0.99f32..=0.99)
                } else {
                    rng.random_range(0.01f32..=0.99)
                });
            }
        }
    }
    dev.upload(&v, [t, b, blocks * h])
}

/// Backpropagation through a gated recurrence: the LSTM's gate
/// pre-activation gradients, or the GRU's input- and recurrent-side ones.
#[derive(Clone, Debug)]
pub struct GatedBackward {
    cell: Gated,
    t: usize,
    b: usize,
    h: usize,
}

impl Check for GatedBackward {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let GatedBackward { cell, t, b, h } = *self;
        let dh = random(dev, rng, [t, b, h], 1.0)?;
        Ok(match cell {
            Gated::Lstm => {
                // Blocks i, f, g, o: g is the tanh one.
                let gates = gate_values(dev, rng, (t, b, h), 4, &[2])?;
                let cs = random(dev, rng, [t, b, h], 2.0)?;
                let c0 = random(dev, rng, [b, h], 2.0)?;
                let u = random(dev, rng, [h, 4 * h], 0.5)?;
                vec![dev.lstm_backward(&gates, &cs, &c0, &u, &dh)?]
            }
            Gated::Gru => {
                // Blocks r, z, n and the recurrent candidate term (any
                // value; drawn in (−1, 1) like n).
                let gates = gate_values(dev, rng, (t, b, h), 4, &[2, 3])?;
                let h_prev = random(dev, rng, [t, b, h], 0.99)?;
                let u = random(dev, rng, [h, 3 * h], 0.5)?;
                let (dxw, dhu) = dev.gru_backward(&gates, &h_prev, &u, &dh)?;
                vec![dxw, dhu]
            }
        })
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::RECURRENCE
    }
}

pub(super) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // Hidden sizes 1, 5, 17 take the scalar fused kernels; 8, 12 and 32 the
    // vec4 ones (batch 3 and 6: a last block of rows that is partly
    // clamped). Through the matmul kernels, 16 × 32 and 12 × 8 are aligned
    // to 4 (each step's sum and tanh, or its derivative, in the product's
    // epilogue; at 12 rows `matmul_vec4`'s last block slides back and the
    // `bcast` blocks are partly past the batch) and the others are not; the kernels that finish each step take four
    // elements an invocation where B·H is a multiple of 4 (4 × 5 too),
    // one elsewhere (1 × 1, 2 × 5, 3 × 17). For the whole-pass kernels (`Sequence`): 70
    // steps take two dispatches; batch 19 at hidden 128 is three
    // workgroups of 8 rows, the last partly clamped; hidden 260 has 65
    // blocks of 4 units a row, so an invocation takes two per step.
    for (t, b, h) in [
        (1, 1, 1),
        (3, 2, 5),
        (3, 4, 5),
        (6, 3, 17),
        (4, 3, 8),
        (5, 6, 12),
        (6, 16, 32),
        (3, 12, 8),
        (70, 3, 8),
        (3, 19, 128),
        (2, 5, 260),
    ] {
        let shape = format!("T{t} B{b} H{h}");
        v.push(Case::new("rnn forward", &shape, RnnForward { t, b, h }));
        v.push(Case::new(
            "rnn backward (BPTT)",
            shape,
            RnnBackward { t, b, h },
        ));
    }
    // Batch × hidden 1 (one invocation), a few odd sizes, 9 × 33 = 297
    // units: more than one workgroup of 256, and 8 × 16, whose products
    // through the matmul kernels are aligned to 4. For the whole-pass
    // kernels: 9 × 33 is three workgroups, 70 steps two dispatches, and
    // hidden 65 two units per invocation for some.
    for (t, b, h) in [
        (1, 1, 1),
        (3, 2, 5),
        (6, 3, 17),
        (4, 9, 33),
        (3, 8, 16),
        (70, 3, 5),
        (2, 5, 65),
    ] {
        let shape = format!("T{t} B{b} H{h}");
        for (cell, name) in [(Gated::Lstm, "lstm"), (Gated::Gru, "gru")] {
            v.push(Case::new(
                format!("{name} forward"),
                &shape,
                GatedForward { cell, t, b, h },
            ));
            v.push(Case::new(
                format!("{name} backward (BPTT)"),
                &shape,
                GatedBackward { cell, t, b, h },
            ));
        }
    }
    v
}
