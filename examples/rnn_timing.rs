//! Times the recurrences at T5's size (32 steps, batch 64, hidden 128): the
//! Elman cell, the LSTM and the GRU, on the default adapter, each way a
//! step can run (`RnnVariant`): one fused dispatch per step, or the step's
//! recurrent product through the matmul kernels (the Elman step finished in
//! the product's epilogue at this size, the gated cells' by a second
//! dispatch), or one dispatch for the whole pass. Forward and
//! backward passes, the ways alternating, four rounds; each figure the
//! median of 5 passes, ending with the device idle.
//! `cargo run --release --example rnn_timing`

use std::time::Instant;

use wgtrain::device::gpu::tune::RnnVariant;
use wgtrain::device::gpu::GpuTensor;
use wgtrain::{Device, GpuDevice};

/// Milliseconds of one call of `f`, the median of 5, the device idle after each.
fn median_ms(dev: &GpuDevice, f: &dyn Fn() -> wgtrain::Result<()>) -> wgtrain::Result<f64> {
    let mut ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        f()?;
        dev.synchronize()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms[2])
}

/// A timed pass.
type Pass<'a> = Box<dyn Fn() -> wgtrain::Result<()> + 'a>;

/// Deterministic values in [-s/2, s/2).
fn values(n: usize, s: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 * s - s / 2.0)
        .collect()
}

/// One cell's forward and backward pass on `dev`, in ms (pipelines and the
/// matmuls' tuning happen in a first, untimed pass).
fn time_cell(
    dev: &GpuDevice,
    cell: &str,
    (t, b, h): (usize, usize, usize),
) -> wgtrain::Result<(f64, f64)> {
    let gates = match cell {
        "lstm" => 4,
        "gru" => 3,
        _ => 1,
    };
    let up = |n: usize, s: f32, shape: &[usize]| -> wgtrain::Result<GpuTensor> {
        dev.upload(&values(n, s), shape.to_vec())
    };
    let xw = up(t * b * gates * h, 1.0, &[t, b, gates * h])?;
    let u = up(h * gates * h, 0.2, &[h, gates * h])?;
    let h0 = up(b * h, 1.0, &[b, h])?;
    let dh = up(t * b * h, 1.0, &[t, b, h])?;
    let (forward, backward): (Pass<'_>, Pass<'_>) = match cell {
        "lstm" => {
            let c0 = up(b * h, 1.0, &[b, h])?;
            let (_, cs, g) = dev.lstm_forward(&xw, &u, &h0, &c0)?;
            let (xw, u2, h0, c0b) = (xw.clone(), u.clone(), h0.clone(), c0.clone());
            (
                Box::new(move || dev.lstm_forward(&xw, &u2, &h0, &c0b).map(drop)),
                Box::new(move || dev.lstm_backward(&g, &cs, &c0, &u, &dh).map(drop)),
            )
        }
        "gru" => {
            let ub = up(gates * h, 0.2, &[gates * h])?;
            let (hs, g) = dev.gru_forward(&xw, &u, &ub, &h0)?;
            let h_prev = hs.clone();
            let (xw, u2, h0) = (xw.clone(), u.clone(), h0.clone());
            (
                Box::new(move || dev.gru_forward(&xw, &u2, &ub, &h0).map(drop)),
                Box::new(move || dev.gru_backward(&g, &h_prev, &u, &dh).map(drop)),
            )
        }
        _ => {
            let hs = dev.rnn_forward(&xw, &u, &h0)?;
            let (xw, u2, h0) = (xw.clone(), u.clone(), h0.clone());
            (
                Box::new(move || dev.rnn_forward(&xw, &u2, &h0).map(drop)),
                Box::new(move || dev.rnn_backward(&hs, &u, &dh).map(drop)),
            )
        }
    };
    forward()?;
    backward()?;
    dev.synchronize()?;
    Ok((median_ms(dev, &*forward)?, median_ms(dev, &*backward)?))
}

fn main() -> wgtrain::Result<()> {
    let base = GpuDevice::new()?;
    println!("adapter: {}", base.adapter_info().name);
    for cell in ["rnn", "lstm", "gru"] {
        for round in 1..=4 {
            for way in RnnVariant::ALL {
                let dev = base.with_rnn_kernel(way);
                let (f, b) = time_cell(&dev, cell, (32, 64, 128))?;
                println!("{cell} round {round} {way:?}: forward {f:.2} ms, backward {b:.2} ms");
            }
        }
    }
    Ok(())
}
