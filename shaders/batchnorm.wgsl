// Batch normalisation over the channels of x viewed as [N, C, S]: the batch
// statistics and the two parameter-gradient sums reduce one channel per
// workgroup (64 invocations, strided partial sums, then a fixed tree in
// workgroup memory: deterministic, no atomics); applying the transform and
// the input gradient are elementwise. Launchers:
// src/device/gpu/kernels/batchnorm.rs

struct Params {
    n: u32,
    c: u32,
    s: u32,
    eps: f32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
// beta when applying; dy for the gradients.
@group(0) @binding(2) var<storage, read> b_or_dy: array<f32>;
// [2, C]: means, then variances.
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
// y, or dx; dgamma for the sums.
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// dbeta for the sums.
@group(0) @binding(5) var<storage, read_write> out2: array<f32>;
@group(0) @binding(6) var<storage, read> dgamma: array<f32>;
@group(0) @binding(7) var<storage, read> dbeta: array<f32>;

const WG: u32 = 64u;
var<workgroup> part: array<f32, 64>;

// Element `i` (of N·S) of channel `ch`.
fn at(ch: u32, i: u32) -> u32 {
    return ((i / p.s) * p.c + ch) * p.s + i % p.s;
}

// The sum of `v` over the workgroup, returned to every invocation.
fn workgroup_sum(v: f32, lid: u32) -> f32 {
    part[lid] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            part[lid] += part[lid + stride];
        }
        workgroupBarrier();
    }
    let r = part[0];
    workgroupBarrier();
    return r;
}

fn rstd_of(ch: u32) -> f32 {
    return 1.0 / sqrt(stats[p.c + ch] + p.eps);
}

@compute @workgroup_size(64)
fn bn_stats(@builtin(workgroup_id) wg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let ch = wg.x;
    let m = p.n * p.s;
    var acc = 0.0;
    for (var i = lid; i < m; i += WG) {
        acc += x[at(ch, i)];
    }
    let mean = workgroup_sum(acc, lid) / f32(m);
    var acc2 = 0.0;
    for (var i = lid; i < m; i += WG) {
        let d = x[at(ch, i)] - mean;
        acc2 = fma(d, d, acc2);
    }
    let variance = workgroup_sum(acc2, lid) / f32(m);
    if (lid == 0u) {
        stats[ch] = mean;
        stats[p.c + ch] = variance;
    }
}

@compute @workgroup_size(256)
fn bn_apply(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    if (e >= p.n * p.c * p.s) {
        return;
    }
    let ch = (e / p.s) % p.c;
    out[e] = (x[e] - stats[ch]) * rstd_of(ch) * gamma[ch] + b_or_dy[ch];
}

// dgamma = Σ dy·x̂, dbeta = Σ dy per channel.
@compute @workgroup_size(64)
fn bn_grad_sums(@builtin(workgroup_id) wg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let ch = wg.x;
    let m = p.n * p.s;
    let mean = stats[ch];
    let rstd = rstd_of(ch);
    var g = 0.0;
    var gx = 0.0;
    for (var i = lid; i < m; i += WG) {
        let e = at(ch, i);
        g += b_or_dy[e];
        gx = fma(b_or_dy[e], (x[e] - mean) * rstd, gx);
    }
    let sum_g = workgroup_sum(g, lid);
    let sum_gx = workgroup_sum(gx, lid);
    if (lid == 0u) {
        out[ch] = sum_gx;
        out2[ch] = sum_g;
    }
}

// dx = gamma·rstd·(dy − dbeta/M − x̂·dgamma/M).
@compute @workgroup_size(256)
fn bn_dx(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    if (e >= p.n * p.c * p.s) {
        return;
    }
    let ch = (e / p.s) % p.c;
    let m = f32(p.n * p.s);
    let rstd = rstd_of(ch);
    let xhat = (x[e] - stats[ch]) * rstd;
    out[e] = gamma[ch] * rstd * (b_or_dy[e] - dbeta[ch] / m - xhat * dgamma[ch] / m);
}
