//! LSTM and GRU recurrences on the CPU: per time step, the recurrent
//! product of the whole batch is one matmul over the concatenated
//! gates, then one pass over the gates. The equations are in
//! `src/nn/gated.rs`; shaders/gated.wgsl computes the same per element.

use ndarray::{s, Array2, ArrayView2};

use super::{from_array2, gemm, math, CpuTensor};
use crate::device::{gated_geom, gru_backward_geom, same_shape, Tensor};
use crate::error::Result;
use crate::tensor::Shape;

/// A `[T,B,N]` tensor as the matrix `[T·B, N]`.
fn rows(x: &CpuTensor, t: usize, b: usize) -> ArrayView2<'_, f32> {
    let n = x.shape().numel() / (t * b).max(1);
    ArrayView2::from_shape((t * b, n), x.data()).expect("sizes checked by the caller")
}

fn seq(a: Array2<f32>, t: usize, b: usize) -> CpuTensor {
    let n = a.ncols();
    let mut r = from_array2(a);
    r.shape = Shape::new([t, b, n]);
    r
}

pub(super) fn lstm_forward(
    xw: &CpuTensor,
    u: &CpuTensor,
    h0: &CpuTensor,
    c0: &CpuTensor,
) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
    let (t, b, h) = gated_geom("lstm_forward", xw.shape(), u.shape(), 4)?;
    same_shape("lstm_forward", h0.shape(), &Shape::new([b, h]))?;
    same_shape("lstm_forward", c0.shape(), &Shape::new([b, h]))?;
    let (xw, um) = (rows(xw, t, b), u.mat());
    let mut hs = Array2::<f32>::zeros((t * b, h));
    let mut cs = Array2::<f32>::zeros((t * b, h));
    let mut gates = Array2::<f32>::zeros((t * b, 4 * h));
    let mut h_prev = h0.mat().to_owned();
    let mut c_prev = c0.mat().to_owned();
    for step in 0..t {
        let r = step * b..(step + 1) * b;
        let mut a = gemm::dot(&h_prev.view(), &um);
        a += &xw.slice(s![r.clone(), ..]);
        for row in 0..b {
            for j in 0..h {
                let i = math::sigmoid(a[[row, j]]);
                let f = math::sigmoid(a[[row, h + j]]);
                let g = math::tanh(a[[row, 2 * h + j]]);
                let o = math::sigmoid(a[[row, 3 * h + j]]);
                let c = f * c_prev[[row, j]] + i * g;
                c_prev[[row, j]] = c;
                h_prev[[row, j]] = o * math::tanh(c);
                a[[row, j]] = i;
                a[[row, h + j]] = f;
                a[[row, 2 * h + j]] = g;
                a[[row, 3 * h + j]] = o;
            }
        }
        hs.slice_mut(s![r.clone(), ..]).assign(&h_prev);
        cs.slice_mut(s![r.clone(), ..]).assign(&c_prev);
        gates.slice_mut(s![r, ..]).assign(&a);
    }
    Ok((seq(hs, t, b), seq(cs, t, b), seq(gates, t, b)))
}

pub(super) fn lstm_backward(
    gates: &CpuTensor,
    c: &CpuTensor,
    c0: &CpuTensor,
    u: &CpuTensor,
    dh: &CpuTensor,
) -> Result<CpuTensor> {
    let (t, b, h) = gated_geom("lstm_backward", gates.shape(), u.shape(), 4)?;
    same_shape("lstm_backward", c.shape(), &Shape::new([t, b, h]))?;
    same_shape("lstm_backward", dh.shape(), &Shape::new([t, b, h]))?;
    same_shape("lstm_backward", c0.shape(), &Shape::new([b, h]))?;
    let (gates, cs, dhs, um) = (rows(gates, t, b), rows(c, t, b), rows(dh, t, b), u.mat());
    let c0 = c0.mat();
    let mut da = Array2::<f32>::zeros((t * b, 4 * h));
    // Gradient reaching h_t from step t+1 (da_{t+1}·Uᵀ), and reaching c_t
    // from c_{t+1} (dc_{t+1}·f_{t+1}); both zero after the last step.
    let mut dh_next = Array2::<f32>::zeros((b, h));
    let mut dc_next = Array2::<f32>::zeros((b, h));
    for step in (0..t).rev() {
        for row in 0..b {
            let n = step * b + row;
            for j in 0..h {
                let (i, f, g, o) = (
                    gates[[n, j]],
                    gates[[n, h + j]],
                    gates[[n, 2 * h + j]],
                    gates[[n, 3 * h + j]],
                );
                let c_prev = if step == 0 {
                    c0[[row, j]]
                } else {
                    cs[[n - b, j]]
                };
                let tc = math::tanh(cs[[n, j]]);
                let dhj = dhs[[n, j]] + dh_next[[row, j]];
                let dc = dhj * o * (1.0 - tc * tc) + dc_next[[row, j]];
                da[[n, j]] = dc * g * i * (1.0 - i);
                da[[n, h + j]] = dc * c_prev * f * (1.0 - f);
                da[[n, 2 * h + j]] = dc * i * (1.0 - g * g);
                da[[n, 3 * h + j]] = dhj * tc * o * (1.0 - o);
                dc_next[[row, j]] = dc * f;
            }
        }
        dh_next = gemm::dot(&da.slice(s![step * b..(step + 1) * b, ..]), &um.t());
    }
    Ok(seq(da, t, b))
}

pub(super) fn gru_forward(
    xw: &CpuTensor,
    u: &CpuTensor,
    ub: &CpuTensor,
    h0: &CpuTensor,
) -> Result<(CpuTensor, CpuTensor)> {
    let (t, b, h) = gated_geom("gru_forward", xw.shape(), u.shape(), 3)?;
    same_shape("gru_forward", h0.shape(), &Shape::new([b, h]))?;
    same_shape("gru_forward", ub.shape(), &Shape::new([3 * h]))?;
    let (xw, um, ub) = (rows(xw, t, b), u.mat(), ub.data());
    let mut hs = Array2::<f32>::zeros((t * b, h));
    let mut gates = Array2::<f32>::zeros((t * b, 4 * h));
    let mut h_prev = h0.mat().to_owned();
    for step in 0..t {
        let hu = gemm::dot(&h_prev.view(), &um);
        for row in 0..b {
            let n = step * b + row;
            for j in 0..h {
                let r = math::sigmoid(xw[[n, j]] + hu[[row, j]] + ub[j]);
                let z = math::sigmoid(xw[[n, h + j]] + hu[[row, h + j]] + ub[h + j]);
                let hn = hu[[row, 2 * h + j]] + ub[2 * h + j];
                let c = math::tanh(xw[[n, 2 * h + j]] + r * hn);
                let new = (1.0 - z) * c + z * h_prev[[row, j]];
                hs[[n, j]] = new;
                gates[[n, j]] = r;
                gates[[n, h + j]] = z;
                gates[[n, 2 * h + j]] = c;
                gates[[n, 3 * h + j]] = hn;
            }
        }
        h_prev.assign(&hs.slice(s![step * b..(step + 1) * b, ..]));
    }
    Ok((seq(hs, t, b), seq(gates, t, b)))
}

pub(super) fn gru_backward(
    gates: &CpuTensor,
    h_prev: &CpuTensor,
    u: &CpuTensor,
    dh: &CpuTensor,
) -> Result<(CpuTensor, CpuTensor)> {
    let (t, b, h) = gru_backward_geom(gates.shape(), h_prev.shape(), u.shape(), dh.shape())?;
    let (gates, hp, dhs, um) = (
        rows(gates, t, b),
        rows(h_prev, t, b),
        rows(dh, t, b),
        u.mat(),
    );
    let mut dxw = Array2::<f32>::zeros((t * b, 3 * h));
    let mut dhu = Array2::<f32>::zeros((t * b, 3 * h));
    // Gradient reaching h_t from step t+1: through its gates (dhu_{t+1}·Uᵀ)
    // and directly (dh_{t+1}·z_{t+1}); zero after the last step.
    let mut dh_next = Array2::<f32>::zeros((b, h));
    let mut direct = Array2::<f32>::zeros((b, h));
    for step in (0..t).rev() {
        for row in 0..b {
            let n = step * b + row;
            for j in 0..h {
                let (r, z, c, hn) = (
                    gates[[n, j]],
                    gates[[n, h + j]],
                    gates[[n, 2 * h + j]],
                    gates[[n, 3 * h + j]],
                );
                let dhj = dhs[[n, j]] + dh_next[[row, j]] + direct[[row, j]];
                let dc = dhj * (1.0 - z) * (1.0 - c * c);
                let dz = dhj * (hp[[n, j]] - c) * z * (1.0 - z);
                let dr = dc * hn * r * (1.0 - r);
                dxw[[n, j]] = dr;
                dxw[[n, h + j]] = dz;
                dxw[[n, 2 * h + j]] = dc;
                dhu[[n, j]] = dr;
                dhu[[n, h + j]] = dz;
                dhu[[n, 2 * h + j]] = dc * r;
                direct[[row, j]] = dhj * z;
            }
        }
        dh_next = gemm::dot(&dhu.slice(s![step * b..(step + 1) * b, ..]), &um.t());
    }
    Ok((seq(dxw, t, b), seq(dhu, t, b)))
}
