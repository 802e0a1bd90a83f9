// workgroup_reduce with subgroup operations, for adapters that have them,
// and the entry points of reduce.wgsl's workgroup kernels (which record
// their subgroup's place first). Module: common.wgsl + this file +
// reduce.wgsl. Each subgroup reduces its values in registers, its first
// invocation stores the result by subgroup id, and after one barrier every
// invocation combines those partials in id order: two barriers per
// reduction instead of the tree's ten, which matters most where barriers
// are expensive (software adapters). Different summation order from the
// tree, the same on every run.

var<private> sg_id: u32;
var<private> sg_count: u32;
var<private> sg_lane: u32;

fn enter(id: u32, count: u32, lane: u32) {
    sg_id = id;
    sg_count = count;
    sg_lane = lane;
}

// Must be called from uniform control flow; every invocation gets the result.
fn workgroup_reduce(v: f32, lid: u32, is_max: bool) -> f32 {
    var s: f32;
    if (is_max) {
        s = subgroupMax(v);
    } else {
        s = subgroupAdd(v);
    }
    if (sg_lane == 0u) {
        scratch[sg_id] = s;
    }
    workgroupBarrier();
    var r = scratch[0];
    for (var i = 1u; i < sg_count; i++) {
        r = combine(r, scratch[i], is_max);
    }
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(256)
fn reduce_pass(@builtin(local_invocation_index) lid: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(subgroup_id) id: u32,
               @builtin(num_subgroups) count: u32,
               @builtin(subgroup_invocation_id) lane: u32) {
    enter(id, count, lane);
    reduce_pass_body(lid, wid, nwg);
}

@compute @workgroup_size(256)
fn sum_cols(@builtin(local_invocation_index) lid: u32,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(subgroup_id) id: u32,
            @builtin(num_subgroups) count: u32,
            @builtin(subgroup_invocation_id) lane: u32) {
    enter(id, count, lane);
    sum_cols_body(lid, wid, nwg);
}

@compute @workgroup_size(256)
fn softmax_rows(@builtin(local_invocation_index) lid: u32,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(subgroup_id) id: u32,
                @builtin(num_subgroups) count: u32,
                @builtin(subgroup_invocation_id) lane: u32) {
    enter(id, count, lane);
    softmax_rows_body(lid, wid, nwg);
}

@compute @workgroup_size(256)
fn softmax_xent_rows(@builtin(local_invocation_index) lid: u32,
                     @builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(subgroup_id) id: u32,
                     @builtin(num_subgroups) count: u32,
                     @builtin(subgroup_invocation_id) lane: u32) {
    enter(id, count, lane);
    softmax_xent_rows_body(lid, wid, nwg);
}
