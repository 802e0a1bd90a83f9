// Elman recurrence h_t = tanh(xw_t + h_{t-1}·U), one dispatch per time step
// forward and backward (the input projections xw for all steps come from one
// matmul beforehand). Launchers: src/device/gpu/kernels/rnn.rs

struct Params {
    t: u32,      // current step
    steps: u32,  // T
    batch: u32,  // B
    hidden: u32, // H
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
