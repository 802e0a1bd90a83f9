// C[m,n] = act(op(A)[m,k] · op(B)[k,n] + bias[n]), op = optional transpose.
// Launcher: src/device/gpu/kernels/matmul.rs
//
// Transposes are pipeline constants, so each of the four layouts compiles to
// its own specialised kernel and nothing is ever transposed in memory.
// Six kernels compute the same thing:
// - matmul_vec4 (at the end of this file): no shared memory, no barriers,
//   16-byte loads, for shapes that are multiples of 4; written for
//   lavapipe, where a workgroup barrier is very expensive, and on an NVIDIA
//   H200 the tuner's pick for the 1024³ and 4096³ products;
// - matmul_blocked: the same idea with scalar loads, for any shape; each
//   invocation owns a 4×4 block of C;
// - matmul_tiled: 64×64 tiles of C per workgroup staged through shared
//   memory in 16-deep slices of k; each invocation owns 4×4 outputs strided by
//   16; any size (on an H200 it lost to the register-block kernels);
// - matmul_rows: one row of C (up to four columns) per invocation, for
//   products with few columns (n ≤ 16);
// - matmul_tile128 (at the end): 128×128 tiles in shared memory, 8×8
//   outputs per invocation, for large products on real GPUs (multiples
//   of 4);
// - matmul_bcast, in shaders/matmul_bcast.wgsl (appended to this file
//   where the adapter has subgroups): rows of A shared across a subgroup
//   by broadcasts; the fastest on lavapipe for multiples of 4.
//
// The operands A and B are read through `a_at`/`b_at` (one element) and
// `load_a4`/`load_b4` (four), declared with their bindings (0, 1, 4, 5) in
// the part the launcher puts before this file: matmul_f32.wgsl, or
// matmul_f16.wgsl, whose operands are f16 (`--precision f16`).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // C's own rows and columns where store4 crops (CROP): the padded
    // product's m and n are the padded sizes.
    c_rows: u32,
    c_cols: u32,
    // STEP: where its m × n matrices start in their buffers (elements; a
    // multiple of 4).
    step_at: u32,
}
var<immediate> p: Params;

// The epilogue's activation (Activation::code) is a pipeline constant, not
// a parameter: the switch in `activate` then folds away when the pipeline
// is made, instead of every activation being compiled into every store.
override ACT: u32 = 0u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
// The padded product writes its corner of C straight into C (see store4).
override CROP: bool = false;
// A recurrent step's epilogue (the vec4 stores only, on sizes multiples of
// 4, never with HAS_BIAS or CROP), on m × n matrices at `step_at` of their
// buffers: C = act(A·B + D), D read from `add4`, and C written to `copy4`
// too; with STEP_DTANH also times 1 − Y², Y read from `y4`. An Elman step
// is then one dispatch: forward h_t = tanh(h_{t-1}·U + xw_t), backward
// da_t = (da_{t+1}·Uᵀ + dh_t) · (1 − h_t²), each kept at step t of the
// sequence's tensor (`copy4`) and as C for the next step's product, which
// cannot read the sequence's buffer while the step writes it.
override STEP: bool = false;
override STEP_DTANH: bool = false;

// Without HAS_BIAS a placeholder buffer is bound and never read.
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

fn store(row: u32, col: u32, v: f32) {
    if (row < p.m && col < p.n) {
        var s = v;
        if (HAS_BIAS) {
            s += bias[col];
        }
        c[row * p.n + col] = activate(s, ACT);
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

// ---- matmul_rows: products with few output columns ------------------------
//
// A linear model's output (n = 1) and its weight gradient Xᵀ·dz are
// products with one or a few columns. The block kernels then idle most of
// each block (a 4×4 or 8×4 block computing one real column) and the padded
// variant pays two extra passes. Here an invocation owns one row of C and
// up to four columns, so every invocation does real work; any layout, any
// size. Neighbouring invocations take neighbouring rows, which in a
// transposed A (the weight gradient) are neighbouring addresses.
@compute @workgroup_size(256)
fn matmul_rows(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let blocks = (p.n + 3u) / 4u;
    let e = linear_id(gid, nwg);
    if (e >= p.m * blocks) {
        return;
    }
    let row = e % p.m;
    let col0 = (e / p.m) * 4u;
    // Columns past the last read a clamped copy and are not stored.
    let cc = min(col0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n - 1u));
    var acc = vec4<f32>(0.0);
    if (p.n == 1u) {
        // One column: one load of B per step, not four of the same value.
        for (var kk = 0u; kk < p.k; kk++) {
            acc.x = fma(a_at(row, kk), b_at(kk, 0u), acc.x);
        }
    } else {
        for (var kk = 0u; kk < p.k; kk++) {
            let bv = vec4<f32>(b_at(kk, cc.x), b_at(kk, cc.y), b_at(kk, cc.z), b_at(kk, cc.w));
            acc = fma(vec4<f32>(a_at(row, kk)), bv, acc);
        }
    }
    for (var j = 0u; j < 4u; j++) {
        store(row, col0 + j, acc[j]);
    }
}

// ---- matmul_vec4: the software-adapter kernel for aligned shapes ----------
//
// Each invocation owns an 8×4 block of C and walks k four at a time, so every
// memory access is a 16-byte vec4: per 4 steps of k it loads 8 vec4 of A and
// 4 of B for 128 FMAs. On lavapipe a load costs about as much as several
// FMAs whatever its width, so loads per FMA decide the speed (measured: 4×4
// scalar blocks 4.5 GFLOP/s, this kernel about 12 at n = 1024). The
// workgroup is 16×16 so that consecutive invocations share B's columns while
// they are in cache. The four operand layouts differ only in how a vec4 is
// turned into rows of the 4×4 micro-tile (the transposes below are register
// shuffles). Requires m, n and k to be multiples of 4 and m ≥ 8; the launcher
// falls back to matmul_blocked otherwise.

@group(0) @binding(6) var<storage, read_write> c4: array<vec4<f32>>;
// STEP's matrices; a spare buffer and the placeholder otherwise. (The
// layout a pipeline gets is made before its constants fold the branches
// away, so every product of the vec4-store kernels binds 2-9: 8 storage
// buffers, WebGPU's guaranteed minimum per stage. A ninth needs another
// entry point or module.)
@group(0) @binding(7) var<storage, read_write> copy4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> add4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read> y4: array<vec4<f32>>;

// With CROP the kernel runs on padded operands and C is the unpadded
// c_rows × c_cols matrix (bound as `c`): the block is stored element by
// element where it falls inside C, so no padded C is made and cropped.
fn store4(row: u32, col: u32, v: vec4<f32>) {
    var s = v;
    if (HAS_BIAS) {
        s += vec4<f32>(bias[col], bias[col + 1u], bias[col + 2u], bias[col + 3u]);
    }
    // C's element (row, col) of the m × n product.
    let e = row * p.n + col;
    if (STEP) {
        s += add4[(p.step_at + e) / 4u];
    }
    var y = vec4<f32>(
        activate(s.x, ACT), activate(s.y, ACT), activate(s.z, ACT), activate(s.w, ACT));
    if (STEP_DTANH) {
        let h = y4[(p.step_at + e) / 4u];
        y *= 1.0 - h * h;
    }
    if (STEP) {
        copy4[(p.step_at + e) / 4u] = y;
    }
    if (CROP) {
        if (row >= p.c_rows) {
            return;
        }
        let at = row * p.c_cols + col;
        for (var t = 0u; t < 4u; t++) {
            if (col + t < p.c_cols) {
                c[at + t] = y[t];
            }
        }
        return;
    }
    c4[e / 4u] = y;
}

@compute @workgroup_size(16, 16)
fn matmul_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col0 = gid.x * 4u;
    let row0 = gid.y * 8u;
    if (col0 >= p.n || row0 >= p.m) {
        return;
    }
    // The last block of rows slides back to stay in bounds; the rows it
    // shares with the block before are written twice with the same values.
    let rb = min(row0, p.m - 8u);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    for (var k = 0u; k < p.k; k += 4u) {
        // br_t: row k+t of op(B), columns col0..col0+3.
        var br0: vec4<f32>;
        var br1: vec4<f32>;
        var br2: vec4<f32>;
        var br3: vec4<f32>;
        if (TRANS_B) {
            let bc0 = load_b4(((col0 + 0u) * p.k + k) / 4u);
            let bc1 = load_b4(((col0 + 1u) * p.k + k) / 4u);
            let bc2 = load_b4(((col0 + 2u) * p.k + k) / 4u);
            let bc3 = load_b4(((col0 + 3u) * p.k + k) / 4u);
            br0 = vec4<f32>(bc0[0], bc1[0], bc2[0], bc3[0]);
            br1 = vec4<f32>(bc0[1], bc1[1], bc2[1], bc3[1]);
            br2 = vec4<f32>(bc0[2], bc1[2], bc2[2], bc3[2]);
            br3 = vec4<f32>(bc0[3], bc1[3], bc2[3], bc3[3]);
        } else {
            br0 = load_b4(((k + 0u) * p.n + col0) / 4u);
            br1 = load_b4(((k + 1u) * p.n + col0) / 4u);
            br2 = load_b4(((k + 2u) * p.n + col0) / 4u);
            br3 = load_b4(((k + 3u) * p.n + col0) / 4u);
        }
        // ar_r: row rb+r of op(A), columns k..k+3.
        var ar0: vec4<f32>;
        var ar1: vec4<f32>;
        var ar2: vec4<f32>;
        var ar3: vec4<f32>;
        var ar4: vec4<f32>;
        var ar5: vec4<f32>;
        var ar6: vec4<f32>;
        var ar7: vec4<f32>;
        if (TRANS_A) {
            let at00 = load_a4(((k + 0u) * p.m + rb + 0u) / 4u);
            let at01 = load_a4(((k + 0u) * p.m + rb + 4u) / 4u);
            let at10 = load_a4(((k + 1u) * p.m + rb + 0u) / 4u);
            let at11 = load_a4(((k + 1u) * p.m + rb + 4u) / 4u);
            let at20 = load_a4(((k + 2u) * p.m + rb + 0u) / 4u);
            let at21 = load_a4(((k + 2u) * p.m + rb + 4u) / 4u);
            let at30 = load_a4(((k + 3u) * p.m + rb + 0u) / 4u);
            let at31 = load_a4(((k + 3u) * p.m + rb + 4u) / 4u);
            ar0 = vec4<f32>(at00[0], at10[0], at20[0], at30[0]);
            ar1 = vec4<f32>(at00[1], at10[1], at20[1], at30[1]);
            ar2 = vec4<f32>(at00[2], at10[2], at20[2], at30[2]);
            ar3 = vec4<f32>(at00[3], at10[3], at20[3], at30[3]);
            ar4 = vec4<f32>(at01[0], at11[0], at21[0], at31[0]);
            ar5 = vec4<f32>(at01[1], at11[1], at21[1], at31[1]);
            ar6 = vec4<f32>(at01[2], at11[2], at21[2], at31[2]);
            ar7 = vec4<f32>(at01[3], at11[3], at21[3], at31[3]);
        } else {
            ar0 = load_a4(((rb + 0u) * p.k + k) / 4u);
            ar1 = load_a4(((rb + 1u) * p.k + k) / 4u);
            ar2 = load_a4(((rb + 2u) * p.k + k) / 4u);
            ar3 = load_a4(((rb + 3u) * p.k + k) / 4u);
            ar4 = load_a4(((rb + 4u) * p.k + k) / 4u);
            ar5 = load_a4(((rb + 5u) * p.k + k) / 4u);
            ar6 = load_a4(((rb + 6u) * p.k + k) / 4u);
            ar7 = load_a4(((rb + 7u) * p.k + k) / 4u);
        }
        acc0 = fma(vec4<f32>(ar0.w), br3, fma(vec4<f32>(ar0.z), br2, fma(vec4<f32>(ar0.y), br1, fma(vec4<f32>(ar0.x), br0, acc0))));
        acc1 = fma(vec4<f32>(ar1.w), br3, fma(vec4<f32>(ar1.z), br2, fma(vec4<f32>(ar1.y), br1, fma(vec4<f32>(ar1.x), br0, acc1))));
        acc2 = fma(vec4<f32>(ar2.w), br3, fma(vec4<f32>(ar2.z), br2, fma(vec4<f32>(ar2.y), br1, fma(vec4<f32>(ar2.x), br0, acc2))));
        acc3 = fma(vec4<f32>(ar3.w), br3, fma(vec4<f32>(ar3.z), br2, fma(vec4<f32>(ar3.y), br1, fma(vec4<f32>(ar3.x), br0, acc3))));
        acc4 = fma(vec4<f32>(ar4.w), br3, fma(vec4<f32>(ar4.z), br2, fma(vec4<f32>(ar4.y), br1, fma(vec4<f32>(ar4.x), br0, acc4))));
        acc5 = fma(vec4<f32>(ar5.w), br3, fma(vec4<f32>(ar5.z), br2, fma(vec4<f32>(ar5.y), br1, fma(vec4<f32>(ar5.x), br0, acc5))));
        acc6 = fma(vec4<f32>(ar6.w), br3, fma(vec4<f32>(ar6.z), br2, fma(vec4<f32>(ar6.y), br1, fma(vec4<f32>(ar6.x), br0, acc6))));
        acc7 = fma(vec4<f32>(ar7.w), br3, fma(vec4<f32>(ar7.z), br2, fma(vec4<f32>(ar7.y), br1, fma(vec4<f32>(ar7.x), br0, acc7))));
    }
    store4(rb + 0u, col0, acc0);
    store4(rb + 1u, col0, acc1);
    store4(rb + 2u, col0, acc2);
    store4(rb + 3u, col0, acc3);
    store4(rb + 4u, col0, acc4);
    store4(rb + 5u, col0, acc5);
    store4(rb + 6u, col0, acc6);
    store4(rb + 7u, col0, acc7);
}

// ---- matmul_tile128: large products, for real GPUs ------------------------
//
// The classic shared-memory SGEMM: a workgroup of 16×16 invocations owns a
// 128×128 tile of C and walks k in slices of 8. Each invocation stages one
// vec4 of A and one of B per slice (the next slice's loaded from memory
// while the current one is multiplied out) and owns 8×8 outputs: rows
// 4·ty…4·ty+3 and 64+4·ty…, columns likewise by tx, so per slice it reads
// 32 vec4 from shared memory for 512 FMAs. Needs the vec4 kernel's
// alignment (m, n and k multiples of 4); tails of 128 or 8 are masked to
// zeros. Its 64 accumulators are 16 named vec4: a first version kept them
// in an array indexed in loops and ran 12× slower than matmul_vec4 on an
// NVIDIA H200 at n = 4096 (README "On a real GPU"), as an array a compiler
// cannot keep in registers would. This version is not yet measured on a
// real GPU; the tuner picks it only where it wins.
// The staged slices as vec4 over 4 rows (A) or 4 columns (B) at one
// depth: A's element [depth * 32 + group of 4], B's 256 after it.
var<workgroup> t128: array<vec4<f32>, 512>;

// Where the vec4 an invocation stages at slice k0 lies in its operand,
// as an index of vec4s, or -1 past the operand's end (zeros are staged).
// Both operands come in one of two layouts: depth-major (op(A) transposed,
// op(B) as is: rows of `extent` values per depth) gives 4 neighbours at
// one depth; the other (A as is, B transposed: rows of k values per row
// or column) gives 4 depths of one row or column.
fn t128_at(tid: u32, depth_major: bool, base: u32, k0: u32, extent: u32) -> i32 {
    if (depth_major) {
        let kk = k0 + tid / 32u;
        let i = base + (tid % 32u) * 4u;
        if (kk < p.k && i < extent) {
            return i32((kk * extent + i) / 4u);
        }
    } else {
        let i = base + tid / 2u;
        let kk = k0 + (tid % 2u) * 4u;
        if (i < extent && kk < p.k) {
            return i32((i * p.k + kk) / 4u);
        }
    }
    return -1;
}

fn t128_load_a(tid: u32, row_base: u32, k0: u32) -> vec4<f32> {
    let at = t128_at(tid, TRANS_A, row_base, k0, p.m);
    if (at < 0) {
        return vec4<f32>(0.0);
    }
    return load_a4(u32(at));
}

fn t128_load_b(tid: u32, col_base: u32, k0: u32) -> vec4<f32> {
    let at = t128_at(tid, !TRANS_B, col_base, k0, p.n);
    if (at < 0) {
        return vec4<f32>(0.0);
    }
    return load_b4(u32(at));
}

// Stages `v` (from t128_at's place) in the slice at `tile` (0 for A, 256
// for B): whole where it holds 4 neighbours at one depth, else scattered
// over 4 depths.
fn t128_stage(tile: u32, tid: u32, depth_major: bool, v: vec4<f32>) {
    if (depth_major) {
        t128[tile + tid] = v;
    } else {
        let i = tid / 2u;
        let at = tile + (tid % 2u) * 128u + i / 4u;
        let lane = i % 4u;
        t128[at][lane] = v.x;
        t128[at + 32u][lane] = v.y;
        t128[at + 64u][lane] = v.z;
        t128[at + 96u][lane] = v.w;
    }
}

// Stores a vec4 of C where it falls inside C (n is a multiple of 4, so a
// vec4 is wholly inside or outside).
fn t128_store(row: u32, col: u32, v: vec4<f32>) {
    if (row < p.m && col < p.n) {
        store4(row, col, v);
    }
}

@compute @workgroup_size(16, 16)
fn matmul_tile128(@builtin(local_invocation_id) lid: vec3<u32>,
                  @builtin(workgroup_id) wid: vec3<u32>) {
    let tid = lid.y * 16u + lid.x;
    let row_base = wid.y * 128u;
    let col_base = wid.x * 128u;
    // acc_RC_i: row i of the lower (R = l: 4·ty + i) or upper (h: 64 + 4·ty
    // + i) rows, by the lower (C = l: 4·tx…) or upper (h: 64 + 4·tx…)
    // columns.
    var acc_ll_0 = vec4<f32>(0.0);
    var acc_ll_1 = vec4<f32>(0.0);
    var acc_ll_2 = vec4<f32>(0.0);
    var acc_ll_3 = vec4<f32>(0.0);
    var acc_hl_0 = vec4<f32>(0.0);
    var acc_hl_1 = vec4<f32>(0.0);
    var acc_hl_2 = vec4<f32>(0.0);
    var acc_hl_3 = vec4<f32>(0.0);
    var acc_lh_0 = vec4<f32>(0.0);
    var acc_lh_1 = vec4<f32>(0.0);
    var acc_lh_2 = vec4<f32>(0.0);
    var acc_lh_3 = vec4<f32>(0.0);
    var acc_hh_0 = vec4<f32>(0.0);
    var acc_hh_1 = vec4<f32>(0.0);
    var acc_hh_2 = vec4<f32>(0.0);
    var acc_hh_3 = vec4<f32>(0.0);
    var next_a = t128_load_a(tid, row_base, 0u);
    var next_b = t128_load_b(tid, col_base, 0u);
    for (var k0 = 0u; k0 < p.k; k0 += 8u) {
        t128_stage(0u, tid, TRANS_A, next_a);
        t128_stage(256u, tid, !TRANS_B, next_b);
        workgroupBarrier();
        if (k0 + 8u < p.k) {
            next_a = t128_load_a(tid, row_base, k0 + 8u);
            next_b = t128_load_b(tid, col_base, k0 + 8u);
        }
        for (var kk = 0u; kk < 8u; kk++) {
            let a_l = t128[kk * 32u + lid.y];
            let a_h = t128[kk * 32u + 16u + lid.y];
            let b_l = t128[256u + kk * 32u + lid.x];
            let b_h = t128[256u + kk * 32u + 16u + lid.x];
            acc_ll_0 = fma(vec4<f32>(a_l.x), b_l, acc_ll_0);
            acc_ll_1 = fma(vec4<f32>(a_l.y), b_l, acc_ll_1);
            acc_ll_2 = fma(vec4<f32>(a_l.z), b_l, acc_ll_2);
            acc_ll_3 = fma(vec4<f32>(a_l.w), b_l, acc_ll_3);
            acc_hl_0 = fma(vec4<f32>(a_h.x), b_l, acc_hl_0);
            acc_hl_1 = fma(vec4<f32>(a_h.y), b_l, acc_hl_1);
            acc_hl_2 = fma(vec4<f32>(a_h.z), b_l, acc_hl_2);
            acc_hl_3 = fma(vec4<f32>(a_h.w), b_l, acc_hl_3);
            acc_lh_0 = fma(vec4<f32>(a_l.x), b_h, acc_lh_0);
            acc_lh_1 = fma(vec4<f32>(a_l.y), b_h, acc_lh_1);
            acc_lh_2 = fma(vec4<f32>(a_l.z), b_h, acc_lh_2);
            acc_lh_3 = fma(vec4<f32>(a_l.w), b_h, acc_lh_3);
            acc_hh_0 = fma(vec4<f32>(a_h.x), b_h, acc_hh_0);
            acc_hh_1 = fma(vec4<f32>(a_h.y), b_h, acc_hh_1);
            acc_hh_2 = fma(vec4<f32>(a_h.z), b_h, acc_hh_2);
            acc_hh_3 = fma(vec4<f32>(a_h.w), b_h, acc_hh_3);
        }
        workgroupBarrier();
    }
    let r_l = row_base + lid.y * 4u;
    let r_h = r_l + 64u;
    let c_l = col_base + lid.x * 4u;
    let c_h = c_l + 64u;
    t128_store(r_l, c_l, acc_ll_0);
    t128_store(r_l + 1u, c_l, acc_ll_1);
    t128_store(r_l + 2u, c_l, acc_ll_2);
    t128_store(r_l + 3u, c_l, acc_ll_3);
    t128_store(r_h, c_l, acc_hl_0);
    t128_store(r_h + 1u, c_l, acc_hl_1);
    t128_store(r_h + 2u, c_l, acc_hl_2);
    t128_store(r_h + 3u, c_l, acc_hl_3);
    t128_store(r_l, c_h, acc_lh_0);
    t128_store(r_l + 1u, c_h, acc_lh_1);
    t128_store(r_l + 2u, c_h, acc_lh_2);
    t128_store(r_l + 3u, c_h, acc_lh_3);
    t128_store(r_h, c_h, acc_hh_0);
    t128_store(r_h + 1u, c_h, acc_hh_1);
    t128_store(r_h + 2u, c_h, acc_hh_2);
    t128_store(r_h + 3u, c_h, acc_hh_3);
}
