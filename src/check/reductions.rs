//! Sums, maxima, softmax, the fused losses with their gradients, argmax and
//! counting.

use super::{ints, random, Case, ChaCha8Rng, Check, Tolerance};
use crate::device::{Device, Reduce};
use crate::error::Result;

/// Column sums of `[r, c]` (a sum over the rows).
#[derive(Clone, Debug)]
pub struct SumRows(usize, usize);

impl Check for SumRows {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, [self.0, self.1], 1.0)?;
        Ok(vec![dev.sum_rows(&x)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::sum_of(self.0)
    }
}

/// Row sums of `[r, c]` (a sum over the columns).
#[derive(Clone, Debug)]
pub struct SumCols(usize, usize);

impl Check for SumCols {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, [self.0, self.1], 1.0)?;
        Ok(vec![dev.sum_cols(&x)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::sum_of(self.1)
    }
}

/// A whole tensor reduced to one value.
#[derive(Clone, Debug)]
pub struct ReduceAll {
    n: usize,
    op: Reduce,
}

impl Check for ReduceAll {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, [self.n], 1.0)?;
        Ok(vec![dev.reduce(&x, self.op)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        match self.op {
            // The maximum is exact, whatever the order.
            Reduce::Max => Tolerance::EXACT,
            _ => Tolerance::sum_of(self.n),
        }
    }
}

/// The squared norm of tensors of these sizes together (clipping's; the
/// GPU reads them all in one dispatch, masking each one's padding).
#[derive(Clone, Debug)]
pub struct SumSquaresMany(Vec<usize>);

impl Check for SumSquaresMany {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let xs = self
            .0
            .iter()
            .map(|&n| random(dev, rng, [n], 1.0))
            .collect::<Result<Vec<_>>>()?;
        Ok(vec![dev.sum_squares_many(&xs.iter().collect::<Vec<_>>())?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::sum_of(self.0.iter().sum())
    }
}

/// exp(x − lse): lse's rounding becomes a relative error of a few ulp in
/// every probability.
const PROBABILITIES: Tolerance = Tolerance {
    abs: 1e-7,
    rel: 1e-5,
};

/// Row-wise softmax of `[r, c]`.
#[derive(Clone, Debug)]
pub struct Softmax(usize, usize);

impl Check for Softmax {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, [self.0, self.1], 5.0)?;
        Ok(vec![dev.softmax_rows(&x)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        PROBABILITIES
    }
}

/// Softmax cross-entropy of `[r, c]` logits against `r` labels: the loss
/// and its gradient.
#[derive(Clone, Debug)]
pub struct SoftmaxXent(usize, usize);

impl Check for SoftmaxXent {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let (r, c) = (self.0, self.1);
        let x = random(dev, rng, [r, c], 5.0)?;
        let y = dev.upload(&ints(rng, r, c), [r])?;
        let lg = dev.softmax_cross_entropy(&x, &y)?;
        Ok(vec![lg.loss, lg.grad])
    }

    fn tolerance(&self, output: usize) -> Tolerance {
        match output {
            // The mean over rows of log-sum-exps: summed in another order.
            0 => Tolerance {
                abs: 1e-6,
                rel: 4e-5,
            },
            // (softmax − onehot)/r, per element.
            _ => Tolerance {
                abs: 1e-7 / self.0 as f32,
                ..PROBABILITIES
            },
        }
    }
}

/// A loss's gradient is per element, a few roundings each, and is held to
/// that, not to the loss sum's allowance: (σ(z) − t)/n or 2(p − t)/n, where
/// the exp of σ differs by a few ulp.
fn loss_gradient(n: usize) -> Tolerance {
    Tolerance {
        abs: 1e-6 / n as f32,
        rel: 1e-5,
    }
}

/// Mean squared error of `n` predictions: the loss and its gradient.
#[derive(Clone, Debug)]
pub struct Mse(usize);

impl Check for Mse {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let p = random(dev, rng, [self.0], 1.0)?;
        let t = random(dev, rng, [self.0], 1.0)?;
        let lg = dev.mse(&p, &t)?;
        Ok(vec![lg.loss, lg.grad])
    }

    fn tolerance(&self, output: usize) -> Tolerance {
        match output {
            0 => Tolerance::sum_of(self.0),
            _ => loss_gradient(self.0),
        }
    }
}

/// Binary cross-entropy with logits of magnitude up to `spread`: the loss
/// and its gradient.
#[derive(Clone, Debug)]
pub struct Bce {
    n: usize,
    spread: f32,
}

impl Check for Bce {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let z = random(dev, rng, [self.n], self.spread)?;
        let t = dev.upload(&ints(rng, self.n, 2), [self.n])?;
        let lg = dev.bce_with_logits(&z, &t)?;
        Ok(vec![lg.loss, lg.grad])
    }

    fn tolerance(&self, output: usize) -> Tolerance {
        match output {
            // A sum of n softplus terms, each with a log and an exp.
            0 => Tolerance {
                abs: 1e-6 * (self.n as f32),
                rel: 1e-4,
            },
            _ => loss_gradient(self.n),
        }
    }
}

/// Layer normalisation of `[r, c]` forward and back: `y`, the statistics,
/// `dx`, `dgamma`, `dbeta`.
#[derive(Clone, Debug)]
pub struct LayerNorm(usize, usize);

impl Check for LayerNorm {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let (r, c) = (self.0, self.1);
        // An offset and a spread per row, as real activations have.
        let x = random(dev, rng, [r, c], 3.0)?;
        let gamma = random(dev, rng, [c], 1.0)?;
        let beta = random(dev, rng, [c], 1.0)?;
        let (y, stats) = dev.layer_norm(&x, &gamma, &beta, 1e-5)?;
        let dy = random(dev, rng, [r, c], 1.0)?;
        let (dx, dgamma, dbeta) = dev.layer_norm_backward(&dy, &x, &stats, &gamma)?;
        Ok(vec![y, stats, dx, dgamma, dbeta])
    }

    fn tolerance(&self, output: usize) -> Tolerance {
        match output {
            // Per-row sums of c terms, then a division by the spread: the
            // sum's bound relative to values of order 1.
            0..=2 => Tolerance::sum_of(2 * self.1),
            // Sums over the rows.
            _ => Tolerance::sum_of(2 * self.0),
        }
    }
}

/// Batch normalisation of `[N, C, S…]` with its own statistics: the
/// statistics, the output, and the three gradients.
#[derive(Clone, Debug)]
pub struct BatchNorm(Vec<usize>);

impl Check for BatchNorm {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let shape = self.0.clone();
        let c = shape[1];
        let x = random(dev, rng, shape.clone(), 3.0)?;
        let gamma = random(dev, rng, [c], 1.0)?;
        let beta = random(dev, rng, [c], 1.0)?;
        let stats = dev.channel_stats(&x)?;
        let y = dev.batch_norm(&x, &stats, &gamma, &beta, 1e-5)?;
        let dy = random(dev, rng, shape, 1.0)?;
        let (dx, dgamma, dbeta) = dev.batch_norm_backward(&dy, &x, &stats, &gamma, 1e-5)?;
        Ok(vec![stats, y, dx, dgamma, dbeta])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        // Every output rests on sums over a channel's N·S values (of
        // magnitude ≤ 3, then divided by the spread).
        let m = self.0[0] * self.0[2..].iter().product::<usize>();
        Tolerance::sum_of(3 * m)
    }
}

/// The index of each row's maximum.
#[derive(Clone, Debug)]
pub struct Argmax(usize, usize);

impl Check for Argmax {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, [self.0, self.1], 1.0)?;
        Ok(vec![dev.argmax_rows(&x)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::EXACT
    }
}

/// How many of `n` labels agree (a count is exact).
#[derive(Clone, Debug)]
pub struct CountEqual(usize);

impl Check for CountEqual {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let a = dev.upload(&ints(rng, self.0, 3), [self.0])?;
        let b = dev.upload(&ints(rng, self.0, 3), [self.0])?;
        Ok(vec![dev.count_equal(&a, &b)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::EXACT
    }
}

pub(super) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // On a software adapter, 20×1000 and 70×8 take the vec4
    // one-invocation-per-row kernel (70 rows: two workgroups); the others the
    // workgroup per row (fewer than 16 rows, or a length not a multiple of 4).
    for (r, c) in [(1, 1), (3, 5), (130, 257), (7, 1000), (20, 1000), (70, 8)] {
        v.push(Case::new(
            "sum over rows",
            format!("{r}×{c}"),
            SumRows(r, c),
        ));
        v.push(Case::new(
            "sum over columns",
            format!("{r}×{c}"),
            SumCols(r, c),
        ));
    }
    for n in [1, 1000, 300_001] {
        for op in [Reduce::Sum, Reduce::SumSquares, Reduce::Max] {
            v.push(Case::new(
                format!("reduce {op:?}"),
                format!("[{n}]"),
                ReduceAll { n, op },
            ));
        }
    }
    // Lengths that end mid-vec4 and mid-workgroup, one over a workgroup's
    // 4,096 values (4 · 256 vec4s), and (the second) more tensors than one
    // dispatch binds on an adapter of 32 storage bindings per stage.
    let many = (0..40).map(|i| 1 + (i * 53) % 97).collect::<Vec<_>>();
    for sizes in [vec![5, 1, 4103, 3, 64, 250], many] {
        v.push(Case::new(
            "sum of squares (many)",
            format!(
                "{} tensors, {} values",
                sizes.len(),
                sizes.iter().sum::<usize>()
            ),
            SumSquaresMany(sizes),
        ));
    }
    // Rows up to 256 long take the one-invocation-per-row kernels (20×30),
    // longer ones a workgroup each (5×300, 17×301); on a software adapter,
    // 16 rows or more of a multiple of 4 take the vec4 one (70×256, 17×300);
    // 70 rows span two 64-invocation workgroups.
    for (r, c) in [
        (1, 1),
        (3, 5),
        (20, 30),
        (70, 256),
        (17, 300),
        (5, 300),
        (17, 301),
    ] {
        v.push(Case::new("softmax", format!("{r}×{c}"), Softmax(r, c)));
    }
    for (r, c) in [(1, 3), (17, 10), (70, 64), (64, 300)] {
        v.push(Case::new(
            "softmax cross-entropy",
            format!("{r}×{c}"),
            SoftmaxXent(r, c),
        ));
    }
    for n in [1, 15, 1000] {
        v.push(Case::new("mse", format!("[{n}]"), Mse(n)));
    }
    for (n, spread) in [(1, 3.0), (257, 3.0), (257, 60.0)] {
        v.push(Case::new(
            "bce with logits",
            format!("[{n}] |z|≤{spread}"),
            Bce { n, spread },
        ));
    }
    for (r, c) in [(3, 5), (64, 10), (5, 1000)] {
        v.push(Case::new("argmax rows", format!("{r}×{c}"), Argmax(r, c)));
    }
    v.push(Case::new("count equal", "[1000]", CountEqual(1000)));
    for (r, c) in [(1, 2), (3, 5), (17, 64), (70, 257)] {
        v.push(Case::new(
            "layer norm fwd+bwd",
            format!("{r}×{c}"),
            LayerNorm(r, c),
        ));
    }
    // Features [N, C]; images [N, C, H, W] with a channel of more values
    // than a workgroup's 64 (strided partial sums) and one of fewer.
    for shape in [
        vec![2, 3],
        vec![33, 5],
        vec![4, 3, 5, 7],
        vec![2, 9, 3, 3],
        vec![5, 2, 17, 17],
    ] {
        let name = format!("{shape:?}");
        v.push(Case::new("batch norm fwd+bwd", name, BatchNorm(shape)));
    }
    v
}
