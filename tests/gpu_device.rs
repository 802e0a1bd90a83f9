//! GPU device behaviour beyond op results: limits, the buffer pool, and
//! that recording never waits.

mod common;

use wgtrain::device::MatmulSpec;
use wgtrain::{Device, Error, Tensor};

#[test]
fn a_tensor_over_the_adapter_limits_is_a_clear_error() {
    let Some(gpu) = common::gpu() else { return };
    let limit = gpu
        .limits()
        .max_storage_buffer_binding_size
        .min(gpu.limits().max_buffer_size);
    let too_many = (limit / 4 + 1024) as usize;
    match gpu.zeros([too_many]) {
        Err(Error::TooLarge { limit_name, .. }) => {
            assert!(limit_name.contains("max_"), "{limit_name}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a {too_many}-element tensor should exceed the limits"),
    }
    // What streaming decides by: the largest tensor that can be made, and
    // no larger (made only where that is small enough to be quick).
    let most = gpu.max_tensor_bytes();
    assert!(most <= limit && most > limit - 256, "{most} vs {limit}");
    assert!(gpu.zeros([most as usize / 4 + 1]).is_err());
    if most <= 256 << 20 {
        gpu.zeros([most as usize / 4]).unwrap();
    }
}

#[test]
fn pool_reuses_buffers_across_steps() {
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    let a = gpu.upload(&[1.0; 64 * 32], [64, 32]).unwrap();
    let b = gpu.upload(&[0.5; 32 * 16], [32, 16]).unwrap();
    let step = || {
        let c = gpu.matmul(&a, &b, None, MatmulSpec::NN).unwrap();
        let d = gpu
            .activation(&c, wgtrain::device::Activation::Tanh)
            .unwrap();
        gpu.reduce(&d, wgtrain::device::Reduce::Sum).unwrap()
    };
    drop(step());
    drop(step());
    let before = gpu.stats();
    for _ in 0..5 {
        drop(step());
    }
    let after = gpu.stats();
    assert!(after.dispatches > before.dispatches);
    assert_eq!(
        after.buffers_created, before.buffers_created,
        "steps after the second allocated"
    );
    assert_eq!(
        after.pipelines_compiled, before.pipelines_compiled,
        "pipelines recompiled"
    );
    assert_eq!(
        after.bind_groups_created, before.bind_groups_created,
        "bind groups rebuilt"
    );
}

#[test]
fn ops_record_without_submitting_until_a_download() {
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    let x = gpu.upload(&[1.0, 2.0, 3.0], [3]).unwrap();
    let before = gpu.stats();
    let mut y = x.clone();
    for _ in 0..20 {
        y = gpu.axpy(1.0, &x, &y).unwrap();
    }
    let recorded = gpu.stats();
    assert_eq!(recorded.dispatches - before.dispatches, 20);
    assert_eq!(
        recorded.submits, before.submits,
        "an op submitted work by itself"
    );
    // 21 · x, computed in one submission.
    assert_eq!(gpu.download(&y).unwrap(), [21.0, 42.0, 63.0]);
    assert_eq!(gpu.stats().submits, before.submits + 1);
    assert_eq!(y.shape().dims(), [3]);
}

#[test]
fn reshape_shares_storage_and_checks_size() {
    let Some(gpu) = common::gpu() else { return };
    let x = gpu.upload(&[1.0, 2.0, 3.0, 4.0], [2, 2]).unwrap();
    let r = gpu.reshape(&x, [4]).unwrap();
    assert_eq!(gpu.download(&r).unwrap(), [1.0, 2.0, 3.0, 4.0]);
    assert!(gpu.reshape(&x, [3]).is_err());
}

#[test]
fn training_steps_allocate_nothing_after_the_second() {
    use wgtrain::models::Model;
    use wgtrain::optim::{OptimConfig, OptimizerKind};
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    for case in common::small_models() {
        let kind = &case.name;
        let mut model = Model::new(&gpu, &case.spec, 1).unwrap();
        let mut opt = OptimConfig::new(OptimizerKind::Adam, 1e-3);
        opt.clip_norm = Some(1.0);
        let mut optimizer = opt.build().unwrap();
        let (xt, yt) = case.batch(&gpu);
        // A training step as the loop runs it: forward, backward, update,
        // the running loss summed on the device and read every other step.
        let mut running = None;
        let mut step = |i: usize| {
            let loss = model.loss_and_grads(&gpu, &xt, &yt).unwrap();
            optimizer.step(&gpu, &mut model.params_mut()).unwrap();
            let sum = match running.take() {
                Some(r) => gpu.add(&r, &loss).unwrap(),
                None => loss,
            };
            if i % 2 == 1 {
                assert!(gpu.download(&sum).unwrap()[0].is_finite());
            } else {
                running = Some(sum);
            }
        };
        step(0);
        step(1);
        let before = gpu.stats();
        for i in 2..8 {
            step(i);
        }
        let after = gpu.stats();
        assert!(after.dispatches > before.dispatches);
        assert_eq!(
            after.buffers_created, before.buffers_created,
            "{kind}: steps 3-8 allocated buffers"
        );
        assert_eq!(
            after.pipelines_compiled, before.pipelines_compiled,
            "{kind}: pipelines compiled again"
        );
    }
}

#[test]
fn the_buffer_pool_stays_under_its_cap_when_shapes_keep_changing() {
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    // 80 distinct sizes of 4 MiB and more, each used once and freed: a
    // session of ever-new shapes. The pool keeps at most its cap.
    let cap = 256u64 << 20;
    for i in 0..80usize {
        let n = (1 << 20) + 64 * i; // f32s: 4 MiB + a distinct size class
        let t = gpu.full([n], 1.0).unwrap();
        assert_eq!(gpu.download(&t).unwrap()[n - 1], 1.0);
    }
    let s = gpu.stats();
    assert!(s.buffers_evicted > 0, "{s:?}");
    assert!(s.pool_free_bytes <= cap, "{s:?}");
    // Still correct after evictions: bind groups of evicted buffers are gone.
    let a = gpu.upload(&[1.0, 2.0, 3.0], [3]).unwrap();
    let b = gpu.add(&a, &a).unwrap();
    assert_eq!(gpu.download(&b).unwrap(), [2.0, 4.0, 6.0]);
}

#[test]
fn matmul_tuning_times_each_shape_class_once_and_caches_it() {
    use wgtrain::device::gpu::tune::MatmulVariant;
    use wgtrain::{CpuDevice, GpuDevice};
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("tune.json");
    let a: Vec<f32> = (0..16 * 24).map(|i| (i % 7) as f32 - 3.0).collect();
    let b: Vec<f32> = (0..24 * 8).map(|i| (i % 5) as f32 - 2.0).collect();
    let want = CpuDevice
        .download(
            &CpuDevice
                .matmul(
                    &CpuDevice.upload(&a, [16, 24]).unwrap(),
                    &CpuDevice.upload(&b, [24, 8]).unwrap(),
                    None,
                    MatmulSpec::NN,
                )
                .unwrap(),
        )
        .unwrap();
    let product = |dev: &GpuDevice| {
        let (at, bt) = (
            dev.upload(&a, [16, 24]).unwrap(),
            dev.upload(&b, [24, 8]).unwrap(),
        );
        let before = dev.stats().dispatches;
        let c = dev.matmul(&at, &bt, None, MatmulSpec::NN).unwrap();
        let dispatches = dev.stats().dispatches - before;
        (dev.download(&c).unwrap(), dispatches)
    };
    // Sizes multiples of 4: three candidates, each a warm-up and two timed
    // launches, then the product itself.
    let tuned = gpu.with_tuning(Some(cache.clone()));
    let (c, dispatches) = product(&tuned);
    assert_eq!(c, want, "small integers: exact on every kernel");
    assert_eq!(dispatches, 3 * 3 + 1);
    assert_eq!(product(&tuned).1, 1, "the class is tuned once per process");
    let table = tuned.tuner().unwrap().table();
    let (class, t) = table.iter().next().unwrap();
    assert_eq!(table.len(), 1);
    assert_eq!(class, "NN m≤16 k≤32 n≤8 aligned");
    assert_eq!(t.micros.len(), 3);
    assert!(MatmulVariant::candidates(true).contains(&t.kernel));
    // Another device reads the cache file and times nothing.
    let again = gpu.with_tuning(Some(cache.clone()));
    let (c, dispatches) = product(&again);
    assert_eq!((c, dispatches), (want.clone(), 1));
    assert_eq!(again.tuner().unwrap().table()[class].kernel, t.kernel);
    // A forced kernel family is not tuned.
    let forced = gpu.with_matmul_kernel(wgtrain::device::gpu::MatmulKernel::Tiled);
    assert!(forced.tuner().is_none());
    assert_eq!(product(&forced), (want, 1));
}

/// The many-tensor updates record one dispatch per four tensors (a lone
/// last tensor takes the single-tensor kernel), where the adapter has the
/// storage bindings; the results are checked against the CPU in
/// tests/gpu_matches_cpu.rs.
#[test]
fn many_tensor_updates_take_one_dispatch_per_four_tensors() {
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    let sizes = [3usize, 10, 1, 64, 5, 7];
    let mut ps: Vec<_> = sizes.iter().map(|&n| gpu.zeros([n]).unwrap()).collect();
    let gs: Vec<_> = sizes.iter().map(|&n| gpu.full([n], 1.0).unwrap()).collect();
    let scale = gpu.full([1], 1.0).unwrap();
    let dispatches = |tensors: usize, ps: &mut Vec<wgtrain::device::gpu::GpuTensor>| {
        let before = gpu.stats().dispatches;
        let mut refs: Vec<_> = ps.iter_mut().take(tensors).collect();
        let grads: Vec<_> = gs.iter().take(tensors).collect();
        let wd = vec![0.0; tensors];
        gpu.sgd_update_many(&mut refs, &grads, &scale, 0.5, &wd)
            .unwrap();
        gpu.stats().dispatches - before
    };
    let storage = gpu.limits().max_storage_buffers_per_shader_stage;
    if storage >= 9 {
        assert_eq!(dispatches(6, &mut ps), 2, "four, then two");
        assert_eq!(dispatches(5, &mut ps), 2, "four, then one alone");
        assert_eq!(dispatches(4, &mut ps), 1);
    } else {
        assert_eq!(dispatches(6, &mut ps), 6, "one per tensor");
    }
    // Every element moved by lr · 1 per update that covered it.
    let first = gpu.download(&ps[0]).unwrap();
    assert_eq!(first, vec![-1.5; 3]);
    assert_eq!(gpu.download(&ps[5]).unwrap(), vec![-0.5; 7]);
}
