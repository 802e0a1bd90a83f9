//! Layer normalisation on the CPU: one row at a time, two passes (mean,
//! then variance about it), sums in f32 in index order as on the GPU. Batch
//! normalisation: the same per channel of `[N, C, S]`.

use super::CpuTensor;
use crate::device::{channel_geom, same_shape, Tensor};
use crate::error::{Error, Result};

fn check_params(op: &'static str, x: &CpuTensor, params: &[&CpuTensor]) -> Result<usize> {
    let cols = x.shape().row_len();
    if cols == 0 {
        return Err(Error::shape(
            op,
            format!("rows of 0 features in {}", x.shape()),
        ));
    }
    for p in params {
        if p.shape().numel() != cols {
            return Err(Error::shape(
                op,
                format!("a parameter of {} for rows of {cols}", p.shape()),
            ));
        }
    }
    Ok(cols)
}

/// Mean and `1/√(variance + eps)` of one row.
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

pub(super) fn forward(
    x: &CpuTensor,
    gamma: &CpuTensor,
    beta: &CpuTensor,
    eps: f32,
) -> Result<(CpuTensor, CpuTensor)> {
    let cols = check_params("layer_norm", x, &[gamma, beta])?;
    let rows = x.shape().rows();
    let mut y = vec![0.0f32; x.data.len()];
    let mut stats = vec![0.0f32; 2 * rows];
    for (r, (row, out)) in x.data.chunks(cols).zip(y.chunks_mut(cols)).enumerate() {
        let (mean, rstd) = row_stats(row, eps);
        stats[2 * r] = mean;
        stats[2 * r + 1] = rstd;
        for (j, (o, &v)) in out.iter_mut().zip(row).enumerate() {
            *o = (v - mean) * rstd * gamma.data[j] + beta.data[j];
        }
    }
    Ok((
        CpuTensor::new(y, x.shape().clone())?,
        CpuTensor::new(stats, [rows, 2])?,
    ))
}

pub(super) fn backward(
    dy: &CpuTensor,
    x: &CpuTensor,
    stats: &CpuTensor,
    gamma: &CpuTensor,
) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
    same_shape("layer_norm_backward", x.shape(), dy.shape())?;
    let cols = check_params("layer_norm_backward", x, &[gamma])?;
    let rows = x.shape().rows();
    if stats.shape().numel() != 2 * rows {
        return Err(Error::shape(
            "layer_norm_backward",
            format!("statistics {} for {rows} rows", stats.shape()),
        ));
    }
    let n = cols as f32;
    let mut dx = vec![0.0f32; x.data.len()];
    let (mut dgamma, mut dbeta) = (vec![0.0f32; cols], vec![0.0f32; cols]);
    for r in 0..rows {
        let (mean, rstd) = (stats.data[2 * r], stats.data[2 * r + 1]);
        let row = &x.data[r * cols..(r + 1) * cols];
        let g = &dy.data[r * cols..(r + 1) * cols];
        let xhat = |j: usize| (row[j] - mean) * rstd;
        // dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = dy·gamma.
        let (mut m1, mut m2) = (0.0f32, 0.0f32);
        for (j, (&gj, &gamma_j)) in g.iter().zip(gamma.data.iter()).enumerate() {
            let gh = gj * gamma_j;
            m1 += gh;
            m2 += gh * xhat(j);
        }
        let (m1, m2) = (m1 / n, m2 / n);
        for j in 0..cols {
            dx[r * cols + j] = rstd * (g[j] * gamma.data[j] - m1 - xhat(j) * m2);
            dgamma[j] += g[j] * xhat(j);
            dbeta[j] += g[j];
        }
    }
    Ok((
        CpuTensor::new(dx, x.shape().clone())?,
        CpuTensor::new(dgamma, [cols])?,
        CpuTensor::new(dbeta, [cols])?,
    ))
}

/// The values of channel `ch` of `x` viewed as `[n, c, s]`, in index order.
fn channel(
    x: &[f32],
    (n, c, s): (usize, usize, usize),
    ch: usize,
) -> impl Iterator<Item = f32> + '_ {
    (0..n).flat_map(move |i| x[(i * c + ch) * s..(i * c + ch + 1) * s].iter().copied())
}

pub(super) fn channel_stats(x: &CpuTensor) -> Result<CpuTensor> {
    let (n, c, s) = channel_geom("channel_stats", x.shape(), None, &[])?;
    let m = (n * s) as f32;
    let mut out = vec![0.0f32; 2 * c];
    for ch in 0..c {
        let mean = channel(&x.data, (n, c, s), ch).sum::<f32>() / m;
        let var = channel(&x.data, (n, c, s), ch)
            .map(|v| (v - mean) * (v - mean))
            .sum::<f32>()
            / m;
        out[ch] = mean;
        out[c + ch] = var;
    }
    CpuTensor::new(out, [2, c])
}

pub(super) fn batch_norm(
    x: &CpuTensor,
    stats: &CpuTensor,
    gamma: &CpuTensor,
    beta: &CpuTensor,
    eps: f32,
) -> Result<CpuTensor> {
    let (_, c, s) = channel_geom(
        "batch_norm",
        x.shape(),
        Some(stats.shape()),
        &[gamma.shape(), beta.shape()],
    )?;
    let st = &stats.data;
    let y = x
        .data
        .iter()
        .enumerate()
        .map(|(e, &v)| {
            let ch = (e / s) % c;
            let rstd = 1.0 / (st[c + ch] + eps).sqrt();
            (v - st[ch]) * rstd * gamma.data[ch] + beta.data[ch]
        })
        .collect();
    CpuTensor::new(y, x.shape().clone())
}

pub(super) fn batch_norm_backward(
    dy: &CpuTensor,
    x: &CpuTensor,
    stats: &CpuTensor,
    gamma: &CpuTensor,
    eps: f32,
) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
    same_shape("batch_norm_backward", x.shape(), dy.shape())?;
    let (n, c, s) = channel_geom(
        "batch_norm_backward",
        x.shape(),
        Some(stats.shape()),
        &[gamma.shape()],
    )?;
    let st = &stats.data;
    let rstd: Vec<f32> = (0..c).map(|ch| 1.0 / (st[c + ch] + eps).sqrt()).collect();
    let (mut dgamma, mut dbeta) = (vec![0.0f32; c], vec![0.0f32; c]);
    for ch in 0..c {
        for (g, v) in channel(&dy.data, (n, c, s), ch).zip(channel(&x.data, (n, c, s), ch)) {
            dgamma[ch] += g * (v - st[ch]) * rstd[ch];
            dbeta[ch] += g;
        }
    }
    let m = (n * s) as f32;
    let dx = (x.data.iter().zip(dy.data.iter()).enumerate())
        .map(|(e, (&v, &g))| {
            let ch = (e / s) % c;
            let xhat = (v - st[ch]) * rstd[ch];
            gamma.data[ch] * rstd[ch] * (g - dbeta[ch] / m - xhat * dgamma[ch] / m)
        })
        .collect();
    Ok((
        CpuTensor::new(dx, x.shape().clone())?,
        CpuTensor::new(dgamma, [c])?,
        CpuTensor::new(dbeta, [c])?,
    ))
}
