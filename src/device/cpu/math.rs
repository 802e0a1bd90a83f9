//! Elementwise math for the CPU device, written as straight-line f32
//! arithmetic so the compiler vectorises it (libm's `expf`/`tanhf` are
//! opaque calls, one element at a time, and dominated small-model training).
//!
//! `exp` is Cephes' `expf` (range reduction by ln 2, degree-6 polynomial;
//! relative error about 1e-7), and `tanh`/`sigmoid` use the same formulas
//! as shaders/common.wgsl, so both devices round alike.

/// e^x for f32, clamped to the finite range.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding and subtracting it rounds to the nearest integer
    // without a call to `round`.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n built from its exponent field. n + 127 lies in [1, 254] (x is
    // clamped), and adding ROUND leaves it in the low mantissa bits: bit
    // operations that vectorise, where the saturating `n as i32` made the
    // compiler convert lane by lane.
    let biased = (n + (127.0 + ROUND)).to_bits() & 0xFF;
    y * f32::from_bits(biased << 23)
}

/// tanh, accurate near 0 (series) and without overflow for large |x|.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let x2 = x * x;
    let series = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 - x2 * (17.0 / 315.0))));
    let e = exp(-2.0 * a);
    let t = ((1.0 - e) / (1.0 + e)).copysign(x);
    if a < 0.0625 {
        series
    } else {
        t
    }
}

/// The logistic function, stable for any x.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = exp(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 {
        s
    } else {
        e * s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: impl Fn(f32) -> f32, g: impl Fn(f64) -> f64, lo: f32, hi: f32, rel: f64, abs: f64) {
        let n = 200_001;
        for i in 0..n {
            let x = lo + (hi - lo) * i as f32 / (n - 1) as f32;
            let want = g(x as f64);
            let got = f(x) as f64;
            assert!(
                (got - want).abs() <= abs + rel * want.abs(),
                "x = {x}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn exp_is_accurate_over_the_finite_range() {
        check(exp, f64::exp, -87.0, 88.0, 3e-7, 0.0);
    }

    #[test]
    fn tanh_and_sigmoid_are_accurate() {
        check(tanh, f64::tanh, -20.0, 20.0, 3e-7, 1e-9);
        check(
            sigmoid,
            |x| 1.0 / (1.0 + (-x).exp()),
            -90.0,
            90.0,
            3e-7,
            1e-30,
        );
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(100.0), 1.0);
        assert!(sigmoid(-200.0) < 1e-37);
    }
}
