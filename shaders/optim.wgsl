// Optimizer updates, in place over one parameter tensor per dispatch, the
// global-norm clipping factor and the loss-scaling step.
// Launchers: src/device/gpu/kernels/optim.rs
//
// Updates work on vec4s, like shaders/elementwise.wgsl (the last one may
// touch the buffer's padding past the tensor, which nothing reads).
//
// `grad_scale[0]` multiplies every gradient (1, the clipping factor, or
// loss scaling's unscaling factor, computed on the device), so neither
// needs the host. A scale of exactly 0 skips the update (loss scaling's
// answer to an overflow): the test is uniform, so it costs no divergence.

struct Params {
    n: u32,           // vec4s to update (clip_factor: unused)
    lr: f32,
    weight_decay: f32,
    beta1: f32,      // momentum μ for momentum_update
    beta2: f32,
    eps: f32,
    correction1: f32, // 1 - β1^t
    correction2: f32, // 1 - β2^t
    decoupled_decay: f32, // AdamW: p -= lr·decoupled_decay·p beside the step
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> grad_scale: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> v: array<vec4<f32>>;
// clip_factor's scalars.
@group(0) @binding(5) var<storage, read> sum_squares: array<f32>;
@group(0) @binding(6) var<storage, read_write> factor: array<f32>;
// loss_scale_step's state, updated in place.
@group(0) @binding(7) var<storage, read_write> loss_scale: array<f32>;
@group(0) @binding(8) var<storage, read_write> good_steps: array<f32>;

@compute @workgroup_size(256)
fn sgd_update(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n && grad_scale[0] != 0.0) {
        let w = param[i];
        param[i] = w - p.lr * (grad[i] * grad_scale[0] + p.weight_decay * w);
    }
}

@compute @workgroup_size(256)
fn momentum_update(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n && grad_scale[0] != 0.0) {
        let w = param[i];
        let vel = p.beta1 * m[i] + grad[i] * grad_scale[0] + p.weight_decay * w;
        m[i] = vel;
        param[i] = w - p.lr * vel;
    }
}

@compute @workgroup_size(256)
fn adam_update(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n && grad_scale[0] != 0.0) {
        let w = param[i];
        let g = grad[i] * grad_scale[0] + p.weight_decay * w;
        let m1 = p.beta1 * m[i] + (1.0 - p.beta1) * g;
        let v1 = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
        m[i] = m1;
        v[i] = v1;
        param[i] = w - p.lr * (m1 / p.correction1) / (sqrt(v1 / p.correction2) + vec4<f32>(p.eps))
            - p.lr * p.decoupled_decay * w;
    }
}

// factor = min(1, max_norm / ‖g‖) with ‖g‖² = sum_squares; `lr` carries
// max_norm.
@compute @workgroup_size(1)
fn clip_factor() {
    let norm = sqrt(sum_squares[0]);
    factor[0] = select(1.0, p.lr / norm, norm > p.lr);
}

// One loss-scaling step (the rule of src/device/loss_scale.rs, which the
// CPU runs): from the summed squares of the scaled gradients, the factor
// that unscales (and clips) them, or 0 when they are not finite; `lr`
// carries max_norm (0: no clipping), `n` the growth interval (0: a fixed
// scale). Finiteness is read from the bits, which no fast-math assumption
// can fold away.
@compute @workgroup_size(1)
fn loss_scale_step() {
    let sq = sum_squares[0];
    let s = loss_scale[0];
    let dynamic = p.n > 0u;
    if ((bitcast<u32>(sq) & 0x7f800000u) == 0x7f800000u) {
        factor[0] = 0.0;
        if (dynamic) {
            loss_scale[0] = max(s * 0.5, 0x1p-24f);
        }
        good_steps[0] = 0.0;
        return;
    }
    let norm = sqrt(sq) / s;
    var clip = 1.0;
    if (p.lr > 0.0 && norm > p.lr) {
        clip = p.lr / norm;
    }
    factor[0] = clip / s;
    let good = good_steps[0] + 1.0;
    if (dynamic && good >= f32(p.n)) {
        loss_scale[0] = min(s * 2.0, 0x1p24f);
        good_steps[0] = 0.0;
    } else if (dynamic) {
        good_steps[0] = good;
    } else {
        good_steps[0] = 0.0;
    }
}
