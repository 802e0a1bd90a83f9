// The optimizer updates of shaders/optim.wgsl over up to four tensors per
// dispatch: a model's whole update in one or a few dispatches instead of
// one per tensor. Launchers: src/device/gpu/kernels/optim.rs
//
// The grid covers the tensors' vec4s end to end; slot s owns invocations
// end[s-1] .. end[s] (end[-1] = 0), and a slot left empty has the range of
// its predecessor, so it is never touched (its bindings are spare buffers).
// Each slot's update is the single-tensor kernel's expression, unchanged.

struct Params {
    end: vec4<u32>,
    weight_decay: vec4<f32>,
    decoupled_decay: vec4<f32>,
    lr: f32,
    beta1: f32,      // momentum μ for momentum_many
    beta2: f32,
    eps: f32,
    correction1: f32,
    correction2: f32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> grad_scale: array<f32>;
@group(0) @binding(1) var<storage, read_write> p0: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> p1: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> p2: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> p3: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> g0: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> g1: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> g2: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> g3: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> m0: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> m1: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read_write> m2: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> m3: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read_write> v0: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> v1: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read_write> v2: array<vec4<f32>>;
@group(0) @binding(16) var<storage, read_write> v3: array<vec4<f32>>;

// (slot, index within the slot's tensor) of grid invocation i < end.w.
fn slot_of(i: u32) -> vec2<u32> {
    if (i < p.end.x) {
        return vec2<u32>(0u, i);
    }
    if (i < p.end.y) {
        return vec2<u32>(1u, i - p.end.x);
    }
    if (i < p.end.z) {
        return vec2<u32>(2u, i - p.end.y);
    }
    return vec2<u32>(3u, i - p.end.z);
}

fn sgd(w: vec4<f32>, g: vec4<f32>, wd: f32) -> vec4<f32> {
    return w - p.lr * (g * grad_scale[0] + wd * w);
}

@compute @workgroup_size(256)
fn sgd_many(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.end.w) {
        return;
    }
    let at = slot_of(i);
    let j = at.y;
    switch at.x {
        case 0u: { p0[j] = sgd(p0[j], g0[j], p.weight_decay.x); }
        case 1u: { p1[j] = sgd(p1[j], g1[j], p.weight_decay.y); }
        case 2u: { p2[j] = sgd(p2[j], g2[j], p.weight_decay.z); }
        default: { p3[j] = sgd(p3[j], g3[j], p.weight_decay.w); }
    }
}

// The new velocity; the parameter becomes w - lr·velocity.
fn velocity(vel: vec4<f32>, w: vec4<f32>, g: vec4<f32>, wd: f32) -> vec4<f32> {
    return p.beta1 * vel + g * grad_scale[0] + wd * w;
}

@compute @workgroup_size(256)
fn momentum_many(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.end.w) {
        return;
    }
    let at = slot_of(i);
    let j = at.y;
    switch at.x {
        case 0u: {
            let w = p0[j];
            let vel = velocity(m0[j], w, g0[j], p.weight_decay.x);
            m0[j] = vel;
            p0[j] = w - p.lr * vel;
        }
        case 1u: {
            let w = p1[j];
            let vel = velocity(m1[j], w, g1[j], p.weight_decay.y);
            m1[j] = vel;
            p1[j] = w - p.lr * vel;
        }
        case 2u: {
            let w = p2[j];
            let vel = velocity(m2[j], w, g2[j], p.weight_decay.z);
            m2[j] = vel;
            p2[j] = w - p.lr * vel;
        }
        default: {
            let w = p3[j];
            let vel = velocity(m3[j], w, g3[j], p.weight_decay.w);
            m3[j] = vel;
            p3[j] = w - p.lr * vel;
        }
    }
}

// One Adam step of a vec4: the new parameter, first and second moments.
struct AdamOut {
    w: vec4<f32>,
    m: vec4<f32>,
    v: vec4<f32>,
}

fn adam(w: vec4<f32>, m: vec4<f32>, v: vec4<f32>, grad: vec4<f32>, wd: f32, dd: f32) -> AdamOut {
    let g = grad * grad_scale[0] + wd * w;
    let m1 = p.beta1 * m + (1.0 - p.beta1) * g;
    let v1 = p.beta2 * v + (1.0 - p.beta2) * g * g;
    let w1 = w - p.lr * (m1 / p.correction1) / (sqrt(v1 / p.correction2) + vec4<f32>(p.eps))
        - p.lr * dd * w;
    return AdamOut(w1, m1, v1);
}

@compute @workgroup_size(256)
fn adam_many(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.end.w) {
        return;
    }
    let at = slot_of(i);
    let j = at.y;
    switch at.x {
        case 0u: {
            let o = adam(p0[j], m0[j], v0[j], g0[j], p.weight_decay.x, p.decoupled_decay.x);
            p0[j] = o.w;
            m0[j] = o.m;
            v0[j] = o.v;
        }
        case 1u: {
            let o = adam(p1[j], m1[j], v1[j], g1[j], p.weight_decay.y, p.decoupled_decay.y);
            p1[j] = o.w;
            m1[j] = o.m;
            v1[j] = o.v;
        }
        case 2u: {
            let o = adam(p2[j], m2[j], v2[j], g2[j], p.weight_decay.z, p.decoupled_decay.z);
            p2[j] = o.w;
            m2[j] = o.m;
            v2[j] = o.v;
        }
        default: {
            let o = adam(p3[j], m3[j], v3[j], g3[j], p.weight_decay.w, p.decoupled_decay.w);
            p3[j] = o.w;
            m3[j] = o.m;
            v3[j] = o.v;
        }
    }
}
