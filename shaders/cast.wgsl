// f32 → f16 copies of matmul operands for `--precision f16`
// (src/device/gpu/kernels/matmul.rs), optionally zero-padded like
// shaders/pad.wgsl so that every size can take the vec4 kernel.
//
// The rounding is written out in integer arithmetic rather than left to
// `f16(x)`, whose rounding direction WGSL leaves to the implementation:
// round to nearest, ties to even, with subnormals kept and overflow to
// infinity, exactly as the CPU reference rounds (`Precision::round`), on
// every adapter. Each invocation writes one u32 holding two halves, so no
// two invocations share a word (and no `enable f16` is needed here).

struct Params {
    rows: u32,     // the f32 matrix
    cols: u32,
    rows_p: u32,   // the f16 copy, rows_p ≥ rows and cols_p ≥ cols
    cols_p: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;

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

// Element e of the padded copy: src's value inside its corner, else zero.
fn padded_at(e: u32) -> f32 {
    let r = e / p.cols_p;
    let c = e % p.cols_p;
    if (r < p.rows && c < p.cols) {
        return src[r * p.cols + c];
    }
    return 0.0;
}

// dst word w = elements 2w (low half) and 2w + 1 (high half) of the
// [rows_p, cols_p] copy; a last odd element is paired with a zero.
@compute @workgroup_size(256)
fn to_f16(@builtin(global_invocation_id) gid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = linear_id(gid, nwg);
    let total = p.rows_p * p.cols_p;
    if (2u * w >= total) {
        return;
    }
    let lo = f16_bits(padded_at(2u * w));
    var hi = 0u;
    if (2u * w + 1u < total) {
        hi = f16_bits(padded_at(2u * w + 1u));
    }
    dst[w] = lo | (hi << 16u);
}
