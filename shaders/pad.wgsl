// A row-major matrix copied into a larger one with zeros around it: the
// padded matmul (src/device/gpu/kernels/matmul.rs) runs the vec4 and bcast
// kernels on sizes rounded up to multiples of 4, so sizes such as a
// vocabulary of 75 keep the fast path (their store writes the result's
// corner straight into C: no crop).

struct Params {
    rows: u32,     // the small matrix
    cols: u32,
    rows_p: u32,   // the padded matrix
    cols_p: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

// dst [rows_p, cols_p] = src [rows, cols] in the top-left corner, zeros
// elsewhere (zeros in k add exactly nothing to a product).
@compute @workgroup_size(256)
fn pad(@builtin(global_invocation_id) gid: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    if (e >= p.rows_p * p.cols_p) {
        return;
    }
    let r = e / p.cols_p;
    let c = e % p.cols_p;
    var v = 0.0;
    if (r < p.rows && c < p.cols) {
        v = src[r * p.cols + c];
    }
    dst[e] = v;
}

// The same copy one row per invocation, for software adapters
// (GpuDevice::lane_rows): the per-element kernel above divides each index
// into row and column, which llvmpipe does lane by lane, while a row's
// loop has the same trip count in every lane. (On a hardware GPU the
// per-element kernels' neighbouring lanes touch neighbouring addresses.)
@compute @workgroup_size(256)
fn pad_rows(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = linear_id(gid, nwg);
    if (r >= p.rows_p) {
        return;
    }
    let inside = r < p.rows;
    for (var c = 0u; c < p.cols_p; c++) {
        var v = 0.0;
        if (inside && c < p.cols) {
            v = src[r * p.cols + c];
        }
        dst[r * p.cols_p + c] = v;
    }
}
