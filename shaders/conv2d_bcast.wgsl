// The forward convolution and the input gradient of shaders/conv2d.wgsl
// (whose Params, x_at, x4, dy_at, dy4 and store_row they use) with the
// weights shared by subgroup broadcasts, where the adapter has subgroups of
// at least 8 invocations. Appended to conv2d.wgsl only on such adapters:
// the module needs the SUBGROUP feature.
// Launcher: src/device/gpu/kernels/conv2d.rs.
//
// Why: as for matmul_bcast, loads set the pace on software adapters. In
// conv2d_forward every invocation loads the 8 weights of its channels at
// every tap, the same 8 as its neighbours. Here a workgroup shares one block
// of 8 channels (workgroup_id.y) and one image (workgroup_id.z), so lanes
// 0-7 of each subgroup load one weight each and every lane takes all 8 by
// subgroupBroadcast: one load instead of 8 per tap. Each invocation still
// owns 4 pixels of one row. At stride 1 the next tap's 4 pixels are the
// last tap's moved by one, so a tap loads one new pixel instead of four.
// Invocations past the image's last pixel block compute a clamped copy and
// store nothing; none returns early, since a broadcast needs its source
// lane active, and rows of the window that fall in the padding read zeros
// rather than being skipped, for the same reason.
//
// The weight gradient has no such version: there the 8 channels' dy values
// are what neighbouring invocations share, and broadcasting them was 2.5×
// slower than conv2d_weight_grad on llvmpipe (T4's second convolution).

override CONV_WG: u32 = 8u; // invocations per workgroup
override KH: u32 = 3u;      // kernel height, = p.kh (a constant, so the
override KW: u32 = 3u;      // kernel width, = p.kw   tap loops unroll)

// The 4-pixel block of a rows×cols plane that invocation `lid` of
// workgroup `wid_x` owns: its first column and its row, clamped to the
// last block, and whether the invocation is past that (it then computes the
// last block again and stores nothing).
struct PixelBlock {
    x0: u32,
    y: u32,
    past_end: bool,
}

fn pixel_block(wid_x: u32, lid: u32, rows: u32, cols: u32) -> PixelBlock {
    let blocks_x = (cols + 3u) / 4u;
    let blocks = rows * blocks_x;
    let e_raw = wid_x * CONV_WG + lid;
    let e = min(e_raw, blocks - 1u);
    return PixelBlock((e % blocks_x) * 4u, e / blocks_x, e_raw >= blocks);
}

// acc[j] += (lane j's `w`) · v for the 8 channels j: each lane's
// accumulators take the weight lane j loaded by broadcast. The indices are
// constants, so the array stays in registers.
fn fma_lanes8(acc: ptr<function, array<vec4<f32>, 8>>, w: f32, v: vec4<f32>) {
    (*acc)[0] = fma(vec4<f32>(subgroupBroadcast(w, 0u)), v, (*acc)[0]);
    (*acc)[1] = fma(vec4<f32>(subgroupBroadcast(w, 1u)), v, (*acc)[1]);
    (*acc)[2] = fma(vec4<f32>(subgroupBroadcast(w, 2u)), v, (*acc)[2]);
    (*acc)[3] = fma(vec4<f32>(subgroupBroadcast(w, 3u)), v, (*acc)[3]);
    (*acc)[4] = fma(vec4<f32>(subgroupBroadcast(w, 4u)), v, (*acc)[4]);
    (*acc)[5] = fma(vec4<f32>(subgroupBroadcast(w, 5u)), v, (*acc)[5]);
    (*acc)[6] = fma(vec4<f32>(subgroupBroadcast(w, 6u)), v, (*acc)[6]);
    (*acc)[7] = fma(vec4<f32>(subgroupBroadcast(w, 7u)), v, (*acc)[7]);
}

@compute @workgroup_size(CONV_WG)
fn conv2d_forward_bcast(@builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32,
                        @builtin(subgroup_invocation_id) lane: u32) {
    let blk = pixel_block(wid.x, lid, p.ho, p.wo);
    let ox0 = blk.x0;
    let oy = blk.y;
    let co0 = wid.y * 8u;
    let n = wid.z;
    let taps = KH * KW;
    // The weights lane `lane` loads: channel co0 + lane (clamped).
    let w_mine = min(co0 + lane % 8u, p.co - 1u) * p.ci * taps;
    var acc = array<vec4<f32>, 8>();
    for (var c = 0u; c < p.ci; c++) {
        let plane = (n * p.ci + c) * p.h * p.w;
        for (var ky = 0u; ky < KH; ky++) {
            let iy = i32(oy * STRIDE + ky) - i32(p.pad);
            let row_in = iy >= 0 && iy < i32(p.h);
            let row = plane + u32(clamp(iy, 0, i32(p.h) - 1)) * p.w;
            let col0 = i32(ox0 * STRIDE) - i32(p.pad);
            var window = x4(row, col0, p.w);
            for (var kx = 0u; kx < KW; kx++) {
                if (kx > 0u) {
                    if (STRIDE == 1u) {
                        // The next tap's 4 pixels are this one's moved by one.
                        window = vec4<f32>(window.yzw, x_at(row, col0 + i32(kx) + 3, p.w));
                    } else {
                        window = x4(row, col0 + i32(kx), p.w);
                    }
                }
                let t = (c * KH + ky) * KW + kx;
                let wv = wt[w_mine + t];
                let xv = select(vec4<f32>(0.0), window, row_in);
                fma_lanes8(&acc, wv, xv);
            }
        }
    }
    if (blk.past_end) {
        return;
    }
    for (var j = 0u; j < 8u; j++) {
        let co = co0 + j;
        if (co < p.co) {
            var b = 0.0;
            if (HAS_BIAS) {
                b = bias[co];
            }
            store_row(((n * p.co + co) * p.ho + oy) * p.wo, ox0, p.wo, acc[j] + b);
        }
    }
}

// The input gradient as conv2d_input_grad computes it (x holds dy), blocked
// like conv2d_forward_bcast: a workgroup shares 8 input channels
// (workgroup_id.y) of one image (workgroup_id.z); lanes 0-7 load the weight
// of one channel each at every tap and broadcast it.
@compute @workgroup_size(CONV_WG)
fn conv2d_input_grad_bcast(@builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32,
                           @builtin(subgroup_invocation_id) lane: u32) {
    let blk = pixel_block(wid.x, lid, p.h, p.w);
    let ix0 = blk.x0;
    let iy = blk.y;
    let c0 = wid.y * 8u;
    let n = wid.z;
    let taps = KH * KW;
    let w_mine = min(c0 + lane % 8u, p.ci - 1u) * taps;
    var acc = array<vec4<f32>, 8>();
    for (var co = 0u; co < p.co; co++) {
        let plane = (n * p.co + co) * p.ho * p.wo;
        let wbase = co * p.ci * taps + w_mine;
        for (var ky = 0u; ky < KH; ky++) {
            // The output row whose window puts tap ky on input row iy.
            let sy = i32(iy + p.pad) - i32(ky);
            let oy = sy / i32(STRIDE);
            let row_in = sy >= 0 && sy - oy * i32(STRIDE) == 0 && oy < i32(p.ho);
            let row = plane + u32(clamp(oy, 0, i32(p.ho) - 1)) * p.wo;
            let col0 = i32(ix0 + p.pad);
            var window = dy4(row, col0, p.wo);
            for (var kx = 0u; kx < KW; kx++) {
                if (kx > 0u) {
                    if (STRIDE == 1u) {
                        // The next tap's 4 values are this one's moved by one.
                        window = vec4<f32>(dy_at(row, col0 - i32(kx), p.wo), window.xyz);
                    } else {
                        window = dy4(row, col0 - i32(kx), p.wo);
                    }
                }
                let wv = wt[wbase + ky * KW + kx];
                let dv = select(vec4<f32>(0.0), window, row_in);
                fma_lanes8(&acc, wv, dv);
            }
        }
    }
    if (blk.past_end) {
        return;
    }
    for (var j = 0u; j < 8u; j++) {
        let c = c0 + j;
        if (c < p.ci) {
            store_row(((n * p.ci + c) * p.h + iy) * p.w, ix0, p.w, acc[j]);
        }
    }
}

