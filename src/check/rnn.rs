//! The Elman recurrence over a sequence, forward and back through time.

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

pub(super) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // Hidden sizes 1, 5, 17 take the scalar kernels; 8 and 12 the vec4 ones
    // (batch 3 and 6: a last block of rows that is partly clamped).
    for (t, b, h) in [(1, 1, 1), (3, 2, 5), (6, 3, 17), (4, 3, 8), (5, 6, 12)] {
        let shape = format!("T{t} B{b} H{h}");
        v.push(Case::new("rnn forward", &shape, RnnForward { t, b, h }));
        v.push(Case::new(
            "rnn backward (BPTT)",
            shape,
            RnnBackward { t, b, h },
        ));
    }
    v
}
