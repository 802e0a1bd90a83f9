// Layer normalisation over each row of [rows, cols]: forward, the input
// gradient, and the parameter gradients. One invocation per row (per
// column for the parameters), summing in index order like the CPU: no
// barriers, no atomics, deterministic. Launchers:
// src/device/gpu/kernels/norm.rs

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
// The forward pass's beta; the backward passes' dy.
@group(0) @binding(2) var<storage, read> b_or_dy: array<f32>;
// (mean, 1/√(var + eps)) per row: written forward, read backward.
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
// y forward, dx backward; dgamma for the parameters.
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// dbeta.
@group(0) @binding(5) var<storage, read_write> out2: array<f32>;

@compute @workgroup_size(256)
fn layer_norm(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = linear_id(gid, nwg);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    let n = f32(p.cols);
    var s = 0.0;
    for (var j = 0u; j < p.cols; j++) {
        s += x[base + j];
    }
    let mean = s / n;
    var v = 0.0;
    for (var j = 0u; j < p.cols; j++) {
        let d = x[base + j] - mean;
        v += d * d;
    }
    let rstd = 1.0 / sqrt(v / n + p.eps);
    stats[2u * r] = mean;
    stats[2u * r + 1u] = rstd;
    for (var j = 0u; j < p.cols; j++) {
        out[base + j] = (x[base + j] - mean) * rstd * gamma[j] + b_or_dy[j];
    }
}

// dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·gamma.
@compute @workgroup_size(256)
fn layer_norm_dx(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = linear_id(gid, nwg);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    let mean = stats[2u * r];
    let rstd = stats[2u * r + 1u];
    var m1 = 0.0;
    var m2 = 0.0;
    for (var j = 0u; j < p.cols; j++) {
        let gh = b_or_dy[base + j] * gamma[j];
        m1 += gh;
        m2 += gh * ((x[base + j] - mean) * rstd);
    }
    m1 = m1 / f32(p.cols);
    m2 = m2 / f32(p.cols);
    for (var j = 0u; j < p.cols; j++) {
        let xhat = (x[base + j] - mean) * rstd;
        out[base + j] = rstd * (b_or_dy[base + j] * gamma[j] - m1 - xhat * m2);
    }
}

// dgamma[c] = Σ_r dy·x̂, dbeta[c] = Σ_r dy.
@compute @workgroup_size(256)
fn layer_norm_params(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = linear_id(gid, nwg);
    if (c >= p.cols) {
        return;
    }
    var dg = 0.0;
    var db = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let g = b_or_dy[r * p.cols + c];
        dg += g * ((x[r * p.cols + c] - stats[2u * r]) * stats[2u * r + 1u]);
        db += g;
    }
    out[c] = dg;
    out2[c] = db;
}
