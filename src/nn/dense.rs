//! Fully connected layer `y = act(x·W + b)`, with the bias and activation
//! fused into the matmul.

use rand_chacha::ChaCha8Rng;

use super::{cached, init_weights, Kept, Layer, Param};
use crate::device::{Activation, Device, MatmulSpec, Tensor};
use crate::error::Result;
use crate::tensor::Shape;

/// Fully connected layer `y = act(x·W + b)` on the last dimension of its input.
pub struct Dense<D: Device> {
    /// Weights `[inputs, outputs]`; named `{name}.weight`.
    pub weight: Param<D>, // [inputs, outputs]
    /// Bias `[outputs]`; named `{name}.bias`.
    pub bias: Param<D>, // [outputs]
    act: Activation,
    x: Option<Kept<D>>, // input, as a matrix
    x_shape: Option<Shape>,
    y: Option<Kept<D>>, // output (for the activation's derivative)
}

impl<D: Device> Dense<D> {
    /// A layer from `inputs` to `outputs` features with activation `act`: weights
    /// initialised by `init_weights`, bias zero. `act` must be one whose
    /// derivative the output gives (not [`Activation::keeps_input`]: a
    /// dense layer keeps only its output).
    pub fn new(
        dev: &D,
        name: &str,
        inputs: usize,
        outputs: usize,
        act: Activation,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        Self::with_init(dev, name, (inputs, outputs), act, act, rng)
    }

    /// [`Dense::new`] with weights drawn for the activation `init` (the one
    /// that follows, when it is not fused: GELU).
    pub fn with_init(
        dev: &D,
        name: &str,
        (inputs, outputs): (usize, usize),
        act: Activation,
        init: Activation,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        if act.keeps_input() {
            return Err(crate::error::Error::Config(format!(
                "{name}: a dense layer cannot fuse {} (its derivative needs the input)",
                act.name()
            )));
        }
        let w = init_weights(rng, inputs * outputs, inputs, outputs, init);
        Ok(Dense {
            weight: Param::new(
                format!("{name}.weight"),
                dev.upload(&w, [inputs, outputs])?,
                true,
            ),
            bias: Param::new(format!("{name}.bias"), dev.zeros([outputs])?, false),
            act,
            x: None,
            x_shape: None,
            y: None,
        })
    }
}

impl<D: Device> Layer<D> for Dense<D> {
    /// Works on the last dimension: `[B, F]`, or a time-major sequence
    /// `[T, B, F]` (every step through the same weights, as one matmul).
    fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor> {
        let shape = x.shape().clone();
        let features = *shape.dims().last().unwrap_or(&0);
        let x2 = if shape.rank() == 2 {
            x.clone()
        } else {
            dev.reshape(x, [shape.numel() / features.max(1), features])?
        };
        let spec = MatmulSpec::NN.with_act(self.act);
        let y = dev.matmul(&x2, &self.weight.value, Some(&self.bias.value), spec)?;
        let out = if shape.rank() == 2 {
            y.clone()
        } else {
            let mut dims = shape.dims().to_vec();
            *dims.last_mut().expect("rank > 2") = y.shape().dim(1);
            dev.reshape(&y, Shape::new(dims))?
        };
        if train {
            self.x = Some(Kept::new(dev, x2)?);
            self.x_shape = Some(shape);
            self.y = match self.act {
                Activation::Identity => None,
                _ => Some(Kept::new(dev, y)?),
            };
        }
        Ok(out)
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        let x = cached(&self.x, "dense")?;
        let outputs = self.bias.value.shape().numel();
        let dy = &dev.reshape(dy, [dy.shape().numel() / outputs.max(1), outputs])?;
        let dz = match &self.y {
            Some(y) => y.activation_backward(dev, dy, self.act)?,
            None => dy.clone(),
        };
        self.weight.grad = Some(x.matmul(dev, &dz, None, MatmulSpec::TN)?);
        self.bias.grad = Some(dev.sum_rows(&dz)?);
        if !need_dx {
            return Ok(None);
        }
        let dx = dev.matmul(&dz, &self.weight.value, None, MatmulSpec::NT)?;
        Ok(Some(dev.reshape(&dx, cached(&self.x_shape, "dense")?)?))
    }

    fn params(&self) -> Vec<&Param<D>> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param<D>> {
        vec![&mut self.weight, &mut self.bias]
    }
}
