//! Cross-checking one device against another, op by op.
//!
//! [`cases`] lists every `Device` operation on seeded random inputs, with
//! shapes chosen to miss every tile and vector width (1, 3, 17, 129, ...).
//! [`Case::run`] executes a case on any device and downloads its outputs, so
//! the same case runs on the CPU reference and on the GPU and the results are
//! compared with [`compare`] under the case's [`Tolerance`]. The integration
//! tests and `wgtrain check` are both thin loops over this module.
//!
//! Each op family is one struct in the file of its [group](GROUPS): how it
//! makes its inputs and runs (`Check::run`), how closely each output must
//! agree (`Check::tolerance`), and, beside it, the shapes it is checked
//! on (the file's `cases()`). A new op is a struct, its `impl Check`, its
//! entries in that list, and its name in the `kinds!` line below.

mod conv;
mod elementwise;
mod matmul;
mod movement;
mod optim;
mod reductions;
mod rnn;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::device::{Device, Tensor};
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

/// The groups of cases, each a file of this module, in the order
/// [`cases`] lists them; the integration tests run one group per test.
pub const GROUPS: [&str; 7] = [
    "matmul",
    "convolution and pooling",
    "elementwise",
    "reductions and losses",
    "data movement",
    "rnn",
    "optimizers",
];

/// What an op family's case does: makes its inputs from `rng`, runs on
/// `dev`, and says how closely each output must agree.
trait Check {
    /// The case's outputs on `dev`, in a fixed order.
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>>;
    /// The tolerance output `output` is judged by (see [`Tolerance`]).
    fn tolerance(&self, output: usize) -> Tolerance;
}

/// The op families, as one enum that dispatches to each family's [`Check`].
macro_rules! kinds {
    ($($family:ident),* $(,)?) => {
        #[derive(Clone, Debug)]
        enum Kind {
            $($family($family)),*
        }

        $(impl From<$family> for Kind {
            fn from(c: $family) -> Kind {
                Kind::$family(c)
            }
        })*

        impl Kind {
            fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
                match self {
                    $(Kind::$family(c) => c.run(dev, rng)),*
                }
            }

            fn tolerance(&self, output: usize) -> Tolerance {
                match self {
                    $(Kind::$family(c) => c.tolerance(output)),*
                }
            }
        }
    };
}

use conv::{AvgPool, ChannelSum, Conv, ConvInputGrad, ConvWeightGrad, MaxPool};
use elementwise::{
    ActivationBackward, ActivationBackwardFromInput, ActivationBackwardHalf, ActivationForward,
    ActivationKeepingHalf, Axpy, BinaryOp, Fill, HalfRoundTrip, Scale, ScaleBy,
};
use matmul::Matmul;
use movement::{
    DropoutMaskOf, Gather, GatherU8, OneHot, Reshape, ScatterAddRows, SliceConcat, Transpose,
};
use optim::{
    Adam, AdamMany, ClipFactor, LossScaleStepOf, Momentum, MomentumMany, Sgd, SgdMany,
    SkippedUpdates,
};
use reductions::{
    Argmax, BatchNorm, Bce, CountEqual, LayerNorm, Mse, ReduceAll, Softmax, SoftmaxXent, SumCols,
    SumRows, SumSquaresMany,
};
use rnn::{GatedBackward, GatedForward, RnnBackward, RnnForward};

kinds!(
    Matmul,
    Conv,
    ConvInputGrad,
    ConvWeightGrad,
    ChannelSum,
    MaxPool,
    AvgPool,
    ActivationForward,
    ActivationBackward,
    ActivationBackwardFromInput,
    ActivationBackwardHalf,
    ActivationKeepingHalf,
    HalfRoundTrip,
    BinaryOp,
    Scale,
    ScaleBy,
    Axpy,
    Fill,
    SumRows,
    SumCols,
    ReduceAll,
    SumSquaresMany,
    Softmax,
    SoftmaxXent,
    Mse,
    Bce,
    Argmax,
    CountEqual,
    LayerNorm,
    BatchNorm,
    Gather,
    GatherU8,
    Transpose,
    OneHot,
    SliceConcat,
    Reshape,
    DropoutMaskOf,
    ScatterAddRows,
    RnnForward,
    RnnBackward,
    GatedForward,
    GatedBackward,
    Sgd,
    Momentum,
    Adam,
    SgdMany,
    MomentumMany,
    AdamMany,
    ClipFactor,
    SkippedUpdates,
    LossScaleStepOf,
);

/// One operation on fixed shapes and a fixed seed.
#[derive(Clone, Debug)]
pub struct Case {
    /// The op's name as `wgtrain check` prints it.
    pub op: String,
    /// Human-readable shape description.
    pub shape: String,
    /// Which of [`GROUPS`] it belongs to.
    pub group: &'static str,
    kind: Kind,
    seed: u64,
}

/// `n` values drawn uniformly from `[-spread, spread]`.
fn uniform(rng: &mut ChaCha8Rng, n: usize, spread: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-spread..=spread)).collect()
}

/// `n` whole numbers below `bound`, as f32 (labels, indices).
fn ints(rng: &mut ChaCha8Rng, n: usize, bound: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(0..bound) as f32).collect()
}

/// A tensor of `shape` on `dev` with [`uniform`] values.
fn random<D: Device>(
    dev: &D,
    rng: &mut ChaCha8Rng,
    shape: impl Into<Shape>,
    spread: f32,
) -> Result<D::Tensor> {
    let shape = shape.into();
    dev.upload(&uniform(rng, shape.numel(), spread), shape)
}

impl Case {
    fn new(op: impl Into<String>, shape: impl Into<String>, kind: impl Into<Kind>) -> Case {
        Case {
            op: op.into(),
            shape: shape.into(),
            group: "",
            kind: kind.into(),
            seed: 0,
        }
    }

    /// Whether this case exercises the matmul kernel (which has variants).
    pub fn is_matmul(&self) -> bool {
        matches!(self.kind, Kind::Matmul(_))
    }

    /// The precision the case computes at: a GPU without f16 support
    /// cannot run the f16 cases (callers skip them there).
    pub fn precision(&self) -> crate::device::Precision {
        match &self.kind {
            Kind::Matmul(m) => m.precision,
            _ => crate::device::Precision::F32,
        }
    }

    /// The tolerance output `output` of this case is judged by (see
    /// [`Tolerance`]).
    pub fn tolerance_of(&self, output: usize) -> Tolerance {
        self.kind.tolerance(output)
    }

    /// Runs the case on `dev` and downloads every output, with its shape.
    pub fn run<D: Device>(&self, dev: &D) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
        let rng = &mut ChaCha8Rng::seed_from_u64(self.seed);
        let outs = self.kind.run(dev, rng)?;
        outs.iter()
            .map(|t| Ok((t.shape().dims().to_vec(), dev.download(t)?)))
            .collect()
    }
}

/// A case's seed: a hash (FNV-1a) of its name and shapes, so adding or
/// moving a case leaves every other case's inputs as they were.
fn seed_of(op: &str, shape: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in op.bytes().chain([0]).chain(shape.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Every case, group by group in the order of [`GROUPS`], each seeded by
/// its name and shapes.
pub fn cases() -> Vec<Case> {
    let groups: [fn() -> Vec<Case>; 7] = [
        matmul::cases,
        conv::cases,
        elementwise::cases,
        reductions::cases,
        movement::cases,
        rnn::cases,
        optim::cases,
    ];
    let mut all = Vec::new();
    for (name, make) in GROUPS.into_iter().zip(groups) {
        all.extend(make().into_iter().map(|c| Case { group: name, ..c }));
    }
    for c in &mut all {
        c.seed = seed_of(&c.op, &c.shape);
    }
    all
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
