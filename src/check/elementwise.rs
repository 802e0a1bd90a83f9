//! One value in, one value out: activations and their derivatives,
//! arithmetic, scaling and fills.

use super::{random, Case, ChaCha8Rng, Check, Tolerance};
use crate::device::{Activation, Binary, Device};
use crate::error::Result;

/// `act(x)` over `n` values.
#[derive(Clone, Debug)]
pub struct ActivationForward {
    n: usize,
    act: Activation,
}

impl Check for ActivationForward {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        // Spread 6 reaches the saturated tails of tanh and sigmoid.
        let x = random(dev, rng, [self.n], 6.0)?;
        Ok(vec![dev.activation(&x, self.act)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::TRANSCENDENTAL
    }
}

/// `dy · act'(x)`, from the activation's output `y`.
#[derive(Clone, Debug)]
pub struct ActivationBackward {
    n: usize,
    act: Activation,
}

impl Check for ActivationBackward {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, [self.n], 3.0)?;
        let y = dev.activation(&x, self.act)?;
        let dy = random(dev, rng, [self.n], 1.0)?;
        Ok(vec![dev.activation_backward(&y, &dy, self.act)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::TRANSCENDENTAL
    }
}

/// `dy · act'(x)`, from the activation's output `y` kept in f16
/// ([`Device::activation_backward_half`]).
#[derive(Clone, Debug)]
pub struct ActivationBackwardHalf {
    n: usize,
    act: Activation,
}

impl Check for ActivationBackwardHalf {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        // The outputs made on the host: a device's last-bit difference in
        // tanh could round to another half.
        let y: Vec<f32> = super::uniform(rng, self.n, 3.0)
            .into_iter()
            .map(|x| self.act.apply(x))
            .collect();
        let y = dev.to_half(&dev.upload(&y, [self.n])?)?;
        let dy = random(dev, rng, [self.n], 1.0)?;
        Ok(vec![dev.activation_backward_half(&y, &dy, self.act)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::TRANSCENDENTAL
    }
}

/// `act(x)` with its layer's f16 copy written beside it
/// ([`Device::activation_keeping_half`]): the output, and the kept halves
/// (of `x` for an activation that [`Activation::keeps_input`]) read back.
#[derive(Clone, Debug)]
pub struct ActivationKeepingHalf {
    n: usize,
    act: Activation,
}

impl Check for ActivationKeepingHalf {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, [self.n], 6.0)?;
        let (y, kept) = dev.activation_keeping_half(&x, self.act)?;
        Ok(vec![y, dev.half_to_f32(&kept)?])
    }

    fn tolerance(&self, output: usize) -> Tolerance {
        match output {
            0 => Tolerance::TRANSCENDENTAL,
            // The input's halves, or an output of at most one correctly
            // rounded operation: the same halves on every device.
            _ if self.act.keeps_input()
                || matches!(
                    self.act,
                    Activation::Identity | Activation::Relu | Activation::LeakyRelu
                ) =>
            {
                Tolerance::EXACT
            }
            // A device's last-bit difference in the output can round to
            // the neighbouring half: one f16 step (2^-10 relative, 2^-24
            // among the subnormals).
            _ => Tolerance {
                abs: 6e-8,
                rel: 1.0 / 1024.0,
            },
        }
    }
}

/// `x` to f16 and back ([`Device::to_half`], [`Device::half_to_f32`]): the
/// same rounding on every device, so exact.
#[derive(Clone, Debug)]
pub struct HalfRoundTrip(usize);

impl Check for HalfRoundTrip {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        // Within f16's range (65504), across its exponents.
        let x = random(dev, rng, [self.0], 60000.0)?;
        let small = dev.scale(&x, 1e-9)?;
        let mut out = Vec::new();
        for t in [x, small] {
            out.push(dev.half_to_f32(&dev.to_half(&t)?)?);
        }
        Ok(out)
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::EXACT
    }
}

/// `dy · act'(x)`, from the activation's input `x`.
#[derive(Clone, Debug)]
pub struct ActivationBackwardFromInput {
    n: usize,
    act: Activation,
}

impl Check for ActivationBackwardFromInput {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, [self.n], 4.0)?;
        let dy = random(dev, rng, [self.n], 1.0)?;
        Ok(vec![dev.activation_backward_from_input(&x, &dy, self.act)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::TRANSCENDENTAL
    }
}

/// `a op b`, elementwise.
#[derive(Clone, Debug)]
pub struct BinaryOp {
    n: usize,
    op: Binary,
}

impl Check for BinaryOp {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let a = random(dev, rng, [self.n], 1.0)?;
        let b = random(dev, rng, [self.n], 1.0)?;
        Ok(vec![dev.binary(&a, &b, self.op)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::ROUNDING
    }
}

/// `s·a`.
#[derive(Clone, Debug)]
pub struct Scale(usize);

impl Check for Scale {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let a = random(dev, rng, [self.0], 1.0)?;
        Ok(vec![dev.scale(&a, -0.37)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::ROUNDING
    }
}

/// `a·s` for a scale `s` read from a `[1]` tensor (the loss scale).
#[derive(Clone, Debug)]
pub struct ScaleBy(usize);

impl Check for ScaleBy {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let a = random(dev, rng, [self.0], 1.0)?;
        // Uploaded, not filled: a fill writes the buffer's padding lanes
        // too, which would hide a kernel reading the wrong one.
        let s = dev.upload(&[1536.0], [1])?;
        Ok(vec![dev.scale_by(&a, &s)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::ROUNDING
    }
}

/// `s·a + b`.
#[derive(Clone, Debug)]
pub struct Axpy(usize);

impl Check for Axpy {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let a = random(dev, rng, [self.0], 1.0)?;
        let b = random(dev, rng, [self.0], 1.0)?;
        Ok(vec![dev.axpy(1.7, &a, &b)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::ROUNDING
    }
}

/// A constant, and zeros.
#[derive(Clone, Debug)]
pub struct Fill(usize);

impl Check for Fill {
    fn run<D: Device>(&self, dev: &D, _: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        Ok(vec![dev.full([self.0], 2.5)?, dev.zeros([self.0])?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::EXACT
    }
}

pub(super) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // 1 element, a partial workgroup, several, and many workgroups.
    for n in [1, 17, 1000, 70_001] {
        let shape = format!("[{n}]");
        for act in Activation::ALL {
            v.push(Case::new(
                format!("{act:?}"),
                &shape,
                ActivationForward { n, act },
            ));
            if !act.keeps_input() {
                v.push(Case::new(
                    format!("{act:?} backward"),
                    &shape,
                    ActivationBackward { n, act },
                ));
                v.push(Case::new(
                    format!("{act:?} backward from f16"),
                    &shape,
                    ActivationBackwardHalf { n, act },
                ));
            }
            v.push(Case::new(
                format!("{act:?} keeping f16"),
                &shape,
                ActivationKeepingHalf { n, act },
            ));
            v.push(Case::new(
                format!("{act:?} backward from input"),
                &shape,
                ActivationBackwardFromInput { n, act },
            ));
        }
        for op in [Binary::Add, Binary::Sub, Binary::Mul] {
            v.push(Case::new(format!("{op:?}"), &shape, BinaryOp { n, op }));
        }
        v.push(Case::new("scale", &shape, Scale(n)));
        v.push(Case::new("scale by", &shape, ScaleBy(n)));
        v.push(Case::new("axpy", &shape, Axpy(n)));
        v.push(Case::new("fill", &shape, Fill(n)));
        v.push(Case::new("to f16 and back", &shape, HalfRoundTrip(n)));
    }
    v
}
