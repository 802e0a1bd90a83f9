// LSTM and GRU recurrences, one fused dispatch per time step forward and
// backward: each invocation owns one hidden unit j of four batch rows,
// computes all of that unit's gate products with the previous states (the
// recurrent matmul over concatenated gates, restricted to its columns)
// and applies the gate equations in the same pass, so a step is one
// dispatch rather than a matmul plus a pointwise kernel. The input
// projections xw for all steps come from one matmul beforehand.
//
// The other way (tune::RnnVariant::Matmul, where the tuner finds it
// faster): the step's recurrent product runs as a matmul with that kernel
// family's tuned choice into `rec`, and the `_finish_` kernels apply the
// same gate equations (the `_rows` functions both share), writing the
// step's result alone into `state` too, the next product's operand. A
// third way (tune::RnnVariant::Sequence, at the end) runs the fused steps
// of a whole pass in one dispatch.
// Equations: src/nn/gated.rs. Launchers: src/device/gpu/kernels/gated.rs.

struct Params {
    t: u32,      // current step (the first of a sequence kernel's)
    steps: u32,  // T
    batch: u32,  // B
    hidden: u32, // H
    count: u32,  // steps of a sequence kernel's dispatch
}
var<immediate> p: Params;

// The step being computed: p.t in a per-step kernel, each step of the
// dispatch in turn in a sequence kernel (below).
var<private> cur_t: u32;

@group(0) @binding(0) var<storage, read> xw: array<f32>;          // [T,B,GH]
@group(0) @binding(1) var<storage, read> u: array<f32>;           // [H,GH]
@group(0) @binding(2) var<storage, read> h0: array<f32>;          // [B,H]
@group(0) @binding(3) var<storage, read> c0: array<f32>;          // [B,H]
@group(0) @binding(4) var<storage, read_write> hs: array<f32>;    // [T,B,H]
@group(0) @binding(5) var<storage, read_write> cs: array<f32>;    // [T,B,H]
@group(0) @binding(6) var<storage, read_write> gates: array<f32>; // [T,B,4H]
@group(0) @binding(7) var<storage, read> dy: array<f32>;          // [T,B,H]
@group(0) @binding(8) var<storage, read_write> da: array<f32>;    // [T,B,GH]
@group(0) @binding(9) var<storage, read_write> carry: array<f32>; // [B,H]
@group(0) @binding(10) var<storage, read> ub: array<f32>;         // [3H]
@group(0) @binding(11) var<storage, read> h_prev: array<f32>;     // [T,B,H]
@group(0) @binding(12) var<storage, read_write> dxw: array<f32>;  // [T,B,3H]
@group(0) @binding(13) var<storage, read> rec: array<f32>;        // [B,GH] fwd, [B,H] bwd
@group(0) @binding(14) var<storage, read_write> state: array<f32>; // [B,H] fwd, [B,GH] bwd

// Each invocation owns one hidden unit j of four batch rows (b0 .. b0+3,
// clamped to the batch: rows past it are copies that write identical
// values), so every recurrent weight it loads serves four rows: per term
// of the recurrent sums, 4 state loads and one weight load per gate feed
// 4 FMAs per gate, where one row per invocation loaded a weight per FMA.

fn rows_of(e: u32) -> vec4<u32> {
    let b0 = (e / p.hidden) * 4u;
    let last = p.batch - 1u;
    return vec4<u32>(min(b0, last), min(b0 + 1u, last), min(b0 + 2u, last), min(b0 + 3u, last));
}

// Invocations: ⌈B/4⌉ blocks of rows × H units.
fn out_of_range(e: u32) -> bool {
    return e >= ((p.batch + 3u) / 4u) * p.hidden;
}

// Element `i` of the state before step cur_t, for four batch rows.
fn state_before4(rows: vec4<u32>, i: u32) -> vec4<f32> {
    if (cur_t == 0u) {
        return vec4<f32>(h0[rows.x * p.hidden + i], h0[rows.y * p.hidden + i],
                         h0[rows.z * p.hidden + i], h0[rows.w * p.hidden + i]);
    }
    let base = (cur_t - 1u) * p.batch;
    return vec4<f32>(hs[(base + rows.x) * p.hidden + i], hs[(base + rows.y) * p.hidden + i],
                     hs[(base + rows.z) * p.hidden + i], hs[(base + rows.w) * p.hidden + i]);
}

// `carry` of the four rows, read before any of them is written (the
// clamped copies of the last row would otherwise read its new value).
fn carry4(rows: vec4<u32>, j: u32) -> vec4<f32> {
    if (cur_t + 1u >= p.steps) {
        return vec4<f32>(0.0);
    }
    let h = p.hidden;
    return vec4<f32>(carry[rows.x * h + j], carry[rows.y * h + j],
                     carry[rows.z * h + j], carry[rows.w * h + j]);
}

// Row r of the four: offset of its element (`width` values per row) at step t.
fn at_row(rows: vec4<u32>, r: u32, t: u32, width: u32) -> u32 {
    return (t * p.batch + rows[r]) * width;
}

// Σ_k da[t+1, row, k]·U[j, k] over the G·H gate columns of row j of U, for
// four rows: the gradient reaching h_t through the gates of step t+1.
fn back_through_u4(rows: vec4<u32>, j: u32, gh: u32) -> vec4<f32> {
    let t1 = cur_t + 1u;
    let r0 = at_row(rows, 0u, t1, gh);
    let r1 = at_row(rows, 1u, t1, gh);
    let r2 = at_row(rows, 2u, t1, gh);
    let r3 = at_row(rows, 3u, t1, gh);
    var g = vec4<f32>(0.0);
    for (var k = 0u; k < gh; k++) {
        let w = u[j * gh + k];
        g = fma(vec4<f32>(da[r0 + k], da[r1 + k], da[r2 + k], da[r3 + k]), vec4<f32>(w), g);
    }
    return g;
}

fn sigmoid4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(sigmoid_stable(v.x), sigmoid_stable(v.y), sigmoid_stable(v.z), sigmoid_stable(v.w));
}

fn tanh4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(tanh_stable(v.x), tanh_stable(v.y), tanh_stable(v.z), tanh_stable(v.w));
}

// i, f, g, o = σ, σ, tanh, σ of xw_t + h_{t−1}·U; c_t = f·c_{t−1} + i·g;
// h_t = o·tanh(c_t).
@compute @workgroup_size(64)
fn lstm_step_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    cur_t = p.t;
    if (!out_of_range(gid.x)) {
        lstm_forward_at(gid.x);
    }
}

fn lstm_forward_at(e: u32) {
    let h = p.hidden;
    let j = e % h;
    let rows = rows_of(e);
    var ai = vec4<f32>(0.0);
    var af = vec4<f32>(0.0);
    var ag = vec4<f32>(0.0);
    var ao = vec4<f32>(0.0);
    for (var r = 0u; r < 4u; r++) {
        let x = at_row(rows, r, cur_t, 4u * h) + j;
        ai[r] = xw[x];
        af[r] = xw[x + h];
        ag[r] = xw[x + 2u * h];
        ao[r] = xw[x + 3u * h];
    }
    for (var i = 0u; i < h; i++) {
        let s = state_before4(rows, i);
        let w = i * 4u * h + j;
        ai = fma(s, vec4<f32>(u[w]), ai);
        af = fma(s, vec4<f32>(u[w + h]), af);
        ag = fma(s, vec4<f32>(u[w + 2u * h]), ag);
        ao = fma(s, vec4<f32>(u[w + 3u * h]), ao);
    }
    lstm_forward_rows(rows, j, ai, af, ag, ao);
}

// The gate equations on the pre-activations of four rows at unit j: writes
// c_t, h_t and the gates, and returns h_t.
fn lstm_forward_rows(rows: vec4<u32>, j: u32, ai: vec4<f32>, af: vec4<f32>,
                     ag: vec4<f32>, ao: vec4<f32>) -> vec4<f32> {
    let h = p.hidden;
    let ig = sigmoid4(ai);
    let fg = sigmoid4(af);
    let gg = tanh4(ag);
    let og = sigmoid4(ao);
    var h_t = vec4<f32>(0.0);
    for (var r = 0u; r < 4u; r++) {
        var c_prev = 0.0;
        if (cur_t == 0u) {
            c_prev = c0[rows[r] * h + j];
        } else {
            c_prev = cs[at_row(rows, r, cur_t - 1u, h) + j];
        }
        let c = fg[r] * c_prev + ig[r] * gg[r];
        let o = at_row(rows, r, cur_t, h) + j;
        cs[o] = c;
        h_t[r] = og[r] * tanh_stable(c);
        hs[o] = h_t[r];
        let x = at_row(rows, r, cur_t, 4u * h) + j;
        gates[x] = ig[r];
        gates[x + h] = fg[r];
        gates[x + 2u * h] = gg[r];
        gates[x + 3u * h] = og[r];
    }
    return h_t;
}

// The LSTM step with h_{t−1}·U given in `rec`.
@compute @workgroup_size(64)
fn lstm_finish_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    cur_t = p.t;
    let e = gid.x;
    if (out_of_range(e)) {
        return;
    }
    let h = p.hidden;
    let j = e % h;
    let rows = rows_of(e);
    var ai = vec4<f32>(0.0);
    var af = vec4<f32>(0.0);
    var ag = vec4<f32>(0.0);
    var ao = vec4<f32>(0.0);
    for (var r = 0u; r < 4u; r++) {
        let x = at_row(rows, r, cur_t, 4u * h) + j;
        let q = rows[r] * 4u * h + j;
        ai[r] = xw[x] + rec[q];
        af[r] = xw[x + h] + rec[q + h];
        ag[r] = xw[x + 2u * h] + rec[q + 2u * h];
        ao[r] = xw[x + 3u * h] + rec[q + 3u * h];
    }
    let h_t = lstm_forward_rows(rows, j, ai, af, ag, ao);
    for (var r = 0u; r < 4u; r++) {
        state[rows[r] * h + j] = h_t[r];
    }
}

// dh = dy_t + da_{t+1}·Uᵀ; dc = dh·o·(1 − tanh²c_t) + dc_{t+1}·f_{t+1};
// da = (dc·g·i(1−i), dc·c_{t−1}·f(1−f), dc·i·(1−g²), dh·tanh c_t·o(1−o)).
// `carry` holds dc·f for the step before.
@compute @workgroup_size(64)
fn lstm_step_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    cur_t = p.t;
    if (!out_of_range(gid.x)) {
        lstm_backward_at(gid.x);
    }
}

fn lstm_backward_at(e: u32) {
    let h = p.hidden;
    let j = e % h;
    let rows = rows_of(e);
    var back = vec4<f32>(0.0);
    if (cur_t + 1u < p.steps) {
        back = back_through_u4(rows, j, 4u * h);
    }
    lstm_backward_rows(rows, j, back);
}

// The backward step of four rows at unit j, given the gradient `back`
// reaching h_t through step t+1's gates: writes da and the carry, and
// returns da (column r: row r's i, f, g, o).
fn lstm_backward_rows(rows: vec4<u32>, j: u32, back: vec4<f32>) -> mat4x4<f32> {
    let h = p.hidden;
    let dc_next = carry4(rows, j);
    var out = mat4x4<f32>();
    for (var r = 0u; r < 4u; r++) {
        let b = rows[r];
        let x = at_row(rows, r, cur_t, 4u * h) + j;
        let dh = dy[at_row(rows, r, cur_t, h) + j] + back[r];
        let ig = gates[x];
        let fg = gates[x + h];
        let gg = gates[x + 2u * h];
        let og = gates[x + 3u * h];
        var c_prev = 0.0;
        if (cur_t == 0u) {
            c_prev = c0[b * h + j];
        } else {
            c_prev = cs[at_row(rows, r, cur_t - 1u, h) + j];
        }
        let tc = tanh_stable(cs[at_row(rows, r, cur_t, h) + j]);
        let dc = dh * og * (1.0 - tc * tc) + dc_next[r];
        out[r] = vec4<f32>(dc * gg * ig * (1.0 - ig), dc * c_prev * fg * (1.0 - fg),
                           dc * ig * (1.0 - gg * gg), dh * tc * og * (1.0 - og));
        da[x] = out[r].x;
        da[x + h] = out[r].y;
        da[x + 2u * h] = out[r].z;
        da[x + 3u * h] = out[r].w;
        carry[b * h + j] = dc * fg;
    }
    return out;
}

// `rec` of the four rows at unit j (a [B,H] product), or 0 at the last
// step, where there is none.
fn rec_back4(rows: vec4<u32>, j: u32) -> vec4<f32> {
    if (cur_t + 1u >= p.steps) {
        return vec4<f32>(0.0);
    }
    let h = p.hidden;
    return vec4<f32>(rec[rows.x * h + j], rec[rows.y * h + j],
                     rec[rows.z * h + j], rec[rows.w * h + j]);
}

// The LSTM backward step with da_{t+1}·Uᵀ given in `rec`.
@compute @workgroup_size(64)
fn lstm_finish_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    cur_t = p.t;
    let e = gid.x;
    if (out_of_range(e)) {
        return;
    }
    let h = p.hidden;
    let j = e % h;
    let rows = rows_of(e);
    let d = lstm_backward_rows(rows, j, rec_back4(rows, j));
    for (var r = 0u; r < 4u; r++) {
        let q = rows[r] * 4u * h + j;
        state[q] = d[r].x;
        state[q + h] = d[r].y;
        state[q + 2u * h] = d[r].z;
        state[q + 3u * h] = d[r].w;
    }
}

// r, z = σ(xw + h_{t−1}·U + b_h); n = tanh(xw_n + r·(h_{t−1}·U_n + b_hn));
// h_t = (1 − z)·n + z·h_{t−1}. gates keeps r, z, n and h_{t−1}·U_n + b_hn.
@compute @workgroup_size(64)
fn gru_step_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    cur_t = p.t;
    if (!out_of_range(gid.x)) {
        gru_forward_at(gid.x);
    }
}

fn gru_forward_at(e: u32) {
    let h = p.hidden;
    let j = e % h;
    let rows = rows_of(e);
    var ar = vec4<f32>(ub[j]);
    var az = vec4<f32>(ub[h + j]);
    var an = vec4<f32>(ub[2u * h + j]);
    for (var i = 0u; i < h; i++) {
        let s = state_before4(rows, i);
        let w = i * 3u * h + j;
        ar = fma(s, vec4<f32>(u[w]), ar);
        az = fma(s, vec4<f32>(u[w + h]), az);
        an = fma(s, vec4<f32>(u[w + 2u * h]), an);
    }
    gru_forward_rows(rows, j, ar, az, an);
}

// The gate equations of four rows at unit j, given h_{t−1}·U + b_h for the
// three gates: writes h_t and the gates, and returns h_t.
fn gru_forward_rows(rows: vec4<u32>, j: u32, ar: vec4<f32>, az: vec4<f32>,
                    an: vec4<f32>) -> vec4<f32> {
    let h = p.hidden;
    let prev = state_before4(rows, j);
    var h_t = vec4<f32>(0.0);
    for (var r = 0u; r < 4u; r++) {
        let x = at_row(rows, r, cur_t, 3u * h) + j;
        let rg = sigmoid_stable(xw[x] + ar[r]);
        let zg = sigmoid_stable(xw[x + h] + az[r]);
        let ng = tanh_stable(xw[x + 2u * h] + rg * an[r]);
        h_t[r] = (1.0 - zg) * ng + zg * prev[r];
        hs[at_row(rows, r, cur_t, h) + j] = h_t[r];
        let g = at_row(rows, r, cur_t, 4u * h) + j;
        gates[g] = rg;
        gates[g + h] = zg;
        gates[g + 2u * h] = ng;
        gates[g + 3u * h] = an[r];
    }
    return h_t;
}

// The GRU step with h_{t−1}·U given in `rec`.
@compute @workgroup_size(64)
fn gru_finish_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    cur_t = p.t;
    let e = gid.x;
    if (out_of_range(e)) {
        return;
    }
    let h = p.hidden;
    let j = e % h;
    let rows = rows_of(e);
    var ar = vec4<f32>(0.0);
    var az = vec4<f32>(0.0);
    var an = vec4<f32>(0.0);
    for (var r = 0u; r < 4u; r++) {
        let q = rows[r] * 3u * h + j;
        ar[r] = ub[j] + rec[q];
        az[r] = ub[h + j] + rec[q + h];
        an[r] = ub[2u * h + j] + rec[q + 2u * h];
    }
    let h_t = gru_forward_rows(rows, j, ar, az, an);
    for (var r = 0u; r < 4u; r++) {
        state[rows[r] * h + j] = h_t[r];
    }
}

// dh = dy_t + dhu_{t+1}·Uᵀ + dh_{t+1}·z_{t+1}; dn = dh·(1−z)·(1−n²);
// dz = dh·(h_{t−1} − n)·z(1−z); dr = dn·(h_{t−1}·U_n + b_hn)·r(1−r).
// dxw = (dr, dz, dn); dhu = (dr, dz, dn·r). `carry` holds dh·z for the step
// before; `da` is dhu.
@compute @workgroup_size(64)
fn gru_step_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    cur_t = p.t;
    if (!out_of_range(gid.x)) {
        gru_backward_at(gid.x);
    }
}

fn gru_backward_at(e: u32) {
    let h = p.hidden;
    let j = e % h;
    let rows = rows_of(e);
    var back = vec4<f32>(0.0);
    if (cur_t + 1u < p.steps) {
        back = back_through_u4(rows, j, 3u * h);
    }
    gru_backward_rows(rows, j, back);
}

// The backward step of four rows at unit j, given the gradient `back`
// reaching h_t through step t+1's gates: writes dxw, dhu and the carry,
// and returns dhu (column r: row r's r, z, n parts).
fn gru_backward_rows(rows: vec4<u32>, j: u32, back: vec4<f32>) -> mat4x3<f32> {
    let h = p.hidden;
    let direct = carry4(rows, j);
    var out = mat4x3<f32>();
    for (var r = 0u; r < 4u; r++) {
        let b = rows[r];
        let dh = dy[at_row(rows, r, cur_t, h) + j] + back[r] + direct[r];
        let g = at_row(rows, r, cur_t, 4u * h) + j;
        let rg = gates[g];
        let zg = gates[g + h];
        let ng = gates[g + 2u * h];
        let an = gates[g + 3u * h];
        let dn = dh * (1.0 - zg) * (1.0 - ng * ng);
        let dz = dh * (h_prev[at_row(rows, r, cur_t, h) + j] - ng) * zg * (1.0 - zg);
        let dr = dn * an * rg * (1.0 - rg);
        let x = at_row(rows, r, cur_t, 3u * h) + j;
        dxw[x] = dr;
        dxw[x + h] = dz;
        dxw[x + 2u * h] = dn;
        out[r] = vec3<f32>(dr, dz, dn * rg);
        da[x] = out[r].x;
        da[x + h] = out[r].y;
        da[x + 2u * h] = out[r].z;
        carry[b * h + j] = dh * zg;
    }
    return out;
}

// The GRU backward step with dhu_{t+1}·Uᵀ given in `rec`.
@compute @workgroup_size(64)
fn gru_finish_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    cur_t = p.t;
    let e = gid.x;
    if (out_of_range(e)) {
        return;
    }
    let h = p.hidden;
    let j = e % h;
    let rows = rows_of(e);
    let d = gru_backward_rows(rows, j, rec_back4(rows, j));
    for (var r = 0u; r < 4u; r++) {
        let q = rows[r] * 3u * h + j;
        state[q] = d[r].x;
        state[q + h] = d[r].y;
        state[q + 2u * h] = d[r].z;
    }
}

// ---- a whole pass per dispatch (tune::RnnVariant::Sequence) -------------
//
// As in shaders/rnn.wgsl: the rows of a batch never meet in a recurrence,
// so one workgroup runs steps p.t..p.t+p.count-1 (downwards from p.t in
// backward) for its own SEQ_ROW_BLOCKS blocks of 4 batch rows, with a
// storage barrier between steps (a step reads the previous step's states,
// or its gate gradients, only for this workgroup's rows). Each invocation
// takes the workgroup's units 64 apart.

override SEQ_ROW_BLOCKS: u32 = 1u;

// This workgroup's invocation indices (of the per-step kernels): [first, end).
fn group_units(group: u32) -> vec2<u32> {
    let per_group = SEQ_ROW_BLOCKS * p.hidden;
    let first = group * per_group;
    return vec2<u32>(first, min(first + per_group, ((p.batch + 3u) / 4u) * p.hidden));
}

// One entry point per pass, not one with the pass a pipeline constant:
// pipelines take their bind group layouts from what the entry point can
// reach, so one entry point for all four would need every pass's bindings.

@compute @workgroup_size(64)
fn lstm_seq_forward(@builtin(local_invocation_index) lid: u32,
                    @builtin(workgroup_id) wid: vec3<u32>) {
    let range = group_units(wid.x);
    for (var s = 0u; s < p.count; s++) {
        cur_t = p.t + s;
        for (var e = range.x + lid; e < range.y; e += 64u) {
            lstm_forward_at(e);
        }
        storageBarrier();
    }
}

@compute @workgroup_size(64)
fn lstm_seq_backward(@builtin(local_invocation_index) lid: u32,
                     @builtin(workgroup_id) wid: vec3<u32>) {
    let range = group_units(wid.x);
    for (var s = 0u; s < p.count; s++) {
        cur_t = p.t - s;
        for (var e = range.x + lid; e < range.y; e += 64u) {
            lstm_backward_at(e);
        }
        storageBarrier();
    }
}

@compute @workgroup_size(64)
fn gru_seq_forward(@builtin(local_invocation_index) lid: u32,
                   @builtin(workgroup_id) wid: vec3<u32>) {
    let range = group_units(wid.x);
    for (var s = 0u; s < p.count; s++) {
        cur_t = p.t + s;
        for (var e = range.x + lid; e < range.y; e += 64u) {
            gru_forward_at(e);
        }
        storageBarrier();
    }
}

@compute @workgroup_size(64)
fn gru_seq_backward(@builtin(local_invocation_index) lid: u32,
                    @builtin(workgroup_id) wid: vec3<u32>) {
    let range = group_units(wid.x);
    for (var s = 0u; s < p.count; s++) {
        cur_t = p.t - s;
        for (var e = range.x + lid; e < range.y; e += 64u) {
            gru_backward_at(e);
        }
        storageBarrier();
    }
}
