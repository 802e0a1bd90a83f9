// Dropout masks: the same integer hash as src/device/dropout.rs, so every
// device draws the same mask bit for bit.

struct Params {
    n: u32,
    key: u32,
    threshold: u32,
    scale: f32,
}

var<immediate> p: Params;

@group(0) @binding(0) var<storage, read_write> out: array<f32>;

fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// out[i] = scale where pcg(i ^ key) ≥ threshold, else 0.
@compute @workgroup_size(256)
fn dropout_mask(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i < p.n) {
        out[i] = select(0.0, p.scale, pcg(i ^ p.key) >= p.threshold);
    }
}
