// C[m,n] = act(op(A)[m,k] · op(B)[k,n] + bias[n]), op = optional transpose.
// Launcher: src/device/gpu/kernels/matmul.rs
//
// Transposes are pipeline constants, so each of the four layouts compiles to
// its own specialised kernel and nothing is ever transposed in memory.
// Two kernels compute the same thing:
// - matmul_blocked: no shared memory, no barriers; each invocation owns a
//   4×4 block of C. Best on software adapters (lavapipe), where a workgroup
//   barrier is very expensive.
// - matmul_tiled: 64×64 tiles of C per workgroup staged through shared
//   memory in 16-deep slices of k; each invocation owns 4×4 outputs strided by
//   16. Best on real GPUs.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    act: u32,   // Activation::code
}
var<immediate> p: Params;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
// Without HAS_BIAS a placeholder buffer is bound and never read.
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

fn a_at(row: u32, kk: u32) -> f32 {
    if (TRANS_A) {
        return a[kk * p.m + row];
    }
    return a[row * p.k + kk];
}

fn b_at(kk: u32, col: u32) -> f32 {
    if (TRANS_B) {
        return b[col * p.k + kk];
    }
    return b[kk * p.n + col];
}

fn store(row: u32, col: u32, v: f32) {
    if (row < p.m && col < p.n) {
        var s = v;
        if (HAS_BIAS) {
            s += bias[col];
        }
        c[row * p.n + col] = activate(s, p.act);
    }
}

@compute @workgroup_size(16, 16)
fn matmul_blocked(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    // Tail blocks clamp their indices: loads stay in bounds, and `store`
    // drops the duplicated results.
    let r = min(row0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.m - 1u));
    let cc = min(col0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n - 1u));
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk++) {
        let bv = vec4<f32>(b_at(kk, cc.x), b_at(kk, cc.y), b_at(kk, cc.z), b_at(kk, cc.w));
        acc0 = fma(vec4<f32>(a_at(r.x, kk)), bv, acc0);
        acc1 = fma(vec4<f32>(a_at(r.y, kk)), bv, acc1);
        acc2 = fma(vec4<f32>(a_at(r.z, kk)), bv, acc2);
        acc3 = fma(vec4<f32>(a_at(r.w, kk)), bv, acc3);
    }
    for (var j = 0u; j < 4u; j++) {
        store(row0, col0 + j, acc0[j]);
        store(row0 + 1u, col0 + j, acc1[j]);
        store(row0 + 2u, col0 + j, acc2[j]);
        store(row0 + 3u, col0 + j, acc3[j]);
    }
}

const TILE: u32 = 64u;
const DEPTH: u32 = 16u;
var<workgroup> tile_a: array<f32, 1024>; // [DEPTH][TILE]: k-slice × rows
var<workgroup> tile_b: array<f32, 1024>; // [DEPTH][TILE]: k-slice × cols

@compute @workgroup_size(16, 16)
fn matmul_tiled(@builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(workgroup_id) wid: vec3<u32>) {
    let tid = lid.y * 16u + lid.x;
    let row_base = wid.y * TILE;
    let col_base = wid.x * TILE;
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var k0 = 0u; k0 < p.k; k0 += DEPTH) {
        // 256 invocations stage 1024 values of each operand, choosing the
        // index split so that neighbouring invocations read neighbouring
        // addresses whatever the operand's layout.
        for (var l = 0u; l < 4u; l++) {
            let e = tid + l * 256u;
            var i: u32;
            var ka: u32;
            if (TRANS_A) {
                i = e % TILE;
                ka = e / TILE;
            } else {
                ka = e % DEPTH;
                i = e / DEPTH;
            }
            var va = 0.0;
            if (row_base + i < p.m && k0 + ka < p.k) {
                va = a_at(row_base + i, k0 + ka);
            }
            tile_a[ka * TILE + i] = va;

            var j: u32;
            var kb: u32;
            if (TRANS_B) {
                kb = e % DEPTH;
                j = e / DEPTH;
            } else {
                j = e % TILE;
                kb = e / TILE;
            }
            var vb = 0.0;
            if (col_base + j < p.n && k0 + kb < p.k) {
                vb = b_at(k0 + kb, col_base + j);
            }
            tile_b[kb * TILE + j] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < DEPTH; kk++) {
            let o = kk * TILE;
            let bv = vec4<f32>(tile_b[o + lid.x], tile_b[o + lid.x + 16u],
                               tile_b[o + lid.x + 32u], tile_b[o + lid.x + 48u]);
            for (var i = 0u; i < 4u; i++) {
                acc[i] = fma(vec4<f32>(tile_a[o + lid.y + 16u * i]), bv, acc[i]);
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            store(row_base + lid.y + 16u * i, col_base + lid.x + 16u * j, acc[i][j]);
        }
    }
}
