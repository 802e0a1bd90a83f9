//! `Precision`: what a device rounds the operands of its products to.
//!
//! Mixed precision as wgtrain does it: under [`Precision::F16`] both
//! operands of every `Device::matmul` are rounded to IEEE half precision
//! (round to nearest, ties to even) and read as f16, half the bytes of f32;
//! the products are summed in f32 and written as f32. The products through
//! `matmul` are the dense layers forward and backward, the recurrent
//! layers' input projections, input gradients and weight gradients, and
//! global average pooling's gradient. Layers keep what their backward pass
//! reads in f16 ([`crate::nn::Kept`], `Device::Half`): dense layers their
//! input and their activation's output, activation layers their output
//! (GELU its input), convolutions their input (but a model's first layer
//! keeps the caller's input as it is), recurrent layers their input
//! vectors, states, and the LSTM's cells and gates or the GRU's gates. So
//! those activations are stored at half the bytes, an activation's
//! derivative reads them rounded to f16, and so do a convolution's weight
//! gradient and a backward recurrence. Weights, optimizer state, the
//! tensors passed between ops, the convolutions themselves, the forward
//! recurrence (on exact f32 states), norms and every other op stay f32, so
//! the optimizer updates f32 master weights.
//!
//! What it does to results: a normal value `a` becomes `a'` with
//! `|a' − a| ≤ 2⁻¹¹|a|`, so where the operands are normal an output differs
//! from the f32 product by at most `(2⁻¹⁰ + 2⁻²²) · Σ|aᵢ||bᵢ|` plus f32
//! summation error. Values beyond ±65504 become infinite (a run then stops
//! on a non-finite loss; a kept tensor only the backward pass reads, such
//! as an LSTM's cells, leaves that step's loss finite and its gradients
//! not, so the loss scaler skips the step, or without scaling the next
//! loss is non-finite); below 2⁻¹⁴ the spacing is a fixed 2⁻²⁴ (an
//! absolute error of at most 2⁻²⁵), and values up to 2⁻²⁵ become zero. An
//! adapter may flush f16 subnormals to zero when the kernel reads them (WGSL
//! allows it; llvmpipe keeps them, and `tests/gpu_device.rs` checks that
//! the values read are the CPU's). The CPU device emulates f16 by rounding
//! the same way before its f32 product, which is what the GPU's f16 kernels
//! are checked against.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The precision of matrix-product operands (see the module docs).
///
/// Files spell it as the command line does (`f16`, `fp16`, `half`, any
/// case), so both read through [`FromStr`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Product operands rounded to f16, sums in f32. On the GPU it needs an
    /// adapter with `SHADER_F16`.
    F16,
}

impl Precision {
    /// `"f32"` or `"f16"`, as the command line and config files spell it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }

    /// `x` as an operand of a product at this precision: itself under
    /// `F32`, the nearest f16 (ties to even) under `F16`.
    pub fn round(self, x: f32) -> f32 {
        match self {
            Precision::F32 => x,
            Precision::F16 => half::f16::from_f32(x).to_f32(),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "f16" | "fp16" | "float16" | "half" => Ok(Precision::F16),
            _ => Err(Error::Config(format!(
                "unknown precision '{s}'; expected f32 or f16"
            ))),
        }
    }
}

impl TryFrom<String> for Precision {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest_half_ties_to_even() {
        let p = Precision::F16;
        assert_eq!(p.round(1.0), 1.0);
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1).
        assert_eq!(p.round(1.0 + 2f32.powi(-11)), 1.0);
        // 1 + 3·2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: to 1 + 2^-9.
        assert_eq!(p.round(1.0 + 3.0 * 2f32.powi(-11)), 1.0 + 2f32.powi(-9));
        assert_eq!(p.round(65504.0), 65504.0);
        assert_eq!(p.round(65520.0), f32::INFINITY);
        assert_eq!(p.round(2f32.powi(-24)), 2f32.powi(-24));
        assert_eq!(p.round(2f32.powi(-26)), 0.0);
        assert_eq!(Precision::F32.round(0.1), 0.1);
    }

    #[test]
    fn parses_its_names() {
        assert_eq!("F16".parse::<Precision>().unwrap(), Precision::F16);
        assert_eq!("f32".parse::<Precision>().unwrap(), Precision::F32);
        let e = "f8".parse::<Precision>().unwrap_err().to_string();
        assert!(e.contains("expected f32 or f16"), "{e}");
    }

    #[test]
    fn files_accept_what_the_command_line_does() {
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        struct File {
            precision: Precision,
        }
        let read = |text: &str| toml::from_str::<File>(text).map(|f| f.precision);
        assert_eq!(read("precision = \"FP16\"").unwrap(), Precision::F16);
        assert_eq!(read("precision = \"half\"").unwrap(), Precision::F16);
        let e = read("precision = \"f8\"").unwrap_err().to_string();
        assert!(e.contains("unknown precision 'f8'"), "{e}");
        let e = read("precision = 5").unwrap_err().to_string();
        assert!(e.contains("expected a string"), "{e}");
        assert_eq!(
            toml::to_string(&File {
                precision: Precision::F16
            })
            .unwrap(),
            "precision = \"f16\"\n"
        );
    }
}
