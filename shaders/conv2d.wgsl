// 2-D convolution, stride 1, zero padding, N×C×H×W activations and
// Co×Ci×KH×KW weights: forward, input gradient, weight gradient, and the
// per-channel sum that is the bias gradient.
// Launchers: src/device/gpu/kernels/conv2d.rs

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
}
var<immediate> p: Params;

override HAS_BIAS: bool = false;

@group(0) @binding(0) var<storage, read> x: array<f32>;      // input, or dy
@group(0) @binding(1) var<storage, read> wt: array<f32>;     // weights, or dy
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// One invocation per output element y[n, co, oy, ox].
@compute @workgroup_size(256)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.n * p.co * p.ho * p.wo) {
        return;
    }
    let ox = i % p.wo;
    let oy = (i / p.wo) % p.ho;
    let co = (i / (p.wo * p.ho)) % p.co;
    let n = i / (p.wo * p.ho * p.co);
    var acc = 0.0;
    if (HAS_BIAS) {
        acc = bias[co];
    }
    for (var c = 0u; c < p.ci; c++) {
        let xbase = (n * p.ci + c) * p.h;
        let wbase = (co * p.ci + c) * p.kh;
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = i32(oy + ky) - i32(p.pad);
            if (iy < 0 || iy >= i32(p.h)) {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let ix = i32(ox + kx) - i32(p.pad);
                if (ix >= 0 && ix < i32(p.w)) {
                    acc = fma(x[(xbase + u32(iy)) * p.w + u32(ix)],
                              wt[(wbase + ky) * p.kw + kx], acc);
                }
            }
        }
    }
    out[i] = acc;
}

// One invocation per input element dx[n, c, iy, ix]: x holds dy.
@compute @workgroup_size(256)
fn conv2d_input_grad(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.n * p.ci * p.h * p.w) {
        return;
    }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let c = (i / (p.w * p.h)) % p.ci;
    let n = i / (p.w * p.h * p.ci);
    var acc = 0.0;
    for (var co = 0u; co < p.co; co++) {
        let dbase = (n * p.co + co) * p.ho;
        let wbase = (co * p.ci + c) * p.kh;
        for (var ky = 0u; ky < p.kh; ky++) {
            let oy = i32(iy + p.pad) - i32(ky);
            if (oy < 0 || oy >= i32(p.ho)) {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let ox = i32(ix + p.pad) - i32(kx);
                if (ox >= 0 && ox < i32(p.wo)) {
                    acc = fma(x[(dbase + u32(oy)) * p.wo + u32(ox)],
                              wt[(wbase + ky) * p.kw + kx], acc);
                }
            }
        }
    }
    out[i] = acc;
}

// One workgroup per weight dw[co, c, ky, kx]: its 256 invocations share the
// sum over n·ho·wo, then reduce. x holds the input, wt holds dy.
var<workgroup> scratch: array<f32, 256>;

@compute @workgroup_size(256)
fn conv2d_weight_grad(@builtin(local_invocation_index) lid: u32,
                      @builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let widx = wid.x + wid.y * nwg.x;
    if (widx >= p.co * p.ci * p.kh * p.kw) {
        return;
    }
    let kx = widx % p.kw;
    let ky = (widx / p.kw) % p.kh;
    let c = (widx / (p.kw * p.kh)) % p.ci;
    let co = widx / (p.kw * p.kh * p.ci);
    let plane = p.ho * p.wo;
    var acc = 0.0;
    for (var j = lid; j < p.n * plane; j += 256u) {
        let n = j / plane;
        let oy = (j % plane) / p.wo;
        let ox = j % p.wo;
        let iy = i32(oy + ky) - i32(p.pad);
        let ix = i32(ox + kx) - i32(p.pad);
        if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
            acc = fma(wt[(n * p.co + co) * plane + oy * p.wo + ox],
                      x[((n * p.ci + c) * p.h + u32(iy)) * p.w + u32(ix)], acc);
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
        out[widx] = scratch[0];
    }
}

// One workgroup per channel: sum of x[n, c, :, :] over n (p.ci = channels,
// p.h·p.w = plane size).
@compute @workgroup_size(256)
fn channel_sum(@builtin(local_invocation_index) lid: u32,
               @builtin(workgroup_id) wid: vec3<u32>) {
    let c = wid.x;
    let plane = p.h * p.w;
    var acc = 0.0;
    for (var j = lid; j < p.n * plane; j += 256u) {
        let n = j / plane;
        acc += x[(n * p.ci + c) * plane + j % plane];
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
