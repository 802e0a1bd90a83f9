// Max- and average pooling over non-overlapping k×k windows, and their
// backward passes.
// Launchers: src/device/gpu/kernels/pool.rs

struct Params {
    nc: u32,   // batch × channels
    h: u32,
    w: u32,
    ho: u32,
    wo: u32,
    k: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<f32>;   // input, or dy
@group(0) @binding(1) var<storage, read> arg: array<f32>; // argmax (backward)
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_arg: array<f32>;

// One invocation per output: the window's first maximum and its flat index.
@compute @workgroup_size(256)
fn max_pool_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = linear_id(gid, nwg);
    if (o >= p.nc * p.ho * p.wo) {
        return;
    }
    let ox = o % p.wo;
    let oy = (o / p.wo) % p.ho;
    let nc = o / (p.wo * p.ho);
    var best_i = (nc * p.h + oy * p.k) * p.w + ox * p.k;
    var best = x[best_i];
    for (var i = 0u; i < p.k; i++) {
        for (var j = 0u; j < p.k; j++) {
            let idx = (nc * p.h + oy * p.k + i) * p.w + ox * p.k + j;
            if (x[idx] > best) {
                best = x[idx];
                best_i = idx;
            }
        }
    }
    out[o] = best;
    out_arg[o] = f32(best_i);
}

// One invocation per input element: windows do not overlap, so each input
// receives at most one output's gradient and no atomics are needed.
@compute @workgroup_size(256)
fn max_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.nc * p.h * p.w) {
        return;
    }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let nc = i / (p.w * p.h);
    let oy = iy / p.k;
    let ox = ix / p.k;
    var g = 0.0;
    if (oy < p.ho && ox < p.wo) {
        let o = (nc * p.ho + oy) * p.wo + ox;
        if (u32(arg[o]) == i) {
            g = x[o];
        }
    }
    out[i] = g;
}

// One invocation per output: the window's mean, summed row by row.
@compute @workgroup_size(256)
fn avg_pool_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = linear_id(gid, nwg);
    if (o >= p.nc * p.ho * p.wo) {
        return;
    }
    let ox = o % p.wo;
    let oy = (o / p.wo) % p.ho;
    let nc = o / (p.wo * p.ho);
    var s = 0.0;
    for (var i = 0u; i < p.k; i++) {
        for (var j = 0u; j < p.k; j++) {
            s += x[(nc * p.h + oy * p.k + i) * p.w + ox * p.k + j];
        }
    }
    out[o] = s * (1.0 / f32(p.k * p.k));
}

// One invocation per input element: its window's dy/k², or 0 past the last
// whole window.
@compute @workgroup_size(256)
fn avg_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.nc * p.h * p.w) {
        return;
    }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let nc = i / (p.w * p.h);
    let oy = iy / p.k;
    let ox = ix / p.k;
    var g = 0.0;
    if (oy < p.ho && ox < p.wo) {
        g = x[(nc * p.ho + oy) * p.wo + ox] * (1.0 / f32(p.k * p.k));
    }
    out[i] = g;
}
