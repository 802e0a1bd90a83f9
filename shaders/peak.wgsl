// A compute-bound kernel that measures the adapter's practical FP32 peak:
// each invocation runs independent FMA chains in registers and writes one
// value (so the work cannot be optimised away). `wgtrain bench` reports K1
// as a fraction of this. Launcher: src/device/gpu/kernels/peak.rs

struct Params {
    iters: u32,
    seed: f32,
    n: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn peak(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let x = vec4<f32>(f32(i) * 1e-9 + p.seed);
    let m = vec4<f32>(0.9999);
    var a0 = x;
    var a1 = x + 0.1;
    var a2 = x + 0.2;
    var a3 = x + 0.3;
    var a4 = x + 0.4;
    var a5 = x + 0.5;
    var a6 = x + 0.6;
    var a7 = x + 0.7;
    for (var k = 0u; k < p.iters; k++) {
        a0 = fma(a0, m, x);
        a1 = fma(a1, m, x);
        a2 = fma(a2, m, x);
        a3 = fma(a3, m, x);
        a4 = fma(a4, m, x);
        a5 = fma(a5, m, x);
        a6 = fma(a6, m, x);
        a7 = fma(a7, m, x);
    }
    let s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    out[i] = s.x + s.y + s.z + s.w;
}
