//! Times an optimizer step's two passes over a model's tensors on the
//! default adapter, one dispatch per tensor against one for them all
//! (shaders/optim_many.wgsl): the squared gradient norm that clipping
//! takes (`reduce` per tensor and the additions, against
//! `sum_squares_many`) and Adam's update (`adam_update` per tensor, against
//! `adam_update_many` with the updates grouped). The tensors are those of the Austen `rnn` preset
//! (vocabulary 75, hidden 128) and of T3's MLP (784-256-128-10). Each
//! figure is the median of 9 runs of 20 steps, the device idle after each,
//! the two ways alternating. `cargo run --release --example optim_timing`

use std::time::Instant;

use wgtrain::device::gpu::GpuTensor;
use wgtrain::device::{AdamStep, Reduce};
use wgtrain::{Device, GpuDevice};

const STEPS: usize = 20;

/// Milliseconds per step of `f`, the median of 9 runs of [`STEPS`] steps.
fn median_ms(dev: &GpuDevice, f: &mut dyn FnMut() -> wgtrain::Result<()>) -> wgtrain::Result<f64> {
    let mut ms = Vec::new();
    for _ in 0..9 {
        let t = Instant::now();
        for _ in 0..STEPS {
            f()?;
        }
        dev.synchronize()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3 / STEPS as f64);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms[4])
}

fn main() -> wgtrain::Result<()> {
    let dev = GpuDevice::new()?;
    // Grouped whatever the adapter's default (software adapters update one
    // tensor per dispatch).
    let grouped = dev.with_grouped_updates(true);
    println!("adapter: {}", dev.adapter_info().name);
    let models: [(&str, Vec<Vec<usize>>); 2] = [
        (
            "austen rnn",
            vec![
                vec![75, 128],
                vec![128, 128],
                vec![128],
                vec![128, 75],
                vec![75],
            ],
        ),
        (
            "T3 mlp",
            vec![
                vec![784, 256],
                vec![256],
                vec![256, 128],
                vec![128],
                vec![128, 10],
                vec![10],
            ],
        ),
    ];
    let hp = AdamStep {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled_decay: 0.0,
        step: 1,
    };
    println!("model        pass                 per tensor ms   one dispatch ms");
    for (name, shapes) in models {
        let make = |v: f32| -> wgtrain::Result<Vec<GpuTensor>> {
            shapes.iter().map(|s| dev.full(s.clone(), v)).collect()
        };
        let (mut ps, mut ms, mut vs, gs) = (make(0.5)?, make(0.0)?, make(0.0)?, make(0.01)?);
        let grads: Vec<&GpuTensor> = gs.iter().collect();
        let scale = dev.full([1], 1.0)?;
        let hps = vec![hp; shapes.len()];
        let mut norm_each = || -> wgtrain::Result<()> {
            let mut total = dev.reduce(grads[0], Reduce::SumSquares)?;
            for g in &grads[1..] {
                total = dev.add(&total, &dev.reduce(g, Reduce::SumSquares)?)?;
            }
            dev.clip_factor(&total, 5.0).map(drop)
        };
        let mut norm_many = || -> wgtrain::Result<()> {
            dev.clip_factor(&dev.sum_squares_many(&grads)?, 5.0)
                .map(drop)
        };
        let mut each = Vec::new();
        let mut many = Vec::new();
        for _ in 0..2 {
            each.push(median_ms(&dev, &mut norm_each)?);
            many.push(median_ms(&dev, &mut norm_many)?);
        }
        println!("{name:<12} clipping norm        {each:>13.3?}   {many:>13.3?}");
        let (mut each, mut many) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            each.push(median_ms(&dev, &mut || {
                for i in 0..ps.len() {
                    dev.adam_update(&mut ps[i], &mut ms[i], &mut vs[i], grads[i], &scale, &hp)?;
                }
                Ok(())
            })?);
            many.push(median_ms(&dev, &mut || {
                let mut p: Vec<&mut GpuTensor> = ps.iter_mut().collect();
                let mut m: Vec<&mut GpuTensor> = ms.iter_mut().collect();
                let mut v: Vec<&mut GpuTensor> = vs.iter_mut().collect();
                grouped.adam_update_many(&mut p, &mut m, &mut v, &grads, &scale, &hps)
            })?);
        }
        println!("{name:<12} adam update          {each:>13.3?}   {many:>13.3?}");
    }
    Ok(())
}
