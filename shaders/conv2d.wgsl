// 2-D convolution, any stride, zero padding, N×C×H×W activations and
// Co×Ci×KH×KW weights: forward, input gradient, weight gradient, and the
// per-channel sum that is the bias gradient.
// Launchers: src/device/gpu/kernels/conv2d.rs
//
// Forward and both gradients are implicit GEMMs blocked like matmul_vec4:
// an invocation owns 8 channels × 4 pixels (weight gradient: 8 output
// channels × 8 kernel taps) and uses every value it loads 4 or 8 times,
// because on software adapters loads, not FMAs, set the pace. Neighbouring
// invocations share their 8 channels, so those loads are identical across a
// SIMD group. The weight gradient sums over every output pixel: chunks of
// `p.chunk` pixels give partial sums that reduce.wgsl's sum_rows adds up.
//
// The stride is an override constant, so the stride-1 pipelines compile to
// the same code as before strides existed. The input gradient keeps its
// 4-consecutive-pixel block at any stride: a lane whose pixel no window
// starts on (not a multiple of the stride) reads 0, which costs stride
// times the FMAs (rows no window starts on are skipped whole) but keeps one
// kernel and its load sharing for every stride.

struct Params {
    n: u32,
    ci: u32,
    h: u32,
    w: u32,
    co: u32,
    kh: u32,
    kw: u32,
    ho: u32,
    wo: u32,
    pad: u32,
    chunk: u32, // weight gradient: output pixels per partial sum
}
var<immediate> p: Params;

override HAS_BIAS: bool = false;
override STRIDE: u32 = 1u;

@group(0) @binding(0) var<storage, read> x: array<f32>;   // input (forward, weight grad) or dy
@group(0) @binding(1) var<storage, read> wt: array<f32>;  // weights, or dy (weight grad)
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// x[row_base + col], or 0 where col falls in the zero padding.
fn x_at(row_base: u32, col: i32, width: u32) -> f32 {
    let inside = col >= 0 && col < i32(width);
    return select(0.0, x[row_base + u32(clamp(col, 0, i32(width) - 1))], inside);
}

// Four padded values of one row, STRIDE apart from `col` on.
fn x4(row_base: u32, col: i32, width: u32) -> vec4<f32> {
    let s = i32(STRIDE);
    return vec4<f32>(x_at(row_base, col, width), x_at(row_base, col + s, width),
                     x_at(row_base, col + 2 * s, width), x_at(row_base, col + 3 * s, width));
}

// In the input gradient, where x holds dy: the value of the output row at
// `row_base` whose window starts at column `col` of the padded input, or 0
// where none does (col not a multiple of STRIDE, or off the row).
fn dy_at(row_base: u32, col: i32, width: u32) -> f32 {
    let s = i32(STRIDE);
    let q = col / s;
    let hit = col >= 0 && col - q * s == 0 && q < i32(width);
    return select(0.0, x[row_base + u32(clamp(q, 0, i32(width) - 1))], hit);
}

// dy_at for four consecutive columns.
fn dy4(row_base: u32, col: i32, width: u32) -> vec4<f32> {
    return vec4<f32>(dy_at(row_base, col, width), dy_at(row_base, col + 1, width),
                     dy_at(row_base, col + 2, width), dy_at(row_base, col + 3, width));
}

// Stores up to 4 pixels `v` at out[base + col0 ..], stopping at `width`.
fn store_row(base: u32, col0: u32, width: u32, v: vec4<f32>) {
    for (var j = 0u; j < 4u; j++) {
        if (col0 + j < width) {
            out[base + col0 + j] = v[j];
        }
    }
}

// One invocation: output channels co0..co0+7 × pixels ox0..ox0+3 of row oy.
@compute @workgroup_size(256)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let blocks_x = (p.wo + 3u) / 4u;
    let blocks_c = (p.co + 7u) / 8u;
    let e = linear_id(gid, nwg);
    if (e >= p.n * blocks_c * p.ho * blocks_x) {
        return;
    }
    let ox0 = (e % blocks_x) * 4u;
    let oy = (e / blocks_x) % p.ho;
    let co0 = ((e / (blocks_x * p.ho)) % blocks_c) * 8u;
    let n = e / (blocks_x * p.ho * blocks_c);
    let taps = p.kh * p.kw;
    // Channels past the last compute on a clamped copy and are not stored.
    let w0 = min(co0 + 0u, p.co - 1u) * p.ci * taps;
    let w1 = min(co0 + 1u, p.co - 1u) * p.ci * taps;
    let w2 = min(co0 + 2u, p.co - 1u) * p.ci * taps;
    let w3 = min(co0 + 3u, p.co - 1u) * p.ci * taps;
    let w4 = min(co0 + 4u, p.co - 1u) * p.ci * taps;
    let w5 = min(co0 + 5u, p.co - 1u) * p.ci * taps;
    let w6 = min(co0 + 6u, p.co - 1u) * p.ci * taps;
    let w7 = min(co0 + 7u, p.co - 1u) * p.ci * taps;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    for (var c = 0u; c < p.ci; c++) {
        let plane = (n * p.ci + c) * p.h * p.w;
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = i32(oy * STRIDE + ky) - i32(p.pad);
            if (iy < 0 || iy >= i32(p.h)) {
                continue;
            }
            let row = plane + u32(iy) * p.w;
            for (var kx = 0u; kx < p.kw; kx++) {
                let xv = x4(row, i32(ox0 * STRIDE + kx) - i32(p.pad), p.w);
                let t = c * taps + ky * p.kw + kx;
                acc0 = fma(vec4<f32>(wt[w0 + t]), xv, acc0);
                acc1 = fma(vec4<f32>(wt[w1 + t]), xv, acc1);
                acc2 = fma(vec4<f32>(wt[w2 + t]), xv, acc2);
                acc3 = fma(vec4<f32>(wt[w3 + t]), xv, acc3);
                acc4 = fma(vec4<f32>(wt[w4 + t]), xv, acc4);
                acc5 = fma(vec4<f32>(wt[w5 + t]), xv, acc5);
                acc6 = fma(vec4<f32>(wt[w6 + t]), xv, acc6);
                acc7 = fma(vec4<f32>(wt[w7 + t]), xv, acc7);
            }
        }
    }
    if (co0 + 0u < p.co) {
        var b0 = 0.0;
        if (HAS_BIAS) {
            b0 = bias[co0 + 0u];
        }
        store_row(((n * p.co + co0 + 0u) * p.ho + oy) * p.wo, ox0, p.wo, acc0 + b0);
    }
    if (co0 + 1u < p.co) {
        var b1 = 0.0;
        if (HAS_BIAS) {
            b1 = bias[co0 + 1u];
        }
        store_row(((n * p.co + co0 + 1u) * p.ho + oy) * p.wo, ox0, p.wo, acc1 + b1);
    }
    if (co0 + 2u < p.co) {
        var b2 = 0.0;
        if (HAS_BIAS) {
            b2 = bias[co0 + 2u];
        }
        store_row(((n * p.co + co0 + 2u) * p.ho + oy) * p.wo, ox0, p.wo, acc2 + b2);
    }
    if (co0 + 3u < p.co) {
        var b3 = 0.0;
        if (HAS_BIAS) {
            b3 = bias[co0 + 3u];
        }
        store_row(((n * p.co + co0 + 3u) * p.ho + oy) * p.wo, ox0, p.wo, acc3 + b3);
    }
    if (co0 + 4u < p.co) {
        var b4 = 0.0;
        if (HAS_BIAS) {
            b4 = bias[co0 + 4u];
        }
        store_row(((n * p.co + co0 + 4u) * p.ho + oy) * p.wo, ox0, p.wo, acc4 + b4);
    }
    if (co0 + 5u < p.co) {
        var b5 = 0.0;
        if (HAS_BIAS) {
            b5 = bias[co0 + 5u];
        }
        store_row(((n * p.co + co0 + 5u) * p.ho + oy) * p.wo, ox0, p.wo, acc5 + b5);
    }
    if (co0 + 6u < p.co) {
        var b6 = 0.0;
        if (HAS_BIAS) {
            b6 = bias[co0 + 6u];
        }
        store_row(((n * p.co + co0 + 6u) * p.ho + oy) * p.wo, ox0, p.wo, acc6 + b6);
    }
    if (co0 + 7u < p.co) {
        var b7 = 0.0;
        if (HAS_BIAS) {
            b7 = bias[co0 + 7u];
        }
        store_row(((n * p.co + co0 + 7u) * p.ho + oy) * p.wo, ox0, p.wo, acc7 + b7);
    }
}

// One invocation: input channels c0..c0+7 × pixels ix0..ix0+3 of row iy of
// dx = Σ over output channels and taps of dy · w. Here x holds dy.
@compute @workgroup_size(256)
fn conv2d_input_grad(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let blocks_x = (p.w + 3u) / 4u;
    let blocks_c = (p.ci + 7u) / 8u;
    let e = linear_id(gid, nwg);
    if (e >= p.n * blocks_c * p.h * blocks_x) {
        return;
    }
    let ix0 = (e % blocks_x) * 4u;
    let iy = (e / blocks_x) % p.h;
    let c0 = ((e / (blocks_x * p.h)) % blocks_c) * 8u;
    let n = e / (blocks_x * p.h * blocks_c);
    let taps = p.kh * p.kw;
    let wc0 = min(c0 + 0u, p.ci - 1u) * taps;
    let wc1 = min(c0 + 1u, p.ci - 1u) * taps;
    let wc2 = min(c0 + 2u, p.ci - 1u) * taps;
    let wc3 = min(c0 + 3u, p.ci - 1u) * taps;
    let wc4 = min(c0 + 4u, p.ci - 1u) * taps;
    let wc5 = min(c0 + 5u, p.ci - 1u) * taps;
    let wc6 = min(c0 + 6u, p.ci - 1u) * taps;
    let wc7 = min(c0 + 7u, p.ci - 1u) * taps;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    for (var co = 0u; co < p.co; co++) {
        let plane = (n * p.co + co) * p.ho * p.wo;
        let wbase = co * p.ci * taps;
        for (var ky = 0u; ky < p.kh; ky++) {
            // The output row whose window puts tap ky on input row iy.
            let sy = i32(iy + p.pad) - i32(ky);
            let oy = sy / i32(STRIDE);
            if (sy < 0 || sy - oy * i32(STRIDE) != 0 || oy >= i32(p.ho)) {
                continue;
            }
            let row = plane + u32(oy) * p.wo;
            for (var kx = 0u; kx < p.kw; kx++) {
                let dv = dy4(row, i32(ix0 + p.pad) - i32(kx), p.wo);
                let t = wbase + ky * p.kw + kx;
                acc0 = fma(vec4<f32>(wt[t + wc0]), dv, acc0);
                acc1 = fma(vec4<f32>(wt[t + wc1]), dv, acc1);
                acc2 = fma(vec4<f32>(wt[t + wc2]), dv, acc2);
                acc3 = fma(vec4<f32>(wt[t + wc3]), dv, acc3);
                acc4 = fma(vec4<f32>(wt[t + wc4]), dv, acc4);
                acc5 = fma(vec4<f32>(wt[t + wc5]), dv, acc5);
                acc6 = fma(vec4<f32>(wt[t + wc6]), dv, acc6);
                acc7 = fma(vec4<f32>(wt[t + wc7]), dv, acc7);
            }
        }
    }
    if (c0 + 0u < p.ci) {
        store_row(((n * p.ci + c0 + 0u) * p.h + iy) * p.w, ix0, p.w, acc0);
    }
    if (c0 + 1u < p.ci) {
        store_row(((n * p.ci + c0 + 1u) * p.h + iy) * p.w, ix0, p.w, acc1);
    }
    if (c0 + 2u < p.ci) {
        store_row(((n * p.ci + c0 + 2u) * p.h + iy) * p.w, ix0, p.w, acc2);
    }
    if (c0 + 3u < p.ci) {
        store_row(((n * p.ci + c0 + 3u) * p.h + iy) * p.w, ix0, p.w, acc3);
    }
    if (c0 + 4u < p.ci) {
        store_row(((n * p.ci + c0 + 4u) * p.h + iy) * p.w, ix0, p.w, acc4);
    }
    if (c0 + 5u < p.ci) {
        store_row(((n * p.ci + c0 + 5u) * p.h + iy) * p.w, ix0, p.w, acc5);
    }
    if (c0 + 6u < p.ci) {
        store_row(((n * p.ci + c0 + 6u) * p.h + iy) * p.w, ix0, p.w, acc6);
    }
    if (c0 + 7u < p.ci) {
        store_row(((n * p.ci + c0 + 7u) * p.h + iy) * p.w, ix0, p.w, acc7);
    }
}

// One invocation: output channels co0..co0+7 × flattened taps t0..t0+7
// ((c, ky, kx), c slowest) of the weight gradient, summed over output pixels
// chunk·p.chunk ..; writes partial sums out[chunk, co, tap]. Per pixel, 8
// input and 8 dy loads feed 64 FMAs (loads, not FMAs, bound it on software
// adapters). Here x holds the input and wt holds dy.
@compute @workgroup_size(256)
fn conv2d_weight_grad(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let taps = p.kh * p.kw;
    let all_taps = p.ci * taps;
    let blocks_t = (all_taps + 7u) / 8u;
    let blocks_c = (p.co + 7u) / 8u;
    let pixels = p.n * p.ho * p.wo;
    let chunks = (pixels + p.chunk - 1u) / p.chunk;
    let e = linear_id(gid, nwg);
    if (e >= chunks * blocks_c * blocks_t) {
        return;
    }
    let t0 = (e % blocks_t) * 8u;
    let co0 = ((e / blocks_t) % blocks_c) * 8u;
    let chunk = e / (blocks_t * blocks_c);
    // Each of the 8 taps as (channel plane offset, row shift, column shift).
    var tc: array<u32, 8>;
    var ty: array<i32, 8>;
    var tx: array<i32, 8>;
    for (var j = 0u; j < 8u; j++) {
        let t = min(t0 + j, all_taps - 1u);
        tc[j] = (t / taps) * p.h * p.w;
        ty[j] = i32((t % taps) / p.kw) - i32(p.pad);
        tx[j] = i32(t % p.kw) - i32(p.pad);
    }
    let tc0 = tc[0]; let ty0 = ty[0]; let tx0 = tx[0];
    let tc1 = tc[1]; let ty1 = ty[1]; let tx1 = tx[1];
    let tc2 = tc[2]; let ty2 = ty[2]; let tx2 = tx[2];
    let tc3 = tc[3]; let ty3 = ty[3]; let tx3 = tx[3];
    let tc4 = tc[4]; let ty4 = ty[4]; let tx4 = tx[4];
    let tc5 = tc[5]; let ty5 = ty[5]; let tx5 = tx[5];
    let tc6 = tc[6]; let ty6 = ty[6]; let tx6 = tx[6];
    let tc7 = tc[7]; let ty7 = ty[7]; let tx7 = tx[7];
    let plane_out = p.ho * p.wo;
    let d0 = min(co0 + 0u, p.co - 1u) * plane_out;
    let d1 = min(co0 + 1u, p.co - 1u) * plane_out;
    let d2 = min(co0 + 2u, p.co - 1u) * plane_out;
    let d3 = min(co0 + 3u, p.co - 1u) * plane_out;
    let d4 = min(co0 + 4u, p.co - 1u) * plane_out;
    let d5 = min(co0 + 5u, p.co - 1u) * plane_out;
    let d6 = min(co0 + 6u, p.co - 1u) * plane_out;
    let d7 = min(co0 + 7u, p.co - 1u) * plane_out;
    var lo0 = vec4<f32>(0.0); // taps t0..t0+3 of channel co0+0
    var hi0 = vec4<f32>(0.0); // taps t0+4..t0+7
    var lo1 = vec4<f32>(0.0); // taps t0..t0+3 of channel co0+1
    var hi1 = vec4<f32>(0.0); // taps t0+4..t0+7
    var lo2 = vec4<f32>(0.0); // taps t0..t0+3 of channel co0+2
    var hi2 = vec4<f32>(0.0); // taps t0+4..t0+7
    var lo3 = vec4<f32>(0.0); // taps t0..t0+3 of channel co0+3
    var hi3 = vec4<f32>(0.0); // taps t0+4..t0+7
    var lo4 = vec4<f32>(0.0); // taps t0..t0+3 of channel co0+4
    var hi4 = vec4<f32>(0.0); // taps t0+4..t0+7
    var lo5 = vec4<f32>(0.0); // taps t0..t0+3 of channel co0+5
    var hi5 = vec4<f32>(0.0); // taps t0+4..t0+7
    var lo6 = vec4<f32>(0.0); // taps t0..t0+3 of channel co0+6
    var hi6 = vec4<f32>(0.0); // taps t0+4..t0+7
    var lo7 = vec4<f32>(0.0); // taps t0..t0+3 of channel co0+7
    var hi7 = vec4<f32>(0.0); // taps t0+4..t0+7
    let end = min(pixels, (chunk + 1u) * p.chunk);
    // Output pixel q as image n, row qy, column qx: divided out once, then
    // stepped, as divisions are slow on the SIMD lanes of software adapters.
    let q0 = chunk * p.chunk;
    var n = q0 / plane_out;
    var qy = (q0 % plane_out) / p.wo;
    var qx = q0 % p.wo;
    for (var q = q0; q < end; q++) {
        // The window's top-left corner in the unpadded input.
        let oy = i32(qy * STRIDE);
        let ox = i32(qx * STRIDE);
        let xin = n * p.ci * p.h * p.w;
        let xlo = vec4<f32>(
            x_pixel(xin + tc0, oy + ty0, ox + tx0),
            x_pixel(xin + tc1, oy + ty1, ox + tx1),
            x_pixel(xin + tc2, oy + ty2, ox + tx2),
            x_pixel(xin + tc3, oy + ty3, ox + tx3));
        let xhi = vec4<f32>(
            x_pixel(xin + tc4, oy + ty4, ox + tx4),
            x_pixel(xin + tc5, oy + ty5, ox + tx5),
            x_pixel(xin + tc6, oy + ty6, ox + tx6),
            x_pixel(xin + tc7, oy + ty7, ox + tx7));
        let dbase = n * p.co * plane_out + qy * p.wo + qx;
        let g0 = vec4<f32>(wt[dbase + d0]);
        lo0 = fma(g0, xlo, lo0);
        hi0 = fma(g0, xhi, hi0);
        let g1 = vec4<f32>(wt[dbase + d1]);
        lo1 = fma(g1, xlo, lo1);
        hi1 = fma(g1, xhi, hi1);
        let g2 = vec4<f32>(wt[dbase + d2]);
        lo2 = fma(g2, xlo, lo2);
        hi2 = fma(g2, xhi, hi2);
        let g3 = vec4<f32>(wt[dbase + d3]);
        lo3 = fma(g3, xlo, lo3);
        hi3 = fma(g3, xhi, hi3);
        let g4 = vec4<f32>(wt[dbase + d4]);
        lo4 = fma(g4, xlo, lo4);
        hi4 = fma(g4, xhi, hi4);
        let g5 = vec4<f32>(wt[dbase + d5]);
        lo5 = fma(g5, xlo, lo5);
        hi5 = fma(g5, xhi, hi5);
        let g6 = vec4<f32>(wt[dbase + d6]);
        lo6 = fma(g6, xlo, lo6);
        hi6 = fma(g6, xhi, hi6);
        let g7 = vec4<f32>(wt[dbase + d7]);
        lo7 = fma(g7, xlo, lo7);
        hi7 = fma(g7, xhi, hi7);
        qx += 1u;
        if (qx == p.wo) {
            qx = 0u;
            qy += 1u;
            if (qy == p.ho) {
                qy = 0u;
                n += 1u;
            }
        }
    }
    if (co0 + 0u < p.co) {
        store_taps((chunk * p.co + co0 + 0u) * all_taps, t0, all_taps, lo0);
        store_taps((chunk * p.co + co0 + 0u) * all_taps, t0 + 4u, all_taps, hi0);
    }
    if (co0 + 1u < p.co) {
        store_taps((chunk * p.co + co0 + 1u) * all_taps, t0, all_taps, lo1);
        store_taps((chunk * p.co + co0 + 1u) * all_taps, t0 + 4u, all_taps, hi1);
    }
    if (co0 + 2u < p.co) {
        store_taps((chunk * p.co + co0 + 2u) * all_taps, t0, all_taps, lo2);
        store_taps((chunk * p.co + co0 + 2u) * all_taps, t0 + 4u, all_taps, hi2);
    }
    if (co0 + 3u < p.co) {
        store_taps((chunk * p.co + co0 + 3u) * all_taps, t0, all_taps, lo3);
        store_taps((chunk * p.co + co0 + 3u) * all_taps, t0 + 4u, all_taps, hi3);
    }
    if (co0 + 4u < p.co) {
        store_taps((chunk * p.co + co0 + 4u) * all_taps, t0, all_taps, lo4);
        store_taps((chunk * p.co + co0 + 4u) * all_taps, t0 + 4u, all_taps, hi4);
    }
    if (co0 + 5u < p.co) {
        store_taps((chunk * p.co + co0 + 5u) * all_taps, t0, all_taps, lo5);
        store_taps((chunk * p.co + co0 + 5u) * all_taps, t0 + 4u, all_taps, hi5);
    }
    if (co0 + 6u < p.co) {
        store_taps((chunk * p.co + co0 + 6u) * all_taps, t0, all_taps, lo6);
        store_taps((chunk * p.co + co0 + 6u) * all_taps, t0 + 4u, all_taps, hi6);
    }
    if (co0 + 7u < p.co) {
        store_taps((chunk * p.co + co0 + 7u) * all_taps, t0, all_taps, lo7);
        store_taps((chunk * p.co + co0 + 7u) * all_taps, t0 + 4u, all_taps, hi7);
    }
}

// x at (row, col) of the input plane starting at `plane`, 0 in the padding.
fn x_pixel(plane: u32, row: i32, col: i32) -> f32 {
    let inside = row >= 0 && row < i32(p.h) && col >= 0 && col < i32(p.w);
    let r = u32(clamp(row, 0, i32(p.h) - 1));
    let c = u32(clamp(col, 0, i32(p.w) - 1));
    return select(0.0, x[plane + r * p.w + c], inside);
}

fn store_taps(base: u32, t0: u32, all_taps: u32, v: vec4<f32>) {
    for (var j = 0u; j < 4u; j++) {
        if (t0 + j < all_taps) {
            out[base + t0 + j] = v[j];
        }
    }
}

// One workgroup per channel: sum of x[n, c, :, :] over n (p.ci = channels,
// p.h·p.w = plane size).
var<workgroup> scratch: array<f32, 256>;

@compute @workgroup_size(256)
fn channel_sum(@builtin(local_invocation_index) lid: u32,
               @builtin(workgroup_id) wid: vec3<u32>) {
    let c = wid.x;
    let plane = p.h * p.w;
    var acc = 0.0;
    // Element j = lid, lid + 256, … of the channel's n·plane values, as image
    // n and position pos: divided out once, then stepped by 256 (as
    // step_n images and step_pos positions, with at most one carry), as
    // divisions are slow on the SIMD lanes of software adapters.
    // An empty plane has nothing to add: start past the last image.
    var n = select(p.n, lid / plane, plane > 0u);
    var pos = lid % plane;
    let step_n = 256u / plane;
    let step_pos = 256u % plane;
    while (n < p.n) {
        acc += x[(n * p.ci + c) * plane + pos];
        pos += step_pos;
        n += step_n;
        if (pos >= plane) {
            pos -= plane;
            n += 1u;
        }
    }
    scratch[lid] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            scratch[lid] += scratch[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[c] = scratch[0];
    }
}
