//! Parameter-free layers: an elementwise activation, flattening, and the
//! one-hot encoding of token ids.

use super::{cached, Kept, Layer};
use crate::device::{Activation, Device, Tensor};
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// `y = act(x)` elementwise.
pub struct Act<D: Device> {
    act: Activation,
    /// The output, or the input for an activation that
    /// [`Activation::keeps_input`] (in f16 under `Precision::F16`).
    kept: Option<Kept<D>>,
}

impl<D: Device> Act<D> {
    /// An activation layer applying `act`.
    pub fn new(act: Activation) -> Self {
        Act { act, kept: None }
    }
}

impl<D: Device> Layer<D> for Act<D> {
    fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor> {
        if !train {
            return dev.activation(x, self.act);
        }
        let (y, kept) = Kept::activation(dev, x, self.act)?;
        self.kept = Some(kept);
        Ok(y)
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        if !need_dx {
            return Ok(None);
        }
        let kept = cached(&self.kept, "activation")?;
        Ok(Some(if self.act.keeps_input() {
            dev.activation_backward_from_input(&kept.to_f32(dev)?, dy, self.act)?
        } else {
            kept.activation_backward(dev, dy, self.act)?
        }))
    }
}

/// `[batch, ...]` → `[batch, features]`.
pub struct Flatten {
    shape: Option<Shape>,
}

impl Flatten {
    /// A flattening layer (no parameters).
    pub fn new() -> Self {
        Flatten { shape: None }
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Device> Layer<D> for Flatten {
    fn forward(&mut self, dev: &D, x: &D::Tensor, _train: bool) -> Result<D::Tensor> {
        self.shape = Some(x.shape().clone());
        dev.reshape(x, [x.shape().rows(), x.shape().row_len()])
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        if !need_dx {
            return Ok(None);
        }
        Ok(Some(dev.reshape(dy, cached(&self.shape, "flatten")?)?))
    }
}

/// The last step of a time-major sequence: `[T, B, F]` → `[B, F]`.
#[derive(Default)]
pub struct LastStep {
    shape: Option<Shape>,
}

impl LastStep {
    /// A many-to-one read-out.
    pub fn new() -> Self {
        LastStep { shape: None }
    }
}

impl<D: Device> Layer<D> for LastStep {
    fn forward(&mut self, dev: &D, x: &D::Tensor, _train: bool) -> Result<D::Tensor> {
        let (t, b, f) = match *x.shape().dims() {
            [t, b, f] if t > 0 => (t, b, f),
            _ => {
                return Err(Error::shape(
                    "last",
                    format!("input must be [T,B,F] with T ≥ 1, got {}", x.shape()),
                ))
            }
        };
        self.shape = Some(x.shape().clone());
        let rows = dev.reshape(x, [t * b, f])?;
        dev.slice_rows(&rows, (t - 1) * b, b)
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        if !need_dx {
            return Ok(None);
        }
        let shape = cached(&self.shape, "last")?.clone();
        let [t, b, f] = shape.dims()[..] else {
            unreachable!("checked in forward")
        };
        // The earlier steps get no gradient from here.
        let dx = if t > 1 {
            dev.concat_rows(&dev.zeros([(t - 1) * b, f])?, dy)?
        } else {
            dy.clone()
        };
        Ok(Some(dev.reshape(&dx, shape)?))
    }
}

/// Token ids of any shape `[..]` → one-hot `[.., depth]`. Only ever the first
/// layer: ids have no gradient.
pub struct OneHot {
    depth: usize,
}

impl OneHot {
    /// One-hot encoding over a vocabulary of `depth` token ids.
    pub fn new(depth: usize) -> Self {
        OneHot { depth }
    }
}

impl<D: Device> Layer<D> for OneHot {
    fn forward(&mut self, dev: &D, x: &D::Tensor, _train: bool) -> Result<D::Tensor> {
        let mut dims = x.shape().dims().to_vec();
        dims.push(self.depth);
        let flat = dev.one_hot(x, self.depth)?;
        dev.reshape(&flat, Shape::new(dims))
    }

    fn backward(&mut self, _dev: &D, _dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        if need_dx {
            return Err(Error::Config(
                "one-hot encoding has no input gradient: it must be the first layer".into(),
            ));
        }
        Ok(None)
    }
}
