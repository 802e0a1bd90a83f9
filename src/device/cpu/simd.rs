//! The elementwise loops of the CPU device, compiled once per SIMD level
//! (AVX-512, AVX2 + FMA, SSE4, NEON, …) and chosen at run time by the
//! `multiversion` crate. The default x86-64 target has only SSE2, so without
//! this the vectorised math of `math.rs` ran four lanes wide; a binary built
//! here still runs on any x86-64.
//!
//! Results do not depend on the level chosen: Rust never contracts `a·b + c`
//! into a fused multiply-add unless asked to, and the one sum fixes its own
//! order.

use multiversion::multiversion;

/// The widest instruction set the `gemm` crate's kernels use on this
/// processor (see [`super::CpuDevice::instruction_set`]).
pub(super) fn widest() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "AVX2 + FMA";
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            return "NEON";
        }
    }
    "baseline"
}

/// `out[i] = f(x[i])` over `out`'s length.
#[multiversion(targets = "simd")]
pub(super) fn map_into<F: Fn(f32) -> f32>(out: &mut [f32], x: &[f32], f: &F) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

/// `x[i] = f(x[i])`.
#[multiversion(targets = "simd")]
pub(super) fn map_in_place<F: Fn(f32) -> f32>(x: &mut [f32], f: &F) {
    for v in x.iter_mut() {
        *v = f(*v);
    }
}

/// `out[i] = f(a[i], b[i])` over `out`'s length.
#[multiversion(targets = "simd")]
pub(super) fn zip_into<F: Fn(f32, f32) -> f32>(out: &mut [f32], a: &[f32], b: &[f32], f: &F) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = f(x, y);
    }
}

/// The sum of `x` in f64, as eight interleaved partial sums (partial `j`
/// adds elements `j, j + 8, …`) added in order, then the tail: a fixed
/// order, so a fixed result, and one that vectorises where a single running
/// sum waits on each addition.
#[multiversion(targets = "simd")]
pub(super) fn sum_f64(x: &[f32]) -> f64 {
    let mut partial = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (p, &v) in partial.iter_mut().zip(chunk) {
            *p += f64::from(v);
        }
    }
    let mut sum: f64 = partial.iter().sum();
    for &v in tail {
        sum += f64::from(v);
    }
    sum
}

/// `acc[j] += x[i·n + j]` in f64 for every row `i` of `x` (rows of
/// `n = acc.len()` values), row after row: each column's sum in row order,
/// as a plain loop over the rows would add it.
#[multiversion(targets = "simd")]
pub(super) fn add_rows_f64(acc: &mut [f64], x: &[f32]) {
    for row in x.chunks_exact(acc.len()) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += f64::from(v);
        }
    }
}
