//! Autotuning of the matmul and convolution kernels: the first matmul of
//! each shape class (operand layout, epilogue, every size rounded up to a
//! power of two, whether the vec4 kernel applies) times every kernel that
//! can compute it on the real operands and keeps the fastest; so does the
//! first convolution of each class (`conv_class`: its pass and sizes
//! rounded likewise), where there is more than one kernel for it
//! ([`ConvVariant`]). Winners are kept for the process and in a cache file
//! per adapter, driver, wgtrain version and kernel revision, so a later run skips the timing
//! and launches the same kernels.
//!
//! Kernels differ in summation order, so two runs are bit-identical only
//! when they make the same choices: the same seed and device, and a cache
//! file that already holds every shape class the runs use (a class tuned
//! afresh may pick another kernel, by timing).
//! `WGTRAIN_TUNE=0` turns tuning off (the fixed rules: the barrier-free
//! register-block matmul kernels on every adapter; the
//! broadcast convolutions on software adapters that can run them), as does
//! forcing a kernel (`WGTRAIN_MATMUL`, [`super::GpuDevice::with_matmul_kernel`];
//! `WGTRAIN_CONV`, [`super::GpuDevice::with_conv_kernel`]).
//! `WGTRAIN_TUNE_CACHE=FILE` puts the cache elsewhere than the user's cache
//! directory. `wgtrain tune` tunes ahead and prints the table.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A kernel the tuner can choose: named in the table and the cache file.
pub trait Variant: Copy + PartialEq {
    /// The kernel's name in the table.
    fn name(self) -> &'static str;
}

/// One convolution kernel of a pass that has two (the forward pass and the
/// input gradient).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvVariant {
    /// shaders/conv2d.wgsl: each invocation loads its 8 channels' weights.
    Plain,
    /// shaders/conv2d_bcast.wgsl: lanes 0-7 of a subgroup load one weight
    /// each and share them by broadcasts; adapters with subgroups of at
    /// least 8.
    Bcast,
}

impl ConvVariant {
    /// Both kernels, in the order `wgtrain tune` prints them.
    pub const ALL: [ConvVariant; 2] = [ConvVariant::Plain, ConvVariant::Bcast];
}

impl Variant for ConvVariant {
    fn name(self) -> &'static str {
        match self {
            ConvVariant::Plain => "plain",
            ConvVariant::Bcast => "bcast",
        }
    }
}

/// How a recurrence (Elman, LSTM, GRU) runs a time step (shaders/rnn.wgsl,
/// shaders/gated.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnnVariant {
    /// One dispatch per step: the step's recurrent product and the cell's
    /// equations (or the backward step's) in one kernel.
    Fused,
    /// The step's product as a matmul, with the matmul's own tuned kernel:
    /// for the Elman cell where batch and hidden size are multiples of 4
    /// (the batch at least 8) with the step finished in the product's
    /// epilogue, one dispatch per step; elsewhere then a kernel that
    /// finishes the step, two.
    Matmul,
    /// Up to [`RnnVariant::SEQUENCE_STEPS`] fused steps per dispatch: each
    /// workgroup runs them for its own rows of the batch (which never meet
    /// in a recurrence), with a barrier between steps. The LSTM and GRU at
    /// any hidden size, the Elman cell at multiples of 4; elsewhere,
    /// forced, it runs as [`RnnVariant::Fused`]. Tuned on hardware adapters
    /// only ([`RnnVariant::candidates`]).
    Sequence,
}

impl RnnVariant {
    /// Every way, in the order `wgtrain tune` prints them.
    pub const ALL: [RnnVariant; 3] = [RnnVariant::Fused, RnnVariant::Matmul, RnnVariant::Sequence];

    /// The most steps one [`RnnVariant::Sequence`] dispatch runs: a long
    /// sequence takes several, so that no dispatch runs long enough for a
    /// driver's watchdog to reset the GPU.
    pub const SEQUENCE_STEPS: usize = 64;

    /// The ways the tuner times for a recurrence of a gated cell (`gated`)
    /// or not, with (`sequence`) or without a whole-pass kernel for its
    /// size, on a hardware adapter (`hardware`) or not. Software adapters
    /// (llvmpipe) time neither the whole-pass kernels, whose steps are the
    /// fused kernels', nor a gated cell's fused kernels: one hidden unit
    /// of four rows per invocation loads a weight and four states for every
    /// four FMAs, and the matmul way outran them there 2.4–10× at every
    /// size measured (README, "Autotuned matmul kernels"), while timing
    /// them took most of the 25–42 s that tuning an LSTM run's shapes cost.
    pub fn candidates(gated: bool, sequence: bool, hardware: bool) -> &'static [RnnVariant] {
        match (hardware, gated, sequence) {
            (true, _, true) => &Self::ALL,
            (true, _, false) | (false, false, _) => &Self::ALL[..2],
            (false, true, _) => &[RnnVariant::Matmul],
        }
    }
}

impl Variant for RnnVariant {
    fn name(self) -> &'static str {
        match self {
            RnnVariant::Fused => "fused",
            RnnVariant::Matmul => "matmul",
            RnnVariant::Sequence => "sequence",
        }
    }
}

impl Variant for MatmulVariant {
    fn name(self) -> &'static str {
        MatmulVariant::name(self)
    }
}

/// One matmul kernel of shaders/matmul.wgsl.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulVariant {
    /// `matmul_vec4`: 8×4 register blocks, vec4 loads; sizes multiples of 4.
    Vec4,
    /// `matmul_blocked`: 4×4 register blocks, scalar loads; any size.
    Blocked,
    /// `matmul_tiled`: 64×64 shared-memory tiles; any size.
    Tiled,
    /// `matmul_vec4` on copies zero-padded to multiples of 4, storing only
    /// C's own corner: sizes that are not multiples of 4.
    Padded,
    /// `matmul_rows`: one row of C per invocation; products with at most
    /// [`MatmulVariant::ROWS_MAX_COLUMNS`] columns.
    Rows,
    /// `matmul_bcast` (shaders/matmul_bcast.wgsl): a workgroup's
    /// invocations share 8 rows of C and take A's rows from one another by
    /// subgroup broadcasts, each with 4 columns; sizes multiples of 4,
    /// adapters with subgroups of at least 8.
    Bcast8x4,
    /// `matmul_bcast` with 16 rows per workgroup and 8 columns each.
    Bcast16x8,
    /// `matmul_bcast` with 32 rows per workgroup and 8 columns each.
    Bcast32x8,
    /// `matmul_bcast` with 16 rows per workgroup and 12 columns each: a
    /// candidate for products of [`MatmulVariant::WIDE_COLUMNS`] columns,
    /// whose columns it may cover in one subgroup where 8 an invocation
    /// take two (76 columns: 7 invocations against 10).
    Bcast16x12,
    /// `matmul_bcast` 8×4 on copies zero-padded to multiples of 4, storing
    /// only C's own corner: sizes that are not multiples of 4, on adapters
    /// that can run `matmul_bcast`.
    PaddedBcast8x4,
    /// `matmul_bcast` 16×8 on zero-padded copies.
    PaddedBcast16x8,
    /// `matmul_bcast` 32×8 on zero-padded copies.
    PaddedBcast32x8,
    /// `matmul_bcast` 16×12 on zero-padded copies.
    PaddedBcast16x12,
    /// `matmul_tile128`: 128×128 shared-memory tiles, 8×8 outputs per
    /// invocation; sizes multiples of 4, a candidate for products of more
    /// than [`MatmulVariant::TILE128_MIN`] rows and columns on hardware
    /// adapters (on llvmpipe, where barriers are expensive, it ran 1024³
    /// in 272 ms against `bcast32x8`'s 96).
    Tile128,
}

impl MatmulVariant {
    /// The most columns a product may have for `rows` to be a candidate
    /// (a power of two, so that a shape class decides it).
    pub const ROWS_MAX_COLUMNS: usize = 16;

    /// `tile128` is a candidate for products with more rows and more
    /// columns than this (a power of two, so that a shape class decides
    /// it): smaller ones leave most of a 128×128 tile, or of a large GPU,
    /// idle.
    pub const TILE128_MIN: usize = 128;

    /// The 12-column `bcast` blocks are candidates for products with more
    /// columns than the first and at most the second (powers of two, so
    /// that a shape class decides it): up to 64 columns, 8 an invocation
    /// fit one subgroup of 8 already, and past 128 nothing has measured
    /// them (each more rows of workgroups than `bcast32x8`'s).
    pub const WIDE_COLUMNS: (usize, usize) = (64, 128);

    /// Every kernel, in the order `wgtrain tune` prints them.
    pub const ALL: [MatmulVariant; 14] = [
        MatmulVariant::Vec4,
        MatmulVariant::Blocked,
        MatmulVariant::Tiled,
        MatmulVariant::Padded,
        MatmulVariant::Rows,
        MatmulVariant::Bcast8x4,
        MatmulVariant::Bcast16x8,
        MatmulVariant::Bcast32x8,
        MatmulVariant::Bcast16x12,
        MatmulVariant::PaddedBcast8x4,
        MatmulVariant::PaddedBcast16x8,
        MatmulVariant::PaddedBcast32x8,
        MatmulVariant::PaddedBcast16x12,
        MatmulVariant::Tile128,
    ];

    /// The block sizes of `matmul_bcast`: by rows, smallest first, then
    /// the 12-column block.
    pub const BCAST: [MatmulVariant; 4] = [
        MatmulVariant::Bcast8x4,
        MatmulVariant::Bcast16x8,
        MatmulVariant::Bcast32x8,
        MatmulVariant::Bcast16x12,
    ];

    /// The same blocks on zero-padded copies, in the same order. Each is a
    /// candidate, as the aligned blocks are: which block is fastest depends
    /// on the layout, not only on the rows (Austen's output layer on
    /// lavapipe: 16×8 for its input gradient, 32×8 for its weight
    /// gradient), and one fixed block per row count made a vocabulary of
    /// 75 pay more than the padding for it.
    pub const PADDED_BCAST: [MatmulVariant; 4] = [
        MatmulVariant::PaddedBcast8x4,
        MatmulVariant::PaddedBcast16x8,
        MatmulVariant::PaddedBcast32x8,
        MatmulVariant::PaddedBcast16x12,
    ];

    /// The kernels that can compute a product whose sizes are (`aligned`)
    /// or are not multiples of 4, with `rows` rows and `columns` columns,
    /// on an adapter that can (`bcast`) or cannot run `matmul_bcast` and
    /// is (`hardware`) or is not a real GPU.
    ///
    /// Software adapters leave out what lost there and costs the
    /// most to time: the shared-memory kernels `matmul_tiled` and
    /// `matmul_tile128`, whose barriers they run very slowly, and, where
    /// they can run `matmul_bcast`, `matmul_vec4` (`vec4`, `padded`) and,
    /// for sizes `matmul_bcast` takes as they are, `matmul_blocked`. In a
    /// `wgtrain tune --fresh` of every workload on llvmpipe with every
    /// kernel a candidate (`results/llvmpipe-tune/all-candidates.txt`),
    /// `tiled` took 1.4–18× the winner's time, `vec4` 1.4–5.6×, `padded`
    /// 1.07–2.5× and `blocked` on aligned sizes 2.3–14× (`padded` won one
    /// class of 33 in a later table, `tune-fresh-af35bda.txt`, by 3 %). Leaving out
    /// `tiled` and `blocked` (with `DROP_FACTOR` at 2) took an LSTM run's
    /// tuning on llvmpipe from 9.6 s to 5.7 s, and leaving out `vec4` and
    /// `padded` too (with [`timed_dims`]) from 5.5 s to 2.0 s (medians;
    /// README "Autotuned matmul kernels").
    pub fn candidates(
        aligned: bool,
        (rows, columns): (usize, usize),
        bcast: bool,
        hardware: bool,
    ) -> Vec<MatmulVariant> {
        // The kernels that lose on a software adapter that has `bcast`.
        let all = hardware || !bcast;
        let mut v = if aligned {
            let mut v = vec![];
            if all {
                v.extend([MatmulVariant::Vec4, MatmulVariant::Blocked]);
            }
            if hardware {
                v.push(MatmulVariant::Tiled);
            }
            if bcast {
                v.extend(Self::BCAST);
            }
            if hardware && rows > Self::TILE128_MIN && columns > Self::TILE128_MIN {
                v.push(MatmulVariant::Tile128);
            }
            v
        } else {
            let mut v = vec![MatmulVariant::Blocked];
            if hardware {
                v.push(MatmulVariant::Tiled);
            }
            if all {
                v.push(MatmulVariant::Padded);
            }
            if bcast {
                v.extend(Self::PADDED_BCAST);
            }
            v
        };
        let (wide_min, wide_max) = Self::WIDE_COLUMNS;
        if columns <= wide_min || columns > wide_max {
            v.retain(|v| v.bcast_block().is_none_or(|(_, cols)| cols != 12));
        }
        if columns <= Self::ROWS_MAX_COLUMNS {
            v.push(MatmulVariant::Rows);
        }
        v
    }

    /// The kernel's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Vec4 => "vec4",
            MatmulVariant::Blocked => "blocked",
            MatmulVariant::Tiled => "tiled",
            MatmulVariant::Padded => "padded",
            MatmulVariant::Rows => "rows",
            MatmulVariant::Bcast8x4 => "bcast8x4",
            MatmulVariant::Bcast16x8 => "bcast16x8",
            MatmulVariant::Bcast32x8 => "bcast32x8",
            MatmulVariant::Bcast16x12 => "bcast16x12",
            MatmulVariant::PaddedBcast8x4 => "padded_bcast8x4",
            MatmulVariant::PaddedBcast16x8 => "padded_bcast16x8",
            MatmulVariant::PaddedBcast32x8 => "padded_bcast32x8",
            MatmulVariant::PaddedBcast16x12 => "padded_bcast16x12",
            MatmulVariant::Tile128 => "tile128",
        }
    }

    /// Whether the variant runs on zero-padded copies of the operands.
    pub fn padded(self) -> bool {
        matches!(
            self,
            MatmulVariant::Padded
                | MatmulVariant::PaddedBcast8x4
                | MatmulVariant::PaddedBcast16x8
                | MatmulVariant::PaddedBcast32x8
                | MatmulVariant::PaddedBcast16x12
        )
    }

    /// The `matmul_bcast` variant the fixed rule takes for a product of
    /// `rows` rows and `columns` columns (multiples of 4), padded
    /// (`padded`) or not, when the `bcast` family is forced
    /// (`WGTRAIN_MATMUL=bcast`, untuned): 16×12 for more than 8 rows at 68
    /// to 96 columns, which 12 columns an invocation cover in one subgroup
    /// where 8 take two (76 columns: 7 invocations against 10; in two
    /// `wgtrain tune` tables on llvmpipe 1.3–1.8× as fast as 16×8 there
    /// and 1.9–3.0× as fast as 32×8, README "Autotuned matmul kernels"),
    /// else the smallest block that covers the rows, up to 32.
    pub fn bcast_for(rows: usize, columns: usize, padded: bool) -> MatmulVariant {
        let family = if padded {
            Self::PADDED_BCAST
        } else {
            Self::BCAST
        };
        let block = |size| family.into_iter().find(|v| v.bcast_block() == Some(size));
        // Past one subgroup of 8 columns an invocation, within one of 12.
        if rows > 8 && columns > Self::WIDE_COLUMNS.0 && columns <= 8 * 12 {
            if let Some(wide) = block((16, 12)) {
                return wide;
            }
        }
        family
            .into_iter()
            .find(|v| v.bcast_block().is_some_and(|(r, c)| r >= rows && c != 12))
            .or_else(|| block((32, 8)))
            .expect("every family has a 32×8 block")
    }

    /// Whether the kernel stores C four columns at a time (shaders/matmul.wgsl
    /// `store4`), which a recurrent step's epilogue needs (`STEP`).
    pub fn stores_vec4(self) -> bool {
        match self {
            MatmulVariant::Vec4
            | MatmulVariant::Padded
            | MatmulVariant::Bcast8x4
            | MatmulVariant::Bcast16x8
            | MatmulVariant::Bcast32x8
            | MatmulVariant::Bcast16x12
            | MatmulVariant::PaddedBcast8x4
            | MatmulVariant::PaddedBcast16x8
            | MatmulVariant::PaddedBcast32x8
            | MatmulVariant::PaddedBcast16x12
            | MatmulVariant::Tile128 => true,
            MatmulVariant::Blocked | MatmulVariant::Tiled | MatmulVariant::Rows => false,
        }
    }

    /// `matmul_bcast`'s rows per workgroup and columns per invocation,
    /// for its variants (padded or not).
    pub fn bcast_block(self) -> Option<(usize, usize)> {
        match self {
            MatmulVariant::Bcast8x4 | MatmulVariant::PaddedBcast8x4 => Some((8, 4)),
            MatmulVariant::Bcast16x8 | MatmulVariant::PaddedBcast16x8 => Some((16, 8)),
            MatmulVariant::Bcast32x8 | MatmulVariant::PaddedBcast32x8 => Some((32, 8)),
            MatmulVariant::Bcast16x12 | MatmulVariant::PaddedBcast16x12 => Some((16, 12)),
            _ => None,
        }
    }
}

/// What tuning found for one shape class.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tuned {
    /// The fastest kernel's name ([`Variant::name`]).
    pub kernel: String,
    /// Each candidate's best time, in microseconds: of the whole product,
    /// or of the slice of it in `rows`.
    pub micros: BTreeMap<String, f64>,
    /// The rows of the slice the times are of, where the tuner timed one
    /// (a software adapter's large products: [`timed_dims`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
}

/// The cache file: the adapter it was measured on and its table.
#[derive(Serialize, Deserialize)]
struct CacheFile {
    wgtrain: String,
    adapter: String,
    driver: String,
    entries: BTreeMap<String, Tuned>,
}

/// Timed rounds over the candidates of a shape class (after a warm-up).
const ROUNDS: usize = 3;
/// A candidate slower than this many times the best after a round is not
/// timed in the next. Of the classes timed in more than one table
/// (llvmpipe twice, an H200 three times), a kernel that won a class in one
/// was at most 1.3× the winner in another, except in the H200's first
/// table, timed one launch at a time, where another table's winner read
/// 4.7×: launch noise, which timing short launches in batches ended. Clear
/// losers' launches (2–17× the winner) were much of what tuning cost on
/// llvmpipe.
const DROP_FACTOR: f64 = 2.0;

/// A candidate whose launch alone takes less than this is timed over
/// several launches submitted together: on a real GPU one submit and wait
/// cost tens of µs or more (no single launch in an H200's first tuning
/// table took under 67 µs, however small the product), enough to decide
/// between kernels that take a few µs. A launch just over it is timed
/// alone, with its whole submit and wait: a few percent of it.
const MIN_TIMED_SECONDS: f64 = 0.002;
/// The most launches timed together (so one timing of a candidate
/// launches it 1 to 1 + this many times).
pub const MAX_TIMED_LAUNCHES: usize = 32;

/// The seconds one launch takes on an idle GPU, as the tuner's `time`
/// closures measure it: `launch` once alone; on a hardware adapter, if
/// that was shorter than [`MIN_TIMED_SECONDS`], the mean of enough
/// launches back to back (one submit and one wait for all of them) to
/// last about that long. A software adapter's kernels run on the CPU
/// cores that also submit and wait, so one launch measures them well (and
/// batching doubled `wgtrain tune`'s time on llvmpipe). `launch` must
/// compute the same result however often it runs.
pub(crate) fn time_launch(
    ctx: &super::context::Context,
    launch: impl FnMut() -> Result<()>,
) -> Result<f64> {
    let batch = !matches!(ctx.info.device_type, wgpu::DeviceType::Cpu);
    time_launches(|| ctx.wait_idle(), launch, batch)
}

/// [`time_launch`] with `wait_idle` for the GPU's wait, batching short
/// launches where `batch`.
fn time_launches(
    wait_idle: impl Fn() -> Result<()>,
    mut launch: impl FnMut() -> Result<()>,
    batch: bool,
) -> Result<f64> {
    wait_idle()?;
    let t = std::time::Instant::now();
    launch()?;
    wait_idle()?;
    let once = t.elapsed().as_secs_f64();
    if !batch || once >= MIN_TIMED_SECONDS {
        return Ok(once);
    }
    let launches =
        ((MIN_TIMED_SECONDS / once.max(1e-9)).ceil() as usize).clamp(2, MAX_TIMED_LAUNCHES);
    let t = std::time::Instant::now();
    for _ in 0..launches {
        launch()?;
    }
    wait_idle()?;
    Ok(t.elapsed().as_secs_f64() / launches as f64)
}

/// On a software adapter a matmul of more multiply-adds than this is
/// tuned on a slice of itself ([`timed_dims`]): on llvmpipe about 5 ms a
/// launch for the fastest kernels.
pub const TIMED_MACS: usize = 1 << 26;
/// A slice's length is a multiple of this apart from the whole length,
/// which every kernel's tile size divides, so that the slice ends in the
/// same partial tiles as the whole product; and a slice has at least this
/// many rows for each of the adapter's cores, so that even the largest
/// blocks (32 rows) leave none of them idle.
const TIMED_STEP: usize = 128;
/// The fewest rows a slice has: with 256 of K1's 1,024 rows (a slice of
/// the 2-core floor alone) `bcast32x8` read 1.13× `bcast16x8`'s speed in
/// one pair of tunings on llvmpipe against 1.51× whole, and the pick
/// flipped in another (`results/llvmpipe-tune/`).
const TIMED_MIN_ROWS: usize = 1024;

/// The sizes at which the tuner times a product of sizes `(m, k, n)`,
/// `trans_a` or not, on a software adapter running on `cores` CPU cores,
/// or on a hardware adapter (`None`): the whole product, except on a
/// software adapter where it computes more than [`TIMED_MACS`]
/// multiply-adds and A is not transposed; there the first rows of A (and
/// of C), about that many multiply-adds' worth, and at least 1,024 rows
/// and 128 per core.
///
/// A software adapter runs a launch's workgroups a few at a time on the
/// CPU's cores, so once there are enough of them to keep every core busy,
/// each kernel's time grows in proportion to its rows of workgroups, and
/// each of them reads its own rows of A and all of B as in the whole
/// product: a slice of rows ranks the kernels as the whole product does.
/// On llvmpipe the LSTM's output layer took the same kernel at 2,048,
/// 4,096 and 16,384 rows, and at a slice of 3,584 of the 16,384
/// (`results/llvmpipe-tune/`), while timing that class whole was the
/// largest part of what tuning an LSTM run cost there (launches of
/// 34–130 ms). Too thin a slice is another matter: with 128 or 256 of
/// K1's 1,024 rows the ranking of `bcast32x8` and `bcast16x8` moved
/// (1.06× and 1.13× against 1.33× and 1.51× whole), hence at least 1,024
/// rows (K1-1024 is timed whole). A slice of k would shrink
/// what each workgroup reads: timed on 256 of its 2,048, the LSTM's TN
/// weight gradient ranked `bcast16x8` first, which took 1.4×
/// `bcast32x8`'s time on the whole product. A real GPU runs workgroups
/// side by side, so a slice would leave much of it idle: there the whole
/// product is timed.
pub fn timed_dims(
    (m, k, n): (usize, usize, usize),
    trans_a: bool,
    cores: Option<usize>,
) -> (usize, usize, usize) {
    let Some(cores) = cores else {
        return (m, k, n);
    };
    let want = TIMED_MACS
        .div_ceil(k.saturating_mul(n).max(1))
        .max(TIMED_STEP.saturating_mul(cores.max(1)))
        .max(TIMED_MIN_ROWS);
    if trans_a || m <= want {
        return (m, k, n);
    }
    (m - (m - want) / TIMED_STEP * TIMED_STEP, k, n)
}

/// Part of a cache file's identity with the wgtrain version: raised when
/// a kernel changes how it runs (2: `matmul_bcast`'s workgroups in whole
/// subgroups, `kernels::matmul::bcast_workgroups`; 3: the Elman steps'
/// `matmul` way in one dispatch a step, `kernels::matmul::matmul_step`),
/// so that tables timed before are timed again.
const KERNELS_REVISION: u32 = 3;

/// Cache files larger than this are not read (they are written by wgtrain
/// and hold a few hundred entries at most).
const MAX_CACHE_BYTES: u64 = 1 << 20;

/// The shape class a matmul is tuned for. The epilogue's bias is part of
/// it; its activation (a few FMAs per output) is not.
pub fn shape_class(
    (m, k, n): (usize, usize, usize),
    trans_a: bool,
    trans_b: bool,
    epilogue: bool,
) -> String {
    let layout = match (trans_a, trans_b) {
        (false, false) => "NN",
        (true, false) => "TN",
        (false, true) => "NT",
        (true, true) => "TT",
    };
    let aligned = crate::device::gpu::kernels::matmul::is_aligned(m, k, n);
    format!(
        "{layout} m≤{} k≤{} n≤{}{}{}",
        m.next_power_of_two(),
        k.next_power_of_two(),
        n.next_power_of_two(),
        if aligned { " aligned" } else { "" },
        if epilogue { " +bias" } else { "" },
    )
}

/// The shape class a pass of a recurrence is tuned for: the cell (`rnn`,
/// `lstm`, `gru`), the pass (`fwd`, `bwd`), the batch and the hidden size
/// rounded up to powers of two, and for the Elman cell whether the hidden
/// size is a multiple of 4 (its vec4 kernels, and its
/// [`RnnVariant::Sequence`], need it). The number of steps is left out:
/// the per-step ways' times grow with it in proportion, the whole-pass
/// way's nearly so (a dispatch per 64 steps), and the first call's count
/// is what is timed.
pub(crate) fn rnn_class(cell: &str, pass: &str, batch: usize, hidden: usize) -> String {
    let aligned = cell == "rnn" && hidden.is_multiple_of(4);
    format!(
        "{cell} {pass} b≤{} h≤{}{}",
        batch.next_power_of_two(),
        hidden.next_power_of_two(),
        if aligned { " aligned" } else { "" }
    )
}

/// The shape class a convolution pass is tuned for: the pass (`fwd`,
/// `dx`), every size rounded up to a power of two, the kernel size, stride
/// and padding.
pub(crate) fn conv_class(pass: &str, g: &crate::device::ConvGeom) -> String {
    let p2 = usize::next_power_of_two;
    format!(
        "conv {pass} n≤{} ci≤{} co≤{} in≤{}×{} k{}×{} s{} p{}",
        p2(g.n),
        p2(g.ci),
        p2(g.co),
        p2(g.h),
        p2(g.w),
        g.kh,
        g.kw,
        g.stride,
        g.pad
    )
}

/// The tuned choices of one device (shared by its clones).
pub struct Tuner {
    path: Option<PathBuf>,
    identity: (String, String, String),
    table: Mutex<BTreeMap<String, Tuned>>,
}

impl Tuner {
    /// The tuner for the adapter `info`, with its cache file read (from
    /// `WGTRAIN_TUNE_CACHE`, else the user's cache directory). Whether to
    /// tune at all (`WGTRAIN_TUNE`) is the caller's to decide.
    pub fn open(info: &wgpu::AdapterInfo) -> Tuner {
        let path = match std::env::var_os("WGTRAIN_TUNE_CACHE") {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => dirs::cache_dir().map(|d| d.join("wgtrain").join(cache_name(&identity_of(info)))),
        };
        Tuner::with_cache(info, path)
    }

    /// A tuner for the adapter `info` keeping its table in `path` (none:
    /// for this process only), whatever the environment says.
    pub fn with_cache(info: &wgpu::AdapterInfo, path: Option<PathBuf>) -> Tuner {
        let identity = identity_of(info);
        let table = path
            .as_ref()
            .and_then(|p| read_cache(p, &identity))
            .unwrap_or_default();
        Tuner {
            path,
            identity,
            table: Mutex::new(table),
        }
    }

    /// The cache file, if there is one.
    pub fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }

    /// Everything tuned so far (from the cache file and this process).
    pub fn table(&self) -> BTreeMap<String, Tuned> {
        self.lock().clone()
    }

    /// The kernel for shape class `key`: the cached winner (when it timed
    /// every one of `candidates`: a class tuned before a kernel existed is
    /// tuned again), else the fastest of `candidates` by `time` (one
    /// launch's seconds on an idle GPU, short launches timed in batches
    /// of up to [`MAX_TIMED_LAUNCHES`]), which is then
    /// cached.
    ///
    /// The table is not locked while a class is timed, so that a candidate
    /// may itself run tuned kernels (the recurrence through matmuls does);
    /// where two threads time one class at once, the first to finish
    /// decides and the second takes its choice, so threads sharing the
    /// device never see two choices for one class.
    pub fn choose<V: Variant>(
        &self,
        key: &str,
        candidates: &[V],
        time: impl FnMut(V) -> Result<f64>,
    ) -> Result<V> {
        self.choose_on(key, candidates, None, time)
    }

    /// [`Tuner::choose`], where `time` times a slice of the product of
    /// `rows` rows (`None`: the whole product), as the table records.
    pub fn choose_on<V: Variant>(
        &self,
        key: &str,
        candidates: &[V],
        rows: Option<usize>,
        mut time: impl FnMut(V) -> Result<f64>,
    ) -> Result<V> {
        let cached = |table: &BTreeMap<String, Tuned>| {
            let t = table.get(key)?;
            let all_timed = candidates.iter().all(|c| t.micros.contains_key(c.name()));
            let kernel = candidates.iter().find(|c| c.name() == t.kernel)?;
            all_timed.then_some(*kernel)
        };
        if let Some(kernel) = cached(&self.lock()) {
            return Ok(kernel);
        }
        // Every candidate is warmed up first (pipeline creation, caches),
        // then timed in interleaved rounds, each keeping its best launch:
        // on lavapipe the first launches after pipelines are created can
        // run at half speed (a 512³ product's best of two launches took
        // 15.4 ms in one tuning, 6.9 ms in another and in the benchmark),
        // and timing one candidate at a time let that pick the kernel.
        // A candidate over DROP_FACTOR times the best after a round is not
        // launched again (its time stays in the table).
        // (The seconds logged include waiting for work queued before.)
        let started = std::time::Instant::now();
        for &v in candidates {
            time(v)?;
        }
        let mut best_of = vec![f64::INFINITY; candidates.len()];
        for _ in 0..ROUNDS {
            let leader = best_of.iter().copied().fold(f64::INFINITY, f64::min);
            for (i, &v) in candidates.iter().enumerate() {
                if best_of[i] <= DROP_FACTOR * leader {
                    best_of[i] = best_of[i].min(time(v)?);
                }
            }
        }
        let mut micros = BTreeMap::new();
        let mut best: Option<(V, f64)> = None;
        for (&v, &t) in candidates.iter().zip(&best_of) {
            micros.insert(v.name().to_string(), t * 1e6);
            if best.is_none_or(|(_, b)| t < b) {
                best = Some((v, t));
            }
        }
        let mut table = self.lock();
        if let Some(kernel) = cached(&table) {
            return Ok(kernel);
        }
        let kernel = best.map_or(candidates[0], |(v, _)| v);
        let name = kernel.name().to_string();
        log::info!(
            "tuned {key}: {name} of {} kernels in {:.2} s",
            candidates.len(),
            started.elapsed().as_secs_f64()
        );
        table.insert(
            key.to_string(),
            Tuned {
                kernel: name,
                micros,
                rows,
            },
        );
        drop(table);
        self.save();
        Ok(kernel)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Tuned>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the table, merged with what another process may have added
    /// meanwhile, to a temporary file renamed over the cache: a reader sees
    /// the old file or the new one, never half of one. A file at the path
    /// that is not a tune cache (of any adapter) is never replaced. A cache
    /// that cannot be written only costs the next run its tuning again.
    fn save(&self) {
        let Some(path) = &self.path else { return };
        let Some(dir) = path.parent() else { return };
        if path.exists() && !is_tune_cache(path) {
            return;
        }
        let mut entries = read_cache(path, &self.identity).unwrap_or_default();
        entries.extend(self.table());
        let file = CacheFile {
            wgtrain: self.identity.0.clone(),
            adapter: self.identity.1.clone(),
            driver: self.identity.2.clone(),
            entries,
        };
        let _ = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            tmp.write_all(serde_json::to_string_pretty(&file)?.as_bytes())?;
            tmp.persist(path).map_err(|e| e.error)?;
            Ok(())
        })();
    }
}

/// What a table is valid for: (wgtrain version, adapter, driver and API).
fn identity_of(info: &wgpu::AdapterInfo) -> (String, String, String) {
    (
        format!("{}+kernels{KERNELS_REVISION}", env!("CARGO_PKG_VERSION")),
        info.name.clone(),
        format!("{} {} ({:?})", info.driver, info.driver_info, info.backend),
    )
}

/// A file name per (wgtrain version, adapter, driver).
fn cache_name((version, adapter, driver): &(String, String, String)) -> String {
    // FNV-1a: stable across runs and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{version}\n{adapter}\n{driver}").bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    format!("tune-{h:016x}.json")
}

/// Whether the file at `path` is a tune cache (whatever its adapter).
fn is_tune_cache(path: &PathBuf) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() <= MAX_CACHE_BYTES)
        && std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str::<CacheFile>(&text).ok())
            .is_some()
}

/// The cache's entries, if the file exists, is small, parses, and was
/// written for this adapter, driver and version. Anything else (a missing,
/// damaged or foreign file) reads as empty: tuning then runs again.
fn read_cache(
    path: &PathBuf,
    identity: &(String, String, String),
) -> Option<BTreeMap<String, Tuned>> {
    if std::fs::metadata(path).ok()?.len() > MAX_CACHE_BYTES {
        return None;
    }
    let file: CacheFile = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let ours = (file.wgtrain, file.adapter, file.driver) == *identity;
    ours.then_some(file.entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuner(path: PathBuf) -> Tuner {
        Tuner {
            path: Some(path),
            identity: ("v".into(), "adapter".into(), "driver".into()),
            table: Mutex::new(BTreeMap::new()),
        }
    }

    #[test]
    fn a_candidate_far_behind_after_a_round_is_not_timed_again() {
        let t = tuner(tempfile::tempdir().unwrap().path().join("tune.json"));
        let mut launches = BTreeMap::new();
        // The first round's best is 1 ms: tiled at 10 ms is out after it,
        // vec4 at 1.9 ms stays for every round.
        let got = t
            .choose(
                "k",
                &MatmulVariant::candidates(true, (64, 64), false, true),
                |v| {
                    *launches.entry(v.name()).or_insert(0) += 1;
                    Ok(match v {
                        MatmulVariant::Blocked => 1e-3,
                        MatmulVariant::Vec4 => 1.9e-3,
                        _ => 10e-3,
                    })
                },
            )
            .unwrap();
        assert_eq!(got, MatmulVariant::Blocked);
        let want = [("blocked", 4), ("tiled", 2), ("vec4", 4)];
        assert_eq!(launches, want.into_iter().collect());
        // The dropped one keeps its time in the table.
        assert_eq!(t.table()["k"].micros["tiled"], 10e3);
    }

    #[test]
    fn picks_the_fastest_and_remembers_it_across_tuners() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tune.json");
        let t = tuner(path.clone());
        let speed = |v| match v {
            MatmulVariant::Vec4 => 1.5e-3,
            MatmulVariant::Blocked => 1e-3,
            MatmulVariant::Tiled => 1.2e-3,
            MatmulVariant::Padded => 4e-3,
            MatmulVariant::Rows => 5e-3,
            _ => 6e-3,
        };
        let mut timed = 0;
        let key = shape_class((64, 64, 64), false, false, true);
        let got = t
            .choose(
                &key,
                &MatmulVariant::candidates(true, (64, 64), false, true),
                |v| {
                    timed += 1;
                    Ok(speed(v))
                },
            )
            .unwrap();
        assert_eq!(got, MatmulVariant::Blocked);
        assert_eq!(timed, 12, "a warm-up and three rounds of each of three");
        // A second tuner over the same file times nothing.
        let t2 = tuner(path.clone());
        *t2.lock() = read_cache(&path, &t2.identity).unwrap();
        let again = t2
            .choose(
                &key,
                &MatmulVariant::candidates(true, (64, 64), false, true),
                |_| panic!("timed a cached class"),
            )
            .unwrap();
        assert_eq!(again, MatmulVariant::Blocked);
        // A class cached before a kernel existed (here `padded`) is tuned
        // again, with every candidate.
        let old = shape_class((75, 64, 64), false, false, false);
        let micros = [("blocked", 1.0), ("tiled", 2.0)].map(|(k, v)| (k.to_string(), v));
        t2.lock().insert(
            old.clone(),
            Tuned {
                kernel: "blocked".into(),
                micros: micros.into(),
                rows: None,
            },
        );
        let mut timed = 0;
        let faster_padded = |v| match v {
            MatmulVariant::Padded => 9e-4,
            v => speed(v),
        };
        let got = t2
            .choose(
                &old,
                &MatmulVariant::candidates(false, (64, 64), false, true),
                |v| {
                    timed += 1;
                    Ok(faster_padded(v))
                },
            )
            .unwrap();
        assert_eq!((got, timed), (MatmulVariant::Padded, 12));
        // Another adapter's tuner ignores the file.
        let other = ("v".into(), "another adapter".into(), "driver".into());
        assert!(read_cache(&path, &other).is_none());
    }

    #[test]
    fn other_files_are_read_as_empty_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "{ not a tune cache").unwrap();
        let t = tuner(path.clone());
        assert!(read_cache(&path, &t.identity).is_none());
        let got = t
            .choose("NN m≤8 k≤8 n≤8", &[MatmulVariant::Tiled], |_| Ok(1.0))
            .unwrap();
        assert_eq!(got, MatmulVariant::Tiled);
        assert_eq!(t.table()["NN m≤8 k≤8 n≤8"].kernel, "tiled");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{ not a tune cache"
        );
        // Another adapter's cache is a tune cache: replaced, not merged.
        let other = tuner(dir.path().join("tune.json"));
        other
            .choose("NN m≤8 k≤8 n≤8", &[MatmulVariant::Blocked], |_| {
                Ok(1.0)
            })
            .unwrap();
        let mut t2 = tuner(dir.path().join("tune.json"));
        t2.identity.1 = "another adapter".into();
        t2.choose("TN m≤8 k≤8 n≤8", &[MatmulVariant::Tiled], |_| Ok(1.0))
            .unwrap();
        let table = read_cache(&dir.path().join("tune.json"), &t2.identity).unwrap();
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn every_bcast_block_is_a_candidate_padded_or_not() {
        let bcast = |aligned| -> Vec<_> {
            MatmulVariant::candidates(aligned, (2048, 75), true, false)
                .into_iter()
                .filter_map(|v| v.bcast_block().map(|b| (b, v.padded())))
                .collect()
        };
        let blocks = [(8, 4), (16, 8), (32, 8), (16, 12)];
        assert_eq!(bcast(true), blocks.map(|b| (b, false)));
        assert_eq!(bcast(false), blocks.map(|b| (b, true)));
        // 12 columns an invocation only past 64 columns, up to 128.
        for columns in [64, 129] {
            let v = MatmulVariant::candidates(true, (2048, columns), true, false);
            assert!(!v.contains(&MatmulVariant::Bcast16x12), "{columns}: {v:?}");
        }
        assert!(MatmulVariant::candidates(false, (2048, 75), false, false)
            .iter()
            .all(|v| v.bcast_block().is_none()));
        // The fixed rule: the smallest block that covers the rows, or
        // 16×12 past 8 rows at 68 to 96 columns.
        for (rows, columns, padded, want) in [
            (8, 8, true, MatmulVariant::PaddedBcast8x4),
            (9, 8, true, MatmulVariant::PaddedBcast16x8),
            (2048, 8, true, MatmulVariant::PaddedBcast32x8),
            (16, 64, false, MatmulVariant::Bcast16x8),
            (17, 64, false, MatmulVariant::Bcast32x8),
            // 76 columns: 7 invocations of 12 (one subgroup) against 10 of 8.
            (2048, 76, true, MatmulVariant::PaddedBcast16x12),
            (9, 96, false, MatmulVariant::Bcast16x12),
            (8, 76, false, MatmulVariant::Bcast8x4),
            // 97 to 128 columns: two subgroups either way; and past 128.
            (2048, 100, false, MatmulVariant::Bcast32x8),
            (2048, 128, false, MatmulVariant::Bcast32x8),
            (2048, 132, false, MatmulVariant::Bcast32x8),
        ] {
            assert_eq!(
                MatmulVariant::bcast_for(rows, columns, padded),
                want,
                "{rows} rows, {columns} columns"
            );
        }
    }

    #[test]
    fn software_adapters_time_only_the_ways_that_can_win_there() {
        use RnnVariant::{Fused, Matmul, Sequence};
        let ways = RnnVariant::candidates;
        assert_eq!(ways(false, true, true), [Fused, Matmul, Sequence]);
        assert_eq!(ways(true, true, true), [Fused, Matmul, Sequence]);
        assert_eq!(
            ways(false, false, true),
            [Fused, Matmul],
            "no kernel for the size"
        );
        assert_eq!(ways(false, true, false), [Fused, Matmul], "Elman, software");
        assert_eq!(ways(true, true, false), [Matmul], "gated, software");
    }

    #[test]
    fn software_adapters_leave_out_the_matmul_kernels_that_never_win_there() {
        use MatmulVariant::*;
        let software = |aligned, bcast| MatmulVariant::candidates(aligned, (64, 64), bcast, false);
        assert_eq!(software(true, true), [Bcast8x4, Bcast16x8, Bcast32x8]);
        let wide = MatmulVariant::candidates(true, (64, 128), true, false);
        assert_eq!(wide, [Bcast8x4, Bcast16x8, Bcast32x8, Bcast16x12]);
        assert_eq!(
            software(true, false),
            [Vec4, Blocked],
            "no bcast: vec4 and blocked stay"
        );
        assert_eq!(
            software(false, true),
            [Blocked, PaddedBcast8x4, PaddedBcast16x8, PaddedBcast32x8]
        );
        assert_eq!(software(false, false), [Blocked, Padded], "no bcast");
        let hardware = MatmulVariant::candidates(true, (64, 64), true, true);
        assert!(hardware.contains(&Tiled) && hardware.contains(&Blocked));
        assert!(MatmulVariant::candidates(false, (64, 64), true, true).contains(&Tiled));
    }

    #[test]
    fn tile128_is_a_candidate_for_large_aligned_products_on_hardware() {
        let has = |aligned, dims, hardware| {
            MatmulVariant::candidates(aligned, dims, true, hardware)
                .contains(&MatmulVariant::Tile128)
        };
        assert!(has(true, (129, 129), true));
        assert!(!has(true, (129, 129), false), "software adapter");
        assert!(!has(true, (128, 4096), true), "128 rows");
        assert!(!has(true, (4096, 128), true), "128 columns");
        assert!(!has(false, (4096, 4096), true), "not multiples of 4");
    }

    #[test]
    fn short_launches_are_timed_together_long_ones_alone() {
        use std::cell::Cell;
        use std::time::Duration;
        let launches = Cell::new(0);
        let waits = Cell::new(0);
        let wait = || {
            waits.set(waits.get() + 1);
            Ok(())
        };
        // A launch far under MIN_TIMED_SECONDS: once, then the most.
        let t = time_launches(
            wait,
            || {
                launches.set(launches.get() + 1);
                Ok(())
            },
            true,
        )
        .unwrap();
        assert_eq!((launches.get(), waits.get()), (1 + MAX_TIMED_LAUNCHES, 3));
        assert!(t < MIN_TIMED_SECONDS);
        // A launch over it: once, its own time.
        launches.set(0);
        let t = time_launches(
            || Ok(()),
            || {
                launches.set(launches.get() + 1);
                std::thread::sleep(Duration::from_secs_f64(2.0 * MIN_TIMED_SECONDS));
                Ok(())
            },
            true,
        )
        .unwrap();
        assert_eq!(launches.get(), 1);
        assert!(t >= 2.0 * MIN_TIMED_SECONDS);
        // Over half of it: two more launches, timed at about one's length.
        launches.set(0);
        let t = time_launches(
            || Ok(()),
            || {
                launches.set(launches.get() + 1);
                std::thread::sleep(Duration::from_secs_f64(0.6 * MIN_TIMED_SECONDS));
                Ok(())
            },
            true,
        )
        .unwrap();
        assert_eq!(launches.get(), 1 + 2);
        assert!(t >= 0.6 * MIN_TIMED_SECONDS, "{t}");
        // Unbatched (software adapters): once, however short.
        launches.set(0);
        time_launches(
            || Ok(()),
            || {
                launches.set(launches.get() + 1);
                Ok(())
            },
            false,
        )
        .unwrap();
        assert_eq!(launches.get(), 1);
    }

    #[test]
    fn software_adapters_time_a_slice_of_large_products() {
        let macs = |(m, k, n): (usize, usize, usize)| m * k * n;
        let two = Some(2);
        // Small products, and every product on hardware: whole.
        assert_eq!(timed_dims((64, 64, 64), false, two), (64, 64, 64));
        let large = (16_384, 256, 75);
        assert_eq!(timed_dims(large, false, None), large);
        // A not transposed: a slice of A's (and C's) rows, of at least
        // TIMED_MACS multiply-adds, ending in the same partial tiles.
        let (m, k, n) = timed_dims(large, false, two);
        assert_eq!((k, n), (256, 75));
        assert!(m < 16_384 && macs((m, k, n)) >= TIMED_MACS, "{m}");
        assert!(macs((m - TIMED_STEP, k, n)) < TIMED_MACS, "{m}");
        assert_eq!(m % TIMED_STEP, 16_384 % TIMED_STEP);
        let odd = timed_dims((10_001, 256, 75), false, two);
        assert_eq!(odd.0 % TIMED_STEP, 10_001 % TIMED_STEP);
        // A transposed (a weight gradient): whole.
        assert_eq!(
            timed_dims((256, 2_048, 1_024), true, two),
            (256, 2_048, 1_024)
        );
        // At least TIMED_MIN_ROWS rows, and TIMED_STEP per core.
        let k1 = (1_024, 1_024, 1_024);
        assert_eq!(timed_dims(k1, false, two), k1);
        let k4 = (4_096, 4_096, 4_096);
        assert_eq!(timed_dims(k4, false, two), (1_024, 4_096, 4_096));
        assert_eq!(timed_dims(k4, false, Some(16)), (2_048, 4_096, 4_096));
        assert_eq!(timed_dims(k4, false, Some(32)), k4);
    }

    #[test]
    fn shape_classes_round_up_to_powers_of_two() {
        assert_eq!(
            shape_class((100, 784, 10), true, false, false),
            "TN m≤128 k≤1024 n≤16"
        );
        assert_eq!(
            shape_class((128, 64, 256), false, true, true),
            "NT m≤128 k≤64 n≤256 aligned +bias"
        );
    }
}
