//! The naive reference: every op the tests check, as direct loops over host
//! slices with f64 accumulation, in the spirit of llm.c's
//! `matmul_forward_naive`. It is read, not run fast: `CpuDevice` is checked
//! against it on random shapes (`tests/reference.rs`), and the GPU against
//! `CpuDevice`, so three levels of truth stand behind every kernel.
//!
//! Shapes are passed explicitly; tensors are row-major. Functions that sum
//! also return each output's *magnitude*, the sum of the absolute values of
//! its terms, from which a per-element tolerance follows (see
//! [`sum_tolerance`]).

use super::{Activation, AdamStep, ConvStep, MatmulSpec, PoolWindow};

/// f32's unit roundoff, 2⁻²⁴.
pub const UNIT_ROUNDOFF: f64 = 1.0 / 16_777_216.0;

/// How far an f32 sum of `terms` terms may be from the exact sum, given the
/// sum of their absolute values `magnitude`: each of the two implementations
/// compared rounds at most `terms + 2` times (products, additions, a bias),
/// each rounding off by at most `u` of a partial sum bounded by the
/// magnitude; so `2·(terms + 2)·u·magnitude`, the classic worst-case bound
/// for recursive summation, whatever order either side sums in. A missing
/// or repeated term is off by about `magnitude / terms`, far outside it for
/// the sizes tested.
pub fn sum_tolerance(terms: usize, magnitude: f64) -> f64 {
    2.0 * (terms as f64 + 2.0) * UNIT_ROUNDOFF * magnitude + f64::MIN_POSITIVE
}

fn at(m: &[f32], cols: usize, r: usize, c: usize) -> f64 {
    m[r * cols + c] as f64
}

/// `act(op(a)·op(b) + bias)` with `a` stored `[a_rows, a_cols]` and `b`
/// `[b_rows, b_cols]`. Returns `(c [m, n], magnitude [m, n], terms k)`.
pub fn matmul(
    a: &[f32],
    (a_rows, a_cols): (usize, usize),
    b: &[f32],
    (b_rows, b_cols): (usize, usize),
    bias: Option<&[f32]>,
    spec: MatmulSpec,
) -> (Vec<f32>, Vec<f64>, usize) {
    let (m, k) = if spec.trans_a {
        (a_cols, a_rows)
    } else {
        (a_rows, a_cols)
    };
    let n = if spec.trans_b { b_rows } else { b_cols };
    let a_ik = |i: usize, p: usize| {
        if spec.trans_a {
            at(a, a_cols, p, i)
        } else {
            at(a, a_cols, i, p)
        }
    };
    let b_kj = |p: usize, j: usize| {
        if spec.trans_b {
            at(b, b_cols, j, p)
        } else {
            at(b, b_cols, p, j)
        }
    };
    let mut c = vec![0.0; m * n];
    let mut mag = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut g) = (0.0f64, 0.0f64);
            for p in 0..k {
                s += a_ik(i, p) * b_kj(p, j);
                g += (a_ik(i, p) * b_kj(p, j)).abs();
            }
            if let Some(b) = bias {
                s += b[j] as f64;
                g += (b[j] as f64).abs();
            }
            c[i * n + j] = spec.act.apply(s as f32);
            mag[i * n + j] = g;
        }
    }
    (c, mag, k)
}

/// Output side of a convolution moved as `step` says.
fn out_size(size: usize, step: ConvStep, k: usize) -> usize {
    (size + 2 * step.pad - k) / step.stride + 1
}

/// Calls `f(y, x, w)` with the flat indices of every (output, input,
/// weight) triple of a convolution of `x [n, ci, h, w]` by `[co, ci, kh,
/// kw]` weights moved as `step` says: the one loop nest the forward pass and
/// both gradients share. Padding taps are skipped.
fn conv_taps(
    [n, ci, h, w]: [usize; 4],
    [co, kh, kw]: [usize; 3],
    step: ConvStep,
    mut f: impl FnMut(usize, usize, usize),
) {
    let (ho, wo) = (out_size(h, step, kh), out_size(w, step, kw));
    let (s, pad) = (step.stride, step.pad);
    for b in 0..n {
        for o in 0..co {
            for r in 0..ho {
                for c in 0..wo {
                    let yi = ((b * co + o) * ho + r) * wo + c;
                    for i in 0..ci {
                        for u in 0..kh {
                            for v in 0..kw {
                                let (yy, xx) =
                                    ((r * s + u).checked_sub(pad), (c * s + v).checked_sub(pad));
                                let (Some(yy), Some(xx)) = (yy, xx) else {
                                    continue;
                                };
                                if yy >= h || xx >= w {
                                    continue;
                                }
                                let xi = ((b * ci + i) * h + yy) * w + xx;
                                f(yi, xi, ((o * ci + i) * kh + u) * kw + v);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds `term` to `out[at]` and its absolute value to `mag[at]`.
fn accumulate(out: &mut [f64], mag: &mut [f64], at: usize, term: f64) {
    out[at] += term;
    mag[at] += term.abs();
}

/// `x [n, ci, h, w] ⊛ wt [co, ci, kh, kw] + bias`, stride and zero padding
/// from `step`. Returns `(y [n, co, ho, wo], magnitude, terms)`.
pub fn conv2d(
    x: &[f32],
    xs @ [n, ci, h, w]: [usize; 4],
    wt: &[f32],
    ks @ [co, kh, kw]: [usize; 3],
    bias: Option<&[f32]>,
    step: ConvStep,
) -> (Vec<f32>, Vec<f64>, usize) {
    let (ho, wo) = (out_size(h, step, kh), out_size(w, step, kw));
    let (mut y, mut mag) = (
        vec![0.0f64; n * co * ho * wo],
        vec![0.0f64; n * co * ho * wo],
    );
    conv_taps(xs, ks, step, |yi, xi, wi| {
        accumulate(&mut y, &mut mag, yi, x[xi] as f64 * wt[wi] as f64)
    });
    if let Some(bias) = bias {
        for (yi, (y, m)) in y.iter_mut().zip(&mut mag).enumerate() {
            let b = bias[yi / (ho * wo) % co] as f64;
            *y += b;
            *m += b.abs();
        }
    }
    (y.iter().map(|&v| v as f32).collect(), mag, ci * kh * kw)
}

/// The gradient of [`conv2d`] with respect to its input `[n, ci, h, w]`,
/// given `dy [n, co, ho, wo]`: every output position scatters back through
/// the kernel. Returns `(dx, magnitude, terms)`.
pub fn conv2d_input_grad(
    dy: &[f32],
    xs @ [n, ci, h, w]: [usize; 4],
    wt: &[f32],
    ks @ [co, kh, kw]: [usize; 3],
    step: ConvStep,
) -> (Vec<f32>, Vec<f64>, usize) {
    let (mut dx, mut mag) = (vec![0.0f64; n * ci * h * w], vec![0.0f64; n * ci * h * w]);
    conv_taps(xs, ks, step, |yi, xi, wi| {
        accumulate(&mut dx, &mut mag, xi, dy[yi] as f64 * wt[wi] as f64)
    });
    (dx.iter().map(|&v| v as f32).collect(), mag, co * kh * kw)
}

/// The gradient of [`conv2d`] with respect to its weights `[co, ci, kh,
/// kw]`. Returns `(dw, magnitude, terms)`.
pub fn conv2d_weight_grad(
    x: &[f32],
    xs @ [n, ci, h, w]: [usize; 4],
    dy: &[f32],
    ks @ [co, kh, kw]: [usize; 3],
    step: ConvStep,
) -> (Vec<f32>, Vec<f64>, usize) {
    let (ho, wo) = (out_size(h, step, kh), out_size(w, step, kw));
    let (mut dw, mut mag) = (
        vec![0.0f64; co * ci * kh * kw],
        vec![0.0f64; co * ci * kh * kw],
    );
    conv_taps(xs, ks, step, |yi, xi, wi| {
        accumulate(&mut dw, &mut mag, wi, dy[yi] as f64 * x[xi] as f64)
    });
    (dw.iter().map(|&v| v as f32).collect(), mag, n * ho * wo)
}

/// Per-channel sums of `[n, c, h, w]`. Returns `(sums, magnitude, terms)`.
pub fn channel_sum(x: &[f32], [n, c, h, w]: [usize; 4]) -> (Vec<f32>, Vec<f64>, usize) {
    let mut s = vec![0.0f64; c];
    let mut g = vec![0.0f64; c];
    for b in 0..n {
        for ch in 0..c {
            for v in &x[(b * c + ch) * h * w..(b * c + ch + 1) * h * w] {
                s[ch] += *v as f64;
                g[ch] += (*v as f64).abs();
            }
        }
    }
    (s.iter().map(|&v| v as f32).collect(), g, n * h * w)
}

/// Max over the `k×k` windows of `win` (floor at ragged edges), and the
/// flat index into `x` of each maximum (the first on ties). Exact.
pub fn max_pool2d(x: &[f32], [n, c, h, w]: [usize; 4], win: PoolWindow) -> (Vec<f32>, Vec<f32>) {
    let PoolWindow {
        size: k,
        stride: st,
    } = win;
    let (ho, wo) = ((h - k) / st + 1, (w - k) / st + 1);
    let (mut y, mut arg) = (Vec::new(), Vec::new());
    for plane in 0..n * c {
        for r in 0..ho {
            for col in 0..wo {
                let mut best = (f32::NEG_INFINITY, usize::MAX);
                for u in 0..k {
                    for v in 0..k {
                        let i = plane * h * w + (r * st + u) * w + col * st + v;
                        if best.1 == usize::MAX || x[i] > best.0 {
                            best = (x[i], i);
                        }
                    }
                }
                y.push(best.0);
                arg.push(best.1 as f32);
            }
        }
    }
    (y, arg)
}

/// Routes `dy` to the arg-max positions of a pooled input of `numel`
/// elements, in output order; zeros elsewhere. Exact where windows do not
/// overlap (each input gets at most one term).
pub fn max_pool2d_backward(dy: &[f32], argmax: &[f32], numel: usize) -> Vec<f32> {
    let mut dx = vec![0.0; numel];
    for (&g, &i) in dy.iter().zip(argmax) {
        dx[i as usize] += g;
    }
    dx
}

/// `dy · f'(x)` written through the output `y = f(x)`.
pub fn activation_backward(y: &[f32], dy: &[f32], act: Activation) -> Vec<f32> {
    y.iter()
        .zip(dy)
        .map(|(&y, &g)| (g as f64 * act.derivative_from_output(y) as f64) as f32)
        .collect()
}

/// `dy · f'(x)` from the input, each derivative written out in f64 from its
/// definition (not through the devices' `Activation::derivative_at`).
pub fn activation_backward_from_input(x: &[f32], dy: &[f32], act: Activation) -> Vec<f32> {
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let d = |x: f64| match act {
        Activation::Identity => 1.0,
        Activation::Tanh => 1.0 - x.tanh().powi(2),
        Activation::Sigmoid => sigmoid(x) * (1.0 - sigmoid(x)),
        Activation::Relu => f64::from(u8::from(x > 0.0)),
        Activation::LeakyRelu => {
            if x > 0.0 {
                1.0
            } else {
                0.01
            }
        }
        Activation::Softplus => sigmoid(x),
        Activation::Gelu => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            let t = (k * (x + 0.044715 * x.powi(3))).tanh();
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x)
        }
    };
    x.iter()
        .zip(dy)
        .map(|(&x, &g)| (g as f64 * d(x as f64)) as f32)
        .collect()
}

/// `[r, c]` → per-column sums `[c]`, per-row sums `[r]`, with magnitudes.
pub fn sum_rows_cols(x: &[f32], (r, c): (usize, usize)) -> [(Vec<f32>, Vec<f64>, usize); 2] {
    let mut cols = (vec![0.0f64; c], vec![0.0f64; c]);
    let mut rows = (vec![0.0f64; r], vec![0.0f64; r]);
    for i in 0..r {
        for j in 0..c {
            let v = x[i * c + j] as f64;
            cols.0[j] += v;
            cols.1[j] += v.abs();
            rows.0[i] += v;
            rows.1[i] += v.abs();
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    [(f(cols.0), cols.1, r), (f(rows.0), rows.1, c)]
}

/// Sum, sum of squares and maximum of all elements, with the magnitudes of
/// the two sums.
pub fn reductions(x: &[f32]) -> (f32, f64, f32, f64, f32) {
    let sum: f64 = x.iter().map(|&v| v as f64).sum();
    let abs: f64 = x.iter().map(|&v| (v as f64).abs()).sum();
    let squares: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    (sum as f32, abs, squares as f32, squares, max)
}

/// Softmax of each row of `[r, c]`, in f64.
pub fn softmax_rows(x: &[f32], c: usize) -> Vec<f32> {
    x.chunks(c)
        .flat_map(|row| {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let e: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| (v / s) as f32)
        })
        .collect()
}

/// Mean softmax cross-entropy of `[r, c]` logits against class ids, and its
/// gradient `(softmax − onehot) / r`.
pub fn softmax_cross_entropy(logits: &[f32], labels: &[f32], c: usize) -> (f32, Vec<f32>) {
    let r = labels.len();
    let p = softmax_rows(logits, c);
    let mut loss = 0.0f64;
    let mut grad = Vec::with_capacity(p.len());
    for (i, row) in p.chunks(c).enumerate() {
        let y = labels[i] as usize;
        let logits_row = &logits[i * c..(i + 1) * c];
        let max = logits_row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let lse = max
            + logits_row
                .iter()
                .map(|&v| (v as f64 - max).exp())
                .sum::<f64>()
                .ln();
        loss += lse - logits_row[y] as f64;
        for (j, &pj) in row.iter().enumerate() {
            grad.push(((pj as f64 - f64::from(u8::from(j == y))) / r as f64) as f32);
        }
    }
    ((loss / r as f64) as f32, grad)
}

/// Mean squared error and its gradient `2(p − t)/n`.
pub fn mse(pred: &[f32], target: &[f32]) -> (f32, Vec<f32>) {
    let n = pred.len() as f64;
    let loss: f64 = pred
        .iter()
        .zip(target)
        .map(|(&p, &t)| (p as f64 - t as f64).powi(2))
        .sum();
    let grad = pred
        .iter()
        .zip(target)
        .map(|(&p, &t)| (2.0 * (p as f64 - t as f64) / n) as f32)
        .collect();
    ((loss / n) as f32, grad)
}

/// Mean binary cross-entropy of logits against 0/1 targets, and its
/// gradient `(σ(z) − t)/n`.
pub fn bce_with_logits(logits: &[f32], targets: &[f32]) -> (f32, Vec<f32>) {
    let n = logits.len() as f64;
    let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
    let loss: f64 = logits
        .iter()
        .zip(targets)
        .map(|(&z, &t)| {
            let (z, t) = (z as f64, t as f64);
            z.max(0.0) - t * z + (-z.abs()).exp().ln_1p()
        })
        .sum();
    let grad = logits
        .iter()
        .zip(targets)
        .map(|(&z, &t)| ((sig(z as f64) - t as f64) / n) as f32)
        .collect();
    ((loss / n) as f32, grad)
}

/// The Elman recurrence `h_t = tanh(xw_t + h_{t−1}·U)` over `xw [t, b, hd]`
/// from `h0 [b, hd]`; every state `[t, b, hd]`.
pub fn rnn_forward(
    xw: &[f32],
    u: &[f32],
    h0: &[f32],
    (t, b, hd): (usize, usize, usize),
) -> Vec<f32> {
    let mut out = Vec::with_capacity(t * b * hd);
    let mut prev: Vec<f64> = h0.iter().map(|&v| v as f64).collect();
    for s in 0..t {
        let mut next = vec![0.0f64; b * hd];
        for i in 0..b {
            for j in 0..hd {
                let mut a = xw[(s * b + i) * hd + j] as f64;
                for p in 0..hd {
                    a += prev[i * hd + p] * u[p * hd + j] as f64;
                }
                next[i * hd + j] = a.tanh();
            }
        }
        out.extend(next.iter().map(|&v| v as f32));
        prev = next;
    }
    out
}

/// Backpropagation through time for [`rnn_forward`]: given the states
/// `h [t, b, hd]` and the outside gradient `dh [t, b, hd]`, the gradient of
/// every pre-activation `[t, b, hd]` and of the initial state `[b, hd]`.
pub fn rnn_backward(
    h: &[f32],
    u: &[f32],
    dh: &[f32],
    (t, b, hd): (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>) {
    let mut da = vec![0.0f64; t * b * hd];
    let mut carry = vec![0.0f64; b * hd]; // dL/dh_s from step s+1
    for s in (0..t).rev() {
        for i in 0..b * hd {
            let hv = h[s * b * hd + i] as f64;
            da[s * b * hd + i] = (dh[s * b * hd + i] as f64 + carry[i]) * (1.0 - hv * hv);
        }
        let mut next = vec![0.0f64; b * hd];
        for i in 0..b {
            for p in 0..hd {
                for j in 0..hd {
                    next[i * hd + p] += da[(s * b + i) * hd + j] * u[p * hd + j] as f64;
                }
            }
        }
        carry = next;
    }
    (
        da.iter().map(|&v| v as f32).collect(),
        carry.iter().map(|&v| v as f32).collect(),
    )
}

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// `Σ_i h[row, i]·U[i, col]` for `U [hd, cols]`.
fn times_u(h: &[f64], row: usize, u: &[f32], cols: usize, col: usize, hd: usize) -> f64 {
    (0..hd).map(|i| h[row * hd + i] * at(u, cols, i, col)).sum()
}

/// `Σ_k d[row, k]·U[j, k]` for `d [·, cols]`, `U [hd, cols]`: the gradient
/// reaching state unit `j` through the gates.
fn times_ut(d: &[f64], row: usize, u: &[f32], cols: usize, j: usize) -> f64 {
    (0..cols)
        .map(|k| d[row * cols + k] * at(u, cols, j, k))
        .sum()
}

/// The LSTM over `xw [t, b, 4hd]` (gates i, f, g, o) from `h0, c0 [b, hd]`:
/// every state `h`, every cell state `c` (`[t, b, hd]`) and the activated
/// gates `[t, b, 4hd]`, as [`Device::lstm_forward`](super::Device::lstm_forward).
pub fn lstm_forward(
    xw: &[f32],
    u: &[f32],
    h0: &[f32],
    c0: &[f32],
    (t, b, hd): (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let g4 = 4 * hd;
    let (mut hs, mut cs, mut gates) = (Vec::new(), Vec::new(), Vec::new());
    let mut h: Vec<f64> = h0.iter().map(|&v| v as f64).collect();
    let mut c: Vec<f64> = c0.iter().map(|&v| v as f64).collect();
    for s in 0..t {
        let mut hn = vec![0.0; b * hd];
        let mut step_gates = vec![0.0; b * g4];
        for i in 0..b {
            let a = |k: usize| at(xw, g4, s * b + i, k) + times_u(&h, i, u, g4, k, hd);
            for j in 0..hd {
                let (ig, fg) = (sig(a(j)), sig(a(hd + j)));
                let (gg, og) = (a(2 * hd + j).tanh(), sig(a(3 * hd + j)));
                c[i * hd + j] = fg * c[i * hd + j] + ig * gg;
                hn[i * hd + j] = og * c[i * hd + j].tanh();
                for (k, v) in [ig, fg, gg, og].into_iter().enumerate() {
                    step_gates[i * g4 + k * hd + j] = v;
                }
            }
        }
        h = hn;
        hs.extend(to_f32(&h));
        cs.extend(to_f32(&c));
        gates.extend(to_f32(&step_gates));
    }
    (hs, cs, gates)
}

/// Backpropagation through time for [`lstm_forward`]: the gradient of every
/// gate pre-activation `[t, b, 4hd]` given the outside gradient `dh`.
pub fn lstm_backward(
    gates: &[f32],
    c: &[f32],
    c0: &[f32],
    u: &[f32],
    dh: &[f32],
    (t, b, hd): (usize, usize, usize),
) -> Vec<f32> {
    let g4 = 4 * hd;
    let mut da = vec![0.0f64; t * b * g4];
    let mut dc_next = vec![0.0f64; b * hd]; // dL/dc_s through c_{s+1}
    for s in (0..t).rev() {
        for i in 0..b {
            let row = s * b + i;
            for j in 0..hd {
                let g = |k: usize| at(gates, g4, row, k * hd + j);
                let (ig, fg, gg, og) = (g(0), g(1), g(2), g(3));
                let c_prev = if s == 0 {
                    c0[i * hd + j] as f64
                } else {
                    at(c, hd, row - b, j)
                };
                let tc = at(c, hd, row, j).tanh();
                let mut dhv = at(dh, hd, row, j);
                if s + 1 < t {
                    dhv += times_ut(&da, row + b, u, g4, j);
                }
                let dc = dhv * og * (1.0 - tc * tc) + dc_next[i * hd + j];
                da[row * g4 + j] = dc * gg * ig * (1.0 - ig);
                da[row * g4 + hd + j] = dc * c_prev * fg * (1.0 - fg);
                da[row * g4 + 2 * hd + j] = dc * ig * (1.0 - gg * gg);
                da[row * g4 + 3 * hd + j] = dhv * tc * og * (1.0 - og);
                dc_next[i * hd + j] = dc * fg;
            }
        }
    }
    to_f32(&da)
}

/// The GRU over `xw [t, b, 3hd]` (gates r, z, n) with recurrent bias
/// `ub [3hd]` from `h0 [b, hd]`: every state `[t, b, hd]` and the gates kept
/// for the backward pass `[t, b, 4hd]` (r, z, n, `h·U_n + b_hn`), as
/// [`Device::gru_forward`](super::Device::gru_forward).
pub fn gru_forward(
    xw: &[f32],
    u: &[f32],
    ub: &[f32],
    h0: &[f32],
    (t, b, hd): (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>) {
    let g3 = 3 * hd;
    let (mut hs, mut gates) = (Vec::new(), Vec::new());
    let mut h: Vec<f64> = h0.iter().map(|&v| v as f64).collect();
    for s in 0..t {
        let mut hn = vec![0.0; b * hd];
        let mut step_gates = vec![0.0; b * 4 * hd];
        for i in 0..b {
            let x = |k: usize| at(xw, g3, s * b + i, k);
            let rec = |k: usize| times_u(&h, i, u, g3, k, hd) + ub[k] as f64;
            for j in 0..hd {
                let r = sig(x(j) + rec(j));
                let z = sig(x(hd + j) + rec(hd + j));
                let cand = rec(2 * hd + j);
                let n = (x(2 * hd + j) + r * cand).tanh();
                hn[i * hd + j] = (1.0 - z) * n + z * h[i * hd + j];
                for (k, v) in [r, z, n, cand].into_iter().enumerate() {
                    step_gates[i * 4 * hd + k * hd + j] = v;
                }
            }
        }
        h = hn;
        hs.extend(to_f32(&h));
        gates.extend(to_f32(&step_gates));
    }
    (hs, gates)
}

/// Backpropagation through time for [`gru_forward`]: given the state before
/// each step `h_prev [t, b, hd]`, the gradients with respect to the input
/// projections and to the recurrent products, both `[t, b, 3hd]`.
pub fn gru_backward(
    gates: &[f32],
    h_prev: &[f32],
    u: &[f32],
    dh: &[f32],
    (t, b, hd): (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>) {
    let g3 = 3 * hd;
    let mut dxw = vec![0.0f64; t * b * g3];
    let mut dhu = vec![0.0f64; t * b * g3];
    let mut direct = vec![0.0f64; b * hd]; // dL/dh_s through h_{s+1} = … + z·h_s
    for s in (0..t).rev() {
        for i in 0..b {
            let row = s * b + i;
            for j in 0..hd {
                let g = |k: usize| at(gates, 4 * hd, row, k * hd + j);
                let (r, z, n, cand) = (g(0), g(1), g(2), g(3));
                let mut dhv = at(dh, hd, row, j);
                if s + 1 < t {
                    dhv += times_ut(&dhu, row + b, u, g3, j) + direct[i * hd + j];
                }
                let dn = dhv * (1.0 - z) * (1.0 - n * n);
                let dz = dhv * (at(h_prev, hd, row, j) - n) * z * (1.0 - z);
                let dr = dn * cand * r * (1.0 - r);
                for (k, (x, hu)) in [(dr, dr), (dz, dz), (dn, dn * r)].into_iter().enumerate() {
                    dxw[row * g3 + k * hd + j] = x;
                    dhu[row * g3 + k * hd + j] = hu;
                }
                direct[i * hd + j] = dhv * z;
            }
        }
    }
    (to_f32(&dxw), to_f32(&dhu))
}

/// `p -= lr·(s·g + wd·p)`.
pub fn sgd(p: &mut [f32], g: &[f32], s: f32, lr: f32, wd: f32) {
    for (p, &g) in p.iter_mut().zip(g) {
        *p = (*p as f64 - lr as f64 * (s as f64 * g as f64 + wd as f64 * *p as f64)) as f32;
    }
}

/// `v = μ·v + s·g + wd·p; p -= lr·v`.
pub fn momentum(p: &mut [f32], v: &mut [f32], g: &[f32], s: f32, lr: f32, mu: f32, wd: f32) {
    for ((p, v), &g) in p.iter_mut().zip(v.iter_mut()).zip(g) {
        let vel = mu as f64 * *v as f64 + s as f64 * g as f64 + wd as f64 * *p as f64;
        *v = vel as f32;
        *p = (*p as f64 - lr as f64 * vel) as f32;
    }
}

/// One Adam (or AdamW) step with the bias corrections of `hp.step`.
pub fn adam(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], s: f32, hp: &AdamStep) {
    let t = hp.step.min(i32::MAX as u32) as i32;
    let c1 = 1.0 - (hp.beta1 as f64).powi(t);
    let c2 = 1.0 - (hp.beta2 as f64).powi(t);
    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        let w = *p as f64;
        let g = s as f64 * g as f64 + hp.weight_decay as f64 * w;
        let m1 = hp.beta1 as f64 * *m as f64 + (1.0 - hp.beta1 as f64) * g;
        let v1 = hp.beta2 as f64 * *v as f64 + (1.0 - hp.beta2 as f64) * g * g;
        *m = m1 as f32;
        *v = v1 as f32;
        *p = (w
            - hp.lr as f64 * (m1 / c1) / ((v1 / c2).sqrt() + hp.eps as f64)
            - hp.lr as f64 * hp.decoupled_decay as f64 * w) as f32;
    }
}

/// An inverted-dropout mask of `n` elements, written from the definition in
/// [`crate::device::dropout`] with 64-bit arithmetic reduced mod 2³² and a
/// real-valued threshold, independently of the devices' wrapping u32 code.
pub fn dropout_mask(n: usize, rate: f32, seed: u32, step: u32) -> Vec<f32> {
    const M: u64 = 0xffff_ffff;
    let pcg = |v: u64| {
        let state = (v * 747_796_405 + 2_891_336_453) & M;
        let word = (((state >> ((state >> 28) + 4)) ^ state) * 277_803_737) & M;
        (word >> 22) ^ word
    };
    let key = pcg(u64::from(seed) ^ pcg(u64::from(step)));
    let cut = (f64::from(rate) * 4_294_967_296.0).round();
    let scale = 1.0 / (1.0 - rate);
    (0..n as u64)
        .map(|i| {
            if pcg(i ^ key) as f64 >= cut {
                scale
            } else {
                0.0
            }
        })
        .collect()
}

/// `out[v] = Σ dy[i]` over the rows `i` with `ids[i] = v`: `dy` is `[N, dim]`,
/// the result `[rows, dim]`. f64 sums.
pub fn scatter_add_rows(dy: &[f32], ids: &[usize], rows: usize, dim: usize) -> Vec<f32> {
    let mut out = vec![0.0f64; rows * dim];
    for (i, &v) in ids.iter().enumerate() {
        for c in 0..dim {
            out[v * dim + c] += dy[i * dim + c] as f64;
        }
    }
    out.iter().map(|&v| v as f32).collect()
}

/// Layer normalisation of `rows` rows of `cols`, from the definition, in
/// f64: `(y, dx, dgamma, dbeta)` for the upstream gradient `dy`.
#[allow(clippy::type_complexity)]
pub fn layer_norm(
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    beta: &[f32],
    cols: usize,
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = x.len() / cols;
    let (mut y, mut dx) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
    let (mut dg, mut db) = (vec![0.0f64; cols], vec![0.0f64; cols]);
    for r in 0..rows {
        let row: Vec<f64> = x[r * cols..(r + 1) * cols]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let n = cols as f64;
        let mean = row.iter().sum::<f64>() / n;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        let xhat: Vec<f64> = row.iter().map(|v| (v - mean) * rstd).collect();
        let g: Vec<f64> = (0..cols)
            .map(|j| dy[r * cols + j] as f64 * gamma[j] as f64)
            .collect();
        let m1 = g.iter().sum::<f64>() / n;
        let m2 = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / n;
        for j in 0..cols {
            y[r * cols + j] = (xhat[j] * gamma[j] as f64 + beta[j] as f64) as f32;
            dx[r * cols + j] = (rstd * (g[j] - m1 - xhat[j] * m2)) as f32;
            dg[j] += dy[r * cols + j] as f64 * xhat[j];
            db[j] += dy[r * cols + j] as f64;
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (y, dx, f(dg), f(db))
}

/// Batch normalisation of `x` viewed as `[n, c, s]` with its own batch
/// statistics, from the definition, in f64: `(stats [2, c], y, dx, dgamma,
/// dbeta)` for the upstream gradient `dy`, the gradients by differentiating
/// through the statistics (`dx_i = rstd·(g_i − mean(g) − x̂_i·mean(g·x̂))`
/// with `g = dy·gamma`).
#[allow(clippy::type_complexity)]
pub fn batch_norm(
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    beta: &[f32],
    (n, c, s): (usize, usize, usize),
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let at = |i: usize, ch: usize, k: usize| (i * c + ch) * s + k;
    let m = (n * s) as f64;
    let mut stats = vec![0.0f32; 2 * c];
    let (mut y, mut dx) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
    let (mut dg, mut db) = (vec![0.0f32; c], vec![0.0f32; c]);
    for ch in 0..c {
        let idx: Vec<usize> = (0..n)
            .flat_map(|i| (0..s).map(move |k| at(i, ch, k)))
            .collect();
        let mean = idx.iter().map(|&e| x[e] as f64).sum::<f64>() / m;
        let var = idx
            .iter()
            .map(|&e| (x[e] as f64 - mean).powi(2))
            .sum::<f64>()
            / m;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        let xhat = |e: usize| (x[e] as f64 - mean) * rstd;
        let g = |e: usize| dy[e] as f64 * gamma[ch] as f64;
        let m1 = idx.iter().map(|&e| g(e)).sum::<f64>() / m;
        let m2 = idx.iter().map(|&e| g(e) * xhat(e)).sum::<f64>() / m;
        for &e in &idx {
            y[e] = (xhat(e) * gamma[ch] as f64 + beta[ch] as f64) as f32;
            dx[e] = (rstd * (g(e) - m1 - xhat(e) * m2)) as f32;
        }
        dg[ch] = idx.iter().map(|&e| dy[e] as f64 * xhat(e)).sum::<f64>() as f32;
        db[ch] = idx.iter().map(|&e| dy[e] as f64).sum::<f64>() as f32;
        stats[ch] = mean as f32;
        stats[c + ch] = var as f32;
    }
    (stats, y, dx, dg, db)
}

/// Mean over the `k×k` windows of `win` over `[n·c planes, h, w]`, and the
/// gradient for `dy`: `(y, dx)`. f64 sums.
pub fn avg_pool(
    x: &[f32],
    dy: &[f32],
    (nc, h, w): (usize, usize, usize),
    win: PoolWindow,
) -> (Vec<f32>, Vec<f32>) {
    let PoolWindow {
        size: k,
        stride: st,
    } = win;
    let (ho, wo) = ((h - k) / st + 1, (w - k) / st + 1);
    let (mut y, mut dx64) = (vec![0.0f32; nc * ho * wo], vec![0.0f64; nc * h * w]);
    let area = (k * k) as f64;
    for p in 0..nc {
        for oy in 0..ho {
            for ox in 0..wo {
                let o = (p * ho + oy) * wo + ox;
                let mut s = 0.0f64;
                for i in 0..k {
                    for j in 0..k {
                        let e = (p * h + oy * st + i) * w + ox * st + j;
                        s += x[e] as f64;
                        dx64[e] += dy[o] as f64 / area;
                    }
                }
                y[o] = (s / area) as f32;
            }
        }
    }
    (y, dx64.iter().map(|&v| v as f32).collect())
}

/// One loss-scaling step, written from its description (the module docs of
/// `device::loss_scale`) in f64: from the summed squares `sum_squares` of
/// gradients scaled by `scale`, after `good` finite steps in a row, the
/// factor for the gradients and the next scale and count. Not finite: skip
/// (factor 0), halve the scale (at least 2⁻²⁴) unless it is fixed
/// (`growth_interval` 0), count from 0. Finite: the factor is `1/scale`,
/// times `max_norm / norm` when the unscaled norm exceeds `max_norm`; the
/// count grows, and at `growth_interval` the scale doubles (at most 2²⁴)
/// and the count restarts.
pub fn loss_scale_step(
    sum_squares: f32,
    scale: f32,
    good: f32,
    max_norm: Option<f32>,
    growth_interval: u32,
) -> (f32, f32, f32) {
    let (s, fixed) = (scale as f64, growth_interval == 0);
    if !sum_squares.is_finite() {
        let next = if fixed {
            s
        } else {
            (s / 2.0).max(2f64.powi(-24))
        };
        return (0.0, next as f32, 0.0);
    }
    let norm = (sum_squares as f64).sqrt() / s;
    let clip = match max_norm {
        Some(m) if norm > m as f64 => m as f64 / norm,
        _ => 1.0,
    };
    let count = good as f64 + 1.0;
    let (next, count) = if fixed {
        (s, 0.0)
    } else if count >= growth_interval as f64 {
        ((2.0 * s).min(2f64.powi(24)), 0.0)
    } else {
        (s, count)
    };
    ((clip / s) as f32, next as f32, count as f32)
}
