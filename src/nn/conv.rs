//! Convolution (stride, zero padding, bias) and max- and average-pooling
//! layers.

use rand_chacha::ChaCha8Rng;

use super::{cached, init_weights, Kept, Layer, Param};
use crate::device::{Activation, ConvStep, Device, PoolWindow, Tensor};
use crate::error::Result;
use crate::tensor::Shape;

/// `y = x ⊛ W + b` over `[N, C, H, W]` images.
pub struct Conv2d<D: Device> {
    /// Kernels `[out, in, k, k]`; named `{name}.weight`.
    pub weight: Param<D>, // [out, in, k, k]
    /// One bias per output channel, `[out]`; named `{name}.bias`.
    pub bias: Param<D>, // [out]
    kernel: usize,
    step: ConvStep,
    /// The input, for the weight gradient (in f16 under `Precision::F16`,
    /// unless it is the model's input, which outlives the step anyway).
    x: Option<Kept<D>>,
    input_outlives_step: bool,
}

impl<D: Device> Conv2d<D> {
    /// A `kernel×kernel` convolution from `inputs` to `outputs` channels, moved
    /// as `step` says (stride, zero padding on each side). Weights are initialised for the activation `init_for` that
    /// follows (see `init_weights`); the bias starts at zero.
    pub fn new(
        dev: &D,
        name: &str,
        (inputs, outputs): (usize, usize),
        kernel: usize,
        step: ConvStep,
        init_for: Activation,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let area = kernel * kernel;
        // Glorot unless a ReLU follows (He); see `init_weights`.
        let w = init_weights(
            rng,
            outputs * inputs * area,
            inputs * area,
            outputs * area,
            init_for,
        );
        Ok(Conv2d {
            weight: Param::new(
                format!("{name}.weight"),
                dev.upload(&w, [outputs, inputs, kernel, kernel])?,
                true,
            ),
            bias: Param::new(format!("{name}.bias"), dev.zeros([outputs])?, false),
            kernel,
            step,
            x: None,
            input_outlives_step: false,
        })
    }
}

impl<D: Device> Layer<D> for Conv2d<D> {
    fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor> {
        let y = dev.conv2d(x, &self.weight.value, Some(&self.bias.value), self.step)?;
        if train {
            self.x = Some(if self.input_outlives_step {
                Kept::Full(x.clone())
            } else {
                Kept::new(dev, x.clone())?
            });
        }
        Ok(y)
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        let x = cached(&self.x, "conv2d")?;
        let k = (self.kernel, self.kernel);
        let x_f32 = x.to_f32(dev)?;
        self.weight.grad = Some(dev.conv2d_weight_grad(&x_f32, dy, self.step, k)?);
        self.bias.grad = Some(dev.channel_sum(dy)?);
        if !need_dx {
            return Ok(None);
        }
        Ok(Some(dev.conv2d_input_grad(
            dy,
            &self.weight.value,
            x.shape(),
            self.step,
        )?))
    }

    fn params(&self) -> Vec<&Param<D>> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param<D>> {
        vec![&mut self.weight, &mut self.bias]
    }

    fn set_input_outlives_step(&mut self, outlives: bool) {
        self.input_outlives_step = outlives;
    }
}

/// Max over `size×size` windows `stride` apart.
pub struct MaxPool2d<D: Device> {
    win: PoolWindow,
    argmax: Option<D::Tensor>,
    x_shape: Option<Shape>,
}

impl<D: Device> MaxPool2d<D> {
    /// Pooling over the windows of `win`.
    pub fn new(win: PoolWindow) -> Self {
        MaxPool2d {
            win,
            argmax: None,
            x_shape: None,
        }
    }
}

/// Mean over `size×size` windows `stride` apart.
pub struct AvgPool2d {
    win: PoolWindow,
    x_shape: Option<Shape>,
}

impl AvgPool2d {
    /// Pooling over the windows of `win`.
    pub fn new(win: PoolWindow) -> Self {
        AvgPool2d { win, x_shape: None }
    }
}

impl<D: Device> Layer<D> for AvgPool2d {
    fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor> {
        if train {
            self.x_shape = Some(x.shape().clone());
        }
        dev.avg_pool2d(x, self.win)
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        if !need_dx {
            return Ok(None);
        }
        let shape = cached(&self.x_shape, "avg_pool2d")?;
        Ok(Some(dev.avg_pool2d_backward(dy, shape, self.win)?))
    }
}

impl<D: Device> Layer<D> for MaxPool2d<D> {
    fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor> {
        let (y, argmax) = dev.max_pool2d(x, self.win)?;
        if train {
            self.argmax = Some(argmax);
            self.x_shape = Some(x.shape().clone());
        }
        Ok(y)
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        if !need_dx {
            return Ok(None);
        }
        let argmax = cached(&self.argmax, "max_pool2d")?;
        let shape = cached(&self.x_shape, "max_pool2d")?;
        Ok(Some(dev.max_pool2d_backward(dy, argmax, shape, self.win)?))
    }
}
