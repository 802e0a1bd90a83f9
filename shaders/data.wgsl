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

// gather_rows with one invocation per row and vec4 loads, for rows of a
// multiple of 4 on software adapters: there every load is a loop over the
// lanes and every integer division is done lane by lane, and the
// element-wise kernel pays a division, a modulo and an index load per
// element (the time-major order and the one-hot recurrent input gather
// thousands of rows of 128 a step).
@group(0) @binding(6) var<storage, read> src4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn gather_rows_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 64u;
    if (r >= p.count) {
        return;
    }
    let w = p.row_len / 4u;
    let s = min(u32(idx[p.start + r]), p.src_rows - 1u);
    for (var c = 0u; c < w; c++) {
        out4[r * w + c] = src4[s * w + c];
    }
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
// embedding). Every path sums each output in row order r, as the CPU does:
// deterministic, no atomics.
//
// Direct: one invocation per output element, reading every id. Work is
// rows·count·row_len, which is fine for character vocabularies (tens of
// rows) and needs no scratch.
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

// Sorted, for large vocabularies: sort_ids orders the pairs (id, r) once,
// then scatter_add_sorted has each output element binary-search its id's run
// and add only those rows. Work: a sort of count pairs plus count·row_len
// adds and rows·row_len searches, instead of rows·count·row_len. The
// launcher picks the path by vocabulary size (SORTED_SCATTER_MIN_ROWS).
@group(0) @binding(3) var<storage, read_write> keys: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> sorted: array<vec2<u32>>;

// The pairs' count rounded up to a power of two (the bitonic network's size).
fn padded_count() -> u32 {
    return 1u << (32u - countLeadingZeros(max(p.count, 1u) - 1u));
}

// One workgroup: a bitonic sort of (id, r) in `keys`, padded with ids of
// 0xffffffff that sort last. Pairs are unique (r is), so the order is total
// and within one id the rows stay in order r.
@compute @workgroup_size(256)
fn sort_ids(@builtin(local_invocation_index) lid: u32) {
    let n = padded_count();
    for (var i = lid; i < n; i += 256u) {
        var key = vec2<u32>(0xffffffffu, i);
        if (i < p.count) {
            key.x = u32(idx[i]);
        }
        keys[i] = key;
    }
    storageBarrier();
    for (var k = 2u; k <= n; k <<= 1u) {
        for (var j = k >> 1u; j > 0u; j >>= 1u) {
            for (var i = lid; i < n; i += 256u) {
                let l = i ^ j;
                if (l > i) {
                    let a = keys[i];
                    let b = keys[l];
                    let b_first = b.x < a.x || (b.x == a.x && b.y < a.y);
                    // Ascending where bit k of i is clear, descending elsewhere.
                    if (b_first == ((i & k) == 0u)) {
                        keys[i] = b;
                        keys[l] = a;
                    }
                }
            }
            storageBarrier();
        }
    }
}

// sort_ids for software adapters, which run a workgroup on one thread
// anyway: one invocation sorts by counting, O(count + rows) loads and
// stores against the network's O(count·log²count). Stable (rows in order
// r within an id), so the pairs come out as sort_ids leaves them; ids of
// rows or more share one last bucket, which no output reads. The buckets'
// counts are kept after the pairs, at keys[count + v].x.
@compute @workgroup_size(1)
fn sort_ids_counting() {
    let at = p.count;
    for (var v = 0u; v <= p.src_rows; v++) {
        keys[at + v].x = 0u;
    }
    for (var r = 0u; r < p.count; r++) {
        let id = min(u32(idx[r]), p.src_rows);
        keys[at + id].x += 1u;
    }
    // Each bucket's first position.
    var first = 0u;
    for (var v = 0u; v <= p.src_rows; v++) {
        let n = keys[at + v].x;
        keys[at + v].x = first;
        first += n;
    }
    for (var r = 0u; r < p.count; r++) {
        let id = min(u32(idx[r]), p.src_rows);
        let to = keys[at + id].x;
        keys[to] = vec2<u32>(id, r);
        keys[at + id].x = to + 1u;
    }
}

// The first position in the sorted pairs whose id is at least v.
fn lower_bound(v: u32) -> u32 {
    var lo = 0u;
    var hi = p.count;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (sorted[mid].x < v) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// scatter_add_sorted with one invocation per output row and vec4 of
// columns, for rows of a multiple of 4 on software adapters: a quarter of
// the searches, loads and integer divisions.
@compute @workgroup_size(64)
fn scatter_add_sorted_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * 64u;
    let w = p.row_len / 4u;
    if (e >= p.src_rows * w) {
        return;
    }
    let v = e / w;
    let c = e % w;
    var s = vec4<f32>(0.0);
    let end = lower_bound(v + 1u);
    for (var j = lower_bound(v); j < end; j++) {
        s += src4[sorted[j].y * w + c];
    }
    out4[e] = s;
}

@compute @workgroup_size(256)
fn scatter_add_sorted(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    if (e >= p.src_rows * p.row_len) {
        return;
    }
    let v = e / p.row_len;
    let col = e % p.row_len;
    var s = 0.0;
    let end = lower_bound(v + 1u);
    for (var j = lower_bound(v); j < end; j++) {
        s += src[sorted[j].y * p.row_len + col];
    }
    out[e] = s;
}
