// Moving samples around on the device: minibatch gather and one-hot.
// Launchers: src/device/gpu/kernels/data.rs

struct Params {
    count: u32,    // output rows
    row_len: u32,  // elements per row (one-hot: depth)
    start: u32,    // first index used from idx
    src_rows: u32, // rows in src (indices are clamped to it)
    scale: f32,    // gather_rows_u8: out = byte · scale + shift
    shift: f32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> idx: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// out[r, :] = src[idx[start + r], :]
@compute @workgroup_size(256)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    if (e >= p.count * p.row_len) {
        return;
    }
    let r = e / p.row_len;
    let col = e % p.row_len;
    let s = min(u32(idx[p.start + r]), p.src_rows - 1u);
    out[e] = src[s * p.row_len + col];
}

// out[r, c] = (c == idx[r]) ? 1 : 0
@compute @workgroup_size(256)
fn one_hot(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    if (e >= p.count * p.row_len) {
        return;
    }
    let r = e / p.row_len;
    let c = e % p.row_len;
    out[e] = select(0.0, 1.0, u32(idx[r]) == c);
}

// Bytes packed four to a little-endian word (GpuBytes).
@group(0) @binding(3) var<storage, read> src_bytes: array<u32>;

// out[r, :] = bytes[idx[start + r], :] · scale + shift
@compute @workgroup_size(256)
fn gather_rows_u8(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    if (e >= p.count * p.row_len) {
        return;
    }
    let r = e / p.row_len;
    let col = e % p.row_len;
    let s = min(u32(idx[p.start + r]), p.src_rows - 1u);
    let b = s * p.row_len + col;
    let v = (src_bytes[b / 4u] >> (8u * (b % 4u))) & 0xffu;
    out[e] = f32(v) * p.scale + p.shift;
}

// out[c, r] = src[r, c] for src of p.count rows and p.row_len columns.
@compute @workgroup_size(256)
fn transpose(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    if (e >= p.count * p.row_len) {
        return;
    }
    let c = e / p.count;
    let r = e % p.count;
    out[e] = src[r * p.row_len + c];
}

// out[v, c] = Σ src[r, c] over the rows r with idx[r] == v (src_rows = the
// rows of out, count = the rows of src): the gradient of a row gather (an
// embedding). One invocation per output element, summing in row order like
// the CPU: deterministic, no atomics. Work is rows·count·row_len: fine for
// character vocabularies (75 rows); a vocabulary of thousands wants ids
// sorted once so each output reads only its own rows (not done yet).
@compute @workgroup_size(256)
fn scatter_add_rows(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    if (e >= p.src_rows * p.row_len) {
        return;
    }
    let v = e / p.row_len;
    let col = e % p.row_len;
    var s = 0.0;
    for (var r = 0u; r < p.count; r++) {
        if (u32(idx[r]) == v) {
            s += src[r * p.row_len + col];
        }
    }
    out[e] = s;
}
