//! Convolution (forward, both gradients), the bias gradient's channel sum,
//! and max pooling with its backward pass.

use super::{random, Case, ChaCha8Rng, Check, Tolerance};
use crate::device::{Device, Tensor};
use crate::error::Result;
use crate::tensor::Shape;

/// The sizes of a convolution: `[n, ci, h, w] ⊛ [co, ci, k, k]`, zero
/// padding `pad` on every border, stride 1.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    n: usize,
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    k: usize,
    pad: usize,
}

impl ConvShape {
    fn input(&self) -> [usize; 4] {
        [self.n, self.ci, self.h, self.w]
    }

    fn weight(&self) -> [usize; 4] {
        [self.co, self.ci, self.k, self.k]
    }

    fn output(&self) -> [usize; 4] {
        let (p, k) = (self.pad, self.k);
        [
            self.n,
            self.co,
            self.h + 2 * p + 1 - k,
            self.w + 2 * p + 1 - k,
        ]
    }
}

/// The forward convolution, with or without bias.
#[derive(Clone, Debug)]
pub struct Conv {
    s: ConvShape,
    bias: bool,
}

impl Check for Conv {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let s = self.s;
        let x = random(dev, rng, s.input(), 1.0)?;
        let w = random(dev, rng, s.weight(), 1.0)?;
        let b = if self.bias {
            Some(random(dev, rng, [s.co], 1.0)?)
        } else {
            None
        };
        Ok(vec![dev.conv2d(&x, &w, b.as_ref(), s.pad)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::sum_of(self.s.ci * self.s.k * self.s.k)
    }
}

/// The gradient with respect to the input.
#[derive(Clone, Debug)]
pub struct ConvInputGrad(ConvShape);

impl Check for ConvInputGrad {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let s = self.0;
        let dy = random(dev, rng, s.output(), 1.0)?;
        let w = random(dev, rng, s.weight(), 1.0)?;
        Ok(vec![dev.conv2d_input_grad(&dy, &w, s.pad)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::sum_of(self.0.co * self.0.k * self.0.k)
    }
}

/// The gradient with respect to the weights.
#[derive(Clone, Debug)]
pub struct ConvWeightGrad(ConvShape);

impl Check for ConvWeightGrad {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let s = self.0;
        let x = random(dev, rng, s.input(), 1.0)?;
        let dy = random(dev, rng, s.output(), 1.0)?;
        Ok(vec![dev.conv2d_weight_grad(&x, &dy, s.pad, (s.k, s.k))?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::sum_of(self.0.n * self.0.h * self.0.w)
    }
}

/// Sums over everything but the channel axis of `[n, c, h, w]`.
#[derive(Clone, Debug)]
pub struct ChannelSum(Shape);

impl Check for ChannelSum {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, &self.0, 1.0)?;
        Ok(vec![dev.channel_sum(&x)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::sum_of(self.0.numel() / self.0.dim(1))
    }
}

/// Max pooling over `k×k` windows: the maxima, their positions, and the
/// gradient routed back to them.
#[derive(Clone, Debug)]
pub struct MaxPool {
    shape: Shape,
    k: usize,
}

impl Check for MaxPool {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, &self.shape, 1.0)?;
        let (y, arg) = dev.max_pool2d(&x, self.k)?;
        let dy = random(dev, rng, y.shape(), 1.0)?;
        let dx = dev.max_pool2d_backward(&dy, &arg, &self.shape, self.k)?;
        Ok(vec![y, arg, dx])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::EXACT
    }
}

/// Average pooling over `k×k` windows: the means and the gradient spread
/// back over each window.
#[derive(Clone, Debug)]
pub struct AvgPool {
    shape: Shape,
    k: usize,
}

impl Check for AvgPool {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, &self.shape, 1.0)?;
        let y = dev.avg_pool2d(&x, self.k)?;
        let dy = random(dev, rng, y.shape(), 1.0)?;
        let dx = dev.avg_pool2d_backward(&dy, &self.shape, self.k)?;
        Ok(vec![y, dx])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::sum_of(self.k * self.k)
    }
}

pub(super) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // C_in 1 to 3, odd sizes, padding 0..3, kernels 1 to 7.
    for (n, ci, h, w, co, k, pad) in [
        (1, 1, 5, 5, 1, 3, 1),
        (2, 3, 7, 9, 4, 3, 1),
        (2, 1, 28, 28, 8, 3, 1),
        (3, 3, 6, 5, 2, 2, 0),
        (1, 2, 4, 4, 3, 1, 0),
        (2, 3, 5, 7, 2, 5, 2),
        // The largest kernels the grammar is checked for: 6 (even) and 7.
        (2, 2, 9, 8, 3, 6, 0),
        (1, 3, 11, 10, 9, 7, 3),
    ] {
        let s = ConvShape {
            n,
            ci,
            h,
            w,
            co,
            k,
            pad,
        };
        let shape = format!("{n}×{ci}×{h}×{w} ⊛ {co}×{ci}×{k}×{k} pad {pad}");
        v.push(Case::new("conv2d", &shape, Conv { s, bias: false }));
        v.push(Case::new("conv2d+bias", &shape, Conv { s, bias: true }));
        v.push(Case::new("conv2d input grad", &shape, ConvInputGrad(s)));
        v.push(Case::new("conv2d weight grad", shape, ConvWeightGrad(s)));
    }
    for s in [[1, 1, 1, 1], [2, 3, 5, 7], [4, 8, 14, 14]] {
        let shape = Shape::new(s);
        v.push(Case::new(
            "channel sum",
            shape.to_string(),
            ChannelSum(shape),
        ));
    }
    for (s, k) in [
        ([2, 3, 4, 4], 2),
        ([1, 2, 7, 5], 2),
        ([2, 1, 6, 6], 3),
        ([3, 4, 28, 28], 2),
    ] {
        let shape = Shape::new(s);
        v.push(Case::new(
            format!("max pool {k}×{k} fwd+bwd"),
            shape.to_string(),
            MaxPool {
                shape: shape.clone(),
                k,
            },
        ));
        v.push(Case::new(
            format!("avg pool {k}×{k} fwd+bwd"),
            shape.to_string(),
            AvgPool { shape, k },
        ));
    }
    v
}
