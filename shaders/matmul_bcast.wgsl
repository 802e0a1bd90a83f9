// matmul_bcast: C = act(op(A)·op(B) + bias) for sizes that are multiples
// of 4, where the adapter has subgroups of at least 8 invocations.
// Appended to shaders/matmul.wgsl (whose Params, store4, TRANS_* and
// operand functions it uses) only on such adapters: the module needs the
// SUBGROUP feature. Launcher: src/device/gpu/kernels/matmul.rs.
//
// Why: on a software adapter (lavapipe) every storage load is a loop over
// the SIMD lanes with a bounds check per lane, and costs far more than the
// FMAs it feeds (matmul_vec4 at 1024³ spends most of its time loading).
// Here every invocation of a workgroup works on the same BCAST_ROWS rows of
// C, each on its own BCAST_COLS columns, so the rows of A are the same for
// all of them: lanes 0-7 of each subgroup load eight rows' next four
// elements (one vec4 each) and every lane takes them from those lanes with
// subgroupBroadcast, which is a register shuffle. A k-step of four then
// costs BCAST_ROWS/8 loads of A and BCAST_COLS of B per invocation for
// 4·BCAST_ROWS·BCAST_COLS FMAs, against 12 loads for 128 in matmul_vec4.
// The block is large (up to 32×8 or 16×12 accumulators, which spill on a CPU: a
// spill is still far cheaper than a load there); on hardware GPUs the
// register file decides, and the tuner times it against the others.
//
// 4×4 blocks are mat4x4 values whose column r is row r of the block:
// then C_blk += B_blk·A_blk, with A_blk's column r holding row r of A over
// k..k+3 and B_blk's column t row k+t of B (see a_lo and b_block).
// Rows and columns past the end of C are computed and not stored, so every
// multiple of 4 fits every block size; their loads are clamped into the
// operands (a row or column of C reads only its own row of A or column of
// B, so what they read changes no stored value; the clamp keeps every read
// inside the binding). No invocation returns before the loop, since a
// broadcast needs its source lane active.

override BCAST_ROWS: u32 = 32u; // rows of C per workgroup: 8, 16 or 32
override BCAST_COLS: u32 = 8u;  // columns of C per invocation: 4, 8, or 12 with up to 16 rows
override BCAST_WG: u32 = 64u;   // invocations per workgroup

// What lane `lane` (0-7) of a subgroup loads for rows row8..row8+7 at
// k..k+3: row row8+lane over k..k+3; transposed, k+lane%4 over four rows.
fn a_part(k: u32, row8: u32, lane: u32) -> vec4<f32> {
    if (TRANS_A) {
        let row = min(row8 + 4u * (lane / 4u), p.m - 4u);
        return load_a4(((k + lane % 4u) * p.m + row) / 4u);
    }
    let row = min(row8 + lane, p.m - 1u);
    return load_a4((row * p.k + k) / 4u);
}

// A_blk for rows row8..row8+3 from what lanes 0-3 loaded (a_hi: rows
// row8+4..row8+7, lanes 4-7). Transposed, lane t holds element k+t of the
// four rows, so the broadcasts give A_blk's transpose.
fn a_lo(part: vec4<f32>) -> mat4x4<f32> {
    let blk = mat4x4<f32>(subgroupBroadcast(part, 0u), subgroupBroadcast(part, 1u),
                          subgroupBroadcast(part, 2u), subgroupBroadcast(part, 3u));
    if (TRANS_A) {
        return transpose(blk);
    }
    return blk;
}

fn a_hi(part: vec4<f32>) -> mat4x4<f32> {
    let blk = mat4x4<f32>(subgroupBroadcast(part, 4u), subgroupBroadcast(part, 5u),
                          subgroupBroadcast(part, 6u), subgroupBroadcast(part, 7u));
    if (TRANS_A) {
        return transpose(blk);
    }
    return blk;
}

// B_blk for columns col..col+3 (clamped into B) at k..k+3.
fn b_block(k: u32, col_in: u32) -> mat4x4<f32> {
    let col = min(col_in, p.n - 4u);
    if (TRANS_B) {
        return transpose(mat4x4<f32>(
            load_b4(((col + 0u) * p.k + k) / 4u), load_b4(((col + 1u) * p.k + k) / 4u),
            load_b4(((col + 2u) * p.k + k) / 4u), load_b4(((col + 3u) * p.k + k) / 4u)));
    }
    return mat4x4<f32>(
        load_b4(((k + 0u) * p.n + col) / 4u), load_b4(((k + 1u) * p.n + col) / 4u),
        load_b4(((k + 2u) * p.n + col) / 4u), load_b4(((k + 3u) * p.n + col) / 4u));
}

// Rows row..row+3, columns col..col+3 of C, where they exist (m and n are
// multiples of 4, so a block is wholly inside or wholly outside).
fn store_block(row: u32, col: u32, blk: mat4x4<f32>) {
    if (row >= p.m || col >= p.n) {
        return;
    }
    store4(row + 0u, col, blk[0]);
    store4(row + 1u, col, blk[1]);
    store4(row + 2u, col, blk[2]);
    store4(row + 3u, col, blk[3]);
}

@compute @workgroup_size(BCAST_WG)
fn matmul_bcast(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(subgroup_invocation_id) sid: u32) {
    let col0 = gid.x * BCAST_COLS;
    let rb = wid.y * BCAST_ROWS;
    let lane = sid % 8u;
    let wide = BCAST_COLS >= 8u;
    let wider = BCAST_COLS == 12u;
    // c<g><j>: rows rb+4g..rb+4g+3, columns col0+4j..col0+4j+3.
    var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>();
    var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>();
    var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>();
    var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>();
    var c40 = mat4x4<f32>(); var c41 = mat4x4<f32>();
    var c50 = mat4x4<f32>(); var c51 = mat4x4<f32>();
    var c60 = mat4x4<f32>(); var c61 = mat4x4<f32>();
    var c70 = mat4x4<f32>(); var c71 = mat4x4<f32>();
    // The third block of columns, where an invocation has 12 (16 rows at
    // most: 32 rows of 12 would be 384 accumulators an invocation).
    var c02 = mat4x4<f32>(); var c12 = mat4x4<f32>();
    var c22 = mat4x4<f32>(); var c32 = mat4x4<f32>();
    // The branches on override constants are resolved when the pipeline is
    // made: each block size compiles to straight-line code.
    for (var k = 0u; k < p.k; k += 4u) {
        let b0 = b_block(k, col0);
        var b1 = b0;
        if (wide) {
            b1 = b_block(k, col0 + 4u);
        }
        var b2 = b0;
        if (wider) {
            b2 = b_block(k, col0 + 8u);
        }
        let p0 = a_part(k, rb, lane);
        let a0 = a_lo(p0);
        let a1 = a_hi(p0);
        c00 += b0 * a0;
        c10 += b0 * a1;
        if (wide) {
            c01 += b1 * a0;
            c11 += b1 * a1;
        }
        if (wider) {
            c02 += b2 * a0;
            c12 += b2 * a1;
        }
        if (BCAST_ROWS >= 16u) {
            let p1 = a_part(k, rb + 8u, lane);
            let a2 = a_lo(p1);
            let a3 = a_hi(p1);
            c20 += b0 * a2;
            c30 += b0 * a3;
            if (wide) {
                c21 += b1 * a2;
                c31 += b1 * a3;
            }
            if (wider) {
                c22 += b2 * a2;
                c32 += b2 * a3;
            }
        }
        if (BCAST_ROWS >= 32u) {
            let p2 = a_part(k, rb + 16u, lane);
            let p3 = a_part(k, rb + 24u, lane);
            let a4 = a_lo(p2);
            let a5 = a_hi(p2);
            let a6 = a_lo(p3);
            let a7 = a_hi(p3);
            c40 += b0 * a4;
            c50 += b0 * a5;
            c60 += b0 * a6;
            c70 += b0 * a7;
            if (wide) {
                c41 += b1 * a4;
                c51 += b1 * a5;
                c61 += b1 * a6;
                c71 += b1 * a7;
            }
        }
    }
    // A loop over the blocks, so that the store (bias and activation) is
    // compiled once rather than once per block: 64 copies of it made the
    // pipelines several times slower to create on lavapipe.
    let blocks = array<mat4x4<f32>, 20>(c00, c10, c20, c30, c40, c50, c60, c70,
                                         c01, c11, c21, c31, c41, c51, c61, c71,
                                         c02, c12, c22, c32);
    for (var g = 0u; g < BCAST_ROWS / 4u; g++) {
        store_block(rb + 4u * g, col0, blocks[g]);
        if (wide) {
            store_block(rb + 4u * g, col0 + 4u, blocks[8u + g]);
        }
        if (wider) {
            store_block(rb + 4u * g, col0 + 8u, blocks[16u + min(g, 3u)]);
        }
    }
}
