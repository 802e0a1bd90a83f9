// f32 ↔ f16 bit patterns, in integer arithmetic, appended to the shaders
// that store f16 in u32 words (shaders/cast.wgsl, shaders/half.wgsl).
//
// f16_bits's rounding is written out rather than left to `f16(x)`, whose
// rounding direction WGSL leaves to the implementation: round to nearest,
// ties to even, with subnormals kept and overflow to infinity, exactly as
// the CPU reference rounds (`Precision::round`), on every adapter.
// f16_value decodes exactly (every f16 is an f32; a subnormal m·2^-24 is a
// normal f32), so no adapter can flush an f16 subnormal on the way. Neither
// needs `enable f16`.

// The f16 bit pattern nearest to `v` (ties to even).
fn f16_bits(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    let sign = (x >> 16u) & 0x8000u;
    let ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        // Infinity stays infinite; NaN stays NaN (quiet).
        return sign | 0x7c00u | select(0u, 0x200u, ax > 0x7f800000u);
    }
    if (ax >= 0x477ff000u) {
        // From halfway between 65504 and 65536 up: infinity.
        return sign | 0x7c00u;
    }
    if (ax < 0x38800000u) {
        // Below 2^-14: an f16 subnormal, a multiple of 2^-24. Up to 2^-25
        // (half the smallest) rounds to zero, the tie included.
        if (ax <= 0x33000000u) {
            return sign;
        }
        let mant = (ax & 0x7fffffu) | 0x800000u;
        let shift = 126u - (ax >> 23u); // 14..=24: value / 2^-24 = mant >> shift
        let q = mant >> shift;
        let rem = mant & ((1u << shift) - 1u);
        let halfway = 1u << (shift - 1u);
        let up = rem > halfway || (rem == halfway && (q & 1u) == 1u);
        return sign | (q + select(0u, 1u, up));
    }
    // Normal: rebias the exponent (127 → 15) and drop 13 mantissa bits; a
    // carry out of the mantissa correctly bumps the exponent.
    let r = ax - 0x38000000u;
    let q = r >> 13u;
    let rem = r & 0x1fffu;
    let up = rem > 0x1000u || (rem == 0x1000u && (q & 1u) == 1u);
    return sign | (q + select(0u, 1u, up));
}

// The value of the f16 bit pattern `h`.
fn f16_value(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0u) {
        // Zero or subnormal: m · 2^-24 (a normal f32, or zero).
        return bitcast<f32>(bitcast<u32>(f32(m) * 5.9604644775390625e-8) | sign);
    }
    if (e == 31u) {
        // Infinity, or NaN with its payload.
        return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    }
    // Normal: rebias the exponent (15 → 127), widen the mantissa.
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}
