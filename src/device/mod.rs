//! The `Device` trait: every tensor operation that training needs, implemented
//! once on the CPU (the reference) and once on the GPU.
//!
//! Models are written against this trait only, so "does the GPU compute the
//! same thing as the CPU" is one generic test per op (see [`crate::check`]).
//!
//! Conventions shared by every implementation:
//! - tensors are f32, row-major, immutable once made (ops return new tensors);
//!   the only in-place operations are the optimizer updates and the
//!   loss-scale step, which take `&mut` (the GPU drops the operand copies it
//!   keeps before any of them writes);
//! - `Clone` on a tensor is cheap and shares its storage;
//! - index tensors (labels, gather indices, argmax) hold integers as f32,
//!   exact up to 2^24; the CPU rejects an index out of range, the GPU (which
//!   cannot report without a readback) clamps it, so callers validate
//!   indices where they come from (the data loaders do);
//! - a reduction to one value returns a tensor of shape `[1]`, so losses and
//!   metrics can stay on the device until somebody downloads them.

pub mod cpu;
pub mod dropout;
pub mod gpu;
pub mod loss_scale;
pub mod precision;
pub mod reference;

use crate::error::{Error, Result};
use crate::tensor::Shape;

pub use cpu::CpuDevice;
pub use dropout::DropoutMask;
pub use gpu::GpuDevice;
pub use loss_scale::{LossScaleOutcome, LossScaleStep};
pub use precision::Precision;

/// A device-resident tensor handle.
pub trait Tensor: Clone {
    /// Dimensions of the tensor, row-major.
    fn shape(&self) -> &Shape;
}

/// Elementwise activation functions. Backward passes are written in terms of
/// the activation's *output* `y`, which is what layers keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Activation {
    /// `f(x) = x`.
    #[default]
    Identity,
    /// `f(x) = tanh(x)`.
    Tanh,
    /// `f(x) = 1 / (1 + e^-x)`.
    Sigmoid,
    /// `f(x) = max(x, 0)`.
    Relu,
    /// `f(x) = x` for `x > 0`, else `0.01·x` (PyTorch's default slope).
    LeakyRelu,
    /// `f(x) = ln(1 + eˣ)`, a smooth ReLU.
    Softplus,
    /// `f(x) = ½x(1 + tanh(√(2/π)(x + 0.044715x³)))`, GELU in the tanh
    /// approximation (PyTorch's `GELU(approximate="tanh")`). Not monotone,
    /// so its derivative needs the input: see [`Activation::keeps_input`].
    Gelu,
}

/// The slope of [`Activation::LeakyRelu`] below zero.
pub const LEAKY_SLOPE: f32 = 0.01;

impl Activation {
    /// Every activation, in the order of their codes.
    pub const ALL: [Activation; 7] = [
        Activation::Identity,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Softplus,
        Activation::Gelu,
    ];

    /// The name used in layer lists and files (`relu`).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
            Activation::LeakyRelu => "leaky_relu",
            Activation::Softplus => "softplus",
            Activation::Gelu => "gelu",
        }
    }

    /// The activation called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Activation> {
        Activation::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The numeric code shared with the WGSL kernels (`act` parameters).
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Tanh => 1,
            Activation::Sigmoid => 2,
            Activation::Relu => 3,
            Activation::LeakyRelu => 4,
            Activation::Softplus => 5,
            Activation::Gelu => 6,
        }
    }

    /// Reference scalar forward (the CPU device uses exactly this).
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Tanh => cpu::math::tanh(x),
            Activation::Sigmoid => sigmoid(x),
            Activation::Relu => x.max(0.0),
            Activation::LeakyRelu => leaky_relu(x),
            Activation::Softplus => softplus(x),
            Activation::Gelu => gelu(x),
        }
    }

    /// Whether the derivative needs the input rather than the output
    /// (GELU): layers keep `x` for these and call
    /// [`Device::activation_backward_from_input`], and a dense layer does
    /// not fuse them (it keeps only its output).
    pub fn keeps_input(self) -> bool {
        matches!(self, Activation::Gelu)
    }

    /// `f'(x)`, from the input.
    pub fn derivative_at(self, x: f32) -> f32 {
        match self {
            Activation::Gelu => {
                let (k, c) = (GELU_K, 0.044715f32);
                let t = cpu::math::tanh(k * (x + c * x * x * x));
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * c * x * x)
            }
            other => other.derivative_from_output(other.apply(x)),
        }
    }

    /// Derivative expressed through the output `y = f(x)`: every activation
    /// here is monotone, so `y` determines it (softplus: `eʸ = 1 + eˣ`, so
    /// `σ(x) = 1 − e⁻ʸ`). An activation whose derivative `y` does not
    /// determine (GELU) needs its input kept instead, which layers do not do
    /// yet.
    #[inline(always)]
    pub fn derivative_from_output(self, y: f32) -> f32 {
        match self {
            Activation::Identity => 1.0,
            Activation::Tanh => 1.0 - y * y,
            Activation::Sigmoid => y * (1.0 - y),
            Activation::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu => {
                if y > 0.0 {
                    1.0
                } else {
                    LEAKY_SLOPE
                }
            }
            Activation::Softplus => -(-y).exp_m1(),
            // Not a function of the output ([`Activation::keeps_input`]).
            Activation::Gelu => f32::NAN,
        }
    }
}

/// √(2/π), GELU's tanh approximation's scale.
pub const GELU_K: f32 = 0.797_884_6;

/// GELU, tanh approximation: `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + cpu::math::tanh(GELU_K * (x + 0.044715 * x * x * x)))
}

/// `x` above zero, [`LEAKY_SLOPE`]`·x` below.
pub fn leaky_relu(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        LEAKY_SLOPE * x
    }
}

/// `ln(1 + eˣ)` without overflow: `max(x, 0) + ln(1 + e^−|x|)`.
pub fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Numerically stable logistic function.
pub fn sigmoid(x: f32) -> f32 {
    cpu::math::sigmoid(x)
}

/// Elementwise binary operations on two tensors of the same shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a · b`.
    Mul,
}

impl Binary {
    /// The numeric code shared with the WGSL kernels.
    pub fn code(self) -> u32 {
        match self {
            Binary::Add => 0,
            Binary::Sub => 1,
            Binary::Mul => 2,
        }
    }

    /// Reference scalar result (the CPU device uses exactly this).
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
        }
    }
}

/// Whole-tensor reductions to a single value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    /// Sum of all elements.
    Sum,
    /// Sum of the squared elements (a squared L2 norm, for gradient clipping).
    SumSquares,
    /// Largest element.
    Max,
}

impl Reduce {
    /// The numeric code shared with the WGSL kernels.
    pub fn code(self) -> u32 {
        match self {
            Reduce::Sum => 0,
            Reduce::SumSquares => 1,
            Reduce::Max => 2,
        }
    }
}

/// Options of [`Device::matmul`]: `C = act(op(A) · op(B) + bias)` where
/// `op(X)` is `Xᵀ` when the corresponding flag is set. Transposes are never
/// materialised; they select a kernel variant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatmulSpec {
    /// Use `Aᵀ` in place of `A`.
    pub trans_a: bool,
    /// Use `Bᵀ` in place of `B`.
    pub trans_b: bool,
    /// Activation applied to every output element, after the bias.
    pub act: Activation,
}

impl MatmulSpec {
    /// `A · B`, no activation.
    pub const NN: MatmulSpec = MatmulSpec {
        trans_a: false,
        trans_b: false,
        act: Activation::Identity,
    };
    /// `Aᵀ · B` (weight gradients of a dense layer).
    pub const TN: MatmulSpec = MatmulSpec {
        trans_a: true,
        ..Self::NN
    };
    /// `A · Bᵀ` (input gradients of a dense layer).
    pub const NT: MatmulSpec = MatmulSpec {
        trans_b: true,
        ..Self::NN
    };

    /// The same transposes with activation `act`.
    pub fn with_act(self, act: Activation) -> Self {
        MatmulSpec { act, ..self }
    }

    /// `(m, k, n)` of the product, validating the operand shapes.
    pub fn dims(&self, a: &Shape, b: &Shape) -> Result<(usize, usize, usize)> {
        let (Some((ar, ac)), Some((br, bc))) = (a.as_matrix(), b.as_matrix()) else {
            return Err(Error::shape(
                "matmul",
                format!("operands must be matrices, got {a} and {b}"),
            ));
        };
        let (m, k) = if self.trans_a { (ac, ar) } else { (ar, ac) };
        let (k2, n) = if self.trans_b { (bc, br) } else { (br, bc) };
        if k != k2 {
            return Err(Error::shape(
                "matmul",
                format!(
                    "inner dimensions differ: {a}{} · {b}{}",
                    if self.trans_a { "ᵀ" } else { "" },
                    if self.trans_b { "ᵀ" } else { "" }
                ),
            ));
        }
        Ok((m, k, n))
    }
}

/// Hyper-parameters of one Adam update. `step` counts from 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f32,
    /// Decay rate of the first moment (mean of gradients).
    pub beta1: f32,
    /// Decay rate of the second moment (mean of squared gradients).
    pub beta2: f32,
    /// Added to `√v̂` in the denominator, against division by zero.
    pub eps: f32,
    /// L2 penalty: `weight_decay · p` is added to the gradient before the
    /// moments (Adam's original coupling).
    pub weight_decay: f32,
    /// Decoupled decay (AdamW, Loshchilov & Hutter): `p -= lr · decoupled_decay · p`
    /// beside the Adam step, never through the moments.
    pub decoupled_decay: f32,
    /// Number of this update, from 1; sets the bias corrections.
    pub step: u32,
}

impl AdamStep {
    /// Bias corrections `1 - β^t`, computed on the host in f64 so both devices
    /// use the identical f32 values.
    pub fn corrections(&self) -> (f32, f32) {
        let t = self.step.min(i32::MAX as u32) as i32;
        (
            (1.0 - (self.beta1 as f64).powi(t)) as f32,
            (1.0 - (self.beta2 as f64).powi(t)) as f32,
        )
    }
}

/// A loss value (shape `[1]`) and the gradient of that loss with respect to
/// the prediction, produced together by one fused operation.
pub struct LossGrad<T> {
    /// The loss, shape `[1]`.
    pub loss: T,
    /// `∂loss/∂prediction`, the shape of the prediction.
    pub grad: T,
}

/// The operations models are built from. See the module documentation for
/// the conventions every implementation follows.
pub trait Device {
    /// The device's f32 tensor handle.
    type Tensor: Tensor;
    /// Raw bytes on the device (a u8 dataset such as MNIST, kept at a quarter
    /// of its f32 size); only [`Device::gather_rows_u8`] reads them.
    type Bytes: Tensor;
    /// f16 values (every f32 rounded as [`Precision::round`] does under
    /// `F16`), stored at half the bytes on a GPU: what dense, activation,
    /// convolution and recurrent layers keep for their backward pass under
    /// [`Precision::F16`] (`nn::Kept`; a dense layer's products would round
    /// those values anyway, a convolution's weight gradient reads its input
    /// rounded where the f32 convolution read it exact, and a backward
    /// recurrence its states, cells and gates). Made by
    /// [`Device::to_half`] (or [`Device::activation_keeping_half`]); only
    /// [`Device::half_to_f32`], [`Device::matmul_half`] and
    /// [`Device::activation_backward_half`] read them. (The CPU device
    /// stores the rounded values as f32.)
    type Half: Tensor;

    /// A short human-readable description (`cpu`, or the adapter's name).
    fn name(&self) -> String;

    /// The most bytes one tensor may hold (on a GPU its largest storage
    /// binding; unbounded by default). A split larger than this is streamed
    /// in chunks ([`crate::data::DeviceData`]).
    fn max_tensor_bytes(&self) -> u64 {
        u64::MAX
    }

    /// What the operands of matrix products are rounded to ([`Precision`]).
    fn precision(&self) -> Precision;

    /// The same device computing products at `precision`: an error where it
    /// cannot (f16 on a GPU adapter without `SHADER_F16`).
    fn with_precision(&self, precision: Precision) -> Result<Self>
    where
        Self: Sized;

    // ---- memory -------------------------------------------------------
    /// Copies row-major `data` to the device; its length must be `shape`'s element count.
    fn upload(&self, data: &[f32], shape: impl Into<Shape>) -> Result<Self::Tensor>;
    /// Copies `t` back to the host, row-major (on the GPU this waits for the queue).
    fn download(&self, t: &Self::Tensor) -> Result<Vec<f32>>;
    /// `t` rounded to f16 ([`Device::Half`]). On a GPU under
    /// [`Precision::F16`] the copy a product already made of `t` (read as
    /// `[rows, last dimension]`, unpadded) is reused, so keeping a
    /// product's input costs nothing more.
    fn to_half(&self, t: &Self::Tensor) -> Result<Self::Half>;
    /// The f16 values of `t` as f32 (exactly).
    fn half_to_f32(&self, t: &Self::Half) -> Result<Self::Tensor>;
    /// Copies bytes to the device; the length must be `shape`'s element count.
    fn upload_u8(&self, data: &[u8], shape: impl Into<Shape>) -> Result<Self::Bytes>;
    /// A tensor of `shape` with every element `value`.
    fn full(&self, shape: impl Into<Shape>, value: f32) -> Result<Self::Tensor>;
    /// A tensor of `shape` filled with zeros.
    fn zeros(&self, shape: impl Into<Shape>) -> Result<Self::Tensor> {
        self.full(shape, 0.0)
    }
    /// The same data under a new shape with the same number of elements.
    fn reshape(&self, t: &Self::Tensor, shape: impl Into<Shape>) -> Result<Self::Tensor>;
    /// Rows `start .. start + count` of `x` (first dimension), copied.
    fn slice_rows(&self, x: &Self::Tensor, start: usize, count: usize) -> Result<Self::Tensor>;
    /// `a` and `b` stacked along the first dimension.
    fn concat_rows(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// Blocks until every queued operation has finished (a no-op on the CPU).
    fn synchronize(&self) -> Result<()>;

    // ---- linear algebra -------------------------------------------------
    /// `act(op(a) · op(b) + bias)`; `bias` has one value per output column.
    fn matmul(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        spec: MatmulSpec,
    ) -> Result<Self::Tensor>;

    /// [`Device::matmul`] with `a` kept in f16: the same product as
    /// `matmul(&half_to_f32(a)?, b, ..)`, which is what it computes unless
    /// the device overrides it (a GPU under [`Precision::F16`] reads `a`'s
    /// halves directly).
    fn matmul_half(
        &self,
        a: &Self::Half,
        b: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        spec: MatmulSpec,
    ) -> Result<Self::Tensor> {
        self.matmul(&self.half_to_f32(a)?, b, bias, spec)
    }

    // ---- convolution and pooling (N×C×H×W, zero padding) -----------------
    /// `x [N,Ci,H,W] ⊛ w [Co,Ci,KH,KW] + bias [Co]` → `[N,Co,Ho,Wo]` with
    /// `Ho = (H + 2·pad − KH) / stride + 1` (floor), likewise `Wo`.
    fn conv2d(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        step: ConvStep,
    ) -> Result<Self::Tensor>;
    /// Gradient with respect to the input of shape `x_shape`, given the
    /// output gradient (the input's size is not implied by the output's
    /// once the stride exceeds 1).
    fn conv2d_input_grad(
        &self,
        dy: &Self::Tensor,
        w: &Self::Tensor,
        x_shape: &Shape,
        step: ConvStep,
    ) -> Result<Self::Tensor>;
    /// Gradient with respect to the weights `[Co,Ci,kh,kw]`.
    fn conv2d_weight_grad(
        &self,
        x: &Self::Tensor,
        dy: &Self::Tensor,
        step: ConvStep,
        kernel: (usize, usize),
    ) -> Result<Self::Tensor>;
    /// Per-channel sum of `[N,C,H,W]` → `[C]` (the conv bias gradient).
    fn channel_sum(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Max over the windows of `win` (rows and columns past the last whole
    /// window are dropped). Returns the pooled tensor and, per output, the
    /// flat index into `x` of the maximum (first one on ties), which the
    /// backward pass needs.
    fn max_pool2d(&self, x: &Self::Tensor, win: PoolWindow)
        -> Result<(Self::Tensor, Self::Tensor)>;
    /// Routes `dy` back to the arg-max positions of the pooling of an input
    /// of `x_shape`; where windows overlap, an input that is the maximum of
    /// several receives their sum (added in output order); zeros elsewhere.
    /// `argmax` is `max_pool2d`'s: each index lies in its own window's
    /// `[H, W]` plane (the CPU refuses one that does not).
    fn max_pool2d_backward(
        &self,
        dy: &Self::Tensor,
        argmax: &Self::Tensor,
        x_shape: &Shape,
        win: PoolWindow,
    ) -> Result<Self::Tensor>;

    /// Mean over the windows of `win` of `[N, C, H, W]` →
    /// `[N, C, (H − size)/stride + 1, (W − size)/stride + 1]` (rows and
    /// columns past the last whole window are dropped, as in
    /// [`Device::max_pool2d`]).
    fn avg_pool2d(&self, x: &Self::Tensor, win: PoolWindow) -> Result<Self::Tensor>;
    /// The gradient of [`Device::avg_pool2d`] for an input of `x_shape`:
    /// every element gets `dy/size²` of each window that covers it (added in
    /// output order); zeros for elements no window covers.
    fn avg_pool2d_backward(
        &self,
        dy: &Self::Tensor,
        x_shape: &Shape,
        win: PoolWindow,
    ) -> Result<Self::Tensor>;

    // ---- elementwise ----------------------------------------------------
    /// `f(x)` elementwise; same shape as `x`.
    fn activation(&self, x: &Self::Tensor, act: Activation) -> Result<Self::Tensor>;
    /// `dy · f'(x)` written through the forward output `y = f(x)`.
    fn activation_backward(
        &self,
        y: &Self::Tensor,
        dy: &Self::Tensor,
        act: Activation,
    ) -> Result<Self::Tensor>;
    /// [`Device::activation_backward`] through an output kept in f16: the
    /// same as `activation_backward(&half_to_f32(y)?, dy, act)`, which is
    /// what it computes unless the device overrides it (a GPU reads `y`'s
    /// halves in the same pass).
    fn activation_backward_half(
        &self,
        y: &Self::Half,
        dy: &Self::Tensor,
        act: Activation,
    ) -> Result<Self::Tensor> {
        self.activation_backward(&self.half_to_f32(y)?, dy, act)
    }
    /// [`Device::activation`] and, in f16, the tensor an activation's
    /// derivative is later taken from: `x` where `act`
    /// [`Activation::keeps_input`], else the output. The same as
    /// `to_half` of that tensor after `activation`, which is what it
    /// computes unless the device overrides it (a GPU writes the output and
    /// the halves in one pass).
    fn activation_keeping_half(
        &self,
        x: &Self::Tensor,
        act: Activation,
    ) -> Result<(Self::Tensor, Self::Half)> {
        let y = self.activation(x, act)?;
        let kept = self.to_half(if act.keeps_input() { x } else { &y })?;
        Ok((y, kept))
    }
    /// `dy · act'(x)` from the activation's input `x` (every activation;
    /// the only way for those that [`Activation::keeps_input`]).
    fn activation_backward_from_input(
        &self,
        x: &Self::Tensor,
        dy: &Self::Tensor,
        act: Activation,
    ) -> Result<Self::Tensor>;
    /// `a op b` elementwise; `a` and `b` must have the same shape.
    fn binary(&self, a: &Self::Tensor, b: &Self::Tensor, op: Binary) -> Result<Self::Tensor>;
    /// `a + b` elementwise.
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.binary(a, b, Binary::Add)
    }
    /// `a - b` elementwise.
    fn sub(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.binary(a, b, Binary::Sub)
    }
    /// `a · b` elementwise.
    fn mul(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.binary(a, b, Binary::Mul)
    }
    /// `alpha · x`.
    fn scale(&self, x: &Self::Tensor, alpha: f32) -> Result<Self::Tensor>;
    /// `x · s` for `s` a `[1]` tensor on the device (the loss gradient
    /// times the loss scale, which lives on the device).
    fn scale_by(&self, x: &Self::Tensor, s: &Self::Tensor) -> Result<Self::Tensor>;
    /// `alpha · x + y`.
    fn axpy(&self, alpha: f32, x: &Self::Tensor, y: &Self::Tensor) -> Result<Self::Tensor>;

    // ---- reductions -----------------------------------------------------
    /// `[R,C]` → `[C]`: the sum of all rows (a bias gradient).
    fn sum_rows(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// `[R,C]` → `[R]`: the sum of each row.
    fn sum_cols(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Layer normalisation of each row of `x` (`[R, C]`; a row is everything
    /// after the first dimension): `y = (x − μ)/√(σ² + eps)·gamma + beta`
    /// with the row's mean μ and biased variance σ², `gamma` and `beta`
    /// `[C]`. Returns `y` and the statistics `[R, 2]`, `(μ, 1/√(σ² + eps))`
    /// per row, that [`Device::layer_norm_backward`] takes.
    fn layer_norm(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        eps: f32,
    ) -> Result<(Self::Tensor, Self::Tensor)>;
    /// The gradients of [`Device::layer_norm`] given `dy`: `(dx, dgamma,
    /// dbeta)`, with `dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`, `ĝ = dy·gamma`,
    /// `x̂ = (x − μ)·rstd`; `dgamma = Σ_rows dy·x̂`, `dbeta = Σ_rows dy`.
    fn layer_norm_backward(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        stats: &Self::Tensor,
        gamma: &Self::Tensor,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)>;
    /// Batch statistics per channel of `x` viewed as `[N, C, S]` (`C` the
    /// second dimension, `S` the product of the rest; `[N, C]` features
    /// have `S = 1`): `[2, C]`, the means, then the biased variances (about
    /// the mean, two passes), over the `N·S` values of each channel.
    fn channel_stats(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Batch normalisation with statistics `stats [2, C]` (means, then
    /// variances, as [`Device::channel_stats`] gives or running averages):
    /// `y = (x − mean[c])/√(var[c] + eps)·gamma[c] + beta[c]` for `x` viewed
    /// as `[N, C, S]`.
    fn batch_norm(
        &self,
        x: &Self::Tensor,
        stats: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        eps: f32,
    ) -> Result<Self::Tensor>;
    /// The gradients of [`Device::batch_norm`] in training, where `stats`
    /// are `x`'s own batch statistics: `(dx, dgamma, dbeta)` with
    /// `dgamma = Σ dy·x̂`, `dbeta = Σ dy` per channel (over `N·S = M`
    /// values), `x̂ = (x − mean)·rstd`, and
    /// `dx = gamma·rstd·(dy − dbeta/M − x̂·dgamma/M)`.
    fn batch_norm_backward(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        stats: &Self::Tensor,
        gamma: &Self::Tensor,
        eps: f32,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)>;
    /// Any shape → `[1]`.
    fn reduce(&self, x: &Self::Tensor, op: Reduce) -> Result<Self::Tensor>;
    /// Softmax within each row (everything after the first dimension); same shape.
    fn softmax_rows(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Mean softmax cross-entropy of logits `[R,C]` against class ids `[R]`,
    /// and its gradient with respect to the logits, in one pass.
    fn softmax_cross_entropy(
        &self,
        logits: &Self::Tensor,
        labels: &Self::Tensor,
    ) -> Result<LossGrad<Self::Tensor>>;
    /// Mean squared error over all elements, and its gradient.
    fn mse(&self, pred: &Self::Tensor, target: &Self::Tensor) -> Result<LossGrad<Self::Tensor>>;
    /// Mean binary cross-entropy of logits against 0/1 targets (stable for
    /// any logit magnitude), and its gradient.
    fn bce_with_logits(
        &self,
        logits: &Self::Tensor,
        targets: &Self::Tensor,
    ) -> Result<LossGrad<Self::Tensor>>;
    /// `[R,C]` → `[R]`: index of each row's maximum (first on ties).
    fn argmax_rows(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Number of positions where `a == b`, as `[1]` (accuracy on the device).
    fn count_equal(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;

    // ---- data -----------------------------------------------------------
    /// Rows `idx[start .. start + count]` of `src` (any rank; rows are the
    /// first dimension): the on-device minibatch gather.
    fn gather_rows(
        &self,
        src: &Self::Tensor,
        idx: &Self::Tensor,
        start: usize,
        count: usize,
    ) -> Result<Self::Tensor>;
    /// Like [`Device::gather_rows`] from bytes, converting each byte `v` to
    /// `v · scale + shift` (normalisation fused into the gather).
    fn gather_rows_u8(
        &self,
        src: &Self::Bytes,
        idx: &Self::Tensor,
        start: usize,
        count: usize,
        scale: f32,
        shift: f32,
    ) -> Result<Self::Tensor>;
    /// `[R,C]` → `[C,R]`.
    fn transpose(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Class ids `[M]` → one-hot rows `[M, depth]`.
    fn one_hot(&self, idx: &Self::Tensor, depth: usize) -> Result<Self::Tensor>;
    /// An inverted-dropout mask of `shape`: each element `0` or
    /// `1/(1 − rate)`, decided by a hash of its index ([`DropoutMask`]), so
    /// every device draws the same mask.
    fn dropout_mask(&self, shape: Shape, mask: &DropoutMask) -> Result<Self::Tensor>;
    /// The gradient of a row gather (an embedding lookup): `dy [N, D]` and
    /// ids `idx [N]` → `[rows, D]` with `out[v] = Σ dy[i]` over the `i` with
    /// `idx[i] = v`, summed in index order on every device (no atomics, so
    /// the result is deterministic).
    fn scatter_add_rows(
        &self,
        dy: &Self::Tensor,
        idx: &Self::Tensor,
        rows: usize,
    ) -> Result<Self::Tensor>;

    // ---- recurrence -----------------------------------------------------
    /// Elman recurrence over a whole sequence: given the input projections
    /// `xw [T,B,H]` (`x_t·W + b`, one matmul for all steps), the recurrent
    /// weights `u [H,H]` and the initial state `h0 [B,H]`, returns every
    /// state `h [T,B,H]` with `h_t = tanh(xw_t + h_{t-1}·U)`.
    fn rnn_forward(
        &self,
        xw: &Self::Tensor,
        u: &Self::Tensor,
        h0: &Self::Tensor,
    ) -> Result<Self::Tensor>;
    /// Backpropagation through time. Given the states `h [T,B,H]`, `u` and the
    /// loss gradient reaching each state from outside the recurrence
    /// `dh [T,B,H]`, returns the gradient with respect to each pre-activation
    /// `da [T,B,H]` and with respect to the initial state `dh0 [B,H]`.
    fn rnn_backward(
        &self,
        h: &Self::Tensor,
        u: &Self::Tensor,
        dh: &Self::Tensor,
    ) -> Result<(Self::Tensor, Self::Tensor)>;

    /// LSTM recurrence over a whole sequence, in PyTorch's gate order
    /// `i, f, g, o` (see `src/nn/gated.rs` for the equations). Given the
    /// input projections `xw [T,B,4H]` (`x_t·W + b`, one matmul for all
    /// steps), the recurrent weights `u [H,4H]` and the initial state
    /// `h0, c0 [B,H]`, returns every hidden state `h [T,B,H]`, every cell
    /// state `c [T,B,H]` and the activated gates `[T,B,4H]` (what the
    /// backward pass needs).
    fn lstm_forward(
        &self,
        xw: &Self::Tensor,
        u: &Self::Tensor,
        h0: &Self::Tensor,
        c0: &Self::Tensor,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)>;
    /// Backpropagation through time for [`Device::lstm_forward`]: given its
    /// gates and cell states, the initial cell state `c0`, `u`, and the loss
    /// gradient reaching each hidden state from outside the recurrence
    /// `dh [T,B,H]`, returns the gradient with respect to each gate
    /// pre-activation `da [T,B,4H]` (for `W`, `U`, `b` and the input alike).
    fn lstm_backward(
        &self,
        gates: &Self::Tensor,
        c: &Self::Tensor,
        c0: &Self::Tensor,
        u: &Self::Tensor,
        dh: &Self::Tensor,
    ) -> Result<Self::Tensor>;
    /// GRU recurrence over a whole sequence, in PyTorch's gate order
    /// `r, z, n` and with its recurrent bias inside the reset product (see
    /// `src/nn/gated.rs`). Given `xw [T,B,3H]` (`x_t·W + b`), the recurrent
    /// weights `u [H,3H]` and bias `ub [3H]`, and `h0 [B,H]`, returns every
    /// state `h [T,B,H]` and, for the backward pass, `[T,B,4H]` holding
    /// `r, z, n` and the recurrent candidate term `h_{t−1}·U_n + b_hn`.
    fn gru_forward(
        &self,
        xw: &Self::Tensor,
        u: &Self::Tensor,
        ub: &Self::Tensor,
        h0: &Self::Tensor,
    ) -> Result<(Self::Tensor, Self::Tensor)>;
    /// Backpropagation through time for [`Device::gru_forward`]: given its
    /// gates, the state before each step `h_prev [T,B,H]` (`h0`, then
    /// `h_0 … h_{T−2}`), `u`, and the loss gradient reaching each state from
    /// outside the recurrence `dh [T,B,H]`, returns the gradients with
    /// respect to the input projections `dxw [T,B,3H]` and to the recurrent
    /// products `h_{t−1}·U + b_h`, `dhu [T,B,3H]` (they differ in the
    /// candidate third, which the reset gate scales on the recurrent side).
    fn gru_backward(
        &self,
        gates: &Self::Tensor,
        h_prev: &Self::Tensor,
        u: &Self::Tensor,
        dh: &Self::Tensor,
    ) -> Result<(Self::Tensor, Self::Tensor)>;

    // ---- optimizer updates (in place) ----------------------------------
    // `grad_scale` is a `[1]` tensor multiplying every gradient (global-norm
    // clipping and loss scaling compute it on the device); weight decay adds
    // `wd · p` (L2). A `grad_scale` of exactly 0 skips the update: parameters
    // and state stay as they are (loss scaling's answer to an overflow).
    /// `p -= lr·(s·g + wd·p)`, with `s` = `grad_scale`.
    fn sgd_update(
        &self,
        param: &mut Self::Tensor,
        grad: &Self::Tensor,
        grad_scale: &Self::Tensor,
        lr: f32,
        weight_decay: f32,
    ) -> Result<()>;
    /// `v = μ·v + g; p -= lr·v`.
    #[allow(clippy::too_many_arguments)]
    fn momentum_update(
        &self,
        param: &mut Self::Tensor,
        velocity: &mut Self::Tensor,
        grad: &Self::Tensor,
        grad_scale: &Self::Tensor,
        lr: f32,
        momentum: f32,
        weight_decay: f32,
    ) -> Result<()>;
    /// One Adam (or AdamW) step of `hp` on the gradient `s·g + weight_decay·p`:
    /// moments `m` and `v` are updated in place, then
    /// `p -= lr·m̂/(√v̂ + eps) + lr·decoupled_decay·p` (hats: bias-corrected).
    fn adam_update(
        &self,
        param: &mut Self::Tensor,
        m: &mut Self::Tensor,
        v: &mut Self::Tensor,
        grad: &Self::Tensor,
        grad_scale: &Self::Tensor,
        hp: &AdamStep,
    ) -> Result<()>;
    /// [`Device::sgd_update`] of every tensor of a model at once:
    /// `params[i]` by `grads[i]` with `weight_decay[i]`, element for element
    /// what the single-tensor op computes (the GPU can update them all in
    /// one dispatch; see `GpuDevice::grouped_updates`).
    fn sgd_update_many(
        &self,
        params: &mut [&mut Self::Tensor],
        grads: &[&Self::Tensor],
        grad_scale: &Self::Tensor,
        lr: f32,
        weight_decay: &[f32],
    ) -> Result<()> {
        same_count(
            "sgd_update_many",
            params.len(),
            &[grads.len(), weight_decay.len()],
        )?;
        for ((p, g), &wd) in params.iter_mut().zip(grads).zip(weight_decay) {
            self.sgd_update(p, g, grad_scale, lr, wd)?;
        }
        Ok(())
    }
    /// [`Device::momentum_update`] of every tensor at once (see
    /// [`Device::sgd_update_many`]).
    #[allow(clippy::too_many_arguments)]
    fn momentum_update_many(
        &self,
        params: &mut [&mut Self::Tensor],
        velocities: &mut [&mut Self::Tensor],
        grads: &[&Self::Tensor],
        grad_scale: &Self::Tensor,
        lr: f32,
        momentum: f32,
        weight_decay: &[f32],
    ) -> Result<()> {
        same_count(
            "momentum_update_many",
            params.len(),
            &[velocities.len(), grads.len(), weight_decay.len()],
        )?;
        for (((p, v), g), &wd) in params
            .iter_mut()
            .zip(velocities)
            .zip(grads)
            .zip(weight_decay)
        {
            self.momentum_update(p, v, g, grad_scale, lr, momentum, wd)?;
        }
        Ok(())
    }
    /// [`Device::adam_update`] of every tensor at once, each with its own
    /// step settings (see [`Device::sgd_update_many`]).
    fn adam_update_many(
        &self,
        params: &mut [&mut Self::Tensor],
        m: &mut [&mut Self::Tensor],
        v: &mut [&mut Self::Tensor],
        grads: &[&Self::Tensor],
        grad_scale: &Self::Tensor,
        hp: &[AdamStep],
    ) -> Result<()> {
        same_count(
            "adam_update_many",
            params.len(),
            &[m.len(), v.len(), grads.len(), hp.len()],
        )?;
        for ((((p, m), v), g), hp) in params.iter_mut().zip(m).zip(v).zip(grads).zip(hp) {
            self.adam_update(p, m, v, g, grad_scale, hp)?;
        }
        Ok(())
    }
    /// `Σ x²` over every element of every tensor, as `[1]`: the squared
    /// global norm that clipping scales gradients by. The GPU reads all the
    /// tensors in one dispatch (then reduces its partial sums).
    fn sum_squares_many(&self, tensors: &[&Self::Tensor]) -> Result<Self::Tensor> {
        sum_of(self, tensors, |t| self.reduce(t, Reduce::SumSquares))
    }
    /// `min(1, max_norm / ‖g‖)` from the summed squares `‖g‖²` (shape `[1]`).
    fn clip_factor(&self, sum_squares: &Self::Tensor, max_norm: f32) -> Result<Self::Tensor>;
    /// One loss-scaling step by [`LossScaleStep::apply`]'s rule: from the
    /// summed squares of the scaled gradients (`[1]`), the factor (`[1]`)
    /// the optimizer multiplies them by, while `scale` and `good_steps`
    /// (`[1]` each) move to the next step's, all on the device.
    fn loss_scale_step(
        &self,
        sum_squares: &Self::Tensor,
        scale: &mut Self::Tensor,
        good_steps: &mut Self::Tensor,
        step: &LossScaleStep,
    ) -> Result<Self::Tensor>;
}

/// `Σ part(x)` over `items` as a `[1]` tensor, summed in order (0 for none).
pub(crate) fn sum_of<D: Device + ?Sized, T>(
    dev: &D,
    items: &[T],
    mut part: impl FnMut(&T) -> Result<D::Tensor>,
) -> Result<D::Tensor> {
    let mut total: Option<D::Tensor> = None;
    for item in items {
        let p = part(item)?;
        total = Some(match total {
            Some(sum) => dev.add(&sum, &p)?,
            None => p,
        });
    }
    match total {
        Some(t) => Ok(t),
        None => dev.zeros([1]),
    }
}

/// Checks that the lists of a many-tensor op are as long as its first.
pub(crate) fn same_count(op: &'static str, n: usize, others: &[usize]) -> Result<()> {
    match others.iter().find(|&&o| o != n) {
        None => Ok(()),
        Some(o) => Err(Error::shape(op, format!("{n} tensors but a list of {o}"))),
    }
}

/// Checks that two tensors have the same shape.
pub(crate) fn same_shape(op: &'static str, a: &Shape, b: &Shape) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(Error::shape(op, format!("{a} vs {b}")))
    }
}

/// How a convolution's window moves over its input: `stride` pixels at a
/// time on both axes, over the input with `pad` zeros added on every side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvStep {
    /// Pixels between neighbouring windows (≥ 1).
    pub stride: usize,
    /// Zeros added on each border.
    pub pad: usize,
}

impl ConvStep {
    /// Stride 1 with `pad` zeros on each border.
    pub fn padded(pad: usize) -> Self {
        ConvStep { stride: 1, pad }
    }
}

/// A pooling window: `size×size` pixels, moved `stride` pixels at a time
/// (overlapping where `stride < size`); no padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolWindow {
    /// The window's side.
    pub size: usize,
    /// Pixels between neighbouring windows (≥ 1).
    pub stride: usize,
}

impl PoolWindow {
    /// Non-overlapping `size×size` windows (stride `size`).
    pub fn tiled(size: usize) -> Self {
        PoolWindow { size, stride: size }
    }

    /// Windows of `size` moved `stride` at a time.
    pub fn new(size: usize, stride: usize) -> Self {
        PoolWindow { size, stride }
    }
}

/// Output size along one axis of a convolution: `(size + 2·pad − k)/stride + 1`.
pub(crate) fn conv_out(size: usize, step: ConvStep, k: usize) -> Result<usize> {
    if step.stride == 0 {
        return Err(Error::shape("conv2d", "stride 0".to_string()));
    }
    let padded = step
        .pad
        .checked_mul(2)
        .and_then(|p| size.checked_add(p))
        .ok_or_else(|| Error::shape("conv2d", format!("padding {} is too large", step.pad)))?;
    padded
        .checked_sub(k)
        .map(|d| d / step.stride + 1)
        .ok_or_else(|| {
            Error::shape(
                "conv2d",
                format!("kernel {k} larger than padded input {padded}"),
            )
        })
}

/// The sizes of one convolution, validated against its operands.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGeom {
    pub n: usize,
    pub ci: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
    pub pad: usize,
    pub stride: usize,
}

impl ConvGeom {
    /// Geometry from the input's and the weights' shapes.
    pub fn forward(x: &Shape, w: &Shape, step: ConvStep) -> Result<Self> {
        let (Some((n, ci, h, wd)), Some((co, ci2, kh, kw))) = (x.as_nchw(), w.as_nchw()) else {
            return Err(Error::shape(
                "conv2d",
                format!("input and weight must be 4-d, got {x} and {w}"),
            ));
        };
        if ci != ci2 {
            return Err(Error::shape(
                "conv2d",
                format!("input has {ci} channels, weight expects {ci2}"),
            ));
        }
        // Only the batch may be empty: the kernels split work per image
        // and per channel.
        if [ci, h, wd, co, kh, kw].contains(&0) {
            return Err(Error::shape(
                "conv2d",
                format!("a dimension of 0 in input {x} or weight {w}"),
            ));
        }
        Ok(ConvGeom {
            n,
            ci,
            h,
            w: wd,
            co,
            kh,
            kw,
            ho: conv_out(h, step, kh)?,
            wo: conv_out(wd, step, kw)?,
            pad: step.pad,
            stride: step.stride,
        })
    }

    /// Geometry of a gradient pass: the forward geometry of `x` and `w`,
    /// with `dy` checked against its output; `op` names the pass in errors.
    pub fn backward(
        op: &'static str,
        x: &Shape,
        w: &Shape,
        dy: &Shape,
        step: ConvStep,
    ) -> Result<Self> {
        let g = Self::forward(x, w, step).map_err(|e| match e {
            Error::Shape { detail, .. } => Error::shape(op, detail),
            e => e,
        })?;
        if *dy != g.out_shape() {
            return Err(Error::shape(
                op,
                format!(
                    "gradient {dy} does not match input {x} and weight {w} with stride {}, padding {} (expected {})",
                    step.stride,
                    step.pad,
                    g.out_shape()
                ),
            ));
        }
        Ok(g)
    }

    /// Geometry of the weight gradient of a `kernel`-sized convolution,
    /// from its input and its output gradient.
    pub fn weight_grad(
        x: &Shape,
        dy: &Shape,
        step: ConvStep,
        (kh, kw): (usize, usize),
    ) -> Result<Self> {
        let (Some((_, ci, _, _)), Some((_, co, _, _))) = (x.as_nchw(), dy.as_nchw()) else {
            return Err(Error::shape(
                "conv2d_weight_grad",
                format!("input and gradient must be 4-d, got {x} and {dy}"),
            ));
        };
        Self::backward(
            "conv2d_weight_grad",
            x,
            &Shape::new([co, ci, kh, kw]),
            dy,
            step,
        )
    }

    pub fn out_shape(&self) -> Shape {
        Shape::new([self.n, self.co, self.ho, self.wo])
    }
    pub fn in_shape(&self) -> Shape {
        Shape::new([self.n, self.ci, self.h, self.w])
    }
    pub fn weight_shape(&self) -> Shape {
        Shape::new([self.co, self.ci, self.kh, self.kw])
    }
}

/// Validates max-pooling input and returns `(n, c, h, w, ho, wo)`.
pub(crate) fn pool_geom(
    x: &Shape,
    win: PoolWindow,
) -> Result<(usize, usize, usize, usize, usize, usize)> {
    let g = window_geom("max_pool2d", x, win)?;
    // Arg-max positions are kept as f32, exact up to 2^24.
    if x.numel() > 1 << 24 {
        return Err(Error::shape(
            "max_pool2d",
            format!("input {x} has more than 2^24 elements; pool a smaller batch"),
        ));
    }
    Ok(g)
}

/// Validates a `[N, C, H, W]` input for the windows of `win` and returns
/// `(n, c, h, w, ho, wo)`; `op` names the operation in errors.
pub(crate) fn window_geom(
    op: &'static str,
    x: &Shape,
    win: PoolWindow,
) -> Result<(usize, usize, usize, usize, usize, usize)> {
    let Some((n, c, h, w)) = x.as_nchw() else {
        return Err(Error::shape(op, format!("input must be 4-d, got {x}")));
    };
    let PoolWindow { size: k, stride } = win;
    if k == 0 || stride == 0 || h < k || w < k {
        return Err(Error::shape(
            op,
            format!("window {k} with stride {stride} does not fit input {x}"),
        ));
    }
    Ok((n, c, h, w, (h - k) / stride + 1, (w - k) / stride + 1))
}

/// Validates the operands of a gated recurrence with `gates` gate blocks
/// (`xw [T,B,G·H]`-like `seq`, `u [H,G·H]`) and returns `(t, b, h)`.
pub(crate) fn gated_geom(
    op: &'static str,
    seq: &Shape,
    u: &Shape,
    gates: usize,
) -> Result<(usize, usize, usize)> {
    match (seq.dims(), u.dims()) {
        ([t, b, gh], [h, gh2]) if gh == gh2 && *gh == gates * h && *h > 0 => Ok((*t, *b, *h)),
        _ => Err(Error::shape(
            op,
            format!(
                "expected a sequence [T,B,{gates}H] and recurrent weights [H,{gates}H], got {seq} and {u}"
            ),
        )),
    }
}

/// Validates the operands of [`Device::gru_backward`] (gates `[T,B,4H]`,
/// `u [H,3H]`, `h_prev` and `dh [T,B,H]`) and returns `(t, b, h)`.
pub(crate) fn gru_backward_geom(
    gates: &Shape,
    h_prev: &Shape,
    u: &Shape,
    dh: &Shape,
) -> Result<(usize, usize, usize)> {
    let (t, b, h) = match (dh.dims(), u.dims()) {
        ([t, b, h], [h1, gh]) if h == h1 && *gh == 3 * h && *h > 0 => (*t, *b, *h),
        _ => {
            return Err(Error::shape(
                "gru_backward",
                format!("expected dh [T,B,H] and recurrent weights [H,3H], got {dh} and {u}"),
            ))
        }
    };
    same_shape("gru_backward", gates, &Shape::new([t, b, 4 * h]))?;
    same_shape("gru_backward", h_prev, dh)?;
    Ok((t, b, h))
}

/// `x` viewed as `[N, C, S]` for batch normalisation: `(n, c, s)`, after
/// checking that `stats` is `[2, C]` and each of `params` has `C` values.
pub(crate) fn channel_geom(
    op: &'static str,
    x: &Shape,
    stats: Option<&Shape>,
    params: &[&Shape],
) -> Result<(usize, usize, usize)> {
    let dims = x.dims();
    if dims.len() < 2 || x.numel() == 0 {
        return Err(Error::shape(
            op,
            format!("input must be [N, C, ...] and non-empty, got {x}"),
        ));
    }
    let (n, c) = (dims[0], dims[1]);
    let s = x.numel() / (n * c);
    if let Some(st) = stats {
        same_shape(op, st, &Shape::new([2, c]))?;
    }
    for p in params {
        if p.numel() != c {
            return Err(Error::shape(
                op,
                format!("a parameter of {p} for {c} channels"),
            ));
        }
    }
    Ok((n, c, s))
}

/// Validates rnn operands and returns `(t, b, h)`.
pub(crate) fn rnn_geom(seq: &Shape, u: &Shape) -> Result<(usize, usize, usize)> {
    match (seq.dims(), u.dims()) {
        ([t, b, h], [h1, h2]) if h == h1 && h == h2 => Ok((*t, *b, *h)),
        _ => Err(Error::shape(
            "rnn",
            format!("expected sequence [T,B,H] and recurrent weights [H,H], got {seq} and {u}"),
        )),
    }
}
