// Max- and average pooling over K×K windows S pixels apart (overlapping
// where S < K), and their backward passes. The backward passes gather: each
// input element adds up the windows that cover it, in output order, so
// overlapping windows need no atomics and the sums are deterministic.
// Launchers: src/device/gpu/kernels/pool.rs
//
// The window and stride are pipeline constants: the window loops unroll,
// the divisions by S become cheap, and windows that do not overlap (S ≥ K,
// the usual 2×2/2) compile to a backward pass without loops, where each
// input element finds its one window by division. On software adapters a
// loop whose trip count differs between lanes runs every lane to the
// longest, and that loop was most of the backward pass's time.
//
// Where the windows tile the input exactly (S = K, both sides multiples of
// K: the usual 2×2/2 on even sides), the `_tiles` backward passes run one
// invocation per window, which writes its K×K inputs' gradients. The
// per-input pass divides its index into image, row and column (three
// integer divisions, which a CPU's vector unit cannot do lane-wise, so
// llvmpipe does them lane by lane) and reads the window's values for each
// of its K² inputs; per window both happen once.

struct Params {
    nc: u32,   // batch × channels
    h: u32,
    w: u32,
    ho: u32,
    wo: u32,
}
var<immediate> p: Params;

override K: u32 = 2u;  // window side
override S: u32 = 2u;  // stride

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
    var best_i = (nc * p.h + oy * S) * p.w + ox * S;
    var best = x[best_i];
    for (var i = 0u; i < K; i++) {
        for (var j = 0u; j < K; j++) {
            let idx = (nc * p.h + oy * S + i) * p.w + ox * S + j;
            if (x[idx] > best) {
                best = x[idx];
                best_i = idx;
            }
        }
    }
    out[o] = best;
    out_arg[o] = f32(best_i);
}

// The outputs along one axis (of `outputs`) whose windows cover input
// position i: first..last, empty where first >= last.
fn covering(i: u32, outputs: u32) -> vec2<u32> {
    let d = max(i + 1u, K) - K;
    let first = d / S + select(0u, 1u, d % S != 0u);
    let last = min(i / S + 1u, outputs);
    return vec2<u32>(first, last);
}

// Where windows do not overlap (S ≥ K): the one output whose window covers
// input (ix, iy) of plane nc, or -1 where none does (a gap between windows,
// or past the last). An i32 holds every output index: a binding holds at
// most 2^32 bytes, so fewer than 2^31 f32 outputs.
fn only_window(ix: u32, iy: u32, nc: u32) -> i32 {
    let oy = iy / S;
    let ox = ix / S;
    let inside = iy - oy * S < K && ix - ox * S < K && oy < p.ho && ox < p.wo;
    return select(-1, i32((nc * p.ho + oy) * p.wo + ox), inside);
}

// One invocation per input element: the sum of dy over the windows whose
// maximum it is.
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
    var g = 0.0;
    if (S >= K) {
        let o = only_window(ix, iy, nc);
        if (o >= 0) {
            g = select(0.0, x[o], u32(arg[o]) == i);
        }
    } else {
        let rows = covering(iy, p.ho);
        let cols = covering(ix, p.wo);
        for (var oy = rows.x; oy < rows.y; oy++) {
            for (var ox = cols.x; ox < cols.y; ox++) {
                let o = (nc * p.ho + oy) * p.wo + ox;
                if (u32(arg[o]) == i) {
                    g += x[o];
                }
            }
        }
    }
    out[i] = g;
}

// The window o covers the K×K inputs from this one, row after row, w apart.
fn window_corner(o: u32) -> u32 {
    let ox = o % p.wo;
    let oy = (o / p.wo) % p.ho;
    let nc = o / (p.wo * p.ho);
    return (nc * p.h + oy * S) * p.w + ox * S;
}

// Exact tiling only (see the top): one invocation per window, dy at its
// maximum and 0 at its other inputs.
@compute @workgroup_size(256)
fn max_pool_backward_tiles(@builtin(global_invocation_id) gid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = linear_id(gid, nwg);
    if (o >= p.nc * p.ho * p.wo) {
        return;
    }
    let corner = window_corner(o);
    let g = x[o];
    let at = u32(arg[o]);
    for (var i = 0u; i < K; i++) {
        for (var j = 0u; j < K; j++) {
            let idx = corner + i * p.w + j;
            out[idx] = select(0.0, g, idx == at);
        }
    }
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
    for (var i = 0u; i < K; i++) {
        for (var j = 0u; j < K; j++) {
            s += x[(nc * p.h + oy * S + i) * p.w + ox * S + j];
        }
    }
    out[o] = s * (1.0 / f32(K * K));
}

// One invocation per input element: dy/k² of every window that covers it,
// or 0 where none does.
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
    let inv = 1.0 / f32(K * K);
    var g = 0.0;
    if (S >= K) {
        let o = only_window(ix, iy, nc);
        if (o >= 0) {
            g = x[o] * inv;
        }
    } else {
        let rows = covering(iy, p.ho);
        let cols = covering(ix, p.wo);
        for (var oy = rows.x; oy < rows.y; oy++) {
            for (var ox = cols.x; ox < cols.y; ox++) {
                g += x[(nc * p.ho + oy) * p.wo + ox] * inv;
            }
        }
    }
    out[i] = g;
}

// Exact tiling only (see the top): one invocation per window, dy/K² at each
// of its inputs.
@compute @workgroup_size(256)
fn avg_pool_backward_tiles(@builtin(global_invocation_id) gid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = linear_id(gid, nwg);
    if (o >= p.nc * p.ho * p.wo) {
        return;
    }
    let corner = window_corner(o);
    let g = x[o] * (1.0 / f32(K * K));
    for (var i = 0u; i < K; i++) {
        for (var j = 0u; j < K; j++) {
            out[corner + i * p.w + j] = g;
        }
    }
}
