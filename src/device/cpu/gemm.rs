//! Matrix products on the CPU through the `gemm` crate (the kernels candle's
//! CPU backend uses): AVX-512 where the processor has it, AVX2 + FMA or NEON
//! otherwise (scalar code without either), chosen at run time; threads
//! through rayon once a product is large enough to repay them
//! ([`THREADED_FROM`]).
//!
//! ndarray's `dot` (matrixmultiply) has no AVX-512 kernel: on the 2-core
//! Xeon of the README's tables `wgtrain bench --device cpu --workloads K1`
//! read 137–144 GFLOP/s at 1024² with it and 312–322 with this.
//!
//! Results are deterministic on one machine: the crate splits the output
//! among threads, never the sum over `k`, so each element is summed in the
//! same order whatever the thread count. Another machine may sum in another
//! order (the blocks of `k` follow its cache sizes, and the kernels its
//! instruction set), so bit-identical runs need the same machine.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// Products with fewer multiply-adds than this run on the calling thread.
/// `cargo run --release --example gemm_threads` times both sides; on the
/// 2-core Xeon of the README's tables (GFLOP/s, one thread against two, two
/// runs): 64×128×128 158–159 against 120–126; with B transposed one thread
/// wins through 2²³ (128×256·(256×256)ᵀ: 142–143 against 121–122), while
/// plain products gain from threads from 2²² up (128×256·256×128: 173–174
/// against 191–227) and clearly from 2²⁴ (256³: 181–182 against 264–277).
/// 2²⁴ keeps every product one thread would win on one thread. The crate's
/// own threshold is lower, and costs the recurrent layers' per-step
/// products (64×128×128 in T5) their speed.
const THREADED_FROM: usize = 1 << 24;

fn parallelism(multiply_adds: usize) -> gemm::Parallelism {
    if multiply_adds < THREADED_FROM {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(0)
    }
}

/// `a · b` for matrices of any strides.
///
/// The product is written into uninitialised memory: zeroing it first
/// is a pass over the whole output for nothing, which for T3's
/// first-layer weight gradient (784×256) is not small beside its product.
pub(super) fn dot(a: &ArrayView2<'_, f32>, b: &ArrayView2<'_, f32>) -> Array2<f32> {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    assert_eq!(b.nrows(), k, "product of {:?} and {:?}", a.dim(), b.dim());
    if m == 0 || n == 0 || k == 0 {
        return Array2::zeros((m, n));
    }
    let mut c = Array2::<f32>::uninit((m, n));
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    // SAFETY: `c` is a fresh, standard-layout m×n array. With `read_dst`
    // false the crate never reads the destination before writing it (its
    // first block over `k` stores `a·b` outright; later blocks add to what
    // the first stored), and with m, n, k > 0 it writes every element, so
    // `c` is initialised when `assume_init` runs.
    unsafe {
        raw_product(
            (m, n, k),
            (c.as_mut_ptr().cast::<f32>(), c_rs, c_cs),
            a,
            b,
            false,
            parallelism(m * n * k),
        );
        c.assume_init()
    }
}

/// `c += a · b` for matrices of any strides.
pub(super) fn add_dot(
    c: &mut ArrayViewMut2<'_, f32>,
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
) {
    product_into(c, a, b, true, None);
}

/// `c = a · b`, or `c += a · b` when `accumulate`; on the threads
/// `threads` says, or by [`THREADED_FROM`] when `None`.
fn product_into(
    c: &mut ArrayViewMut2<'_, f32>,
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
    accumulate: bool,
    threads: Option<gemm::Parallelism>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert!(
        b.nrows() == k && c.dim() == (m, n),
        "product of {:?} and {:?} into {:?}",
        a.dim(),
        b.dim(),
        c.dim()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the pointers and strides are those of live ndarray views of
    // the stated dimensions (checked above), so every element the crate
    // addresses lies inside them; `c` is borrowed mutably and so aliases
    // neither input.
    unsafe {
        raw_product(
            (m, n, k),
            (c.as_mut_ptr(), c_rs, c_cs),
            a,
            b,
            accumulate,
            threads.unwrap_or_else(|| parallelism(m * n * k)),
        );
    }
}

/// `c = a · b`, or `c += a · b` when `accumulate`, into the m×n matrix at
/// `c` with row and column strides `c_rs`, `c_cs`; `a` and `b` must be
/// m×k and k×n, k > 0.
///
/// # Safety
/// `c` with those strides must address m×n writable elements that alias
/// neither input, initialised when `accumulate`.
unsafe fn raw_product(
    (m, n, k): (usize, usize, usize),
    (c, c_rs, c_cs): (*mut f32, isize, isize),
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
    accumulate: bool,
    threads: gemm::Parallelism,
) {
    debug_assert!(a.dim() == (m, k) && b.dim() == (k, n));
    let (as_, bs) = (a.strides(), b.strides());
    // SAFETY: the caller's promise for `c`; `a` and `b` are live views of
    // the stated dimensions.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            c_cs,
            c_rs,
            accumulate,
            a.as_ptr(),
            as_[1],
            as_[0],
            b.as_ptr(),
            bs[1],
            bs[0],
            // dst = alpha·dst + beta·a·b (alpha is read only when accumulating)
            1.0,
            1.0,
            false,
            false,
            false,
            threads,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array2, ShapeBuilder};

    /// The naive product in f64.
    fn naive(a: &ArrayView2<'_, f32>, b: &ArrayView2<'_, f32>) -> Array2<f64> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols())
                .map(|p| a[(i, p)] as f64 * b[(p, j)] as f64)
                .sum()
        })
    }

    fn matrix(rows: usize, cols: usize, seed: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            (((i * 31 + j * 17 + seed) % 23) as f32 - 11.0) / 8.0
        })
    }

    #[test]
    fn strided_views_and_accumulation_match_the_naive_product() {
        // Transposed, sliced (non-unit row strides) and reversed operands.
        let a = matrix(37, 70, 1);
        let b = matrix(70, 45, 2);
        let at = a.t().to_owned();
        let bt = b.t().to_owned();
        let cases: Vec<(ArrayView2<f32>, ArrayView2<f32>)> = vec![
            (a.view(), b.view()),
            (at.t(), b.view()),
            (a.view(), bt.t()),
            (at.t(), bt.t()),
        ];
        for (av, bv) in cases {
            let want = naive(&av, &bv);
            let got = dot(&av, &bv);
            for (g, w) in got.iter().zip(want.iter()) {
                assert!((*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
            }
        }
        let a2 = a.slice(s![..;2, ..;-1]);
        let b2 = b.slice(s![..;-1, 1..;3]);
        let want = naive(&a2, &b2);
        let mut c = Array2::<f32>::ones((a2.nrows(), b2.ncols()));
        add_dot(&mut c.view_mut(), &a2, &b2);
        for (g, w) in c.iter().zip(want.iter()) {
            assert!(
                (*g as f64 - (w + 1.0)).abs() < 1e-4 * (1.0 + w.abs()),
                "{g} vs {w} + 1"
            );
        }
    }

    #[test]
    fn threads_do_not_change_a_single_bit() {
        // Large enough that the crate splits the output among threads, deep
        // enough that each output is summed over several blocks of k, with
        // values whose sums round (so another order would show); into a
        // row-major and a column-major destination.
        let wavy = |rows, cols, phase: f32| {
            Array2::from_shape_fn((rows, cols), |(i, j)| {
                ((i * cols + j) as f32 * 0.37 + phase).sin()
            })
        };
        let a = wavy(300, 1500, 0.0);
        let bt = wavy(170, 1500, 1.0);
        for column_major in [false, true] {
            let fresh = || Array2::<f32>::zeros((300, 170).set_f(column_major));
            let (mut one, mut two) = (fresh(), fresh());
            for (c, threads) in [
                (&mut one, gemm::Parallelism::None),
                (&mut two, gemm::Parallelism::Rayon(2)),
            ] {
                product_into(&mut c.view_mut(), &a.view(), &bt.t(), false, Some(threads));
            }
            assert!(one
                .iter()
                .zip(two.iter())
                .all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }

    #[test]
    fn dot_never_reads_its_uninitialised_output() {
        // Deep enough for several blocks of k, so later blocks add to what
        // the first stored. A NaN-filled buffer of the output's size is
        // freed just before, so the allocator likely hands its memory to
        // the output: a read before the first write would show as NaN.
        let a = matrix(40, 1500, 3);
        let b = matrix(1500, 30, 4);
        for _ in 0..3 {
            drop(std::hint::black_box(vec![f32::NAN; 40 * 30]));
            let got = dot(&a.view(), &b.view());
            let want = naive(&a.view(), &b.view());
            for (g, w) in got.iter().zip(want.iter()) {
                assert!((*g as f64 - w).abs() < 1e-3 * (1.0 + w.abs()), "{g} vs {w}");
            }
        }
    }

    #[test]
    fn empty_inner_dimension_gives_zeros() {
        let a = Array2::<f32>::zeros((3, 0));
        let b = Array2::<f32>::zeros((0, 2));
        assert_eq!(dot(&a.view(), &b.view()), Array2::<f32>::zeros((3, 2)));
    }
}
