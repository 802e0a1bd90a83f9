// Elementwise kernels: activations and their backward, binary ops, axpy,
// scale, scale_by, fill. Launchers: src/device/gpu/kernels/elementwise.rs
//
// Each invocation handles 4 consecutive elements as one vec4 (a quarter of
// the instructions; on software adapters every load is costly). The last
// vec4 may run past the tensor's end into its buffer's padding: pool
// buffers are sized in multiples of 256 bytes, and nothing ever reads
// those values back.

struct Params {
    n4: u32,    // vec4s to process: ceil(n / 4)
    alpha: f32,
}
var<immediate> p: Params;

// Activation::code or Binary::code: a pipeline constant, so each kernel
// computes only its own function. A parameter's switch would compute every
// case on a software adapter (lavapipe runs both sides of a branch under
// masks), and the activations' cases include several exps and a log.
override OP: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> y: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(256)
fn activation(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n4) {
        out[i] = activate4(x[i], OP);
    }
}

// x holds the forward output, y the incoming gradient.
@compute @workgroup_size(256)
fn activation_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n4) {
        let v = x[i];
        let d = vec4<f32>(activation_grad_from_output(v.x, OP), activation_grad_from_output(v.y, OP),
                          activation_grad_from_output(v.z, OP), activation_grad_from_output(v.w, OP));
        out[i] = y[i] * d;
    }
}

// x holds the forward input, y the incoming gradient.
@compute @workgroup_size(256)
fn activation_backward_x(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n4) {
        let v = x[i];
        let d = vec4<f32>(activation_grad_from_input(v.x, OP), activation_grad_from_input(v.y, OP),
                          activation_grad_from_input(v.z, OP), activation_grad_from_input(v.w, OP));
        out[i] = y[i] * d;
    }
}

@compute @workgroup_size(256)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n4) {
        let a = x[i];
        let b = y[i];
        switch OP {
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
    if (i < p.n4) {
        out[i] = p.alpha * x[i] + y[i];
    }
}

@compute @workgroup_size(256)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n4) {
        out[i] = p.alpha * x[i];
    }
}

// out = x · y[0] (y a [1] tensor: the loss scale, which lives on the device)
@compute @workgroup_size(256)
fn scale_by(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n4) {
        out[i] = x[i] * y[0].x;
    }
}

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n4) {
        out[i] = vec4<f32>(p.alpha);
    }
}
