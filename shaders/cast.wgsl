// f32 → f16 copies of matmul operands for `--precision f16`
// (src/device/gpu/kernels/matmul.rs), optionally zero-padded like
// shaders/pad.wgsl so that every size can take the vec4 kernel.
//
// The rounding is shaders/f16_bits.wgsl's (appended), exactly the CPU
// reference's. Each invocation writes one u32 holding two halves, so no
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
