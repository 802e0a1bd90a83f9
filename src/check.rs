//! Cross-checking one device against another, op by op.
//!
//! [`cases`] lists every `Device` operation on seeded random inputs, with
//! shapes chosen to miss every tile and vector width (1, 3, 17, 129, ...).
//! [`Case::run`] executes a case on any device and downloads its outputs, so
//! the same case runs on the CPU reference and on the GPU and the results are
//! compared with [`compare`] under the case's [`Tolerance`]. The integration
//! tests and `wgtrain check` are both thin loops over this module.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::device::{Activation, AdamStep, Binary, Device, MatmulSpec, Reduce, Tensor};
use crate::error::Result;
use crate::tensor::Shape;

/// Accept `|gpu - cpu| <= abs + rel·|cpu|` element by element.
///
/// All arithmetic is f32 (unit roundoff u ≈ 6e-8). The bounds, per family:
/// - exact data movement (gather, copies, pooling, one-hot, argmax): 0;
/// - one rounding per element (add, mul, axpy, optimizer steps): a few u;
///   `rel = 1e-6`, `abs = 1e-7`;
/// - transcendental functions (tanh, sigmoid, exp in softmax): the GPU's
///   `exp` is allowed a few ulp more than libm, so `rel = 1e-5`, `abs = 1e-6`;
/// - sums of `k` terms of magnitude ≤ 1 (matmul, conv, reductions): summation
///   order differs between devices, and the error of a sum of `k` terms grows
///   like `√k·u·Σ|terms|`, bounded here by `abs = 1e-6·k`, `rel = 1e-4`;
/// - the RNN: T chained steps of the above, `abs = 1e-4`, `rel = 1e-3`.
///
/// A wrong index or a missing term produces errors of order 0.1–1, far
/// outside every bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute allowance, in the outputs' units.
    pub abs: f32,
    /// Allowance relative to the reference value's magnitude.
    pub rel: f32,
}

impl Tolerance {
    /// No difference allowed: exact data movement (gather, copies, pooling, argmax).
    pub const EXACT: Tolerance = Tolerance { abs: 0.0, rel: 0.0 };
    /// One rounding per element (add, mul, axpy, optimizer steps).
    pub const ROUNDING: Tolerance = Tolerance {
        abs: 1e-7,
        rel: 1e-6,
    };
    /// Transcendental functions (tanh, sigmoid, exp in softmax).
    pub const TRANSCENDENTAL: Tolerance = Tolerance {
        abs: 1e-6,
        rel: 1e-5,
    };
    /// The RNN's chained steps.
    pub const RECURRENCE: Tolerance = Tolerance {
        abs: 1e-4,
        rel: 1e-3,
    };
    /// For sums of `terms` products of values of magnitude ≤ 1.
    pub fn sum_of(terms: usize) -> Tolerance {
        Tolerance {
            abs: 1e-6 * (terms.max(1) as f32),
            rel: 1e-4,
        }
    }
}

/// The worst disagreement between two outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Comparison {
    /// Largest `|got - want|` over all elements (a NaN counts as infinity).
    pub max_abs: f32,
    /// Largest `|got - want| / |want|` over elements whose reference is nonzero.
    pub max_rel: f32,
    /// Whether every element was within the tolerance.
    pub pass: bool,
}

/// Compares `got` against the reference `want` under `tol`. Different lengths
/// or any NaN/inf in `got` where `want` is finite fail.
pub fn compare(want: &[f32], got: &[f32], tol: Tolerance) -> Comparison {
    if want.len() != got.len() {
        return Comparison {
            max_abs: f32::INFINITY,
            max_rel: f32::INFINITY,
            pass: false,
        };
    }
    let mut c = Comparison {
        pass: true,
        ..Default::default()
    };
    for (&w, &g) in want.iter().zip(got) {
        let err = (g - w).abs();
        let err = if err.is_nan() { f32::INFINITY } else { err };
        c.max_abs = c.max_abs.max(err);
        if w != 0.0 {
            c.max_rel = c.max_rel.max(err / w.abs());
        }
        if err > tol.abs + tol.rel * w.abs() {
            c.pass = false;
        }
    }
    c
}

/// One operation on fixed shapes and a fixed seed.
#[derive(Clone, Debug)]
pub struct Case {
    /// The op's name as `wgtrain check` prints it.
    pub op: String,
    /// Human-readable shape description.
    pub shape: String,
    kind: Kind,
    seed: u64,
}

#[derive(Clone, Debug)]
enum Kind {
    Matmul {
        m: usize,
        k: usize,
        n: usize,
        spec: MatmulSpec,
        bias: bool,
    },
    Conv {
        n: usize,
        ci: usize,
        h: usize,
        w: usize,
        co: usize,
        k: usize,
        pad: usize,
        bias: bool,
    },
    ConvInputGrad {
        n: usize,
        ci: usize,
        h: usize,
        w: usize,
        co: usize,
        k: usize,
        pad: usize,
    },
    ConvWeightGrad {
        n: usize,
        ci: usize,
        h: usize,
        w: usize,
        co: usize,
        k: usize,
        pad: usize,
    },
    ChannelSum(Shape),
    MaxPool {
        shape: Shape,
        k: usize,
    },
    Activation {
        n: usize,
        act: Activation,
    },
    ActivationBackward {
        n: usize,
        act: Activation,
    },
    Binary {
        n: usize,
        op: Binary,
    },
    Scale(usize),
    Axpy(usize),
    Fill(usize),
    /// Reshape to two shapes, `synchronize` between: data and shapes.
    Reshape(usize),
    SumRows(usize, usize),
    SumCols(usize, usize),
    Reduce {
        n: usize,
        op: Reduce,
    },
    Softmax(usize, usize),
    SoftmaxXent(usize, usize),
    Mse(usize),
    Bce {
        n: usize,
        spread: f32,
    },
    Argmax(usize, usize),
    CountEqual(usize),
    Gather {
        rows: usize,
        row: Vec<usize>,
        start: usize,
        count: usize,
    },
    GatherU8 {
        rows: usize,
        row_len: usize,
        start: usize,
        count: usize,
    },
    Transpose(usize, usize),
    OneHot {
        n: usize,
        depth: usize,
    },
    SliceConcat {
        rows: usize,
        cols: usize,
        start: usize,
        count: usize,
    },
    RnnForward {
        t: usize,
        b: usize,
        h: usize,
    },
    RnnBackward {
        t: usize,
        b: usize,
        h: usize,
    },
    Sgd(usize),
    Momentum(usize),
    Adam(usize),
    ClipFactor(f32),
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, spread: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-spread..=spread)).collect()
}

fn ints(rng: &mut ChaCha8Rng, n: usize, bound: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(0..bound) as f32).collect()
}

impl Case {
    fn new(op: impl Into<String>, shape: impl Into<String>, kind: Kind) -> Case {
        Case {
            op: op.into(),
            shape: shape.into(),
            kind,
            seed: 0,
        }
    }

    /// Whether this case exercises the matmul kernel (which has variants).
    pub fn is_matmul(&self) -> bool {
        matches!(self.kind, Kind::Matmul { .. })
    }

    /// The tolerance output `output` of this case is judged by (see
    /// [`Tolerance`]). A loss (output 0) is a sum over all its elements; its
    /// gradient (output 1) is per element, a few roundings each, and is held
    /// to that, not to the sum's allowance.
    pub fn tolerance_of(&self, output: usize) -> Tolerance {
        match (&self.kind, output) {
            // (σ(z) − t)/n or 2(p − t)/n: the exp of σ differs by a few ulp.
            (Kind::Mse(n) | Kind::Bce { n, .. }, 1) => Tolerance {
                abs: 1e-6 / *n as f32,
                rel: 1e-5,
            },
            // (softmax − onehot)/r, per element.
            (Kind::SoftmaxXent(r, _), 1) => Tolerance {
                abs: 1e-7 / *r as f32,
                rel: 1e-5,
            },
            // The mean over rows of log-sum-exps: summed in another order.
            (Kind::SoftmaxXent(..), 0) => Tolerance {
                abs: 1e-6,
                rel: 4e-5,
            },
            _ => self.tolerance(),
        }
    }

    /// The tolerance this case's outputs are judged by, unless
    /// [`Case::tolerance_of`] says otherwise for one of them.
    pub fn tolerance(&self) -> Tolerance {
        match &self.kind {
            Kind::Matmul { k, .. } => Tolerance::sum_of(*k),
            Kind::Conv { ci, k, .. } => Tolerance::sum_of(ci * k * k),
            Kind::ConvInputGrad { co, k, .. } => Tolerance::sum_of(co * k * k),
            Kind::ConvWeightGrad { n, h, w, .. } => Tolerance::sum_of(n * h * w),
            Kind::ChannelSum(s) => Tolerance::sum_of(s.numel() / s.dim(1)),
            Kind::SumRows(r, _) => Tolerance::sum_of(*r),
            Kind::SumCols(_, c) => Tolerance::sum_of(*c),
            // The maximum and a count are exact, whatever the order.
            Kind::Reduce {
                op: Reduce::Max, ..
            }
            | Kind::CountEqual(_) => Tolerance::EXACT,
            Kind::Reduce { n, .. } | Kind::Mse(n) => Tolerance::sum_of(*n),
            Kind::Bce { n, .. } => Tolerance {
                abs: 1e-6 * (*n as f32),
                rel: 1e-4,
            },
            // One multiply-add per element.
            Kind::GatherU8 { .. } => Tolerance::ROUNDING,
            // exp(x − lse): lse's rounding becomes a relative error of a few
            // ulp in every probability.
            Kind::Softmax(..) | Kind::SoftmaxXent(..) => Tolerance {
                abs: 1e-7,
                rel: 1e-5,
            },
            Kind::Activation { .. } | Kind::ActivationBackward { .. } => Tolerance::TRANSCENDENTAL,
            Kind::RnnForward { .. } | Kind::RnnBackward { .. } => Tolerance::RECURRENCE,
            Kind::Binary { .. }
            | Kind::Scale(_)
            | Kind::Axpy(_)
            | Kind::Sgd(_)
            | Kind::Momentum(_) => Tolerance::ROUNDING,
            // sqrt and division of small second moments.
            Kind::Adam(_) | Kind::ClipFactor(_) => Tolerance::TRANSCENDENTAL,
            Kind::Fill(_)
            | Kind::Reshape(_)
            | Kind::MaxPool { .. }
            | Kind::Argmax(..)
            | Kind::Gather { .. }
            | Kind::Transpose(..)
            | Kind::OneHot { .. }
            | Kind::SliceConcat { .. } => Tolerance::EXACT,
        }
    }

    /// Runs the case on `dev` and downloads every output, with its shape.
    pub fn run<D: Device>(&self, dev: &D) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
        let rng = &mut ChaCha8Rng::seed_from_u64(self.seed);
        let up = |data: Vec<f32>, shape: Shape| dev.upload(&data, shape);
        let outs: Vec<D::Tensor> = match &self.kind {
            Kind::Matmul {
                m,
                k,
                n,
                spec,
                bias,
            } => {
                let a_shape = if spec.trans_a { [*k, *m] } else { [*m, *k] };
                let b_shape = if spec.trans_b { [*n, *k] } else { [*k, *n] };
                let a = up(uniform(rng, m * k, 1.0), a_shape.into())?;
                let b = up(uniform(rng, k * n, 1.0), b_shape.into())?;
                let bias = if *bias {
                    Some(up(uniform(rng, *n, 1.0), [*n].into())?)
                } else {
                    None
                };
                vec![dev.matmul(&a, &b, bias.as_ref(), *spec)?]
            }
            Kind::Conv {
                n,
                ci,
                h,
                w,
                co,
                k,
                pad,
                bias,
            } => {
                let x = up(uniform(rng, n * ci * h * w, 1.0), [*n, *ci, *h, *w].into())?;
                let wt = up(
                    uniform(rng, co * ci * k * k, 1.0),
                    [*co, *ci, *k, *k].into(),
                )?;
                let b = if *bias {
                    Some(up(uniform(rng, *co, 1.0), [*co].into())?)
                } else {
                    None
                };
                vec![dev.conv2d(&x, &wt, b.as_ref(), *pad)?]
            }
            Kind::ConvInputGrad {
                n,
                ci,
                h,
                w,
                co,
                k,
                pad,
            } => {
                let (ho, wo) = (h + 2 * pad + 1 - k, w + 2 * pad + 1 - k);
                let dy = up(
                    uniform(rng, n * co * ho * wo, 1.0),
                    [*n, *co, ho, wo].into(),
                )?;
                let wt = up(
                    uniform(rng, co * ci * k * k, 1.0),
                    [*co, *ci, *k, *k].into(),
                )?;
                vec![dev.conv2d_input_grad(&dy, &wt, *pad)?]
            }
            Kind::ConvWeightGrad {
                n,
                ci,
                h,
                w,
                co,
                k,
                pad,
            } => {
                let (ho, wo) = (h + 2 * pad + 1 - k, w + 2 * pad + 1 - k);
                let x = up(uniform(rng, n * ci * h * w, 1.0), [*n, *ci, *h, *w].into())?;
                let dy = up(
                    uniform(rng, n * co * ho * wo, 1.0),
                    [*n, *co, ho, wo].into(),
                )?;
                vec![dev.conv2d_weight_grad(&x, &dy, *pad, (*k, *k))?]
            }
            Kind::ChannelSum(s) => {
                let x = up(uniform(rng, s.numel(), 1.0), s.clone())?;
                vec![dev.channel_sum(&x)?]
            }
            Kind::MaxPool { shape, k } => {
                let x = up(uniform(rng, shape.numel(), 1.0), shape.clone())?;
                let (y, arg) = dev.max_pool2d(&x, *k)?;
                let dy = up(uniform(rng, y.shape().numel(), 1.0), y.shape().clone())?;
                let dx = dev.max_pool2d_backward(&dy, &arg, shape, *k)?;
                vec![y, arg, dx]
            }
            Kind::Activation { n, act } => {
                // Spread 6 reaches the saturated tails of tanh and sigmoid.
                let x = up(uniform(rng, *n, 6.0), [*n].into())?;
                vec![dev.activation(&x, *act)?]
            }
            Kind::ActivationBackward { n, act } => {
                let x = up(uniform(rng, *n, 3.0), [*n].into())?;
                let y = dev.activation(&x, *act)?;
                let dy = up(uniform(rng, *n, 1.0), [*n].into())?;
                vec![dev.activation_backward(&y, &dy, *act)?]
            }
            Kind::Binary { n, op } => {
                let a = up(uniform(rng, *n, 1.0), [*n].into())?;
                let b = up(uniform(rng, *n, 1.0), [*n].into())?;
                vec![dev.binary(&a, &b, *op)?]
            }
            Kind::Scale(n) => {
                let a = up(uniform(rng, *n, 1.0), [*n].into())?;
                vec![dev.scale(&a, -0.37)?]
            }
            Kind::Axpy(n) => {
                let a = up(uniform(rng, *n, 1.0), [*n].into())?;
                let b = up(uniform(rng, *n, 1.0), [*n].into())?;
                vec![dev.axpy(1.7, &a, &b)?]
            }
            Kind::Fill(n) => vec![dev.full([*n], 2.5)?, dev.zeros([*n])?],
            Kind::Reshape(n) => {
                let x = up(uniform(rng, 6 * n, 1.0), [*n, 6].into())?;
                let a = dev.reshape(&x, [3, 2 * n])?;
                dev.synchronize()?;
                vec![dev.reshape(&a, [2 * n, 3])?, a]
            }
            Kind::SumRows(r, c) => {
                let x = up(uniform(rng, r * c, 1.0), [*r, *c].into())?;
                vec![dev.sum_rows(&x)?]
            }
            Kind::SumCols(r, c) => {
                let x = up(uniform(rng, r * c, 1.0), [*r, *c].into())?;
                vec![dev.sum_cols(&x)?]
            }
            Kind::Reduce { n, op } => {
                let x = up(uniform(rng, *n, 1.0), [*n].into())?;
                vec![dev.reduce(&x, *op)?]
            }
            Kind::Softmax(r, c) => {
                let x = up(uniform(rng, r * c, 5.0), [*r, *c].into())?;
                vec![dev.softmax_rows(&x)?]
            }
            Kind::SoftmaxXent(r, c) => {
                let x = up(uniform(rng, r * c, 5.0), [*r, *c].into())?;
                let y = up(ints(rng, *r, *c), [*r].into())?;
                let lg = dev.softmax_cross_entropy(&x, &y)?;
                vec![lg.loss, lg.grad]
            }
            Kind::Mse(n) => {
                let p = up(uniform(rng, *n, 1.0), [*n].into())?;
                let t = up(uniform(rng, *n, 1.0), [*n].into())?;
                let lg = dev.mse(&p, &t)?;
                vec![lg.loss, lg.grad]
            }
            Kind::Bce { n, spread } => {
                let z = up(uniform(rng, *n, *spread), [*n].into())?;
                let t = up(ints(rng, *n, 2), [*n].into())?;
                let lg = dev.bce_with_logits(&z, &t)?;
                vec![lg.loss, lg.grad]
            }
            Kind::Argmax(r, c) => {
                let x = up(uniform(rng, r * c, 1.0), [*r, *c].into())?;
                vec![dev.argmax_rows(&x)?]
            }
            Kind::CountEqual(n) => {
                let a = up(ints(rng, *n, 3), [*n].into())?;
                let b = up(ints(rng, *n, 3), [*n].into())?;
                vec![dev.count_equal(&a, &b)?]
            }
            Kind::Gather {
                rows,
                row,
                start,
                count,
            } => {
                let mut shape = vec![*rows];
                shape.extend_from_slice(row);
                let shape = Shape::new(shape);
                let src = up(uniform(rng, shape.numel(), 1.0), shape)?;
                let idx = up(
                    ints(rng, start + count + 2, *rows),
                    [start + count + 2].into(),
                )?;
                vec![dev.gather_rows(&src, &idx, *start, *count)?]
            }
            Kind::GatherU8 {
                rows,
                row_len,
                start,
                count,
            } => {
                let bytes: Vec<u8> = (0..rows * row_len).map(|_| rng.random()).collect();
                let src = dev.upload_u8(&bytes, [*rows, *row_len])?;
                let idx = up(ints(rng, start + count, *rows), [start + count].into())?;
                vec![dev.gather_rows_u8(&src, &idx, *start, *count, 1.0 / 255.0, -0.5)?]
            }
            Kind::Transpose(r, c) => {
                let x = up(uniform(rng, r * c, 1.0), [*r, *c].into())?;
                vec![dev.transpose(&x)?]
            }
            Kind::OneHot { n, depth } => {
                let idx = up(ints(rng, *n, *depth), [*n].into())?;
                vec![dev.one_hot(&idx, *depth)?]
            }
            Kind::SliceConcat {
                rows,
                cols,
                start,
                count,
            } => {
                let x = up(uniform(rng, rows * cols, 1.0), [*rows, *cols].into())?;
                let s = dev.slice_rows(&x, *start, *count)?;
                let c = dev.concat_rows(&s, &x)?;
                vec![s, c]
            }
            Kind::RnnForward { t, b, h } => {
                let xw = up(uniform(rng, t * b * h, 1.0), [*t, *b, *h].into())?;
                let u = up(uniform(rng, h * h, 0.5), [*h, *h].into())?;
                let h0 = up(uniform(rng, b * h, 1.0), [*b, *h].into())?;
                vec![dev.rnn_forward(&xw, &u, &h0)?]
            }
            Kind::RnnBackward { t, b, h } => {
                let hs = up(uniform(rng, t * b * h, 0.99), [*t, *b, *h].into())?;
                let u = up(uniform(rng, h * h, 0.5), [*h, *h].into())?;
                let dh = up(uniform(rng, t * b * h, 1.0), [*t, *b, *h].into())?;
                let (da, dh0) = dev.rnn_backward(&hs, &u, &dh)?;
                vec![da, dh0]
            }
            Kind::Sgd(n) => {
                let mut p = up(uniform(rng, *n, 1.0), [*n].into())?;
                let g = up(uniform(rng, *n, 1.0), [*n].into())?;
                let s = dev.full([1], 0.5)?;
                dev.sgd_update(&mut p, &g, &s, 0.1, 0.01)?;
                vec![p]
            }
            Kind::Momentum(n) => {
                let mut p = up(uniform(rng, *n, 1.0), [*n].into())?;
                let mut v = up(uniform(rng, *n, 1.0), [*n].into())?;
                let g = up(uniform(rng, *n, 1.0), [*n].into())?;
                let s = dev.full([1], 0.5)?;
                dev.momentum_update(&mut p, &mut v, &g, &s, 0.1, 0.9, 0.01)?;
                vec![p, v]
            }
            Kind::Adam(n) => {
                let mut p = up(uniform(rng, *n, 1.0), [*n].into())?;
                let mut m = dev.zeros([*n])?;
                let mut v = dev.zeros([*n])?;
                let s = dev.full([1], 0.5)?;
                for step in 1..=3 {
                    let g = up(uniform(rng, *n, 1.0), [*n].into())?;
                    let hp = AdamStep {
                        lr: 0.01,
                        beta1: 0.9,
                        beta2: 0.999,
                        eps: 1e-8,
                        weight_decay: 0.01,
                        decoupled_decay: 0.02,
                        step,
                    };
                    dev.adam_update(&mut p, &mut m, &mut v, &g, &s, &hp)?;
                }
                vec![p, m, v]
            }
            Kind::ClipFactor(ss) => {
                let s = dev.full([1], *ss)?;
                vec![dev.clip_factor(&s, 5.0)?]
            }
        };
        outs.iter()
            .map(|t| Ok((t.shape().dims().to_vec(), dev.download(t)?)))
            .collect()
    }
}

/// Every case, in a stable order. Seeds are the case's position.
pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let t = |b| if b { "ᵀ" } else { "" };
    // matmul: every transpose combination on awkward shapes.
    for (m, k, n) in [
        (1, 1, 1),
        (1, 7, 5),
        (3, 5, 7),
        (17, 129, 33),
        (64, 64, 64),
        (130, 257, 67),
        // Multiples of 4 (the vec4 kernel), with a last block of rows that
        // overlaps the one before (12, 36), and one too short for it (4).
        (12, 16, 20),
        (36, 8, 44),
        (4, 8, 12),
    ] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let spec = MatmulSpec {
                trans_a: ta,
                trans_b: tb,
                act: Activation::Identity,
            };
            v.push(Case::new(
                format!("matmul A{}·B{}", t(ta), t(tb)),
                format!("{m}×{k}·{k}×{n}"),
                Kind::Matmul {
                    m,
                    k,
                    n,
                    spec,
                    bias: false,
                },
            ));
        }
    }
    for act in [
        Activation::Identity,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Relu,
    ] {
        for (m, k, n, ta) in [(5, 3, 9, false), (33, 70, 19, true)] {
            let spec = MatmulSpec {
                trans_a: ta,
                trans_b: false,
                act,
            };
            v.push(Case::new(
                format!("matmul+bias+{act:?}"),
                format!("{m}×{k}·{k}×{n}"),
                Kind::Matmul {
                    m,
                    k,
                    n,
                    spec,
                    bias: true,
                },
            ));
        }
    }
    // convolution: C_in 1 and 3, odd sizes, padding 0..2, kernels 1..5.
    for (n, ci, h, w, co, k, pad) in [
        (1, 1, 5, 5, 1, 3, 1),
        (2, 3, 7, 9, 4, 3, 1),
        (2, 1, 28, 28, 8, 3, 1),
        (3, 3, 6, 5, 2, 2, 0),
        (1, 2, 4, 4, 3, 1, 0),
        (2, 3, 5, 7, 2, 5, 2),
    ] {
        let shape = format!("{n}×{ci}×{h}×{w} ⊛ {co}×{ci}×{k}×{k} pad {pad}");
        for bias in [false, true] {
            v.push(Case::new(
                if bias { "conv2d+bias" } else { "conv2d" },
                shape.clone(),
                Kind::Conv {
                    n,
                    ci,
                    h,
                    w,
                    co,
                    k,
                    pad,
                    bias,
                },
            ));
        }
        v.push(Case::new(
            "conv2d input grad",
            shape.clone(),
            Kind::ConvInputGrad {
                n,
                ci,
                h,
                w,
                co,
                k,
                pad,
            },
        ));
        v.push(Case::new(
            "conv2d weight grad",
            shape,
            Kind::ConvWeightGrad {
                n,
                ci,
                h,
                w,
                co,
                k,
                pad,
            },
        ));
    }
    for s in [[1, 1, 1, 1], [2, 3, 5, 7], [4, 8, 14, 14]] {
        let shape = Shape::new(s);
        v.push(Case::new(
            "channel sum",
            shape.to_string(),
            Kind::ChannelSum(shape),
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
            Kind::MaxPool { shape, k },
        ));
    }
    // elementwise: 1 element, a partial workgroup, several, and past 65535
    // workgroups' worth of threads in x is exercised by the reductions below.
    for n in [1, 17, 1000, 70_001] {
        for act in [
            Activation::Identity,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Relu,
        ] {
            v.push(Case::new(
                format!("{act:?}"),
                format!("[{n}]"),
                Kind::Activation { n, act },
            ));
            v.push(Case::new(
                format!("{act:?} backward"),
                format!("[{n}]"),
                Kind::ActivationBackward { n, act },
            ));
        }
        for op in [Binary::Add, Binary::Sub, Binary::Mul] {
            v.push(Case::new(
                format!("{op:?}"),
                format!("[{n}]"),
                Kind::Binary { n, op },
            ));
        }
        v.push(Case::new("scale", format!("[{n}]"), Kind::Scale(n)));
        v.push(Case::new("axpy", format!("[{n}]"), Kind::Axpy(n)));
        v.push(Case::new("fill", format!("[{n}]"), Kind::Fill(n)));
        v.push(Case::new("reshape", format!("[{n}, 6]"), Kind::Reshape(n)));
    }
    for (r, c) in [(1, 1), (3, 5), (130, 257), (7, 1000)] {
        v.push(Case::new(
            "sum over rows",
            format!("{r}×{c}"),
            Kind::SumRows(r, c),
        ));
        v.push(Case::new(
            "sum over columns",
            format!("{r}×{c}"),
            Kind::SumCols(r, c),
        ));
    }
    for n in [1, 1000, 300_001] {
        for op in [Reduce::Sum, Reduce::SumSquares, Reduce::Max] {
            v.push(Case::new(
                format!("reduce {op:?}"),
                format!("[{n}]"),
                Kind::Reduce { n, op },
            ));
        }
    }
    // Rows up to 256 long take the one-invocation-per-row kernels; 300 the
    // workgroup-per-row ones; 70 rows span two 64-invocation workgroups.
    for (r, c) in [(1, 1), (3, 5), (70, 256), (17, 300)] {
        v.push(Case::new(
            "softmax",
            format!("{r}×{c}"),
            Kind::Softmax(r, c),
        ));
    }
    for (r, c) in [(1, 3), (17, 10), (70, 64), (64, 300)] {
        v.push(Case::new(
            "softmax cross-entropy",
            format!("{r}×{c}"),
            Kind::SoftmaxXent(r, c),
        ));
    }
    for n in [1, 15, 1000] {
        v.push(Case::new("mse", format!("[{n}]"), Kind::Mse(n)));
    }
    for (n, spread) in [(1, 3.0), (257, 3.0), (257, 60.0)] {
        v.push(Case::new(
            "bce with logits",
            format!("[{n}] |z|≤{spread}"),
            Kind::Bce { n, spread },
        ));
    }
    for (r, c) in [(3, 5), (64, 10), (5, 1000)] {
        v.push(Case::new(
            "argmax rows",
            format!("{r}×{c}"),
            Kind::Argmax(r, c),
        ));
    }
    v.push(Case::new("count equal", "[1000]", Kind::CountEqual(1000)));
    v.push(Case::new(
        "gather rows",
        "10×3 rows 2..6",
        Kind::Gather {
            rows: 10,
            row: vec![3],
            start: 2,
            count: 4,
        },
    ));
    v.push(Case::new(
        "gather rows",
        "100×1×3×3 rows 0..17",
        Kind::Gather {
            rows: 100,
            row: vec![1, 3, 3],
            start: 0,
            count: 17,
        },
    ));
    for (rows, row_len, start, count) in [(5, 3, 1, 4), (100, 784, 3, 33), (7, 1, 0, 7)] {
        v.push(Case::new(
            "gather rows u8",
            format!("{rows}×{row_len} bytes rows {start}..{}", start + count),
            Kind::GatherU8 {
                rows,
                row_len,
                start,
                count,
            },
        ));
    }
    for (r, c) in [(1, 1), (3, 5), (33, 129)] {
        v.push(Case::new(
            "transpose",
            format!("{r}×{c}"),
            Kind::Transpose(r, c),
        ));
    }
    v.push(Case::new(
        "one hot",
        "[17] depth 5",
        Kind::OneHot { n: 17, depth: 5 },
    ));
    v.push(Case::new(
        "slice+concat rows",
        "7×3 rows 2..5",
        Kind::SliceConcat {
            rows: 7,
            cols: 3,
            start: 2,
            count: 3,
        },
    ));
    // Hidden sizes 1, 5, 17 take the scalar kernels; 8 and 12 the vec4 ones
    // (batch 3 and 6: a last block of rows that is partly clamped).
    for (t, b, h) in [(1, 1, 1), (3, 2, 5), (6, 3, 17), (4, 3, 8), (5, 6, 12)] {
        v.push(Case::new(
            "rnn forward",
            format!("T{t} B{b} H{h}"),
            Kind::RnnForward { t, b, h },
        ));
        v.push(Case::new(
            "rnn backward (BPTT)",
            format!("T{t} B{b} H{h}"),
            Kind::RnnBackward { t, b, h },
        ));
    }
    for n in [1, 1000] {
        v.push(Case::new("sgd update", format!("[{n}]"), Kind::Sgd(n)));
        v.push(Case::new(
            "momentum update",
            format!("[{n}]"),
            Kind::Momentum(n),
        ));
        v.push(Case::new("adam update ×3", format!("[{n}]"), Kind::Adam(n)));
    }
    for ss in [4.0, 100.0] {
        v.push(Case::new(
            "clip factor",
            format!("‖g‖²={ss}"),
            Kind::ClipFactor(ss),
        ));
    }
    for (i, c) in v.iter_mut().enumerate() {
        c.seed = i as u64;
    }
    v
}

/// The outcome of one case on a device under test.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The case that was run.
    pub case: Case,
    /// `Err` when the device under test failed to run the case at all.
    pub result: std::result::Result<Comparison, String>,
}

impl Outcome {
    /// Whether the case ran and every output was within tolerance.
    pub fn passed(&self) -> bool {
        matches!(self.result, Ok(Comparison { pass: true, .. }))
    }
}

/// Runs `case` on the reference and on `dev`, and compares every output.
pub fn check_case<D: Device>(reference: &crate::CpuDevice, dev: &D, case: &Case) -> Outcome {
    let result = (|| {
        let want = case
            .run(reference)
            .map_err(|e| format!("reference failed: {e}"))?;
        let got = case.run(dev).map_err(|e| e.to_string())?;
        if want.len() != got.len() {
            return Err(format!("{} outputs, expected {}", got.len(), want.len()));
        }
        let mut total = Comparison {
            pass: true,
            ..Default::default()
        };
        for (i, ((ws, w), (gs, g))) in want.iter().zip(&got).enumerate() {
            if ws != gs {
                return Err(format!("output of shape {gs:?}, expected {ws:?}"));
            }
            let c = compare(w, g, case.tolerance_of(i));
            total.max_abs = total.max_abs.max(c.max_abs);
            total.max_rel = total.max_rel.max(c.max_rel);
            total.pass &= c.pass;
        }
        Ok(total)
    })();
    Outcome {
        case: case.clone(),
        result,
    }
}
