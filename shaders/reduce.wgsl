// Reductions and the fused losses. Launchers: src/device/gpu/kernels/reduce.rs
//
// The kernels that reduce across a workgroup are bodies here; their entry
// points and `workgroup_reduce` come from reduce_tree.wgsl (shared-memory
// tree, any adapter) or reduce_subgroup.wgsl (subgroup operations), one of
// which precedes this file in the module.
//
// Whole-tensor reductions run in two passes: many workgroups each reduce a
// strided share into a partial, then one workgroup reduces the partials.
// Row-wise kernels (softmax, cross-entropy, row sums) give each row one
// workgroup of 256 invocations, so any row length works.

struct Params {
    rows: u32,  // or element count for the whole-tensor kernels
    cols: u32,
    op: u32,    // Reduce::code for reduce_pass
    scale: f32, // multiplies the final value (1/n for means)
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> out2: array<f32>;

const WG: u32 = 256u;
var<workgroup> scratch: array<f32, 256>;

fn combine(a: f32, b: f32, is_max: bool) -> f32 {
    if (is_max) {
        return max(a, b);
    }
    return a + b;
}

fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// One pass of a whole-tensor reduction: workgroup g reduces elements
// g·256 + lid, strided by the whole grid, into out[g] (times scale).
fn reduce_pass_body(lid: u32, wid: vec3<u32>, nwg: vec3<u32>) {
    let is_max = p.op == 2u;
    let groups = nwg.x * nwg.y;
    let g = row_of(wid, nwg);
    var acc = select(0.0, -3.4028235e38, is_max);
    for (var i = g * WG + lid; i < p.rows; i += groups * WG) {
        var v = x[i];
        if (p.op == 1u) {
            v = v * v;
        }
        acc = combine(acc, v, is_max);
    }
    let r = workgroup_reduce(acc, lid, is_max);
    if (lid == 0u) {
        out[g] = r * p.scale;
    }
}

// [rows, cols] → [cols]: one invocation per column walks down the rows.
@compute @workgroup_size(256)
fn sum_rows(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let col = linear_id(gid, nwg);
    if (col >= p.cols) {
        return;
    }
    var acc = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        acc += x[r * p.cols + col];
    }
    out[col] = acc;
}

// [rows, cols] → [rows]: one workgroup per row.
fn sum_cols_body(lid: u32, wid: vec3<u32>, nwg: vec3<u32>) {
    let row = row_of(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    var acc = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        acc += x[row * p.cols + c];
    }
    let r = workgroup_reduce(acc, lid, false);
    if (lid == 0u) {
        out[row] = r;
    }
}

fn softmax_rows_body(lid: u32, wid: vec3<u32>, nwg: vec3<u32>) {
    let row = row_of(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var m = -3.4028235e38;
    for (var c = lid; c < p.cols; c += WG) {
        m = max(m, x[base + c]);
    }
    m = workgroup_reduce(m, lid, true);
    var s = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        s += exp(x[base + c] - m);
    }
    s = workgroup_reduce(s, lid, false);
    for (var c = lid; c < p.cols; c += WG) {
        out[base + c] = exp(x[base + c] - m) / s;
    }
}

// Softmax cross-entropy of logits x against class ids y, fused with its
// gradient: out = (softmax - onehot) / rows, out2[row] = lse - x[label].
// The launcher sums out2 into the mean loss.
fn softmax_xent_rows_body(lid: u32, wid: vec3<u32>, nwg: vec3<u32>) {
    let row = row_of(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    // Labels are validated when data is loaded; clamping keeps a bad one
    // from reading another row.
    let label = min(u32(y[row]), p.cols - 1u);
    var m = -3.4028235e38;
    for (var c = lid; c < p.cols; c += WG) {
        m = max(m, x[base + c]);
    }
    m = workgroup_reduce(m, lid, true);
    var s = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        s += exp(x[base + c] - m);
    }
    s = workgroup_reduce(s, lid, false);
    let lse = m + log(s);
    let inv_rows = 1.0 / f32(p.rows);
    for (var c = lid; c < p.cols; c += WG) {
        let g = exp(x[base + c] - lse) - select(0.0, 1.0, c == label);
        out[base + c] = g * inv_rows;
    }
    if (lid == 0u) {
        out2[row] = lse - x[base + label];
    }
}

// The same for rows of at most SMALL_ROW columns: one invocation per row
// and no barriers, which software adapters execute very slowly (the
// workgroup version spent 40% of a char-RNN step on lavapipe in barriers).
// The row of a one-invocation-per-row kernel (64-invocation workgroups,
// folded into y past the x limit).
fn row_of_invocation(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// Max and Σ exp(x - max) over the row of `cols` values at `base`, in one
// invocation.
fn row_max_sumexp(base: u32, cols: u32) -> vec2<f32> {
    var m = x[base];
    for (var c = 1u; c < cols; c++) {
        m = max(m, x[base + c]);
    }
    var s = 0.0;
    for (var c = 0u; c < cols; c++) {
        s += exp(x[base + c] - m);
    }
    return vec2<f32>(m, s);
}

@compute @workgroup_size(64)
fn softmax_xent_small(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = row_of_invocation(gid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    // Labels are validated when data is loaded; clamping keeps a bad one
    // from reading another row.
    let label = min(u32(y[row]), p.cols - 1u);
    let ms = row_max_sumexp(base, p.cols);
    let lse = ms.x + log(ms.y);
    let inv_rows = 1.0 / f32(p.rows);
    for (var c = 0u; c < p.cols; c++) {
        let g = exp(x[base + c] - lse) - select(0.0, 1.0, c == label);
        out[base + c] = g * inv_rows;
    }
    out2[row] = lse - x[base + label];
}

// Softmax of short rows, one invocation per row (see softmax_xent_small).
@compute @workgroup_size(64)
fn softmax_small(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = row_of_invocation(gid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let ms = row_max_sumexp(base, p.cols);
    for (var c = 0u; c < p.cols; c++) {
        out[base + c] = exp(x[base + c] - ms.x) / ms.y;
    }
}

// Softmax and row sums of rows whose length is a multiple of 4, one
// invocation per row with vec4 loads and no barriers: on a software adapter
// (lavapipe), where a barrier is very slow and every load is a loop over
// the SIMD lanes, this beats a workgroup per row at any length. The same
// buffers as x and out, seen as vec4s.
@group(0) @binding(4) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn softmax_lane4(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = row_of_invocation(gid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols / 4u;
    let n4 = p.cols / 4u;
    var m4 = x4[base];
    for (var c = 1u; c < n4; c++) {
        m4 = max(m4, x4[base + c]);
    }
    let m = max(max(m4.x, m4.y), max(m4.z, m4.w));
    var s4 = vec4<f32>(0.0);
    for (var c = 0u; c < n4; c++) {
        s4 += exp(x4[base + c] - m);
    }
    let s = (s4.x + s4.y) + (s4.z + s4.w);
    for (var c = 0u; c < n4; c++) {
        out4[base + c] = exp(x4[base + c] - m) / s;
    }
}

@compute @workgroup_size(64)
fn sum_cols_lane4(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = row_of_invocation(gid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols / 4u;
    var s4 = vec4<f32>(0.0);
    for (var c = 0u; c < p.cols / 4u; c++) {
        s4 += x4[base + c];
    }
    out[row] = (s4.x + s4.y) + (s4.z + s4.w);
}

// Per-element MSE terms: out = 2(x - y)/n (the gradient), out2 = (x - y)².
@compute @workgroup_size(256)
fn mse_terms(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.rows) {
        let d = x[i] - y[i];
        out[i] = 2.0 * d / f32(p.rows);
        out2[i] = d * d;
    }
}

// Per-element BCE-with-logits terms: out = (σ(z) - t)/n, out2 = the loss
// max(z,0) - t·z + log(1 + e^-|z|), stable for any |z|.
@compute @workgroup_size(256)
fn bce_terms(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.rows) {
        let z = x[i];
        let t = y[i];
        out[i] = (sigmoid_stable(z) - t) / f32(p.rows);
        let e = exp(-abs(z));
        // log1p(e) for small e without losing it to rounding.
        var l1p = log(1.0 + e);
        if (e < 1e-4) {
            l1p = e * (1.0 - 0.5 * e);
        }
        out2[i] = max(z, 0.0) - t * z + l1p;
    }
}

// [rows, cols] → [rows]: index of each row's first maximum.
@compute @workgroup_size(256)
fn argmax_rows(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_id(gid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var best = 0u;
    var best_v = x[base];
    for (var c = 1u; c < p.cols; c++) {
        let v = x[base + c];
        if (v > best_v) {
            best_v = v;
            best = c;
        }
    }
    out[row] = f32(best);
}

// 1 where x == y, else 0 (summed by the launcher into a count).
@compute @workgroup_size(256)
fn equal_terms(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.rows) {
        out[i] = select(0.0, 1.0, x[i] == y[i]);
    }
}
