//! Convolution (forward, both gradients), the bias gradient's channel sum,
//! and max and average pooling with their backward passes.

use super::{random, Case, ChaCha8Rng, Check, Tolerance};
use crate::device::{ConvStep, Device, PoolWindow, Tensor};
use crate::error::Result;
use crate::tensor::Shape;

/// The sizes of a convolution: `[n, ci, h, w] ⊛ [co, ci, k, k]`, zero
/// padding `pad` on every border, windows `stride` apart.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    n: usize,
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    k: usize,
    pad: usize,
    stride: usize,
}

impl ConvShape {
    fn step(&self) -> ConvStep {
        ConvStep {
            stride: self.stride,
            pad: self.pad,
        }
    }

    fn input(&self) -> [usize; 4] {
        [self.n, self.ci, self.h, self.w]
    }

    fn weight(&self) -> [usize; 4] {
        [self.co, self.ci, self.k, self.k]
    }

    fn output(&self) -> [usize; 4] {
        let (p, k, s) = (self.pad, self.k, self.stride);
        [
            self.n,
            self.co,
            (self.h + 2 * p - k) / s + 1,
            (self.w + 2 * p - k) / s + 1,
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
        Ok(vec![dev.conv2d(&x, &w, b.as_ref(), s.step())?])
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
        Ok(vec![dev.conv2d_input_grad(
            &dy,
            &w,
            &Shape::new(s.input()),
            s.step(),
        )?])
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
        Ok(vec![dev.conv2d_weight_grad(
            &x,
            &dy,
            s.step(),
            (s.k, s.k),
        )?])
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

/// Max pooling: the maxima, their positions, and the gradient routed back
/// to them.
#[derive(Clone, Debug)]
pub struct MaxPool {
    shape: Shape,
    win: PoolWindow,
}

impl Check for MaxPool {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, &self.shape, 1.0)?;
        let (y, arg) = dev.max_pool2d(&x, self.win)?;
        let dy = random(dev, rng, y.shape(), 1.0)?;
        let dx = dev.max_pool2d_backward(&dy, &arg, &self.shape, self.win)?;
        Ok(vec![y, arg, dx])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::EXACT
    }
}

/// Average pooling: the means and the gradient spread back over each
/// window.
#[derive(Clone, Debug)]
pub struct AvgPool {
    shape: Shape,
    win: PoolWindow,
}

impl Check for AvgPool {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, &self.shape, 1.0)?;
        let y = dev.avg_pool2d(&x, self.win)?;
        let dy = random(dev, rng, y.shape(), 1.0)?;
        let dx = dev.avg_pool2d_backward(&dy, &self.shape, self.win)?;
        Ok(vec![y, dx])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        // Each output sums size² inputs; each input at most that many windows.
        Tolerance::sum_of(self.win.size * self.win.size)
    }
}

pub(super) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // C_in 1 to 10, odd sizes, padding 0..3, kernels 1 to 7, strides 1 to 3
    // (with sizes the stride does not divide, so the last window is cut).
    for (n, ci, h, w, co, k, pad, stride) in [
        (1, 1, 5, 5, 1, 3, 1, 1),
        (2, 3, 7, 9, 4, 3, 1, 1),
        (2, 1, 28, 28, 8, 3, 1, 1),
        (3, 3, 6, 5, 2, 2, 0, 1),
        (1, 2, 4, 4, 3, 1, 0, 1),
        (2, 3, 5, 7, 2, 5, 2, 1),
        // The largest kernels the grammar is checked for: 6 (even) and 7.
        (2, 2, 9, 8, 3, 6, 0, 1),
        (1, 3, 11, 10, 9, 7, 3, 1),
        // More than 8 input channels: a full block of 8 and a partial one
        // (the input gradient's channel blocks), at strides 1 and 2.
        (2, 10, 6, 7, 4, 3, 1, 1),
        (2, 9, 7, 6, 5, 3, 1, 2),
        // Strided: the downsampling 3×3/2 of ResNets, a 1×1/2 shortcut, a
        // 7×7/2 stem, and strides 2 and 3 on odd sizes.
        (2, 3, 9, 8, 9, 3, 1, 2),
        (2, 5, 8, 7, 4, 1, 0, 2),
        (1, 3, 15, 13, 8, 7, 3, 2),
        (3, 2, 10, 11, 3, 4, 1, 3),
        (2, 4, 7, 7, 10, 2, 0, 2),
        // A stride past the input (one window per axis), beyond u32.
        (1, 2, 5, 4, 3, 3, 1, (u32::MAX as usize) + 9),
    ] {
        let s = ConvShape {
            n,
            ci,
            h,
            w,
            co,
            k,
            pad,
            stride,
        };
        let shape = format!("{n}×{ci}×{h}×{w} ⊛ {co}×{ci}×{k}×{k} stride {stride} pad {pad}");
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
    // Tiled, overlapping (stride < size) and gapped (stride > size).
    for (s, k, stride) in [
        ([2, 3, 4, 4], 2, 2),
        ([1, 2, 7, 5], 2, 2),
        ([2, 1, 6, 6], 3, 3),
        ([3, 4, 28, 28], 2, 2),
        ([2, 3, 9, 8], 3, 2),
        ([1, 2, 7, 10], 3, 1),
        ([2, 2, 11, 9], 2, 3),
        ([1, 2, 3, 4], 1, (u32::MAX as usize) + 9),
    ] {
        let shape = Shape::new(s);
        let win = PoolWindow::new(k, stride);
        v.push(Case::new(
            format!("max pool {k}×{k}/{stride} fwd+bwd"),
            shape.to_string(),
            MaxPool {
                shape: shape.clone(),
                win,
            },
        ));
        v.push(Case::new(
            format!("avg pool {k}×{k}/{stride} fwd+bwd"),
            shape.to_string(),
            AvgPool { shape, win },
        ));
    }
    v
}
