//! [`Kept`]: a tensor a layer keeps for its backward pass, in f16 where the
//! device's products round to f16 anyway.

use crate::device::{Activation, Device, MatmulSpec, Precision, Tensor};
use crate::error::Result;
use crate::tensor::Shape;

/// A tensor kept from the forward pass for the backward pass: as it is
/// under [`Precision::F32`]; under [`Precision::F16`] in f16
/// ([`Device::to_half`]), at half the bytes on a GPU, so that the f32
/// tensor goes back to the pool once the forward pass is done with it.
///
/// For the tensors the backward pass reads as a product's operand
/// ([`Kept::matmul`], whose operands `F16` rounds to f16 anyway), as the
/// output an activation's derivative is written through
/// ([`Kept::activation_backward`]), or through [`Kept::to_f32`] (a
/// convolution's input for its weight gradient, an activation's input for
/// a derivative taken from the input, a recurrent layer's states, cells
/// and gates for its backward recurrence): the backward pass then sees
/// them rounded to f16, as mixed precision keeps activations (the forward
/// recurrence itself runs on the exact f32 states). Not for what must stay
/// exact: integer indices (max pooling's, token ids), a norm's statistics.
pub enum Kept<D: Device> {
    /// Kept as it is.
    Full(D::Tensor),
    /// Kept in f16.
    Half(D::Half),
}

impl<D: Device> Kept<D> {
    /// Keeps `t` as the device's precision asks.
    pub fn new(dev: &D, t: D::Tensor) -> Result<Self> {
        Ok(match dev.precision() {
            Precision::F32 => Kept::Full(t),
            Precision::F16 => Kept::Half(dev.to_half(&t)?),
        })
    }

    /// `act(x)`, and what an activation's derivative is taken from (`x`
    /// where `act` [`Activation::keeps_input`], else the output) kept as
    /// the device's precision asks: under `F16` in the same pass on a GPU
    /// ([`Device::activation_keeping_half`]).
    pub fn activation(dev: &D, x: &D::Tensor, act: Activation) -> Result<(D::Tensor, Self)> {
        Ok(match dev.precision() {
            Precision::F32 => {
                let y = dev.activation(x, act)?;
                let kept = if act.keeps_input() {
                    x.clone()
                } else {
                    y.clone()
                };
                (y, Kept::Full(kept))
            }
            Precision::F16 => {
                let (y, kept) = dev.activation_keeping_half(x, act)?;
                (y, Kept::Half(kept))
            }
        })
    }

    /// The kept tensor's shape.
    pub fn shape(&self) -> &Shape {
        match self {
            Kept::Full(t) => t.shape(),
            Kept::Half(t) => t.shape(),
        }
    }

    /// The kept tensor in f32: itself, or its f16 values
    /// ([`Device::half_to_f32`], a new tensor on each call).
    pub fn to_f32(&self, dev: &D) -> Result<D::Tensor> {
        match self {
            Kept::Full(t) => Ok(t.clone()),
            Kept::Half(t) => dev.half_to_f32(t),
        }
    }

    /// [`Device::matmul`] with the kept tensor as `a`.
    pub fn matmul(
        &self,
        dev: &D,
        b: &D::Tensor,
        bias: Option<&D::Tensor>,
        spec: MatmulSpec,
    ) -> Result<D::Tensor> {
        match self {
            Kept::Full(a) => dev.matmul(a, b, bias, spec),
            Kept::Half(a) => dev.matmul_half(a, b, bias, spec),
        }
    }

    /// [`Device::activation_backward`] through the kept output.
    pub fn activation_backward(
        &self,
        dev: &D,
        dy: &D::Tensor,
        act: Activation,
    ) -> Result<D::Tensor> {
        match self {
            Kept::Full(y) => dev.activation_backward(y, dy, act),
            Kept::Half(y) => dev.activation_backward_half(y, dy, act),
        }
    }
}
