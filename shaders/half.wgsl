// Tensors kept in f16 (`Device::Half`, what layers keep for their
// backward pass under `--precision f16`): back to f32, re-padded for a
// padded matmul variant, read by the activation's derivative, and written
// by an activation beside its f32 output.
// Launchers: src/device/gpu/kernels/half.rs (pad_half from matmul.rs).
//
// Two halves per u32 word, element 2w in the low half of word w, as
// shaders/cast.wgsl writes them, encoded and decoded by
// shaders/f16_bits.wgsl (appended).

struct Params {
    rows: u32,     // the f16 matrix (activation_keeping_half: the f32 input,
    cols: u32,     // whose halves it writes)
    rows_p: u32,   // pad_half's padded copy, rows_p ≥ rows and cols_p ≥ cols
    cols_p: u32,
}
var<immediate> p: Params;

// Activation::code, for activation_backward_half and
// activation_keeping_half.
override OP: u32 = 0u;
// activation_keeping_half: keep the input (Activation::keeps_input), not the
// output.
override KEEP_INPUT: bool = false;

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> in4: array<vec4<f32>>; // dy, or x
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>;

// The bits of element i of src.
fn half_bits(i: u32) -> u32 {
    return (src[i / 2u] >> (16u * (i % 2u))) & 0xffffu;
}

// out[2w], out[2w + 1] from word w.
@compute @workgroup_size(256)
fn half_to_f32(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = linear_id(gid, nwg);
    let n = p.rows * p.cols;
    if (2u * w >= n) {
        return;
    }
    let word = src[w];
    out[2u * w] = f16_value(word & 0xffffu);
    if (2u * w + 1u < n) {
        out[2u * w + 1u] = f16_value(word >> 16u);
    }
}

// Element e of the [rows_p, cols_p] copy, as f16 bits: src's inside its
// corner, else zero.
fn padded_bits(e: u32) -> u32 {
    let r = e / p.cols_p;
    let c = e % p.cols_p;
    if (r < p.rows && c < p.cols) {
        return half_bits(r * p.cols + c);
    }
    return 0u;
}

// dst word w = elements 2w and 2w + 1 of the padded copy (a last odd
// element paired with a zero), as shaders/cast.wgsl's to_f16 writes them.
@compute @workgroup_size(256)
fn pad_half(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = linear_id(gid, nwg);
    let total = p.rows_p * p.cols_p;
    if (2u * w >= total) {
        return;
    }
    var hi = 0u;
    if (2u * w + 1u < total) {
        hi = padded_bits(2u * w + 1u);
    }
    dst[w] = padded_bits(2u * w) | (hi << 16u);
}

// out4[i] = dy[i] · act'(y) for the four outputs y of words 2i and 2i + 1
// (the last vec4 may run into the buffers' padding, as in elementwise.wgsl).
@compute @workgroup_size(256)
fn activation_backward_half(@builtin(global_invocation_id) gid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= (p.rows * p.cols + 3u) / 4u) {
        return;
    }
    let lo = src[2u * i];
    let hi = src[2u * i + 1u];
    let d = vec4<f32>(activation_grad_from_output(f16_value(lo & 0xffffu), OP),
                      activation_grad_from_output(f16_value(lo >> 16u), OP),
                      activation_grad_from_output(f16_value(hi & 0xffffu), OP),
                      activation_grad_from_output(f16_value(hi >> 16u), OP));
    out4[i] = in4[i] * d;
}

// out4[i] = act(x) for the four values x = in4[i], and the four kept
// values (x or act(x)) as halves in dst words 2i and 2i + 1: the f32
// output and the f16 copy Device::to_half would make of it, in one pass.
// Values past the tensor's end are kept as zeros (the last vec4 may run
// into the buffers' padding; the launcher sizes dst for whole vec4s).
@compute @workgroup_size(256)
fn activation_keeping_half(@builtin(global_invocation_id) gid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    let n = p.rows * p.cols;
    if (i >= (n + 3u) / 4u) {
        return;
    }
    let x = in4[i];
    let y = activate4(x, OP);
    out4[i] = y;
    let kept = select(y, x, KEEP_INPUT);
    var bits: array<u32, 4>;
    for (var j = 0u; j < 4u; j++) {
        bits[j] = select(0u, f16_bits(kept[j]), 4u * i + j < n);
    }
    dst[2u * i] = bits[0] | (bits[1] << 16u);
    dst[2u * i + 1u] = bits[2] | (bits[3] << 16u);
}
