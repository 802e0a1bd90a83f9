// The operands of shaders/matmul.wgsl in f16 (`--precision f16`): half
// the bytes of each load, widened to f32 as they are read, so the products
// are summed in f32. The launcher (src/device/gpu/kernels/matmul.rs)
// makes the f16 copies with shaders/cast.wgsl and prepends `enable f16;`.

@group(0) @binding(0) var<storage, read> a: array<f16>;
@group(0) @binding(1) var<storage, read> b: array<f16>;
@group(0) @binding(4) var<storage, read> a4: array<vec4<f16>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<f16>>;

fn a_at(row: u32, kk: u32) -> f32 {
    if (TRANS_A) {
        return f32(a[kk * p.m + row]);
    }
    return f32(a[row * p.k + kk]);
}

fn b_at(kk: u32, col: u32) -> f32 {
    if (TRANS_B) {
        return f32(b[col * p.k + kk]);
    }
    return f32(b[kk * p.n + col]);
}

fn load_a4(i: u32) -> vec4<f32> {
    return vec4<f32>(a4[i]);
}

fn load_b4(i: u32) -> vec4<f32> {
    return vec4<f32>(b4[i]);
}
