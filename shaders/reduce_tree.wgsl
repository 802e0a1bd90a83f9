// workgroup_reduce as a shared-memory tree, for adapters without subgroup
// operations, and the entry points of reduce.wgsl's workgroup kernels.
// Module: common.wgsl + this file + reduce.wgsl.

// Tree reduction across the workgroup; every invocation gets the result.
// Must be called from uniform control flow.
fn workgroup_reduce(v: f32, lid: u32, is_max: bool) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            scratch[lid] = combine(scratch[lid], scratch[lid + s], is_max);
        }
        workgroupBarrier();
    }
    let r = scratch[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(256)
fn reduce_pass(@builtin(local_invocation_index) lid: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    reduce_pass_body(lid, wid, nwg);
}

@compute @workgroup_size(256)
fn sum_cols(@builtin(local_invocation_index) lid: u32,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    sum_cols_body(lid, wid, nwg);
}

@compute @workgroup_size(256)
fn softmax_rows(@builtin(local_invocation_index) lid: u32,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    softmax_rows_body(lid, wid, nwg);
}

@compute @workgroup_size(256)
fn softmax_xent_rows(@builtin(local_invocation_index) lid: u32,
                     @builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    softmax_xent_rows_body(lid, wid, nwg);
}
