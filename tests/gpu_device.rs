//! GPU device behaviour beyond op results: limits, the buffer pool, and
//! that recording never waits.

mod common;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgtrain::device::gpu::tune::MAX_TIMED_LAUNCHES;
use wgtrain::device::gpu::{GpuTensor, MatmulKernel};
use wgtrain::device::{AdamStep, MatmulSpec, Precision, Reduce};
use wgtrain::{CpuDevice, Device, Error, GpuDevice, Shape, Tensor};

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
    use wgtrain::device::gpu::tune::{ConvVariant, MatmulVariant};
    use wgtrain::{CpuDevice, GpuDevice};
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("tune.json");
    let a: Vec<f32> = (0..16 * 24).map(|i| (i % 7) as f32 - 3.0).collect();
    let b: Vec<f32> = (0..24 * 8).map(|i| (i % 5) as f32 - 2.0).collect();
    let want = CpuDevice::new()
        .download(
            &CpuDevice::new()
                .matmul(
                    &CpuDevice::new().upload(&a, [16, 24]).unwrap(),
                    &CpuDevice::new().upload(&b, [24, 8]).unwrap(),
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
    // Sizes multiples of 4, 8 columns: rows, the three bcast blocks where
    // the adapter has subgroups of 8 or more (lavapipe does: the checks of
    // the bcast family must not fall back to another kernel there), vec4
    // and blocked on hardware adapters or where there are no bcast blocks,
    // tiled on hardware; each a warm-up and one to three timings (tune.rs
    // drops the slowest after a round), then the product itself.
    if gpu.adapter_info().name.contains("llvmpipe") {
        assert!(gpu.has_bcast_matmul(), "lavapipe runs matmul_bcast");
        // And the broadcast convolutions where untuned (the checks force
        // each kernel: tests/gpu_matches_cpu.rs).
        let default = std::env::var_os("WGTRAIN_CONV").is_none();
        assert!(gpu.conv_kernel() == ConvVariant::Bcast || !default);
        let plain = gpu.with_conv_kernel(ConvVariant::Plain);
        assert_eq!(plain.conv_kernel(), ConvVariant::Plain);
    }
    let hardware = gpu.adapter_info().device_type != wgpu::DeviceType::Cpu;
    let candidates =
        MatmulVariant::candidates(true, (8, 8), gpu.has_bcast_matmul(), hardware).len();
    let tuned = gpu.with_tuning(Some(cache.clone()));
    let (c, dispatches) = product(&tuned);
    assert_eq!(c, want, "small integers: exact on every kernel");
    // Each timing of a candidate launches it 1 to 1 + MAX_TIMED_LAUNCHES
    // times (short launches are timed together).
    let n = candidates as u64;
    let most = 1 + MAX_TIMED_LAUNCHES as u64;
    assert!(
        (2 * n + 1..=4 * n * most + 1).contains(&dispatches),
        "{dispatches}"
    );
    assert_eq!(product(&tuned).1, 1, "the class is tuned once per process");
    let table = tuned.tuner().unwrap().table();
    let (class, t) = table.iter().next().unwrap();
    assert_eq!(table.len(), 1);
    assert_eq!(class, "NN m≤16 k≤32 n≤8 aligned");
    assert_eq!(t.micros.len(), candidates);
    let names: Vec<_> = MatmulVariant::candidates(true, (8, 8), true, true)
        .into_iter()
        .map(|v| v.name())
        .collect();
    assert!(names.contains(&t.kernel.as_str()));
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

/// A product too large to time whole on a software adapter is timed on a
/// slice of its rows (`tune::timed_dims`), then computed whole: every row
/// of it right, the slice's included.
#[test]
fn a_product_tuned_on_a_slice_is_computed_whole() {
    use wgtrain::device::gpu::tune::{timed_dims, TIMED_MACS};
    use wgtrain::CpuDevice;
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    // Enough rows for a slice of under half on this machine's cores
    // (llvmpipe's threads, unless LP_NUM_THREADS says otherwise).
    let cores = wgtrain::device::gpu::software_cores();
    let (m, k, n) = ((128 * 3 * cores + 3).max(8_195), 256, 75);
    assert!(m * k * n > TIMED_MACS);
    let (timed, _, _) = timed_dims((m, k, n), false, Some(cores));
    assert!(timed < m / 2, "{timed}");
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 - 2.0).collect();
    let want = nn_product(&CpuDevice::new(), &a, &b, (m, k, n));
    let dir = tempfile::tempdir().unwrap();
    let tuned = gpu.with_tuning(Some(dir.path().join("tune.json")));
    let got = nn_product(&tuned, &a, &b, (m, k, n));
    let table = tuned.tuner().unwrap().table();
    assert_eq!(table.len(), 1);
    // A software adapter timed the slice (and says so); hardware the whole.
    let software = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
    let slice = table.values().next().unwrap().rows;
    assert_eq!(slice, software.then_some(timed), "{table:?}");
    // Small integers: exact on every kernel.
    assert_eq!(got, want);
}

/// `a·b` (`[m, k]` by `[k, n]`) on `dev`, downloaded.
fn nn_product<D: Device>(
    dev: &D,
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
) -> Vec<f32> {
    let c = dev
        .matmul(
            &dev.upload(a, [m, k]).unwrap(),
            &dev.upload(b, [k, n]).unwrap(),
            None,
            MatmulSpec::NN,
        )
        .unwrap();
    dev.download(&c).unwrap()
}

/// A convolution pass with two kernels is tuned like a matmul class: both
/// timed once per process, then one dispatch; a forced kernel is not
/// timed. Both kernels' results are checked in tests/gpu_matches_cpu.rs.
#[test]
fn convolution_tuning_times_both_kernels_once_per_class() {
    use wgtrain::device::gpu::tune::ConvVariant;
    use wgtrain::device::ConvStep;
    use wgtrain::GpuDevice;
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    if !gpu.has_bcast_matmul() {
        assert!(!gpu.adapter_info().name.contains("llvmpipe"));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tuned = gpu.with_tuning(Some(dir.path().join("tune.json")));
    let x = tuned.full([2, 3, 9, 9], 1.0).unwrap();
    let w = tuned.full([8, 3, 3, 3], 1.0).unwrap();
    let step = ConvStep { stride: 1, pad: 1 };
    let conv = |dev: &GpuDevice| {
        let before = dev.stats().dispatches;
        let y = dev.conv2d(&x, &w, None, step).unwrap();
        (dev.download(&y).unwrap(), dev.stats().dispatches - before)
    };
    // A warm-up and one to three timings of each (each 1 to 1 +
    // MAX_TIMED_LAUNCHES launches), then the pass.
    let (y, dispatches) = conv(&tuned);
    let most = 1 + MAX_TIMED_LAUNCHES as u64;
    assert!((5..=8 * most + 1).contains(&dispatches), "{dispatches}");
    // Ones: the centre pixel sums all 27 taps, a corner 12.
    assert_eq!((y[9 * 4 + 4], y[0]), (27.0, 12.0));
    assert_eq!(conv(&tuned), (y.clone(), 1));
    let table = tuned.tuner().unwrap().table();
    let (class, t) = table.iter().next().unwrap();
    assert_eq!(table.len(), 1);
    assert_eq!(class, "conv fwd n≤2 ci≤4 co≤8 in≤16×16 k3×3 s1 p1");
    assert_eq!(t.micros.len(), 2);
    let forced = tuned.with_conv_kernel(ConvVariant::Plain);
    assert_eq!(conv(&forced), (y, 1));
}

/// The Elman recurrence times each way of running its steps once per class
/// (the matmul way tuning its own products inside: the tuner must not hold
/// its table while timing), caches the fastest, and gives the same states
/// again; through matmuls its products stay f32 under f16.
#[test]
fn recurrence_tuning_times_each_way_once_and_stays_f32_under_f16() {
    use wgtrain::device::gpu::tune::RnnVariant;
    use wgtrain::GpuDevice;
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tuned = gpu.with_tuning(Some(dir.path().join("tune.json")));
    let (t, b, h) = (5, 8, 16);
    // Values in [-0.5, 0.5) whose products are not exact in f16.
    let values = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919) % 1009) as f32 / 1009.0 - 0.5)
            .collect()
    };
    let xw = tuned.upload(&values(t * b * h), [t, b, h]).unwrap();
    let u = tuned.upload(&values(h * h), [h, h]).unwrap();
    let h0 = tuned.upload(&values(b * h), [b, h]).unwrap();
    let forward = |dev: &GpuDevice| {
        let before = dev.stats().dispatches;
        let hs = dev.rnn_forward(&xw, &u, &h0).unwrap();
        (dev.download(&hs).unwrap(), dev.stats().dispatches - before)
    };
    let (hs, _) = forward(&tuned);
    let table = tuned.tuner().unwrap().table();
    let rnn = &table["rnn fwd b≤8 h≤16 aligned"];
    // The whole-pass way is timed on hardware adapters only.
    let hardware = gpu.adapter_info().device_type != wgpu::DeviceType::Cpu;
    let ways = if hardware { 3 } else { 2 };
    assert_eq!(rnn.micros.len(), ways, "{:?}", rnn.micros);
    let way = RnnVariant::ALL
        .into_iter()
        .find(|v| wgtrain::device::gpu::tune::Variant::name(*v) == rnn.kernel)
        .unwrap();
    // Through matmuls, a step's sum and tanh are in the product's epilogue
    // at these sizes (multiples of 4): one dispatch a step.
    let dispatches = |way| match way {
        RnnVariant::Fused => t as u64,
        RnnVariant::Matmul => t as u64,
        RnnVariant::Sequence => 1,
    };
    assert_eq!(forward(&tuned), (hs.clone(), dispatches(way)));
    // Each way forced gives the tuned result where it is the tuned way, and
    // agrees with the other closely (they sum in different orders).
    for other in RnnVariant::ALL {
        let (hs2, launched) = forward(&tuned.with_rnn_kernel(other));
        assert_eq!(launched, dispatches(other), "{other:?}");
        if other == way {
            assert_eq!(hs2, hs);
        }
        let worst = hs2
            .iter()
            .zip(&hs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-5, "{other:?}: {worst}");
    }
    let by_matmul = tuned.with_rnn_kernel(RnnVariant::Matmul);
    // Backward through matmuls: the last step's finishing kernel, one
    // product with the step in its epilogue for each step before it, and
    // dh0's product.
    let states = tuned.upload(&hs, [t, b, h]).unwrap();
    let dh = tuned.upload(&values(t * b * h), [t, b, h]).unwrap();
    let backward = || {
        let before = by_matmul.stats().dispatches;
        by_matmul.rnn_backward(&states, &u, &dh).unwrap();
        by_matmul.stats().dispatches - before
    };
    backward(); // tunes the products
    assert_eq!(backward(), t as u64 + 1);
    match by_matmul.with_precision(Precision::F16) {
        Ok(f16) => assert_eq!(forward(&f16).0, forward(&by_matmul).0),
        Err(_) => assert_f16_refused(&gpu),
    }
}

/// The many-tensor updates take all of a model's tensors in one dispatch,
/// as many as the adapter's storage bindings allow (a lone last tensor
/// takes the single-tensor kernel); the results are checked against the
/// CPU in tests/gpu_matches_cpu.rs.
#[test]
fn many_tensor_updates_take_as_many_tensors_per_dispatch_as_bindings_allow() {
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    let gpu = gpu.with_grouped_updates(true);
    // SGD binds the table, the scale and two buffers per tensor.
    let storage = gpu.limits().max_storage_buffers_per_shader_stage as usize;
    let slots = ((storage - 2) / 2).min(64);
    let count = slots + 2;
    let sizes: Vec<usize> = (0..count).map(|i| 1 + (i * 37) % 300).collect();
    let mut ps: Vec<_> = sizes.iter().map(|&n| gpu.zeros([n]).unwrap()).collect();
    let gs: Vec<_> = sizes.iter().map(|&n| gpu.full([n], 1.0).unwrap()).collect();
    let scale = gpu.full([1], 1.0).unwrap();
    let dispatches = |gpu: &wgtrain::GpuDevice, tensors: usize, ps: &mut Vec<GpuTensor>| {
        let before = gpu.stats().dispatches;
        let mut refs: Vec<_> = ps.iter_mut().take(tensors).collect();
        let grads: Vec<_> = gs.iter().take(tensors).collect();
        let wd = vec![0.0; tensors];
        gpu.sgd_update_many(&mut refs, &grads, &scale, 0.5, &wd)
            .unwrap();
        gpu.stats().dispatches - before
    };
    if slots >= 2 {
        assert_eq!(dispatches(&gpu, slots, &mut ps), 1, "all in one");
        assert_eq!(
            dispatches(&gpu, slots + 1, &mut ps),
            2,
            "all but one, then one alone"
        );
        assert_eq!(
            dispatches(&gpu, slots + 2, &mut ps),
            2,
            "all but two, then two"
        );
        // Every element moved by lr · 1 per update that covered it.
        let first = gpu.download(&ps[0]).unwrap();
        assert_eq!(first, vec![-1.5; sizes[0]]);
        let last = gpu.download(&ps[slots + 1]).unwrap();
        assert_eq!(last, vec![-0.5; sizes[slots + 1]]);
        assert_eq!(gpu.download(&ps[slots]).unwrap(), vec![-1.0; sizes[slots]]);
    } else {
        assert_eq!(dispatches(&gpu, 3, &mut ps), 3, "one per tensor");
    }
    let gpu = gpu.with_grouped_updates(false);
    assert_eq!(dispatches(&gpu, 3, &mut ps), 3, "ungrouped: one per tensor");
}

/// The squared norm of many tensors is one dispatch and the sum's passes,
/// and counts no element of a buffer's padding past a tensor's end.
#[test]
fn sum_of_squares_over_many_tensors_skips_padding() {
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    // A recycled buffer (256 bytes: 64 values) whose tail holds 100s.
    drop(gpu.full([64], 100.0).unwrap());
    let created = gpu.stats().buffers_created;
    let a = gpu.upload(&[1.0, 2.0, 3.0, 4.0, 5.0], [5]).unwrap();
    assert_eq!(
        gpu.stats().buffers_created,
        created,
        "the buffer was reused"
    );
    let b = gpu.full([300], 0.5).unwrap();
    let c = gpu.upload(&[-3.0], [1]).unwrap();
    let before = gpu.stats().dispatches;
    let ss = gpu.sum_squares_many(&[&a, &b, &c]).unwrap();
    let many = gpu.stats().dispatches - before;
    // 1 + 4 + 9 + 16 + 25, 300 · 0.25, 9: exact in f32.
    assert_eq!(gpu.download(&ss).unwrap(), vec![55.0 + 75.0 + 9.0]);
    let single = {
        let before = gpu.stats().dispatches;
        gpu.reduce(&b, Reduce::SumSquares).unwrap();
        gpu.stats().dispatches - before
    };
    if gpu.limits().max_storage_buffers_per_shader_stage >= 5 {
        // Each tensor alone: a reduction each and two additions.
        assert!(
            many < 3 * single + 2,
            "{many} dispatches for three tensors, {single} for one"
        );
    }
}

/// The GPU's f16 operands are the CPU's: round to nearest, ties to even,
/// subnormals kept, overflow to infinity, NaN kept. A product with k = 1
/// and B = 1 returns A's operand exactly as the kernel read it.
#[test]
fn f16_operands_round_like_the_cpu_reference() {
    let Some(gpu) = common::gpu() else { return };
    let Ok(gpu) = gpu.with_precision(Precision::F16) else {
        return assert_f16_refused(&gpu);
    };
    let a = f16_edge_cases();
    let n = a.len();
    let at = gpu.upload(&a, [n, 1]).unwrap();
    let one = gpu.upload(&[1.0], [1, 1]).unwrap();
    let got = gpu
        .download(&gpu.matmul(&at, &one, None, MatmulSpec::NN).unwrap())
        .unwrap();
    for (i, (&x, &g)) in a.iter().zip(&got).enumerate() {
        let want = Precision::F16.round(x);
        // (== as the sum starts from +0: -0 comes out as 0.)
        let same = want == g || (want.is_nan() && g.is_nan());
        assert!(same, "element {i}: {x:e} read as {g:e}, expected {want:e}");
    }
}

/// Tensors kept in f16 (`Device::to_half`) hold the CPU's rounding, bit
/// for bit (signed zeros, subnormals, infinities; NaN as a NaN), at half
/// the bytes, and read back exactly: at an odd length, so the last word
/// holds one.
#[test]
fn half_tensors_round_like_the_cpu_and_read_back_exactly() {
    // A device of its own: other tests' allocations would count.
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    let cpu = CpuDevice::new();
    let mut a = f16_edge_cases();
    if a.len().is_multiple_of(2) {
        a.push(0.3);
    }
    let n = a.len();
    let want = cpu
        .download(
            &cpu.half_to_f32(&cpu.to_half(&cpu.upload(&a, [n]).unwrap()).unwrap())
                .unwrap(),
        )
        .unwrap();
    // Under either precision, and the same tensor twice (the second a kept
    // copy under f16).
    let f16 = gpu.with_precision(Precision::F16).ok();
    for dev in std::iter::once(gpu.clone()).chain(f16) {
        let t = dev.upload(&a, [n]).unwrap();
        for _ in 0..2 {
            let before = dev.stats().live_bytes;
            let half = dev.to_half(&t).unwrap();
            let bytes = dev.stats().live_bytes - before;
            assert!(bytes <= (2 * n as u64).div_ceil(256) * 256, "{bytes} bytes");
            let got = dev.download(&dev.half_to_f32(&half).unwrap()).unwrap();
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
                assert!(
                    same,
                    "element {i}: {:e} read back as {g:e}, not {w:e}",
                    a[i]
                );
            }
        }
    }
}

/// An activation writes the f16 copy its layer keeps in the same pass
/// (`Device::activation_keeping_half`): its output and halves are bit for
/// bit what `activation` then `to_half` give, for every activation (GELU
/// keeps its input), at lengths that end in a partial vec4, in one
/// dispatch; and the copy is kept where `to_half` finds it.
#[test]
fn an_activation_writes_its_f16_copy_in_the_same_pass() {
    use wgtrain::device::Activation;
    // A device of its own: the dispatches are counted. Poisoned, so that a
    // value the kernel fails to write cannot come from a pool buffer that
    // held the right one.
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    let gpu = gpu.with_poisoned_allocations();
    let mut values = f16_edge_cases();
    let rng = &mut ChaCha8Rng::seed_from_u64(9);
    while values.len() < 1030 {
        values.push(rng.random_range(-5.0..5.0));
    }
    let bits = |t: &GpuTensor| -> Vec<u32> {
        let v = gpu.download(t).unwrap();
        v.iter()
            .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
            .collect()
    };
    let dispatches = || {
        gpu.synchronize().unwrap();
        gpu.stats().dispatches
    };
    for n in [1, 2, 3, 5, 6, 7, 1030] {
        for act in Activation::ALL {
            let what = format!("{act:?} at n = {n}");
            let x = gpu.upload(&values[..n], [n]).unwrap();
            let before = dispatches();
            let (y, half) = gpu.activation_keeping_half(&x, act).unwrap();
            assert_eq!(dispatches() - before, 1, "{what}: one pass");
            let want_y = gpu.activation(&x, act).unwrap();
            assert_eq!(bits(&y), bits(&want_y), "{what}: output");
            let kept = if act.keeps_input() { &x } else { &y };
            let before = dispatches();
            let found = gpu.to_half(kept).unwrap();
            assert_eq!(dispatches(), before, "{what}: to_half found the copy");
            let want_kept = if act.keeps_input() { &x } else { &want_y };
            let want = gpu.half_to_f32(&gpu.to_half(want_kept).unwrap()).unwrap();
            for got in [&half, &found] {
                let got = gpu.half_to_f32(got).unwrap();
                assert_eq!(bits(&got), bits(&want), "{what}: halves");
            }
        }
    }
    // An empty tensor: an empty output and empty halves, and no pass.
    let empty = gpu.upload(&[], [0, 3]).unwrap();
    let before = dispatches();
    let (y, half) = gpu
        .activation_keeping_half(&empty, Activation::Tanh)
        .unwrap();
    assert_eq!(dispatches(), before);
    assert_eq!((y.shape(), half.shape()), (empty.shape(), empty.shape()));
    assert!(gpu
        .download(&gpu.half_to_f32(&half).unwrap())
        .unwrap()
        .is_empty());
    // A copy of the input kept before (a product read it) is reused: the
    // pass then only activates.
    let x = gpu.upload(&values[..1030], [10, 103]).unwrap();
    let kept_before = gpu.to_half(&x).unwrap();
    let (before, copies) = (dispatches(), gpu.kept_operand_copies());
    let (y, half) = gpu.activation_keeping_half(&x, Activation::Gelu).unwrap();
    assert_eq!(dispatches() - before, 1);
    assert_eq!(gpu.kept_operand_copies(), copies, "no second copy made");
    let want_y = gpu.activation(&x, Activation::Gelu).unwrap();
    assert_eq!(bits(&y), bits(&want_y));
    let read = |h| bits(&gpu.half_to_f32(h).unwrap());
    assert_eq!(read(&half), read(&kept_before));
}

/// Values at f16's edges (ties, overflow, subnormals, NaN) and a spread of
/// ordinary ones.
fn f16_edge_cases() -> Vec<f32> {
    let p = |e: i32| 2f32.powi(e);
    let mut a = vec![
        0.0,
        -0.0,
        1.0,
        1.0 + p(-11),       // a tie: down to 1 (even)
        1.0 + 3.0 * p(-11), // a tie: up to 1 + 2^-9 (even)
        1.0 + p(-11) + p(-20),
        65504.0,
        65519.0,
        65520.0, // halfway to 65536: infinity
        -1e6,
        f32::INFINITY,
        f32::NAN,
        p(-14),          // the smallest normal
        p(-14) - p(-25), // rounds up to it
        p(-24),          // the smallest subnormal
        p(-25),          // a tie: down to 0
        1.5 * p(-25),    // up to 2^-24
        3.0 * p(-25),    // a tie between 2^-24 and 2^-23: 2^-23
        -5.0 * p(-25),   // a tie: -2^-22 (even)
        1e-7,
        f32::MIN_POSITIVE,
        std::f32::consts::PI,
        -0.1,
    ];
    // And a spread of ordinary values.
    a.extend((0..2000).map(|i| ((i as f32) * 0.7377).sin() * 10f32.powi(i % 9 - 5)));
    a
}

/// Under f16 a dense layer keeps its input and output for the backward
/// pass in f16 only: the f32 tensors go back to the pool, and what the
/// layer holds is half their bytes (plus the f16 copies every f16 product
/// makes). Its gradients are the CPU's at f16, and its backward pass
/// launches no kernel for the kept input: at a batch that is not a
/// multiple of 4 the weight gradient finds the padded copy the forward
/// product made of the input, though the layer kept the unpadded halves.
#[test]
fn f16_dense_layers_keep_their_activations_in_half_the_bytes() {
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    let Ok(f16) = gpu.with_precision(Precision::F16) else {
        return assert_f16_refused(&gpu);
    };
    let width = 64;
    let pool = |bytes: usize| bytes.div_ceil(256) as u64 * 256;
    // Untuned: tuning would time (and copy) operands of its own. `blocked`
    // reads every size as it is; `padded` pads a batch of 1022 to 1024.
    for (batch, kernel) in [(1024, MatmulKernel::Blocked), (1022, MatmulKernel::Padded)] {
        let rng = &mut ChaCha8Rng::seed_from_u64(9);
        let mut values = || -> Vec<f32> {
            (0..batch * width)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect()
        };
        let (x, dy) = (values(), values());
        let shape = [batch, width];
        let run32 = dense_step(&gpu.with_matmul_kernel(kernel), &x, &dy, shape);
        let run16 = dense_step(&f16.with_matmul_kernel(kernel), &x, &dy, shape);
        // The padded variant's copy of the input, at each precision.
        let padded = |bytes_per_value| match kernel {
            MatmulKernel::Padded => pool(batch.div_ceil(4) * 4 * width * bytes_per_value),
            _ => 0,
        };
        let (f32_values, f16_values) = (pool(batch * width * 4), pool(batch * width * 2));
        assert_eq!(
            run32.kept,
            2 * f32_values + padded(4),
            "f32, batch {batch}: the input and the output"
        );
        let weight_copy = pool(width * width * 2);
        assert_eq!(
            run16.kept,
            2 * f16_values + weight_copy + padded(2),
            "f16, batch {batch}: the halves of both and the weight's copy"
        );
        // Backward, f16 casts the output gradient, which f32 reads as it is
        // unless it pads it (in the same pass as the cast); the kept input
        // needs nothing.
        let dz_cast = u64::from(kernel != MatmulKernel::Padded);
        assert_eq!(
            run16.backward_dispatches,
            run32.backward_dispatches + dz_cast,
            "batch {batch}"
        );
        let cpu16 = CpuDevice::new().with_precision(Precision::F16).unwrap();
        let want = dense_step(&cpu16, &x, &dy, shape).grads;
        for (what, (g, w)) in ["dx", "dW", "db"].iter().zip(run16.grads.iter().zip(&want)) {
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "batch {batch}, {what}[{i}]: {a} against {b}"
                );
            }
        }
    }
}

/// Under f16 a convolution keeps its input, and the activation after it
/// its output, in f16: half the bytes of f32 (the convolution itself runs
/// in f32, so it makes no copy of its weights). The backward pass reads
/// the input back through one more dispatch, and its gradients are the
/// CPU's at f16, which read the same rounded values.
#[test]
fn f16_convolutions_and_activations_keep_their_tensors_in_half_the_bytes() {
    use wgtrain::device::{Activation, ConvStep};
    use wgtrain::nn::{Act, Conv2d, Layer};
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    // Untuned: the first pass would time (and launch) the kernels.
    let gpu = gpu.with_conv_kernel(gpu.conv_kernel());
    let Ok(f16) = gpu.with_precision(Precision::F16) else {
        return assert_f16_refused(&gpu);
    };
    let (n, ci, co, side) = (8, 3, 8, 12);
    let x_shape = [n, ci, side, side];
    let y_shape = [n, co, side, side];
    let rng = &mut ChaCha8Rng::seed_from_u64(4);
    let mut values =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (x, dy) = (values(n * ci * side * side), values(n * co * side * side));
    fn run<D: Device + Counted>(
        dev: &D,
        x: &[f32],
        dy: &[f32],
        xs: [usize; 4],
        ys: [usize; 4],
    ) -> KeptStep {
        run_first(dev, x, dy, xs, ys, false)
    }
    // `first`: the convolution is told its input outlives the step.
    fn run_first<D: Device + Counted>(
        dev: &D,
        x: &[f32],
        dy: &[f32],
        xs: [usize; 4],
        ys: [usize; 4],
        first: bool,
    ) -> KeptStep {
        let mut seed = ChaCha8Rng::seed_from_u64(2);
        let mut conv = Conv2d::new(
            dev,
            "c",
            (xs[1], ys[1]),
            3,
            ConvStep::padded(1),
            Activation::Relu,
            &mut seed,
        )
        .unwrap();
        conv.set_input_outlives_step(first);
        // ReLU: its derivative reads only the sign of the kept output.
        let mut act = Act::new(Activation::Relu);
        kept_step(dev, &mut [&mut conv, &mut act], (x, &xs), (dy, &ys))
    }
    let run32 = run(&gpu, &x, &dy, x_shape, y_shape);
    let run16 = run(&f16, &x, &dy, x_shape, y_shape);
    let pool = |bytes: usize| bytes.div_ceil(256) as u64 * 256;
    let values_of = |shape: [usize; 4], bytes: usize| pool(shape.iter().product::<usize>() * bytes);
    assert_eq!(run32.kept, values_of(x_shape, 4) + values_of(y_shape, 4));
    assert_eq!(run16.kept, values_of(x_shape, 2) + values_of(y_shape, 2));
    assert_eq!(
        run16.forward_dispatches,
        run32.forward_dispatches + 1,
        "the input to f16 (the activation writes its halves in its own pass)"
    );
    assert_eq!(
        run16.backward_dispatches,
        run32.backward_dispatches + 1,
        "the input back to f32"
    );
    let cpu16 = CpuDevice::new().with_precision(Precision::F16).unwrap();
    let want = run(&cpu16, &x, &dy, x_shape, y_shape).grads;
    for (what, (g, w)) in ["dx", "dW", "db"].iter().zip(run16.grads.iter().zip(&want)) {
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{what}[{i}]: {a} against {b}"
            );
        }
    }
    // The weight gradient read the input rounded to f16.
    let cpu32 = run(&CpuDevice::new(), &x, &dy, x_shape, y_shape).grads;
    assert_ne!(want[1], cpu32[1]);
    // A first layer keeps the model's input as it is: the kept bytes of
    // the input are the caller's (here dropped after the forward pass,
    // so counted), and the backward pass reads it with no decode.
    let first16 = run_first(&f16, &x, &dy, x_shape, y_shape, true);
    assert_eq!(first16.kept, values_of(x_shape, 4) + values_of(y_shape, 2));
    assert_eq!(first16.backward_dispatches, run32.backward_dispatches);
    assert_eq!(first16.forward_dispatches, run32.forward_dispatches);
}

/// Under f16 the recurrent layers keep their inputs, states, cells and
/// gates in f16: exactly half the bytes of each, and the weight's f16 copy
/// is the one new tensor. Their gradients are close to the CPU's at f16
/// (which rounds the same way, though a last-bit difference in a tanh or
/// sigmoid can round to the neighbouring half), and within f16's rounding
/// of the f32 ones.
#[test]
fn f16_recurrent_layers_keep_their_steps_in_half_the_bytes() {
    use wgtrain::device::gpu::tune::RnnVariant;
    use wgtrain::nn::{Gru, Layer, Lstm, Rnn};
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    // Untuned: tuning would time (and keep copies of) the operands.
    // Poisoned: no value left unwritten can pass for a right one.
    let gpu = gpu
        .with_poisoned_allocations()
        .with_matmul_kernel(MatmulKernel::Blocked)
        .with_rnn_kernel(RnnVariant::Fused);
    let Ok(f16) = gpu.with_precision(Precision::F16) else {
        return assert_f16_refused(&gpu);
    };
    let (t, b, i, h) = (4, 8, 12, 16);
    let rng = &mut ChaCha8Rng::seed_from_u64(5);
    let mut values =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (x, dy) = (values(t * b * i), values(t * b * h));
    // What each layer keeps per step, in values, beside h0 (and c0):
    // the inputs, the states, then the LSTM's cells and gates or the GRU's
    // gates (four blocks each).
    let kinds: [(&str, usize, Vec<usize>); 3] = [
        ("rnn", 1, vec![t * b * i, t * b * h]),
        (
            "lstm",
            4,
            vec![t * b * i, t * b * h, t * b * h, 4 * t * b * h],
        ),
        ("gru", 3, vec![t * b * i, t * b * h, 4 * t * b * h]),
    ];
    fn step<D: Device + Counted>(
        dev: &D,
        kind: &str,
        (t, b, i, h): (usize, usize, usize, usize),
        x: &[f32],
        dy: &[f32],
    ) -> KeptStep {
        let seed = &mut ChaCha8Rng::seed_from_u64(3);
        let mut layer: Box<dyn Layer<D>> = match kind {
            "rnn" => Box::new(Rnn::new(dev, "r", i, h, seed).unwrap()),
            "lstm" => Box::new(Lstm::new(dev, "r", i, h, seed).unwrap()),
            _ => Box::new(Gru::new(dev, "r", i, h, seed).unwrap()),
        };
        kept_step(
            dev,
            &mut [layer.as_mut()],
            (x, &[t, b, i]),
            (dy, &[t, b, h]),
        )
    }
    let pool = |bytes: usize| bytes.div_ceil(256) as u64 * 256;
    let dims = (t, b, i, h);
    let cpu32 = CpuDevice::new();
    let cpu16 = CpuDevice::new().with_precision(Precision::F16).unwrap();
    for (kind, gates, kept) in kinds {
        let run32 = step(&gpu, kind, dims, &x, &dy);
        let run16 = step(&f16, kind, dims, &x, &dy);
        let halved: u64 = kept.iter().map(|&n| pool(4 * n) - pool(2 * n)).sum();
        let weight_copy = pool(i * gates * h * 2);
        assert_eq!(
            run16.kept + halved,
            run32.kept + weight_copy,
            "{kind}: each kept tensor in half the bytes, and W's f16 copy"
        );
        let want = step(&cpu16, kind, dims, &x, &dy).grads;
        let exact = step(&cpu32, kind, dims, &x, &dy).grads;
        for (at, ((g, w), e)) in run16.grads.iter().zip(&want).zip(&exact).enumerate() {
            for (j, ((a, b), e)) in g.iter().zip(w).zip(e).enumerate() {
                // One kept value a half apart moves a gradient by about
                // 2^-11 of one term: within 1e-3, where a wrong tensor
                // read back is off by O(1).
                assert!(
                    (a - b).abs() <= 1e-3 * (1.0 + b.abs()),
                    "{kind}, gradient {at} [{j}]: {a} against the CPU's {b}"
                );
                assert!(
                    (b - e).abs() <= 5e-3 * (1.0 + e.abs()),
                    "{kind}, gradient {at} [{j}]: f16 {b} against f32 {e}"
                );
            }
        }
        assert_ne!(want, exact, "{kind}: f16 changed the gradients");
    }
}

/// A model tells its first layer that its input outlives the step, so an
/// f16 CNN keeps no copy of the images it is given: after a training
/// forward pass it holds the activation layer's halves, the dense layer's
/// half input and its weight's f16 copy, and nothing for the input.
#[test]
fn an_f16_model_keeps_no_copy_of_its_input() {
    use wgtrain::models::{parse_layers, FeatureShape, Model, ModelSpec, Output};
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    // Untuned (the first pass would time the kernels, and copy operands).
    let gpu = gpu
        .with_conv_kernel(gpu.conv_kernel())
        .with_matmul_kernel(MatmulKernel::Blocked);
    let Ok(f16) = gpu.with_precision(Precision::F16) else {
        return assert_f16_refused(&gpu);
    };
    let (n, side, channels, classes) = (16, 8, 4, 12);
    let input = FeatureShape::Image {
        channels: 1,
        height: side,
        width: side,
    };
    let layers = parse_layers(&format!("conv2d:{channels}:3:1:1,relu,flatten")).unwrap();
    let spec = ModelSpec::new(&layers, input, Output::Classes { classes }).unwrap();
    let mut model = Model::new(&f16, &spec, 1).unwrap();
    let x: Vec<f32> = (0..n * side * side)
        .map(|i| (i % 13) as f32 - 6.0)
        .collect();
    let xt = f16.upload(&x, [n, 1, side, side]).unwrap();
    f16.synchronize().unwrap();
    let before = f16.stats().live_bytes;
    drop(model.forward(&f16, &xt, true).unwrap());
    f16.synchronize().unwrap();
    let kept = f16.stats().live_bytes - before;
    let pool = |bytes: usize| bytes.div_ceil(256) as u64 * 256;
    let features = channels * side * side;
    let halves = pool(n * features * 2);
    // The activation's output and the dense layer's input (the same values,
    // two copies: one stored as images' rows, one as the product reads it),
    // and the dense weight's f16 copy.
    assert_eq!(kept, 2 * halves + pool(features * classes * 2));
}

/// A tensor kept in f16 keeps its values: neither an in-place update of
/// the tensor it came from nor a padded copy of the updated values (which
/// carries that tensor's loan) reaches a padded product of the halves.
#[test]
fn a_half_kept_before_an_update_keeps_its_values() {
    let Some(gpu) = common::gpu() else { return };
    let Ok(f16) = gpu.with_precision(Precision::F16) else {
        return assert_f16_refused(&gpu);
    };
    // 7 rows: the padded kernel pads every operand to 8.
    let f16 = f16.with_matmul_kernel(MatmulKernel::Padded);
    let rng = &mut ChaCha8Rng::seed_from_u64(6);
    let mut values =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (w0, x) = (values(7 * 5), values(5 * 3));
    let mut w = f16.upload(&w0, [7, 5]).unwrap();
    let kept = f16.to_half(&w).unwrap();
    let xt = f16.upload(&x, [5, 3]).unwrap();
    let ones = f16.full([7, 5], 1.0).unwrap();
    let one = f16.full([1], 1.0).unwrap();
    f16.sgd_update(&mut w, &ones, &one, 0.5, 0.0).unwrap();
    f16.matmul(&w, &xt, None, MatmulSpec::NN).unwrap();
    let got = f16
        .download(&f16.matmul_half(&kept, &xt, None, MatmulSpec::NN).unwrap())
        .unwrap();
    let cpu16 = CpuDevice::new().with_precision(Precision::F16).unwrap();
    let want = cpu16
        .download(
            &cpu16
                .matmul_half(
                    &cpu16.to_half(&cpu16.upload(&w0, [7, 5]).unwrap()).unwrap(),
                    &cpu16.upload(&x, [5, 3]).unwrap(),
                    None,
                    MatmulSpec::NN,
                )
                .unwrap(),
        )
        .unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "[{i}] {g} against {w}"
        );
    }
}

/// What a training step through some layers leaves: the bytes they keep
/// between the forward and the backward pass (the input and output
/// themselves dropped), the dispatches of the backward pass, and the
/// gradients (the input's, then the layers' own).
struct KeptStep {
    kept: u64,
    forward_dispatches: u64,
    backward_dispatches: u64,
    grads: Vec<Vec<f32>>,
}

/// One training step of `layers` (in order) on input `x` and output
/// gradient `dy`.
fn kept_step<D: Device + Counted>(
    dev: &D,
    layers: &mut [&mut dyn wgtrain::nn::Layer<D>],
    (x, x_shape): (&[f32], &[usize]),
    (dy, dy_shape): (&[f32], &[usize]),
) -> KeptStep {
    dev.synchronize().unwrap();
    let before = dev.counts();
    let mut t = dev.upload(x, x_shape).unwrap();
    for layer in layers.iter_mut() {
        t = layer.forward(dev, &t, true).unwrap();
    }
    drop(t);
    dev.synchronize().unwrap();
    let after_forward = dev.counts();
    let mut d = dev.upload(dy, dy_shape).unwrap();
    for layer in layers.iter_mut().rev() {
        d = layer.backward(dev, &d, true).unwrap().unwrap();
    }
    let after_backward = dev.counts();
    let mut grads = vec![dev.download(&d).unwrap()];
    for layer in layers.iter() {
        for p in layer.params() {
            grads.push(dev.download(p.grad.as_ref().unwrap()).unwrap());
        }
    }
    // (dy is uploaded after the count of kept bytes is taken.)
    KeptStep {
        kept: after_forward.0.saturating_sub(before.0),
        forward_dispatches: after_forward.1 - before.1,
        backward_dispatches: after_backward.1 - after_forward.1,
        grads,
    }
}

fn dense_step<D: Device + Counted>(dev: &D, x: &[f32], dy: &[f32], shape: [usize; 2]) -> KeptStep {
    use wgtrain::device::Activation;
    use wgtrain::nn::Dense;
    let mut seed = ChaCha8Rng::seed_from_u64(1);
    // ReLU: its derivative reads only the sign of the kept output, so
    // last-bit differences between the devices' products, which can round
    // to different halves, do not reach the gradients.
    let mut layer = Dense::new(dev, "d", shape[1], shape[1], Activation::Relu, &mut seed).unwrap();
    kept_step(dev, &mut [&mut layer], (x, &shape), (dy, &shape))
}

/// A device's bytes on loan and dispatches so far, for the kept-tensor
/// tests above (the CPU's are not counted: 0).
trait Counted {
    fn counts(&self) -> (u64, u64);
}

impl Counted for GpuDevice {
    fn counts(&self) -> (u64, u64) {
        let s = self.stats();
        (s.live_bytes, s.dispatches)
    }
}

impl Counted for CpuDevice {
    fn counts(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// What f16 operands cost in accuracy, stated in `wgtrain::device::precision`:
/// every output within (2^-10 + 2^-22) · Σ|a||b| of the f32 product (plus
/// f32 summation error), for normal operands; and rounding did happen (the
/// results are not the f32 ones).
#[test]
fn f16_products_stay_within_the_stated_bound() {
    let Some(gpu) = common::gpu() else { return };
    let Ok(gpu) = gpu.with_precision(Precision::F16) else {
        return assert_f16_refused(&gpu);
    };
    let (m, k, n) = (37, 300, 21);
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i as f32) * 0.391).sin() * 3.0)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i as f32) * 0.173).cos() * 0.01)
        .collect();
    let exact = |x: &[f32], y: &[f32]| nn_product(&CpuDevice::new(), x, y, (m, k, n));
    let want = exact(&a, &b);
    let abs_a: Vec<f32> = a.iter().map(|x| x.abs()).collect();
    let abs_b: Vec<f32> = b.iter().map(|x| x.abs()).collect();
    let magnitude = exact(&abs_a, &abs_b);
    let got = nn_product(&gpu, &a, &b, (m, k, n));
    let mut differs = 0;
    for i in 0..m * n {
        let err = (got[i] - want[i]).abs();
        // The rounding (operands here are normal), then the worst case of
        // recursive f32 summation on each side, 2·(k + 2)·2⁻²⁴ of Σ|a||b|
        // (`reference::sum_tolerance`), and the f32 rounding of that sum.
        let rounding = (2f32.powi(-10) + 2f32.powi(-22)) * magnitude[i];
        let summation = 2.0 * (k + 2) as f32 * 2f32.powi(-24) * magnitude[i];
        let bound = rounding + summation;
        assert!(
            err <= bound,
            "output {i}: {} vs {}, bound {bound:e}",
            got[i],
            want[i]
        );
        differs += usize::from(err > 1e-7 * magnitude[i]);
    }
    assert!(
        differs > m * n / 2,
        "only {differs} outputs differ from f32"
    );
}

/// Where the adapter has no f16, asking for it is a clear error.
fn assert_f16_refused(gpu: &wgtrain::GpuDevice) {
    let e = gpu.with_precision(Precision::F16).err().expect("refused");
    assert!(e.to_string().contains("SHADER_F16"), "{e}");
}

/// The device keeps the copies it makes of product operands (f16 casts,
/// zero-padded copies) for the next product that reads the same tensor:
/// every in-place update must drop them, so that a product after an update
/// reads the new values. Each optimizer's update, one tensor and many
/// (grouped or not), then the same product, against the CPU's.
#[test]
fn products_read_parameters_updated_in_place() {
    let Some(gpu) = common::gpu() else { return };
    let cpu = CpuDevice::new();
    let rng = &mut ChaCha8Rng::seed_from_u64(9);
    let mut values =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
    // 8×5 · 5×3: sizes off the multiples of 4, so the padded kernel copies.
    let (x, w, g) = (values(40), values(15), values(15));
    let f16 = gpu
        .with_precision(Precision::F16)
        .expect("llvmpipe and desktop GPUs have SHADER_F16");
    let cpu16 = cpu.with_precision(Precision::F16).unwrap();
    let hp = AdamStep {
        lr: 0.5,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled_decay: 0.0,
        step: 1,
    };
    type Update<D> = fn(
        &D,
        &mut <D as Device>::Tensor,
        &<D as Device>::Tensor,
        &<D as Device>::Tensor,
        &AdamStep,
    );
    fn updates<D: Device>() -> Vec<(&'static str, Update<D>)> {
        vec![
            ("sgd", |d, w, g, s, _| {
                d.sgd_update(w, g, s, 0.5, 0.0).unwrap()
            }),
            ("momentum", |d, w, g, s, _| {
                let mut v = d.zeros(w.shape().clone()).unwrap();
                d.momentum_update(w, &mut v, g, s, 0.5, 0.9, 0.0).unwrap()
            }),
            ("adam", |d, w, g, s, hp| {
                let (mut m, mut v) = (
                    d.zeros(w.shape().clone()).unwrap(),
                    d.zeros(w.shape().clone()).unwrap(),
                );
                d.adam_update(w, &mut m, &mut v, g, s, hp).unwrap()
            }),
            ("sgd (many)", |d, w, g, s, _| {
                let mut b = d.zeros([3]).unwrap();
                let gb = d.full([3], 1.0).unwrap();
                d.sgd_update_many(&mut [w, &mut b], &[g, &gb], s, 0.5, &[0.0, 0.0])
                    .unwrap()
            }),
            ("momentum (many)", |d, w, g, s, _| {
                let mut b = d.zeros([3]).unwrap();
                let gb = d.full([3], 1.0).unwrap();
                let (mut v1, mut v2) = (d.zeros(w.shape().clone()).unwrap(), d.zeros([3]).unwrap());
                d.momentum_update_many(
                    &mut [w, &mut b],
                    &mut [&mut v1, &mut v2],
                    &[g, &gb],
                    s,
                    0.5,
                    0.9,
                    &[0.0, 0.0],
                )
                .unwrap()
            }),
            ("adam (many)", |d, w, g, s, hp| {
                let mut b = d.zeros([3]).unwrap();
                let gb = d.full([3], 1.0).unwrap();
                let z = |n: &Shape| d.zeros(n.clone()).unwrap();
                let (mut m1, mut v1) = (z(w.shape()), z(w.shape()));
                let (mut m2, mut v2) = (d.zeros([3]).unwrap(), d.zeros([3]).unwrap());
                d.adam_update_many(
                    &mut [w, &mut b],
                    &mut [&mut m1, &mut m2],
                    &mut [&mut v1, &mut v2],
                    &[g, &gb],
                    s,
                    &[*hp, *hp],
                )
                .unwrap()
            }),
        ]
    }
    for (gpu_dev, cpu_dev, what) in [
        (
            gpu.with_matmul_kernel(MatmulKernel::Padded),
            cpu.clone(),
            "f32, padded",
        ),
        (f16.clone(), cpu16.clone(), "f16"),
    ] {
        for grouped in [false, true] {
            let gpu_dev = gpu_dev.with_grouped_updates(grouped);
            for ((name, on_gpu), (_, on_cpu)) in updates::<GpuDevice>()
                .into_iter()
                .zip(updates::<CpuDevice>())
            {
                let run_gpu = {
                    let d = &gpu_dev;
                    let xt = d.upload(&x, [8, 5]).unwrap();
                    let mut wt = d.upload(&w, [5, 3]).unwrap();
                    let before = d.matmul(&xt, &wt, None, MatmulSpec::NN).unwrap();
                    on_gpu(
                        d,
                        &mut wt,
                        &d.upload(&g, [5, 3]).unwrap(),
                        &d.full([1], 1.0).unwrap(),
                        &hp,
                    );
                    let after = d.matmul(&xt, &wt, None, MatmulSpec::NN).unwrap();
                    (d.download(&before).unwrap(), d.download(&after).unwrap())
                };
                let d = &cpu_dev;
                let xt = d.upload(&x, [8, 5]).unwrap();
                let mut wt = d.upload(&w, [5, 3]).unwrap();
                on_cpu(
                    d,
                    &mut wt,
                    &d.upload(&g, [5, 3]).unwrap(),
                    &d.full([1], 1.0).unwrap(),
                    &hp,
                );
                let want = d
                    .download(&d.matmul(&xt, &wt, None, MatmulSpec::NN).unwrap())
                    .unwrap();
                for (i, (got, want)) in run_gpu.1.iter().zip(&want).enumerate() {
                    assert!(
                        (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                        "{what}, {name}, grouped {grouped}: [{i}] {got} after the update, {want} on the CPU (before it: {})",
                        run_gpu.0[i]
                    );
                }
            }
        }
    }
}

/// Under f16 a product's two casts are kept and read again by a second
/// product of the same tensors; an update drops them.
#[test]
fn operand_copies_are_made_once_and_dropped_by_an_update() {
    // A device of its own: other tests' products would add their copies.
    let Some(gpu) = common::fresh_gpu() else {
        return;
    };
    let f16 = gpu
        .with_precision(Precision::F16)
        .expect("llvmpipe and desktop GPUs have SHADER_F16");
    let mut w = f16.full([16, 8], 0.5).unwrap();
    let x = f16.full([8, 16], 0.25).unwrap();
    let g = f16.zeros([16, 8]).unwrap();
    let one = f16.full([1], 1.0).unwrap();
    assert_eq!(f16.kept_operand_copies(), 0);
    let first = f16.matmul(&x, &w, None, MatmulSpec::NN).unwrap();
    assert_eq!(f16.kept_operand_copies(), 2);
    let again = f16.matmul(&x, &w, None, MatmulSpec::NN).unwrap();
    assert_eq!(
        f16.kept_operand_copies(),
        2,
        "the second product copied again"
    );
    assert_eq!(f16.download(&first).unwrap(), f16.download(&again).unwrap());
    f16.sgd_update(&mut w, &g, &one, 0.1, 0.0).unwrap();
    assert_eq!(f16.kept_operand_copies(), 0);
    // Evaluation updates nothing: beyond 64 copies the oldest go.
    for i in 0..80 {
        let x = f16.full([8, 16], i as f32).unwrap();
        f16.matmul(&x, &w, None, MatmulSpec::NN).unwrap();
    }
    assert_eq!(f16.kept_operand_copies(), 64, "80 inputs and the weight");
}

/// One tensor read by products that want it differently (f16 padded, f16
/// as it is, f32 padded): each gets its own copy, and every product equals
/// the CPU's at its precision.
#[test]
fn operand_copies_are_kept_apart_by_layout_and_precision() {
    let Some(gpu) = common::gpu() else { return };
    let f16 = gpu
        .with_precision(Precision::F16)
        .expect("llvmpipe and desktop GPUs have SHADER_F16");
    let rng = &mut ChaCha8Rng::seed_from_u64(4);
    let mut values =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (x, w) = (values(7 * 5), values(5 * 3));
    let cpu = CpuDevice::new();
    let cpu16 = cpu.with_precision(Precision::F16).unwrap();
    let want = |d: &CpuDevice| {
        let p = d.matmul(
            &d.upload(&x, [7, 5]).unwrap(),
            &d.upload(&w, [5, 3]).unwrap(),
            None,
            MatmulSpec::NN,
        );
        d.download(&p.unwrap()).unwrap()
    };
    let (want32, want16) = (want(&cpu), want(&cpu16));
    // The same two tensors through every device, in turn.
    let (xt, wt) = (
        gpu.upload(&x, [7, 5]).unwrap(),
        gpu.upload(&w, [5, 3]).unwrap(),
    );
    for (dev, want, what) in [
        (
            f16.with_matmul_kernel(MatmulKernel::Padded),
            &want16,
            "f16 padded",
        ),
        (
            f16.with_matmul_kernel(MatmulKernel::Blocked),
            &want16,
            "f16",
        ),
        (
            gpu.with_matmul_kernel(MatmulKernel::Padded),
            &want32,
            "f32 padded",
        ),
        (
            f16.with_matmul_kernel(MatmulKernel::Padded),
            &want16,
            "f16 padded again",
        ),
    ] {
        let got = dev
            .download(&dev.matmul(&xt, &wt, None, MatmulSpec::NN).unwrap())
            .unwrap();
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{what}: [{i}] {g} against {w}"
            );
        }
    }
}
