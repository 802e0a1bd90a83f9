//! The benches/WORKLOADS.md workloads under criterion, on the CPU device and (when
//! an adapter exists) the GPU device. `wgtrain bench` runs the same
//! workloads (src/bench/mod.rs) with the medians, min and max benches/WORKLOADS.md asks
//! for; this harness adds criterion's statistics and history.
//!
//! Throughput is reported in criterion's "elements": FLOPs (K1, K2),
//! images (K3), bytes (K4) or samples (T1–T5) per second. Training
//! workloads run a fifth of their steps per iteration to keep `cargo bench`
//! short on software adapters.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgtrain::bench::{workloads, Budget, Prepared};
use wgtrain::{CpuDevice, Device, GpuDevice};

fn bench_device<D: Device + 'static>(c: &mut Criterion, dev: &D, name: &str) {
    for w in workloads().into_iter().filter(|w| !w.on_request) {
        let mut prepared = Prepared::new(dev, &w, Budget::QUICK).expect("workload sets up");
        let work = prepared.run_once().expect("workload runs");
        let mut group = c.benchmark_group(w.id);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3))
            .throughput(Throughput::Elements(work as u64));
        group.bench_function(name, |b| {
            b.iter(|| prepared.run_once().expect("workload runs"))
        });
        group.finish();
    }
}

fn all(c: &mut Criterion) {
    bench_device(c, &CpuDevice::new(), "cpu");
    match GpuDevice::new() {
        Ok(gpu) => bench_device(c, &gpu, "gpu"),
        Err(e) => eprintln!("no GPU device ({e}): GPU benchmarks skipped"),
    }
}

criterion_group!(benches, all);
criterion_main!(benches);
