// Prepended to every shader file by the `shader!` macro
// (src/device/gpu/context.rs): WGSL has no includes.

// The flat index of a 1-D kernel launched by `Context::grid_1d`: workgroups
// of 256 threads, folded into y when x would exceed the adapter's limit.
fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// tanh without overflow for large |v|, and accurate near 0 where
// (1 - e) / (1 + e) would cancel.
fn tanh_stable(v: f32) -> f32 {
    let a = abs(v);
    if (a < 0.0625) {
        let v2 = v * v;
        return v * (1.0 + v2 * (-1.0 / 3.0 + v2 * (2.0 / 15.0 - v2 * (17.0 / 315.0))));
    }
    let e = exp(-2.0 * a);
    return sign(v) * (1.0 - e) / (1.0 + e);
}

fn sigmoid_stable(v: f32) -> f32 {
    if (v >= 0.0) {
        return 1.0 / (1.0 + exp(-v));
    }
    let e = exp(v);
    return e / (1.0 + e);
}

// Activation codes match `Activation::code` in src/device/mod.rs.
fn activate(v: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return tanh_stable(v); }
        case 2u: { return sigmoid_stable(v); }
        case 3u: { return max(v, 0.0); }
        case 4u: { return select(0.01 * v, v, v > 0.0); }
        // max(x, 0) + ln(1 + e^−|x|): no overflow for large |x|; for tiny
        // e = e^−|x|, ln(1 + e) ≈ e − e²/2 keeps the digits 1 + e would lose.
        case 5u: {
            let e = exp(-abs(v));
            return max(v, 0.0) + select(log(1.0 + e), e - 0.5 * e * e, e < 1e-3);
        }
        case 6u: { return gelu(v); }
        default: { return v; }
    }
}

// activate for four values at once.
fn activate4(v: vec4<f32>, act: u32) -> vec4<f32> {
    return vec4<f32>(activate(v.x, act), activate(v.y, act), activate(v.z, act), activate(v.w, act));
}

// GELU, tanh approximation (src/device/mod.rs `gelu`).
fn gelu(v: f32) -> f32 {
    return 0.5 * v * (1.0 + tanh_stable(0.7978846 * (v + 0.044715 * v * v * v)));
}

// f'(x) from the input x (every activation; GELU needs it).
fn activation_grad_from_input(x: f32, act: u32) -> f32 {
    if (act == 6u) {
        let t = tanh_stable(0.7978846 * (x + 0.044715 * x * x * x));
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * 0.7978846 * (1.0 + 3.0 * 0.044715 * x * x);
    }
    return activation_grad_from_output(activate(x, act), act);
}

// f'(x) written through the output y = f(x).
fn activation_grad_from_output(y: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return 1.0 - y * y; }
        case 2u: { return y * (1.0 - y); }
        case 3u: { return select(0.0, 1.0, y > 0.0); }
        case 4u: { return select(0.01, 1.0, y > 0.0); }
        // softplus: e^y = 1 + e^x, so σ(x) = 1 − e^−y (≈ y − y²/2 for tiny y).
        case 5u: { return select(1.0 - exp(-y), y - 0.5 * y * y, y < 1e-3); }
        default: { return 1.0; }
    }
}

