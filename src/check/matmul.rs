//! Matrix products: every transpose layout, and the fused bias + activation
//! epilogue.

use super::{random, Case, ChaCha8Rng, Check, Tolerance};
use crate::device::{Activation, Device, MatmulSpec, Precision};
use crate::error::Result;

/// `op(A)·op(B)` (+ bias, activation) for `[m, k]·[k, n]`, at a precision
/// (under f16 the reference rounds the operands as the GPU must).
#[derive(Clone, Debug)]
pub struct Matmul {
    m: usize,
    k: usize,
    n: usize,
    spec: MatmulSpec,
    bias: bool,
    pub(super) precision: Precision,
    /// A kept in f16 ([`Device::matmul_half`]), as a dense layer's input is
    /// for its weight gradient under f16.
    half_a: bool,
}

impl Check for Matmul {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let Matmul {
            m,
            k,
            n,
            spec,
            bias,
            precision,
            half_a,
        } = *self;
        let dev = &dev.with_precision(precision)?;
        let a = random(dev, rng, if spec.trans_a { [k, m] } else { [m, k] }, 1.0)?;
        let b = random(dev, rng, if spec.trans_b { [n, k] } else { [k, n] }, 1.0)?;
        let bias = if bias {
            Some(random(dev, rng, [n], 1.0)?)
        } else {
            None
        };
        Ok(vec![if half_a {
            dev.matmul_half(&dev.to_half(&a)?, &b, bias.as_ref(), spec)?
        } else {
            dev.matmul(&a, &b, bias.as_ref(), spec)?
        }])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::sum_of(self.k)
    }
}

pub(super) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // Every transpose combination on awkward shapes.
    layouts(
        &mut v,
        Precision::F32,
        &[
            (1, 1, 1),
            (1, 7, 5),
            (3, 5, 7),
            (17, 129, 33),
            (64, 64, 64),
            (130, 257, 67),
            // Multiples of 4 (the vec4 kernel), with a last block of rows that
            // overlaps the one before (12, 36), and one too short for it (4).
            // Forced, the bcast family takes 8 rows at 8 (its 8×4 block),
            // 16 rows at 12 (four past the end), 32 at 36 and 64; at 100
            // columns 32×8 blocks take a workgroup of two subgroups of 8,
            // the second with five invocations' worth of columns; at 76
            // columns, 16×12 blocks (seven invocations of 12 in one
            // subgroup, the last with 4 columns, the eighth none; the last
            // block of rows 4 deep). Padded, (130, 257, 67) takes 16×12.
            (12, 16, 20),
            (36, 8, 44),
            (36, 12, 76),
            (36, 12, 100),
            // 8 rows at 76 columns (75 padded): 8×4 blocks, 19 invocations
            // in a workgroup of three subgroups.
            (8, 12, 76),
            (5, 12, 75),
            (4, 8, 12),
            (8, 12, 20),
            // Over one 128×128 tile each way (tile128 is a candidate), with
            // partial last tiles and a last slice of k 4 deep.
            (132, 36, 260),
            // One column (a linear model's output and weight gradient: the
            // `rows` kernel's one-column loop at real sizes).
            (37, 70, 1),
            (64, 1024, 1),
        ],
    );
    for act in Activation::ALL {
        // The last two: multiples of 4, so the vec4 and bcast kernels' epilogues.
        for (m, k, n, trans_a) in [
            (5, 3, 9, false),
            (33, 70, 19, true),
            (40, 64, 1, false),
            (24, 16, 12, true),
            // 16×12 blocks forced (the third block of columns' epilogue).
            (20, 8, 76, false),
        ] {
            let spec = MatmulSpec {
                trans_a,
                trans_b: false,
                act,
            };
            v.push(Case::new(
                format!("matmul+bias+{act:?}"),
                format!("{m}×{k}·{k}×{n}"),
                Matmul {
                    m,
                    k,
                    n,
                    spec,
                    bias: true,
                    precision: Precision::F32,
                    half_a: false,
                },
            ));
        }
    }
    // f16 operands (every layout; the unaligned shapes take the padded
    // copies, the aligned ones the vec4 kernel directly), with f32 sums.
    layouts(
        &mut v,
        Precision::F16,
        &[
            (3, 5, 7),
            (17, 129, 33),
            (130, 257, 67),
            (12, 16, 20),
            (36, 8, 44),
            (132, 36, 260),
            (37, 70, 1),
        ],
    );
    for (m, k, n, trans_a) in [(5, 3, 9, false), (32, 64, 16, true)] {
        v.push(Case::new(
            "matmul f16+bias+Tanh",
            format!("{m}×{k}·{k}×{n}"),
            Matmul {
                m,
                k,
                n,
                spec: MatmulSpec {
                    trans_a,
                    trans_b: false,
                    act: Activation::Tanh,
                },
                bias: true,
                precision: Precision::F16,
                half_a: false,
            },
        ));
    }
    // A kept in f16: read as it is (aligned), re-padded from its halves
    // (unaligned) or, under f32, through an f32 copy.
    for precision in [Precision::F16, Precision::F32] {
        for (m, k, n) in [(7, 5, 3), (17, 129, 33), (12, 16, 20), (132, 36, 260)] {
            for trans_a in [false, true] {
                let spec = MatmulSpec {
                    trans_a,
                    trans_b: false,
                    act: Activation::Identity,
                };
                let t = if trans_a { "ᵀ" } else { "" };
                v.push(Case::new(
                    format!("matmul {precision} A{t} kept in f16"),
                    format!("{m}×{k}·{k}×{n}"),
                    Matmul {
                        m,
                        k,
                        n,
                        spec,
                        bias: false,
                        precision,
                        half_a: true,
                    },
                ));
            }
        }
    }
    v
}

/// A case for each of the four transpose layouts of each shape, at `precision`.
fn layouts(v: &mut Vec<Case>, precision: Precision, shapes: &[(usize, usize, usize)]) {
    let t = |b| if b { "ᵀ" } else { "" };
    let tag = match precision {
        Precision::F32 => "",
        Precision::F16 => " f16",
    };
    for &(m, k, n) in shapes {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let spec = MatmulSpec {
                trans_a,
                trans_b,
                act: Activation::Identity,
            };
            v.push(Case::new(
                format!("matmul{tag} A{}·B{}", t(trans_a), t(trans_b)),
                format!("{m}×{k}·{k}×{n}"),
                Matmul {
                    m,
                    k,
                    n,
                    spec,
                    bias: false,
                    precision,
                    half_a: false,
                },
            ));
        }
    }
}
