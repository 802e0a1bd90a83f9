// Elman recurrence h_t = tanh(xw_t + h_{t-1}·U), one dispatch per time step
// forward and backward, or where the step's product runs through the
// matmul kernels one (sizes multiples of 4, the batch at least 8: the step
// in the product's epilogue, shaders/matmul.wgsl `STEP`) or two (the
// product, then a kernel below that finishes the step), or one for up to
// 64 steps (the `rnn_seq_` kernels at the end; the tuner picks). The input projections xw for all steps come from
// one matmul beforehand. Launchers: src/device/gpu/kernels/rnn.rs
//
// The scalar kernels below work for any hidden size; the vec4 ones at the
// end of the file are the fast path when it is a multiple of 4.

struct Params {
    t: u32,      // current step (the first of a sequence kernel's)
    steps: u32,  // T
    batch: u32,  // B
    hidden: u32, // H
    count: u32,  // steps of a sequence kernel's dispatch
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> xw: array<f32>;  // [T,B,H]; dh in backward
@group(0) @binding(1) var<storage, read> u: array<f32>;   // [H,H]
@group(0) @binding(2) var<storage, read> h0: array<f32>;  // [B,H]; h in backward
@group(0) @binding(3) var<storage, read_write> hs: array<f32>; // h forward, da backward
@group(0) @binding(4) var<storage, read_write> dh0: array<f32>;

// hs[t, b, j] = tanh(xw[t, b, j] + Σ_i h_{t-1}[b, i] · U[i, j])
@compute @workgroup_size(256)
fn rnn_step_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    let bh = p.batch * p.hidden;
    if (e >= bh) {
        return;
    }
    let b = e / p.hidden;
    let j = e % p.hidden;
    var acc = xw[p.t * bh + e];
    if (p.t == 0u) {
        for (var i = 0u; i < p.hidden; i++) {
            acc = fma(h0[b * p.hidden + i], u[i * p.hidden + j], acc);
        }
    } else {
        let prev = (p.t - 1u) * bh + b * p.hidden;
        for (var i = 0u; i < p.hidden; i++) {
            acc = fma(hs[prev + i], u[i * p.hidden + j], acc);
        }
    }
    hs[p.t * bh + e] = tanh_stable(acc);
}

// da[t, b, j] = (dh[t, b, j] + Σ_k da[t+1, b, k] · U[j, k]) · (1 - h[t, b, j]²)
// Here xw holds dh, h0 holds h and hs holds da.
@compute @workgroup_size(256)
fn rnn_step_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    let bh = p.batch * p.hidden;
    if (e >= bh) {
        return;
    }
    let b = e / p.hidden;
    let j = e % p.hidden;
    var g = xw[p.t * bh + e];
    if (p.t + 1u < p.steps) {
        let next = (p.t + 1u) * bh + b * p.hidden;
        for (var k = 0u; k < p.hidden; k++) {
            g = fma(hs[next + k], u[j * p.hidden + k], g);
        }
    }
    let y = h0[p.t * bh + e];
    hs[p.t * bh + e] = g * (1.0 - y * y);
}

// dh0[b, j] = Σ_k da[0, b, k] · U[j, k]
@compute @workgroup_size(256)
fn rnn_initial_grad(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    if (e >= p.batch * p.hidden) {
        return;
    }
    let b = e / p.hidden;
    let j = e % p.hidden;
    var g = 0.0;
    for (var k = 0u; k < p.hidden; k++) {
        g = fma(hs[b * p.hidden + k], u[j * p.hidden + k], g);
    }
    dh0[e] = g;
}

// ---- steps through the matmul kernels -----------------------------------
//
// The other way to run a step (tune::RnnVariant::Matmul): the step's
// product, h_{t-1}·U forward and da_{t+1}·Uᵀ backward, runs as a matmul
// with that kernel family's tuned choice. Where batch and hidden size are
// multiples of 4 (and the batch at least 8) the matmul's epilogue finishes
// the step; elsewhere, and for the backward pass's last step, which has no
// product, the product goes into `z` and these kernels finish the step,
// one invocation per element (or four: the `4` forms below). Each also
// writes its step's result alone into `state`, the next step's matmul
// operand (a binding starts at the start of its buffer, so the matmul
// cannot read step t of hs).

@group(0) @binding(10) var<storage, read> z: array<f32>;               // [B,H]
@group(0) @binding(11) var<storage, read_write> state: array<f32>;     // [B,H]

// hs[t] = tanh(xw[t] + z), where z = h_{t-1}·U.
@compute @workgroup_size(256)
fn rnn_finish_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    let bh = p.batch * p.hidden;
    if (e >= bh) {
        return;
    }
    let v = tanh_stable(xw[p.t * bh + e] + z[e]);
    hs[p.t * bh + e] = v;
    state[e] = v;
}

// da[t] = (dh[t] + z) · (1 - h[t]²), where z = da_{t+1}·Uᵀ (none at the
// last step, where z is not read). Here xw holds dh, h0 holds h and hs
// holds da.
@compute @workgroup_size(256)
fn rnn_finish_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    let bh = p.batch * p.hidden;
    if (e >= bh) {
        return;
    }
    var g = xw[p.t * bh + e];
    if (p.t + 1u < p.steps) {
        g += z[e];
    }
    let y = h0[p.t * bh + e];
    let v = g * (1.0 - y * y);
    hs[p.t * bh + e] = v;
    state[e] = v;
}

// The same two kernels four elements an invocation, where B·H is a
// multiple of 4 (every step's slice then starts on a vec4): on a software
// adapter each storage access is a loop over the SIMD lanes, so a vec4
// access costs about what a scalar one does, and these make a quarter of
// them.
@group(0) @binding(12) var<storage, read> z4: array<vec4<f32>>;           // [B,H]
@group(0) @binding(13) var<storage, read_write> state4: array<vec4<f32>>; // [B,H]

@compute @workgroup_size(256)
fn rnn_finish_forward4(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    let bh4 = p.batch * p.hidden / 4u;
    if (e >= bh4) {
        return;
    }
    let v = tanh4(xw4[p.t * bh4 + e] + z4[e]);
    hs4[p.t * bh4 + e] = v;
    state4[e] = v;
}

@compute @workgroup_size(256)
fn rnn_finish_backward4(@builtin(global_invocation_id) gid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    let bh4 = p.batch * p.hidden / 4u;
    if (e >= bh4) {
        return;
    }
    var g = xw4[p.t * bh4 + e];
    if (p.t + 1u < p.steps) {
        g += z4[e];
    }
    let y = h04[p.t * bh4 + e];
    let v = g * (1.0 - y * y);
    hs4[p.t * bh4 + e] = v;
    state4[e] = v;
}

// ---- vec4 variants (H a multiple of 4) ---------------------------------
//
// The same three steps with each invocation owning 4 batch rows × 4 hidden
// units and walking the sum 4 terms at a time with 16-byte loads: per 4
// terms, 8 vec4 loads for 64 FMAs instead of 2 scalar loads per FMA (the
// same reasoning as matmul_vec4). Rows past the batch are clamped copies
// that write identical values.

@group(0) @binding(5) var<storage, read> xw4: array<vec4<f32>>; // xw, or dh
@group(0) @binding(6) var<storage, read> u4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> h04: array<vec4<f32>>; // h0, or h
@group(0) @binding(8) var<storage, read_write> hs4: array<vec4<f32>>; // h, or da
@group(0) @binding(9) var<storage, read_write> dh04: array<vec4<f32>>;

fn tanh4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(tanh_stable(v.x), tanh_stable(v.y), tanh_stable(v.z), tanh_stable(v.w));
}

// acc + Σ_t h[t]·u_t: four terms of a row times four rows of U.
fn mac4(h: vec4<f32>, u0: vec4<f32>, u1: vec4<f32>, u2: vec4<f32>, u3: vec4<f32>, acc: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(h.w), u3, fma(vec4<f32>(h.z), u2, fma(vec4<f32>(h.y), u1, fma(vec4<f32>(h.x), u0, acc))));
}

// (d·u0, d·u1, d·u2, d·u3): four terms of a row against four rows of U
// (the transposed product da·Uᵀ).
fn dots4(d: vec4<f32>, u0: vec4<f32>, u1: vec4<f32>, u2: vec4<f32>, u3: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(dot(d, u0), dot(d, u1), dot(d, u2), dot(d, u3));
}

// vec4 number `q` of batch row `b` of the state before step t (h0 at t = 0).
fn prev_state4(t: u32, b: u32, q: u32) -> vec4<f32> {
    let hq = p.hidden / 4u;
    if (t == 0u) {
        return h04[b * hq + q];
    }
    return hs4[((t - 1u) * p.batch + b) * hq + q];
}

// Invocation e: hidden units j0..j0+3 of batch rows b0..b0+3.
fn block_of(e: u32) -> vec2<u32> {
    let jb = p.hidden / 4u;
    return vec2<u32>((e / jb) * 4u, (e % jb) * 4u);
}

// The number of 4×4 blocks of a step.
fn step_blocks() -> u32 {
    return ((p.batch + 3u) / 4u) * (p.hidden / 4u);
}

// Block e of forward step t: hs[t] = tanh(xw[t] + h_{t-1}·U).
fn forward_block(t: u32, e: u32) {
    let bj = block_of(e);
    let hq = p.hidden / 4u; // vec4s per row
    let b0 = min(bj.x + 0u, p.batch - 1u);
    let b1 = min(bj.x + 1u, p.batch - 1u);
    let b2 = min(bj.x + 2u, p.batch - 1u);
    let b3 = min(bj.x + 3u, p.batch - 1u);
    var acc0 = xw4[(t * p.batch + b0) * hq + bj.y / 4u];
    var acc1 = xw4[(t * p.batch + b1) * hq + bj.y / 4u];
    var acc2 = xw4[(t * p.batch + b2) * hq + bj.y / 4u];
    var acc3 = xw4[(t * p.batch + b3) * hq + bj.y / 4u];
    for (var i = 0u; i < p.hidden; i += 4u) {
        let u0 = u4[(i * p.hidden + bj.y) / 4u];
        let u1 = u4[((i + 1u) * p.hidden + bj.y) / 4u];
        let u2 = u4[((i + 2u) * p.hidden + bj.y) / 4u];
        let u3 = u4[((i + 3u) * p.hidden + bj.y) / 4u];
        acc0 = mac4(prev_state4(t, b0, i / 4u), u0, u1, u2, u3, acc0);
        acc1 = mac4(prev_state4(t, b1, i / 4u), u0, u1, u2, u3, acc1);
        acc2 = mac4(prev_state4(t, b2, i / 4u), u0, u1, u2, u3, acc2);
        acc3 = mac4(prev_state4(t, b3, i / 4u), u0, u1, u2, u3, acc3);
    }
    hs4[(t * p.batch + b0) * hq + bj.y / 4u] = tanh4(acc0);
    hs4[(t * p.batch + b1) * hq + bj.y / 4u] = tanh4(acc1);
    hs4[(t * p.batch + b2) * hq + bj.y / 4u] = tanh4(acc2);
    hs4[(t * p.batch + b3) * hq + bj.y / 4u] = tanh4(acc3);
}

// Block e of backward step t: da_t = (dh_t + da_{t+1}·Uᵀ) ⊙ (1 - h_t²);
// U[j, k..k+3] as vec4.
fn backward_block(t: u32, e: u32) {
    let bj = block_of(e);
    let hq = p.hidden / 4u;
    let b0 = min(bj.x + 0u, p.batch - 1u);
    let b1 = min(bj.x + 1u, p.batch - 1u);
    let b2 = min(bj.x + 2u, p.batch - 1u);
    let b3 = min(bj.x + 3u, p.batch - 1u);
    var g0 = xw4[(t * p.batch + b0) * hq + bj.y / 4u];
    var g1 = xw4[(t * p.batch + b1) * hq + bj.y / 4u];
    var g2 = xw4[(t * p.batch + b2) * hq + bj.y / 4u];
    var g3 = xw4[(t * p.batch + b3) * hq + bj.y / 4u];
    if (t + 1u < p.steps) {
        for (var k = 0u; k < p.hidden; k += 4u) {
            let uj0 = u4[(bj.y * p.hidden + k) / 4u];
            let uj1 = u4[((bj.y + 1u) * p.hidden + k) / 4u];
            let uj2 = u4[((bj.y + 2u) * p.hidden + k) / 4u];
            let uj3 = u4[((bj.y + 3u) * p.hidden + k) / 4u];
            let d0 = hs4[((t + 1u) * p.batch + b0) * hq + k / 4u];
            g0 += dots4(d0, uj0, uj1, uj2, uj3);
            let d1 = hs4[((t + 1u) * p.batch + b1) * hq + k / 4u];
            g1 += dots4(d1, uj0, uj1, uj2, uj3);
            let d2 = hs4[((t + 1u) * p.batch + b2) * hq + k / 4u];
            g2 += dots4(d2, uj0, uj1, uj2, uj3);
            let d3 = hs4[((t + 1u) * p.batch + b3) * hq + k / 4u];
            g3 += dots4(d3, uj0, uj1, uj2, uj3);
        }
    }
    let y0 = h04[(t * p.batch + b0) * hq + bj.y / 4u];
    hs4[(t * p.batch + b0) * hq + bj.y / 4u] = g0 * (vec4<f32>(1.0) - y0 * y0);
    let y1 = h04[(t * p.batch + b1) * hq + bj.y / 4u];
    hs4[(t * p.batch + b1) * hq + bj.y / 4u] = g1 * (vec4<f32>(1.0) - y1 * y1);
    let y2 = h04[(t * p.batch + b2) * hq + bj.y / 4u];
    hs4[(t * p.batch + b2) * hq + bj.y / 4u] = g2 * (vec4<f32>(1.0) - y2 * y2);
    let y3 = h04[(t * p.batch + b3) * hq + bj.y / 4u];
    hs4[(t * p.batch + b3) * hq + bj.y / 4u] = g3 * (vec4<f32>(1.0) - y3 * y3);
}

// Block e of dh0 = da_0·Uᵀ.
fn initial_grad_block(e: u32) {
    let bj = block_of(e);
    let hq = p.hidden / 4u;
    let b0 = min(bj.x + 0u, p.batch - 1u);
    let b1 = min(bj.x + 1u, p.batch - 1u);
    let b2 = min(bj.x + 2u, p.batch - 1u);
    let b3 = min(bj.x + 3u, p.batch - 1u);
    var g0 = vec4<f32>(0.0);
    var g1 = vec4<f32>(0.0);
    var g2 = vec4<f32>(0.0);
    var g3 = vec4<f32>(0.0);
    for (var k = 0u; k < p.hidden; k += 4u) {
        let uj0 = u4[(bj.y * p.hidden + k) / 4u];
        let uj1 = u4[((bj.y + 1u) * p.hidden + k) / 4u];
        let uj2 = u4[((bj.y + 2u) * p.hidden + k) / 4u];
        let uj3 = u4[((bj.y + 3u) * p.hidden + k) / 4u];
        let d0 = hs4[b0 * hq + k / 4u];
        g0 += dots4(d0, uj0, uj1, uj2, uj3);
        let d1 = hs4[b1 * hq + k / 4u];
        g1 += dots4(d1, uj0, uj1, uj2, uj3);
        let d2 = hs4[b2 * hq + k / 4u];
        g2 += dots4(d2, uj0, uj1, uj2, uj3);
        let d3 = hs4[b3 * hq + k / 4u];
        g3 += dots4(d3, uj0, uj1, uj2, uj3);
    }
    dh04[b0 * hq + bj.y / 4u] = g0;
    dh04[b1 * hq + bj.y / 4u] = g1;
    dh04[b2 * hq + bj.y / 4u] = g2;
    dh04[b3 * hq + bj.y / 4u] = g3;
}

@compute @workgroup_size(64)
fn rnn_step_forward4(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < step_blocks()) {
        forward_block(p.t, gid.x);
    }
}

@compute @workgroup_size(64)
fn rnn_step_backward4(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < step_blocks()) {
        backward_block(p.t, gid.x);
    }
}

@compute @workgroup_size(64)
fn rnn_initial_grad4(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < step_blocks()) {
        initial_grad_block(gid.x);
    }
}

// ---- a whole pass per dispatch (tune::RnnVariant::Sequence) -------------
//
// The rows of a batch never meet in a recurrence, so one workgroup can run
// every step of a pass for its own SEQ_ROW_BLOCKS blocks of 4 batch rows,
// with a storage barrier between steps (the next step reads only what this
// workgroup wrote): steps p.t..p.t+p.count-1 (downwards in backward, from
// p.t) in one dispatch instead of one or two per step. Each invocation
// takes the workgroup's 4×4 blocks 64 apart. On a GPU a dispatch and the
// barrier between dispatches cost microseconds each, against the step's
// few thousand multiply-adds per invocation; but only as many workgroups
// as blocks of rows run, so the tuner decides.

override SEQ_ROW_BLOCKS: u32 = 1u;

// This workgroup's blocks of a step: [first, end).
fn group_blocks(group: u32) -> vec2<u32> {
    let per_group = SEQ_ROW_BLOCKS * (p.hidden / 4u);
    let first = group * per_group;
    return vec2<u32>(first, min(first + per_group, step_blocks()));
}

@compute @workgroup_size(64)
fn rnn_seq_forward4(@builtin(local_invocation_index) lid: u32,
                    @builtin(workgroup_id) wid: vec3<u32>) {
    let range = group_blocks(wid.x);
    for (var s = 0u; s < p.count; s++) {
        for (var e = range.x + lid; e < range.y; e += 64u) {
            forward_block(p.t + s, e);
        }
        storageBarrier();
    }
}

// Steps p.t, p.t-1, ..., p.t-p.count+1; then dh0 where that reaches step 0.
@compute @workgroup_size(64)
fn rnn_seq_backward4(@builtin(local_invocation_index) lid: u32,
                     @builtin(workgroup_id) wid: vec3<u32>) {
    let range = group_blocks(wid.x);
    for (var s = 0u; s < p.count; s++) {
        for (var e = range.x + lid; e < range.y; e += 64u) {
            backward_block(p.t - s, e);
        }
        storageBarrier();
    }
    if (p.t + 1u == p.count) {
        for (var e = range.x + lid; e < range.y; e += 64u) {
            initial_grad_block(e);
        }
    }
}
