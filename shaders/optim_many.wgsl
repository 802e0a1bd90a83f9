// The optimizer updates of shaders/optim.wgsl, and the squared gradient
// norm of clipping, over many tensors in one dispatch: a model's whole
// update is one dispatch where the adapter has the storage bindings.
// Launchers: src/device/gpu/kernels/optim.rs.
//
// WGSL cannot index bindings, so each tensor (slot) has its own, and
// kernels/optim.rs completes this file for a given number of slots: it
// declares `const SLOTS`, the bindings of every slot (p0, g0, m0, v0, x0,
// ...; only the roles the entry point uses) and the entry point, whose
// loop over the invocation's vec4s runs the entry's `@slot` statement in a
// `switch` over the slot, with `#` replaced by the slot's number, then its
// `@finish` statement (if any); its `@start` statement (if any) opens the
// body. A generated module has one entry point.
//
// The parameter table (binding 0) gives each slot its first workgroup:
// every tensor starts a workgroup of its own, so the slot is the same for
// a whole workgroup (the switch never diverges within one) and a tensor's
// last workgroup idles past its end. An invocation takes VEC4S vec4s, 256
// apart, so that its look-up in the table (loads, which cost a software
// adapter as much as the data's) is paid once per VEC4S. Updates work on
// vec4s like the single-tensor kernels (the last one may touch the
// buffer's padding past the tensor, which nothing reads); the sum of
// squares masks that padding.
//
// @slot sgd_many p g: p#[j] = sgd(p#[j], g#[j], t.weight_decay);
// @slot momentum_many p g m: let w = p#[j]; let vel = velocity(m#[j], w, g#[j], t.weight_decay); m#[j] = vel; p#[j] = w - p.lr * vel;
// @slot adam_many p g m v: let o = adam(p#[j], m#[j], v#[j], g#[j], t.weight_decay, t.decoupled_decay); p#[j] = o.w; m#[j] = o.m; v#[j] = o.v;
// An update whose gradient scale is exactly 0 is skipped (see optim.wgsl).
// @start sgd_many: if (grad_scale[0] == 0.0) { return; }
// @start momentum_many: if (grad_scale[0] == 0.0) { return; }
// @start adam_many: if (grad_scale[0] == 0.0) { return; }
// @slot sum_squares_many x: acc += squares_of(x#[j], j, t.len);
// @finish sum_squares_many: if (i < arrayLength(&squares)) { squares[i] = acc; }

struct Params {
    lr: f32,
    beta1: f32,      // momentum μ for momentum_many
    beta2: f32,
    eps: f32,
    correction1: f32,
    correction2: f32,
}
var<immediate> p: Params;

// One slot's row of the parameter table.
struct Slot {
    first_group: u32,    // its first workgroup
    len: u32,            // its elements
    weight_decay: f32,
    decoupled_decay: f32,
}

@group(0) @binding(0) var<storage, read> table: array<Slot>;
@group(0) @binding(1) var<storage, read> grad_scale: array<f32>;
// sum_squares_many: one partial sum per invocation of the grid.
@group(0) @binding(2) var<storage, read_write> squares: array<f32>;

const VEC4S: u32 = 4u;

// The slot of workgroup `group`. It depends on the workgroup alone, which
// a compiler can see: a software adapter then loads the table once per
// workgroup and branches on the slot without masking lanes.
fn slot_of(group: u32) -> u32 {
    var s = 0u;
    for (var k = 1u; k < SLOTS; k++) {
        if (table[k].first_group <= group) {
            s = k;
        }
    }
    return s;
}

fn sgd(w: vec4<f32>, g: vec4<f32>, wd: f32) -> vec4<f32> {
    return w - p.lr * (g * grad_scale[0] + wd * w);
}

// The new velocity; the parameter becomes w - lr·velocity.
fn velocity(vel: vec4<f32>, w: vec4<f32>, g: vec4<f32>, wd: f32) -> vec4<f32> {
    return p.beta1 * vel + g * grad_scale[0] + wd * w;
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

// The squares of vec4 j of a tensor of len elements, summed; elements past
// the end (the buffer's padding) count 0.
fn squares_of(x: vec4<f32>, j: u32, len: u32) -> f32 {
    let inside = vec4<u32>(4u * j) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(len);
    let y = select(vec4<f32>(0.0), x, inside);
    return dot(y, y);
}
