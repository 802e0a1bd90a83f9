// LSTM and GRU recurrences, one fused dispatch per time step forward and
// backward: each invocation owns one hidden unit j of one batch row b,
// computes all of that unit's gate products with the previous state (the
// recurrent matmul over concatenated gates, restricted to its columns)
// and applies the gate equations in the same pass, so a step is one
// dispatch rather than a matmul plus a pointwise kernel. The input
// projections xw for all steps come from one matmul beforehand.
// Equations: src/nn/gated.rs. Launchers: src/device/gpu/kernels/gated.rs.

struct Params {
    t: u32,      // current step
    steps: u32,  // T
    batch: u32,  // B
    hidden: u32, // H
}
var<immediate> p: Params;

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

// Element `i` of batch row `b` of the state before step p.t.
fn state_before(b: u32, i: u32) -> f32 {
    if (p.t == 0u) {
        return h0[b * p.hidden + i];
    }
    return hs[((p.t - 1u) * p.batch + b) * p.hidden + i];
}

// Σ_k next[k]·U[j, k] over the G·H gate columns of row j of U: the
// gradient reaching h_t[b, j] through the gates of step t+1, whose
// pre-activation gradients start at offset `next`.
fn back_through_u(next: u32, j: u32, gh: u32) -> f32 {
    var g = 0.0;
    for (var k = 0u; k < gh; k++) {
        g = fma(da[next + k], u[j * gh + k], g);
    }
    return g;
}

// i, f, g, o = σ, σ, tanh, σ of xw_t + h_{t−1}·U; c_t = f·c_{t−1} + i·g;
// h_t = o·tanh(c_t).
@compute @workgroup_size(256)
fn lstm_step_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    let h = p.hidden;
    if (e >= p.batch * h) {
        return;
    }
    let b = e / h;
    let j = e % h;
    let row = p.t * p.batch + b;
    let x = row * 4u * h + j;
    var ai = xw[x];
    var af = xw[x + h];
    var ag = xw[x + 2u * h];
    var ao = xw[x + 3u * h];
    for (var i = 0u; i < h; i++) {
        let s = state_before(b, i);
        let r = i * 4u * h + j;
        ai = fma(s, u[r], ai);
        af = fma(s, u[r + h], af);
        ag = fma(s, u[r + 2u * h], ag);
        ao = fma(s, u[r + 3u * h], ao);
    }
    let ig = sigmoid_stable(ai);
    let fg = sigmoid_stable(af);
    let gg = tanh_stable(ag);
    let og = sigmoid_stable(ao);
    var c_prev = 0.0;
    if (p.t == 0u) {
        c_prev = c0[e];
    } else {
        c_prev = cs[(row - p.batch) * h + j];
    }
    let c = fg * c_prev + ig * gg;
    cs[row * h + j] = c;
    hs[row * h + j] = og * tanh_stable(c);
    gates[x] = ig;
    gates[x + h] = fg;
    gates[x + 2u * h] = gg;
    gates[x + 3u * h] = og;
}

// dh = dy_t + da_{t+1}·Uᵀ; dc = dh·o·(1 − tanh²c_t) + dc_{t+1}·f_{t+1};
// da = (dc·g·i(1−i), dc·c_{t−1}·f(1−f), dc·i·(1−g²), dh·tanh c_t·o(1−o)).
// `carry` holds dc·f for the step before.
@compute @workgroup_size(256)
fn lstm_step_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    let h = p.hidden;
    if (e >= p.batch * h) {
        return;
    }
    let b = e / h;
    let j = e % h;
    let row = p.t * p.batch + b;
    let x = row * 4u * h + j;
    var dh = dy[row * h + j];
    var dc_next = 0.0;
    if (p.t + 1u < p.steps) {
        dh += back_through_u((row + p.batch) * 4u * h, j, 4u * h);
        dc_next = carry[e];
    }
    let ig = gates[x];
    let fg = gates[x + h];
    let gg = gates[x + 2u * h];
    let og = gates[x + 3u * h];
    var c_prev = 0.0;
    if (p.t == 0u) {
        c_prev = c0[e];
    } else {
        c_prev = cs[(row - p.batch) * h + j];
    }
    let tc = tanh_stable(cs[row * h + j]);
    let dc = dh * og * (1.0 - tc * tc) + dc_next;
    da[x] = dc * gg * ig * (1.0 - ig);
    da[x + h] = dc * c_prev * fg * (1.0 - fg);
    da[x + 2u * h] = dc * ig * (1.0 - gg * gg);
    da[x + 3u * h] = dh * tc * og * (1.0 - og);
    carry[e] = dc * fg;
}

// r, z = σ(xw + h_{t−1}·U + b_h); n = tanh(xw_n + r·(h_{t−1}·U_n + b_hn));
// h_t = (1 − z)·n + z·h_{t−1}. gates keeps r, z, n and h_{t−1}·U_n + b_hn.
@compute @workgroup_size(256)
fn gru_step_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    let h = p.hidden;
    if (e >= p.batch * h) {
        return;
    }
    let b = e / h;
    let j = e % h;
    let row = p.t * p.batch + b;
    var ar = ub[j];
    var az = ub[h + j];
    var an = ub[2u * h + j];
    for (var i = 0u; i < h; i++) {
        let s = state_before(b, i);
        let r = i * 3u * h + j;
        ar = fma(s, u[r], ar);
        az = fma(s, u[r + h], az);
        an = fma(s, u[r + 2u * h], an);
    }
    let x = row * 3u * h + j;
    let rg = sigmoid_stable(xw[x] + ar);
    let zg = sigmoid_stable(xw[x + h] + az);
    let ng = tanh_stable(xw[x + 2u * h] + rg * an);
    hs[row * h + j] = (1.0 - zg) * ng + zg * state_before(b, j);
    let g = row * 4u * h + j;
    gates[g] = rg;
    gates[g + h] = zg;
    gates[g + 2u * h] = ng;
    gates[g + 3u * h] = an;
}

// dh = dy_t + dhu_{t+1}·Uᵀ + dh_{t+1}·z_{t+1}; dn = dh·(1−z)·(1−n²);
// dz = dh·(h_{t−1} − n)·z(1−z); dr = dn·(h_{t−1}·U_n + b_hn)·r(1−r).
// dxw = (dr, dz, dn); dhu = (dr, dz, dn·r). `carry` holds dh·z for the step
// before; `da` is dhu.
@compute @workgroup_size(256)
fn gru_step_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    let h = p.hidden;
    if (e >= p.batch * h) {
        return;
    }
    let b = e / h;
    let j = e % h;
    let row = p.t * p.batch + b;
    var dh = dy[row * h + j];
    if (p.t + 1u < p.steps) {
        dh += back_through_u((row + p.batch) * 3u * h, j, 3u * h) + carry[e];
    }
    let g = row * 4u * h + j;
    let rg = gates[g];
    let zg = gates[g + h];
    let ng = gates[g + 2u * h];
    let an = gates[g + 3u * h];
    let dn = dh * (1.0 - zg) * (1.0 - ng * ng);
    let dz = dh * (h_prev[row * h + j] - ng) * zg * (1.0 - zg);
    let dr = dn * an * rg * (1.0 - rg);
    let x = row * 3u * h + j;
    dxw[x] = dr;
    dxw[x + h] = dz;
    dxw[x + 2u * h] = dn;
    da[x] = dr;
    da[x + h] = dz;
    da[x + 2u * h] = dn * rg;
    carry[e] = dh * zg;
}
