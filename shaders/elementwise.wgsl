// Elementwise kernels: activations and their backward, binary ops, axpy,
// scale, fill. Launchers: src/device/gpu/kernels/elementwise.rs

struct Params {
    n: u32,
    op: u32,    // Activation::code or Binary::code
    alpha: f32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn activation(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n) {
        out[i] = activate(x[i], p.op);
    }
}

// x holds the forward output, y the incoming gradient.
@compute @workgroup_size(256)
fn activation_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n) {
        out[i] = y[i] * activation_grad_from_output(x[i], p.op);
    }
}

@compute @workgroup_size(256)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n) {
        let a = x[i];
        let b = y[i];
        switch p.op {
            case 0u: { out[i] = a + b; }
            case 1u: { out[i] = a - b; }
            default: { out[i] = a * b; }
        }
    }
}

// out = alpha * x + y
@compute @workgroup_size(256)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n) {
        out[i] = p.alpha * x[i] + y[i];
    }
}

@compute @workgroup_size(256)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n) {
        out[i] = p.alpha * x[i];
    }
}

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n) {
        out[i] = p.alpha;
    }
}
