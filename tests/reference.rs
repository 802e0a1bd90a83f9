//! Three levels of truth, on random shapes: the naive reference
//! (`wgtrain::device::reference`, direct loops in f64) checks `CpuDevice`,
//! and the same cases check the GPU (every matmul kernel family). Every element is
//! held to its own bound, derived from its own accumulation
//! (`reference::sum_tolerance`: the number of terms and the sum of their
//! absolute values); exact ops are compared exactly; shapes always.

mod common;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgtrain::device::gpu::MatmulKernel;
use wgtrain::device::reference::{self as naive, sum_tolerance, UNIT_ROUNDOFF};
use wgtrain::device::{
    Activation, AdamStep, ConvStep, DropoutMask, LossScaleStep, MatmulSpec, PoolWindow, Precision,
    Reduce,
};
use wgtrain::{CpuDevice, Device, Shape, Tensor};

fn random(seed: u64, n: usize) -> Vec<f32> {
    let rng = &mut ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..=1.0)).collect()
}

/// The devices under test: the CPU, and the GPU with each matmul kernel.
fn devices() -> Vec<(String, Box<dyn DynDevice>)> {
    devices_at(Precision::F32)
}

/// The same at `precision` (an adapter without f16 is left out at f16:
/// tests/gpu_device.rs checks that it refuses).
fn devices_at(precision: Precision) -> Vec<(String, Box<dyn DynDevice>)> {
    let cpu = CpuDevice::new().with_precision(precision).unwrap();
    let mut v: Vec<(String, Box<dyn DynDevice>)> = vec![("cpu".into(), Box::new(cpu))];
    if let Some(gpu) = common::gpu().and_then(|g| g.with_precision(precision).ok()) {
        for kernel in MatmulKernel::ALL {
            v.push((
                format!("gpu {kernel:?}"),
                Box::new(gpu.with_matmul_kernel(kernel)),
            ));
        }
    }
    v
}

/// What these tests need of a device, object-safe: upload, run, download.
trait DynDevice {
    fn matmul(
        &self,
        a: (&[f32], [usize; 2]),
        b: (&[f32], [usize; 2]),
        bias: Option<&[f32]>,
        spec: MatmulSpec,
    ) -> (Vec<f32>, Vec<usize>);
    fn conv(
        &self,
        x: (&[f32], [usize; 4]),
        w: (&[f32], [usize; 4]),
        bias: Option<&[f32]>,
        step: ConvStep,
        dy: &[f32],
    ) -> [(Vec<f32>, Vec<usize>); 4];
    fn pool(
        &self,
        x: (&[f32], [usize; 4]),
        win: PoolWindow,
        dy_seed: u64,
    ) -> [(Vec<f32>, Vec<usize>); 3];
    fn reduce(&self, x: &[f32], shape: [usize; 2]) -> [Vec<f32>; 5];
    /// `sum_squares_many` over `x` cut at `cuts` into several tensors.
    fn sum_squares_split(&self, x: &[f32], cuts: &[usize]) -> Vec<f32>;
    fn losses(
        &self,
        logits: &[f32],
        shape: [usize; 2],
        labels: &[f32],
        targets: &[f32],
    ) -> [(f32, Vec<f32>); 3];
    fn rnn(
        &self,
        xw: &[f32],
        u: &[f32],
        h0: &[f32],
        dims: (usize, usize, usize),
        dh: &[f32],
    ) -> [Vec<f32>; 3];
    fn optim(&self, p: &[f32], g: &[f32], hp: &AdamStep) -> [Vec<f32>; 4];
    fn lstm(
        &self,
        inputs: [&[f32]; 5],
        dims: (usize, usize, usize),
        back: [&[f32]; 2],
    ) -> [Vec<f32>; 4];
    fn gru(
        &self,
        inputs: [&[f32]; 5],
        dims: (usize, usize, usize),
        back: [&[f32]; 2],
    ) -> [Vec<f32>; 4];
    fn dropout(&self, n: usize, mask: &DropoutMask) -> Vec<f32>;
    fn scatter(&self, dy: &[f32], ids: &[f32], dim: usize, rows: usize) -> Vec<f32>;
    fn layer_norm(&self, x: &[f32], dy: &[f32], g: &[f32], b: &[f32], cols: usize)
        -> [Vec<f32>; 4];
    fn act_from_input(&self, x: &[f32], dy: &[f32], act: Activation) -> Vec<f32>;
    fn batch_norm(
        &self,
        x: &[f32],
        dy: &[f32],
        g: &[f32],
        b: &[f32],
        shape: [usize; 4],
    ) -> [Vec<f32>; 5];
    fn avg_pool(&self, x: &[f32], dy: &[f32], xs: [usize; 4], win: PoolWindow) -> [Vec<f32>; 2];
    /// `x` times the scale `s` by `scale_by`, and one `loss_scale_step`:
    /// factor, next scale, next count.
    fn loss_scaling(
        &self,
        x: &[f32],
        s: f32,
        state: [f32; 3],
        step: &LossScaleStep,
    ) -> (Vec<f32>, [f32; 3]);
}

impl<D: Device> DynDevice for D {
    fn matmul(
        &self,
        a: (&[f32], [usize; 2]),
        b: (&[f32], [usize; 2]),
        bias: Option<&[f32]>,
        spec: MatmulSpec,
    ) -> (Vec<f32>, Vec<usize>) {
        let at = self.upload(a.0, a.1).unwrap();
        let bt = self.upload(b.0, b.1).unwrap();
        let biast = bias.map(|b| self.upload(b, [b.len()]).unwrap());
        let c = self.matmul(&at, &bt, biast.as_ref(), spec).unwrap();
        (self.download(&c).unwrap(), c.shape().dims().to_vec())
    }

    fn conv(
        &self,
        x: (&[f32], [usize; 4]),
        w: (&[f32], [usize; 4]),
        bias: Option<&[f32]>,
        step: ConvStep,
        dy: &[f32],
    ) -> [(Vec<f32>, Vec<usize>); 4] {
        let xt = self.upload(x.0, x.1).unwrap();
        let wt = self.upload(w.0, w.1).unwrap();
        let bt = bias.map(|b| self.upload(b, [b.len()]).unwrap());
        let y = self.conv2d(&xt, &wt, bt.as_ref(), step).unwrap();
        let dyt = self.upload(dy, y.shape().clone()).unwrap();
        let dx = self.conv2d_input_grad(&dyt, &wt, xt.shape(), step).unwrap();
        let dw = self
            .conv2d_weight_grad(&xt, &dyt, step, (w.1[2], w.1[3]))
            .unwrap();
        let db = self.channel_sum(&dyt).unwrap();
        let get = |t: &D::Tensor| (self.download(t).unwrap(), t.shape().dims().to_vec());
        [get(&y), get(&dx), get(&dw), get(&db)]
    }

    fn pool(
        &self,
        x: (&[f32], [usize; 4]),
        win: PoolWindow,
        dy_seed: u64,
    ) -> [(Vec<f32>, Vec<usize>); 3] {
        let xt = self.upload(x.0, x.1).unwrap();
        let (y, arg) = self.max_pool2d(&xt, win).unwrap();
        let dy = self
            .upload(&random(dy_seed, y.shape().numel()), y.shape().clone())
            .unwrap();
        let dx = self
            .max_pool2d_backward(&dy, &arg, &Shape::new(x.1), win)
            .unwrap();
        let get = |t: &D::Tensor| (self.download(t).unwrap(), t.shape().dims().to_vec());
        [get(&y), get(&arg), get(&dx)]
    }

    fn sum_squares_split(&self, x: &[f32], cuts: &[usize]) -> Vec<f32> {
        let mut parts = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain([&x.len()]) {
            parts.push(self.upload(&x[start..end], [end - start]).unwrap());
            start = end;
        }
        let refs: Vec<&D::Tensor> = parts.iter().collect();
        self.download(&self.sum_squares_many(&refs).unwrap())
            .unwrap()
    }

    fn reduce(&self, x: &[f32], shape: [usize; 2]) -> [Vec<f32>; 5] {
        let t = self.upload(x, shape).unwrap();
        let get = |t: D::Tensor| self.download(&t).unwrap();
        [
            get(self.sum_rows(&t).unwrap()),
            get(self.sum_cols(&t).unwrap()),
            get(self.reduce(&t, Reduce::Sum).unwrap()),
            get(self.reduce(&t, Reduce::SumSquares).unwrap()),
            get(self.reduce(&t, Reduce::Max).unwrap()),
        ]
    }

    fn losses(
        &self,
        logits: &[f32],
        shape: [usize; 2],
        labels: &[f32],
        targets: &[f32],
    ) -> [(f32, Vec<f32>); 3] {
        let z = self.upload(logits, shape).unwrap();
        let y = self.upload(labels, [labels.len()]).unwrap();
        let t = self.upload(targets, shape).unwrap();
        let get = |lg: wgtrain::device::LossGrad<D::Tensor>| {
            (
                self.download(&lg.loss).unwrap()[0],
                self.download(&lg.grad).unwrap(),
            )
        };
        [
            get(self.softmax_cross_entropy(&z, &y).unwrap()),
            get(self.mse(&z, &t).unwrap()),
            get(self.bce_with_logits(&z, &t).unwrap()),
        ]
    }

    fn rnn(
        &self,
        xw: &[f32],
        u: &[f32],
        h0: &[f32],
        (t, b, h): (usize, usize, usize),
        dh: &[f32],
    ) -> [Vec<f32>; 3] {
        let xwt = self.upload(xw, [t, b, h]).unwrap();
        let ut = self.upload(u, [h, h]).unwrap();
        let h0t = self.upload(h0, [b, h]).unwrap();
        let hs = self.rnn_forward(&xwt, &ut, &h0t).unwrap();
        let dht = self.upload(dh, [t, b, h]).unwrap();
        let (da, dh0) = self.rnn_backward(&hs, &ut, &dht).unwrap();
        [
            self.download(&hs).unwrap(),
            self.download(&da).unwrap(),
            self.download(&dh0).unwrap(),
        ]
    }

    /// Forward from `xw, u, h0, c0` and, separately, backward from the
    /// reference's gates and cell states `back` (so the backward pass is
    /// judged on exactly the reference's inputs) with `dh`.
    fn lstm(
        &self,
        [xw, u, h0, c0, dh]: [&[f32]; 5],
        (t, b, h): (usize, usize, usize),
        [gates, cs]: [&[f32]; 2],
    ) -> [Vec<f32>; 4] {
        let seq = |v: &[f32], n: usize| self.upload(v, [t, b, n]).unwrap();
        let ut = self.upload(u, [h, 4 * h]).unwrap();
        let c0t = self.upload(c0, [b, h]).unwrap();
        let (hs, c, g) = self
            .lstm_forward(
                &seq(xw, 4 * h),
                &ut,
                &self.upload(h0, [b, h]).unwrap(),
                &c0t,
            )
            .unwrap();
        let da = self
            .lstm_backward(&seq(gates, 4 * h), &seq(cs, h), &c0t, &ut, &seq(dh, h))
            .unwrap();
        [&hs, &c, &g, &da].map(|x| self.download(x).unwrap())
    }

    /// Forward from `xw, u, ub, h0`; backward from the reference's gates and
    /// previous states `back`, with `dh`.
    fn gru(
        &self,
        [xw, u, ub, h0, dh]: [&[f32]; 5],
        (t, b, h): (usize, usize, usize),
        [gates, h_prev]: [&[f32]; 2],
    ) -> [Vec<f32>; 4] {
        let seq = |v: &[f32], n: usize| self.upload(v, [t, b, n]).unwrap();
        let ut = self.upload(u, [h, 3 * h]).unwrap();
        let (hs, g) = self
            .gru_forward(
                &seq(xw, 3 * h),
                &ut,
                &self.upload(ub, [3 * h]).unwrap(),
                &self.upload(h0, [b, h]).unwrap(),
            )
            .unwrap();
        let (dxw, dhu) = self
            .gru_backward(&seq(gates, 4 * h), &seq(h_prev, h), &ut, &seq(dh, h))
            .unwrap();
        [&hs, &g, &dxw, &dhu].map(|x| self.download(x).unwrap())
    }

    fn batch_norm(
        &self,
        x: &[f32],
        dy: &[f32],
        g: &[f32],
        b: &[f32],
        shape: [usize; 4],
    ) -> [Vec<f32>; 5] {
        let c = shape[1];
        let xt = self.upload(x, shape).unwrap();
        let (gt, bt) = (self.upload(g, [c]).unwrap(), self.upload(b, [c]).unwrap());
        let stats = self.channel_stats(&xt).unwrap();
        let y = self.batch_norm(&xt, &stats, &gt, &bt, 1e-5).unwrap();
        let dyt = self.upload(dy, shape).unwrap();
        let (dx, dg, db) = self
            .batch_norm_backward(&dyt, &xt, &stats, &gt, 1e-5)
            .unwrap();
        [&stats, &y, &dx, &dg, &db].map(|t| self.download(t).unwrap())
    }

    fn optim(&self, p: &[f32], g: &[f32], hp: &AdamStep) -> [Vec<f32>; 4] {
        let n = p.len();
        let gt = self.upload(g, [n]).unwrap();
        let s = self.full([1], 0.5).unwrap();
        let mut p1 = self.upload(p, [n]).unwrap();
        self.sgd_update(&mut p1, &gt, &s, 0.1, 0.01).unwrap();
        let mut p2 = self.upload(p, [n]).unwrap();
        let mut v2 = self.upload(&random(9, n), [n]).unwrap();
        self.momentum_update(&mut p2, &mut v2, &gt, &s, 0.1, 0.9, 0.01)
            .unwrap();
        let mut p3 = self.upload(p, [n]).unwrap();
        let mut m3 = self.upload(&random(10, n), [n]).unwrap();
        let v3: Vec<f32> = random(11, n).iter().map(|v| v.abs()).collect();
        let mut v3 = self.upload(&v3, [n]).unwrap();
        self.adam_update(&mut p3, &mut m3, &mut v3, &gt, &s, hp)
            .unwrap();
        [
            self.download(&p1).unwrap(),
            self.download(&p2).unwrap(),
            self.download(&p3).unwrap(),
            self.download(&m3).unwrap(),
        ]
    }

    fn avg_pool(&self, x: &[f32], dy: &[f32], xs: [usize; 4], win: PoolWindow) -> [Vec<f32>; 2] {
        let xt = self.upload(x, xs).unwrap();
        let y = self.avg_pool2d(&xt, win).unwrap();
        let dyt = self.upload(dy, y.shape().clone()).unwrap();
        let dx = self.avg_pool2d_backward(&dyt, &xs.into(), win).unwrap();
        [self.download(&y).unwrap(), self.download(&dx).unwrap()]
    }

    fn scatter(&self, dy: &[f32], ids: &[f32], dim: usize, rows: usize) -> Vec<f32> {
        let n = ids.len();
        let dyt = self.upload(dy, [n, dim]).unwrap();
        let idt = self.upload(ids, [n]).unwrap();
        self.download(&self.scatter_add_rows(&dyt, &idt, rows).unwrap())
            .unwrap()
    }

    fn layer_norm(
        &self,
        x: &[f32],
        dy: &[f32],
        g: &[f32],
        b: &[f32],
        cols: usize,
    ) -> [Vec<f32>; 4] {
        let shape = [x.len() / cols, cols];
        let xt = self.upload(x, shape).unwrap();
        let (gt, bt) = (
            self.upload(g, [cols]).unwrap(),
            self.upload(b, [cols]).unwrap(),
        );
        let (y, stats) = self.layer_norm(&xt, &gt, &bt, 1e-5).unwrap();
        let dyt = self.upload(dy, shape).unwrap();
        let (dx, dg, db) = self.layer_norm_backward(&dyt, &xt, &stats, &gt).unwrap();
        [&y, &dx, &dg, &db].map(|t| self.download(t).unwrap())
    }

    fn act_from_input(&self, x: &[f32], dy: &[f32], act: Activation) -> Vec<f32> {
        let n = x.len();
        let (xt, dyt) = (self.upload(x, [n]).unwrap(), self.upload(dy, [n]).unwrap());
        let dx = self.activation_backward_from_input(&xt, &dyt, act).unwrap();
        self.download(&dx).unwrap()
    }

    fn dropout(&self, n: usize, mask: &DropoutMask) -> Vec<f32> {
        let m = self.dropout_mask([n].into(), mask).unwrap();
        self.download(&m).unwrap()
    }

    fn loss_scaling(
        &self,
        x: &[f32],
        s: f32,
        [sq, scale, good]: [f32; 3],
        step: &LossScaleStep,
    ) -> (Vec<f32>, [f32; 3]) {
        let xt = self.upload(x, [x.len()]).unwrap();
        let scaled = self
            .scale_by(&xt, &self.upload(&[s], [1]).unwrap())
            .unwrap();
        let mut scale = self.upload(&[scale], [1]).unwrap();
        let mut good = self.upload(&[good], [1]).unwrap();
        let sq = self.upload(&[sq], [1]).unwrap();
        let f = self
            .loss_scale_step(&sq, &mut scale, &mut good, step)
            .unwrap();
        let one = |t| self.download(t).unwrap()[0];
        (
            self.download(&scaled).unwrap(),
            [one(&f), one(&scale), one(&good)],
        )
    }
}

/// Every element within its own bound; `what` names the failure.
fn within(
    what: &str,
    got: &[f32],
    want: &[f32],
    bound: impl Fn(usize) -> f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "{}: lengths", what);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w as f64).abs();
        prop_assert!(
            err <= bound(i),
            "{}[{}]: got {} want {} (error {:.3e} > bound {:.3e})",
            what,
            i,
            g,
            w,
            err,
            bound(i)
        );
    }
    Ok(())
}

/// The error an activation adds to a sum already off by `sum_err`: its
/// slope (at most 1) times that, plus its own few roundings (libm and the
/// GPU's exp differ by a few ulp).
fn act_bound(act: Activation, y: f32, sum_err: f64) -> f64 {
    match act {
        Activation::Identity | Activation::Relu => sum_err,
        // One multiply below zero.
        Activation::LeakyRelu => sum_err + UNIT_ROUNDOFF * y.abs() as f64,
        Activation::Tanh | Activation::Sigmoid | Activation::Softplus | Activation::Gelu => {
            sum_err + 1e-6 + 4.0 * UNIT_ROUNDOFF * y.abs() as f64
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn matmul_every_layout_and_epilogue(m in 1usize..=40, k in 1usize..=70, n in 1usize..=40,
                                        ta: bool, tb: bool, bias: bool, act in 0usize..7,
                                        aligned: bool, seed: u64) {
        // Half the cases aligned (m, n, k multiples of 4, m ≥ 8): the shapes
        // the vec4 kernels take; the others mostly ragged.
        let (m, k, n) = if aligned {
            (m.div_ceil(4).max(2) * 4, k.div_ceil(4) * 4, n.div_ceil(4) * 4)
        } else {
            (m, k, n)
        };
        let act = Activation::ALL[act];
        let spec = MatmulSpec { trans_a: ta, trans_b: tb, act };
        let a_shape = if ta { [k, m] } else { [m, k] };
        let b_shape = if tb { [n, k] } else { [k, n] };
        let a = random(seed, m * k);
        let b = random(seed ^ 1, k * n);
        let bv = random(seed ^ 2, n);
        let bias = bias.then_some(&bv[..]);
        // f16: the naive product of operands rounded by `Precision::round`
        // (the GPU rounds in its own kernels, shaders/f16_bits.wgsl).
        let round = |v: &[f32]| v.iter().map(|&x| Precision::F16.round(x)).collect::<Vec<_>>();
        for precision in [Precision::F32, Precision::F16] {
            let (a_in, b_in) = match precision {
                Precision::F32 => (a.clone(), b.clone()),
                Precision::F16 => (round(&a), round(&b)),
            };
            let (want, mag, terms) = naive::matmul(&a_in, (a_shape[0], a_shape[1]), &b_in, (b_shape[0], b_shape[1]), bias, spec);
            for (name, d) in devices_at(precision) {
                let (got, shape) = d.matmul((&a, a_shape), (&b, b_shape), bias, spec);
                let checked: Result<(), TestCaseError> = (|| {
                    prop_assert_eq!(&shape, &vec![m, n], "{}: shape", name);
                    within(&format!("{name} {precision} matmul {spec:?} {m}x{k}x{n}"), &got, &want, |i| {
                        act_bound(act, want[i], sum_tolerance(terms, mag[i]))
                    })
                })();
                checked?;
            }
        }
    }

    #[test]
    fn conv2d_forward_and_both_gradients(nb in 1usize..=3, ci in 1usize..=5, co in 1usize..=9,
                                         h in 1usize..=11, w in 1usize..=11, kh in 1usize..=5,
                                         pad in 0usize..=2, stride in 1usize..=3, bias: bool,
                                         seed: u64) {
        prop_assume!(h + 2 * pad >= kh && w + 2 * pad >= kh);
        let step = ConvStep { stride, pad };
        let kw = kh;
        let xs = [nb, ci, h, w];
        let x = random(seed, nb * ci * h * w);
        let wt = random(seed ^ 1, co * ci * kh * kw);
        let bv = random(seed ^ 2, co);
        let bias = bias.then_some(&bv[..]);
        let (y, ym, yk) = naive::conv2d(&x, xs, &wt, [co, kh, kw], bias, step);
        let (ho, wo) = ((h + 2 * pad - kh) / stride + 1, (w + 2 * pad - kw) / stride + 1);
        let dy = random(seed ^ 3, nb * co * ho * wo);
        let (dx, dxm, dxk) = naive::conv2d_input_grad(&dy, xs, &wt, [co, kh, kw], step);
        let (dw, dwm, dwk) = naive::conv2d_weight_grad(&x, xs, &dy, [co, kh, kw], step);
        let (db, dbm, dbk) = naive::channel_sum(&dy, [nb, co, ho, wo]);
        for (name, d) in devices() {
            {
                let [(gy, sy), (gdx, sdx), (gdw, sdw), (gdb, sdb)] = d.conv((&x, xs), (&wt, [co, ci, kh, kw]), bias, step, &dy);
                let checked: Result<(), TestCaseError> = (|| {
                    prop_assert_eq!(sy, vec![nb, co, ho, wo]);
                    prop_assert_eq!(sdx, xs.to_vec());
                    prop_assert_eq!(sdw, vec![co, ci, kh, kw]);
                    prop_assert_eq!(sdb, vec![co]);
                    within(&format!("{name} conv2d"), &gy, &y, |i| sum_tolerance(yk, ym[i]))?;
                    within(&format!("{name} conv2d_input_grad"), &gdx, &dx, |i| sum_tolerance(dxk, dxm[i]))?;
                    within(&format!("{name} conv2d_weight_grad"), &gdw, &dw, |i| sum_tolerance(dwk, dwm[i]))?;
                    within(&format!("{name} channel_sum"), &gdb, &db, |i| sum_tolerance(dbk, dbm[i]))
                })();
                checked?;
            }
        }
    }

    #[test]
    fn max_pool_is_exact_ties_included(nb in 1usize..=3, c in 1usize..=4, h in 1usize..=13,
                                       w in 1usize..=13, k in 1usize..=4, stride in 1usize..=4,
                                       ties: bool, seed: u64) {
        prop_assume!(h >= k && w >= k);
        let xs = [nb, c, h, w];
        let win = PoolWindow::new(k, stride);
        // With ties, values come from a tiny set: the first maximum must win.
        let x: Vec<f32> = random(seed, nb * c * h * w)
            .iter()
            .map(|&v| if ties { (v * 2.0).round() } else { v })
            .collect();
        let (y, arg) = naive::max_pool2d(&x, xs, win);
        let dy = random(seed ^ 5, y.len());
        let dx = naive::max_pool2d_backward(&dy, &arg, x.len());
        for (name, d) in devices() {
            {
                let [(gy, sy), (garg, _), (gdx, sdx)] = d.pool((&x, xs), win, seed ^ 5);
                let checked: Result<(), TestCaseError> = (|| {
                    prop_assert_eq!(sy, vec![nb, c, (h - k) / stride + 1, (w - k) / stride + 1], "{}", name);
                    prop_assert_eq!(&gy, &y, "{} max_pool2d", name);
                    prop_assert_eq!(&garg, &arg, "{} argmax", name);
                    prop_assert_eq!(sdx, xs.to_vec());
                    prop_assert_eq!(&gdx, &dx, "{} max_pool2d_backward", name);
                    Ok(())
                })();
                checked?;
            }
        }
    }

    #[test]
    fn reductions_with_spikes_at_the_edges(r in 1usize..=70, c in 1usize..=300, seed: u64) {
        // Large values first and last: a reduction that skips a ragged tail
        // or an edge workgroup is off by far more than its bound.
        let mut x = random(seed, r * c);
        let last = x.len() - 1;
        x[0] = 50.0;
        x[last] = -40.0;
        let [(cols, cm, ck), (rows, rm, rk)] = naive::sum_rows_cols(&x, (r, c));
        let (sum, sum_mag, squares, sq_mag, max) = naive::reductions(&x);
        for (name, d) in devices() {
            {
                let [gcols, grows, gsum, gsq, gmax] = d.reduce(&x, [r, c]);
                let checked: Result<(), TestCaseError> = (|| {
                    within(&format!("{name} sum_rows"), &gcols, &cols, |i| sum_tolerance(ck, cm[i]))?;
                    within(&format!("{name} sum_cols"), &grows, &rows, |i| sum_tolerance(rk, rm[i]))?;
                    within(&format!("{name} sum"), &gsum, &[sum], |_| sum_tolerance(x.len(), sum_mag))?;
                    within(&format!("{name} sum of squares"), &gsq, &[squares], |_| sum_tolerance(x.len(), sq_mag))?;
                    prop_assert_eq!(&gmax, &vec![max], "{} max is exact", name);
                    // The same squares as several tensors (clipping's norm;
                    // empty ones among them when the cuts coincide).
                    let n = x.len();
                    let cuts = [(seed as usize) % (n + 1), (seed as usize >> 8) % (n + 1), n / 2];
                    let mut cuts = cuts.to_vec();
                    cuts.sort_unstable();
                    let split = d.sum_squares_split(&x, &cuts);
                    within(&format!("{name} sum_squares_many"), &split, &[squares], |_| sum_tolerance(n, sq_mag))?;
                    Ok(())
                })();
                checked?;
            }
        }
    }

    #[test]
    fn losses_and_their_gradients(r in 1usize..=40, c in 2usize..=40, long: bool, seed: u64) {
        // Long rows take the GPU's workgroup-per-row kernels, short ones the
        // one-invocation-per-row kernels.
        let c = if long { 256 + c * 8 } else { c };
        let z: Vec<f32> = random(seed, r * c).iter().map(|v| v * 4.0).collect();
        let rng = &mut ChaCha8Rng::seed_from_u64(seed ^ 7);
        let labels: Vec<f32> = (0..r).map(|_| rng.random_range(0..c) as f32).collect();
        let targets: Vec<f32> = (0..r * c).map(|_| f32::from(rng.random_bool(0.5))).collect();
        let want = [
            naive::softmax_cross_entropy(&z, &labels, c),
            naive::mse(&z, &targets),
            naive::bce_with_logits(&z, &targets),
        ];
        for (name, d) in devices() {
            {
                let got = d.losses(&z, [r, c], &labels, &targets);
                let checked: Result<(), TestCaseError> = (|| {
                    // The mean loss: a sum of `terms` roundings of values
                    // of at most |loss| + 8 (|z| ≤ 4 plus log c, or a
                    // squared difference ≤ 25); each gradient element: a
                    // few roundings of exp/log, then a division by n.
                    let n = (r * c) as f64;
                    for (loss, terms, ((gl, gg), (wl, wg))) in [("softmax_ce", r + c), ("mse", r * c), ("bce", r * c)]
                        .iter()
                        .map(|(l, t)| (l, t))
                        .zip(got.iter().zip(&want))
                        .map(|((l, t), x)| (l, *t, x))
                    {
                        let mag = wl.abs() as f64 + 25.0;
                        within(&format!("{name} {loss} loss"), &[*gl], &[*wl], |_| sum_tolerance(terms, mag))?;
                        // exp(z − lse) carries lse's rounding (|lse| ≤ 4 +
                        // log c) as a relative error.
                        let rel = 16.0 * UNIT_ROUNDOFF * (5.0 + (c as f64).ln());
                        within(&format!("{name} {loss} gradient"), gg, wg, |i| {
                            rel * (wg[i].abs() as f64 + 1.0 / n)
                        })?;
                    }
                    Ok(())
                })();
                checked?;
            }
        }
    }

    #[test]
    fn rnn_forward_and_backward_through_time(t in 1usize..=6, b in 1usize..=5, h in 1usize..=9, seed: u64) {
        let xw = random(seed, t * b * h);
        let u: Vec<f32> = random(seed ^ 1, h * h).iter().map(|v| v / (h as f32).sqrt()).collect();
        let h0 = random(seed ^ 2, b * h);
        let dh = random(seed ^ 3, t * b * h);
        let hs = naive::rnn_forward(&xw, &u, &h0, (t, b, h));
        let (da, dh0) = naive::rnn_backward(&hs, &u, &dh, (t, b, h));
        // Every step adds a sum of h + 1 terms of magnitude ≤ 1 + Σ|U|, and
        // tanh's few ulp; errors carry through at most t steps, each
        // scaling them by at most ‖U‖ ≤ √h·max|U| ≤ 1.
        let step = sum_tolerance(h + 1, 2.0 * h as f64) + 1e-6;
        let bound = step * (t as f64 + 1.0) * 4.0;
        for (name, d) in devices() {
            {
                let [ghs, gda, gdh0] = d.rnn(&xw, &u, &h0, (t, b, h), &dh);
                let checked: Result<(), TestCaseError> = (|| {
                    within(&format!("{name} rnn_forward"), &ghs, &hs, |_| bound)?;
                    within(&format!("{name} rnn_backward da"), &gda, &da, |_| bound * h as f64)?;
                    within(&format!("{name} rnn_backward dh0"), &gdh0, &dh0, |_| bound * (h * h) as f64)
                })();
                checked?;
            }
        }
    }

    #[test]
    fn lstm_and_gru_forward_and_backward_through_time(t in 1usize..=5, b in 1usize..=4, h in 1usize..=7, seed: u64) {
        let scaled = |s: u64, n: usize| -> Vec<f32> {
            random(s, n).iter().map(|v| v / (h as f32).sqrt()).collect()
        };
        let (h0, c0, dh) = (random(seed ^ 2, b * h), random(seed ^ 4, b * h), random(seed ^ 3, t * b * h));
        // Each gate pre-activation is a sum of h + 1 terms of magnitude ≤ 2
        // (|U| ≤ 1/√h, states ≤ 1 or, for c, ≤ 1 + t); the gate functions
        // have slopes ≤ 1, and errors carry through at most t steps, each
        // scaling them by at most 4·‖U‖ ≤ 4 (four gate blocks).
        let step = sum_tolerance(h + 1, 2.0 * (h + t) as f64) + 1e-6;
        let bound = step * (t as f64 + 1.0) * 4.0;
        let xw = random(seed, t * b * 4 * h);
        let u = scaled(seed ^ 1, 4 * h * h);
        let (hs, cs, gates) = naive::lstm_forward(&xw, &u, &h0, &c0, (t, b, h));
        let da = naive::lstm_backward(&gates, &cs, &c0, &u, &dh, (t, b, h));
        let xw3 = random(seed ^ 5, t * b * 3 * h);
        let u3 = scaled(seed ^ 6, 3 * h * h);
        let ub = random(seed ^ 7, 3 * h);
        let (ghs, ggates) = naive::gru_forward(&xw3, &u3, &ub, &h0, (t, b, h));
        let h_prev: Vec<f32> = h0.iter().chain(&ghs[..(t - 1) * b * h]).copied().collect();
        let (dxw, dhu) = naive::gru_backward(&ggates, &h_prev, &u3, &dh, (t, b, h));
        for (name, d) in devices() {
            let [l_hs, l_cs, l_gates, l_da] = d.lstm([&xw, &u, &h0, &c0, &dh], (t, b, h), [&gates, &cs]);
            let [g_hs, g_gates, g_dxw, g_dhu] = d.gru([&xw3, &u3, &ub, &h0, &dh], (t, b, h), [&ggates, &h_prev]);
            let checked: Result<(), TestCaseError> = (|| {
                within(&format!("{name} lstm h"), &l_hs, &hs, |_| bound)?;
                within(&format!("{name} lstm c"), &l_cs, &cs, |_| bound)?;
                within(&format!("{name} lstm gates"), &l_gates, &gates, |_| bound)?;
                within(&format!("{name} lstm da"), &l_da, &da, |_| bound * h as f64)?;
                within(&format!("{name} gru h"), &g_hs, &ghs, |_| bound)?;
                within(&format!("{name} gru gates"), &g_gates, &ggates, |_| bound)?;
                within(&format!("{name} gru dxw"), &g_dxw, &dxw, |_| bound * h as f64)?;
                within(&format!("{name} gru dhu"), &g_dhu, &dhu, |_| bound * h as f64)
            })();
            checked?;
        }
    }

    #[test]
    fn batch_norm_forward_and_backward(n in 1usize..=5, c in 1usize..=4, h in 1usize..=9, w in 1usize..=9, seed: u64) {
        let shape = [n, c, h, w];
        let len = n * c * h * w;
        // An offset per element, as activations have: the two-pass
        // variance must not cancel.
        let x: Vec<f32> = random(seed, len).iter().map(|v| 3.0 * v + 1.0).collect();
        let dy = random(seed ^ 1, len);
        let (g, b) = (random(seed ^ 2, c), random(seed ^ 3, c));
        let (stats, y, dx, dg, db) = naive::batch_norm(&x, &dy, &g, &b, (n, c, h * w), 1e-5);
        // Each output rests on sums over a channel's M = n·h·w values of
        // magnitude ≤ 4, then a division by the spread: relative to the
        // outputs' order-1 scale, a sum's bound over M terms, a few times
        // (mean, variance, then the gradient sums). A constant channel
        // (M = 1) has variance 0, and x̂ is then rounding noise times rstd.
        let m = n * h * w;
        prop_assume!(m > 1);
        let rstd_max = stats[c..].iter().map(|&v| 1.0 / ((v as f64) + 1e-5).sqrt()).fold(0.0, f64::max);
        let bound = 8.0 * sum_tolerance(m, 4.0 * m as f64) * rstd_max.max(1.0) * rstd_max.max(1.0) + 1e-6;
        for (name, d) in devices() {
            let [gs, gy, gdx, gdg, gdb] = d.batch_norm(&x, &dy, &g, &b, shape);
            let checked: Result<(), TestCaseError> = (|| {
                within(&format!("{name} channel_stats"), &gs, &stats, |_| bound * 4.0)?;
                within(&format!("{name} batch_norm"), &gy, &y, |_| bound)?;
                within(&format!("{name} batch_norm dx"), &gdx, &dx, |_| bound * 4.0)?;
                within(&format!("{name} batch_norm dgamma"), &gdg, &dg, |_| bound * m as f64)?;
                within(&format!("{name} batch_norm dbeta"), &gdb, &db, |_| sum_tolerance(m, m as f64))
            })();
            checked?;
        }
    }

    #[test]
    fn avg_pool_forward_and_backward(nb in 1usize..=3, c in 1usize..=4, h in 1usize..=13,
                                     w in 1usize..=13, k in 1usize..=4, stride in 1usize..=4,
                                     seed: u64) {
        prop_assume!(h >= k && w >= k);
        let xs = [nb, c, h, w];
        let win = PoolWindow::new(k, stride);
        let x = random(seed, nb * c * h * w);
        let (ho, wo) = ((h - k) / stride + 1, (w - k) / stride + 1);
        let dy = random(seed ^ 5, nb * c * ho * wo);
        let (y, dx) = naive::avg_pool(&x, &dy, (nb * c, h, w), win);
        // A sum of k² values of magnitude ≤ 1 scaled by 1/k² (its bound
        // scaled alike, for Σ|x|/k² ≤ 1), then the rounding of 1/k² and of
        // the product. The gradient adds the dy/k² of the ⌈k/stride⌉² (at
        // most) windows over an element: that sum's rounding, on a
        // magnitude of at most covers/k², and the two of each term.
        let terms = k * k;
        let covers = k.div_ceil(stride).pow(2);
        for (name, d) in devices() {
            let [gy, gdx] = d.avg_pool(&x, &dy, xs, win);
            within(&format!("{name} avg_pool2d"), &gy, &y, |i| {
                sum_tolerance(terms, 1.0) + 3.0 * UNIT_ROUNDOFF * y[i].abs() as f64
            })?;
            within(&format!("{name} avg_pool2d_backward"), &gdx, &dx, |i| {
                sum_tolerance(covers, covers as f64 / terms as f64)
                    + 3.0 * UNIT_ROUNDOFF * dx[i].abs() as f64
            })?;
        }
    }

    #[test]
    fn scatter_add_rows_sums_each_id(n in 1usize..=300, dim in 1usize..=9,
                                     rows in prop_oneof![1usize..=63, 64usize..=600],
                                     seed: u64) {
        // Both sides of the GPU's switch to its sorted path at 64 rows.
        let dy = random(seed, n * dim);
        let ids: Vec<usize> = random(seed ^ 3, n).iter().map(|v| ((v + 1.0) * 0.5 * rows as f32) as usize % rows).collect();
        let want = naive::scatter_add_rows(&dy, &ids, rows, dim);
        // Each output sums at most n terms of magnitude ≤ 1.
        let count = |v: usize| ids.iter().filter(|&&i| i == v).count();
        let idf: Vec<f32> = ids.iter().map(|&i| i as f32).collect();
        for (name, d) in devices() {
            let got = d.scatter(&dy, &idf, dim, rows);
            within(&format!("{name} scatter_add_rows"), &got, &want, |i| {
                let k = count(i / dim);
                sum_tolerance(k, k as f64)
            })?;
        }
    }

    #[test]
    fn loss_scaling_scales_and_steps_as_described(n in 1usize..=300, seed: u64,
            exponent in -24i32..=24, good in 0u32..6, interval in 0u32..6,
            squares in prop_oneof![Just(f32::INFINITY), Just(f32::NAN), 0.0f32..1e12],
            max_norm in proptest::option::of(0.01f32..100.0)) {
        let x = random(seed, n);
        let s = 2f32.powi(exponent) * 1.5;
        // Counts below the interval, as the rule keeps them.
        let good = if interval > 0 { (good % interval) as f32 } else { 0.0 };
        let scale = 2f32.powi(exponent);
        let step = LossScaleStep { max_norm, growth_interval: interval };
        let (factor, next, count) = naive::loss_scale_step(squares, scale, good, max_norm, interval);
        let want_scaled: Vec<f32> = x.iter().map(|v| (*v as f64 * s as f64) as f32).collect();
        for (name, d) in devices() {
            let (scaled, [f, sc, c]) = d.loss_scaling(&x, s, [squares, scale, good], &step);
            // One rounding of an exact product.
            within(&format!("{name} scale_by"), &scaled, &want_scaled, |_| 0.0)?;
            // A square root and two divisions.
            within(&format!("{name} loss scale factor"), &[f], &[factor],
                |_| 4.0 * UNIT_ROUNDOFF * factor.abs() as f64)?;
            within(&format!("{name} next scale, count"), &[sc, c], &[next, count], |_| 0.0)?;
        }
    }

    #[test]
    fn layer_norm_forward_and_backward(r in 1usize..=20, c in 2usize..=70, seed: u64) {
        let x: Vec<f32> = random(seed, r * c).iter().map(|v| 3.0 * v + 1.0).collect();
        let dy = random(seed ^ 1, r * c);
        let (g, b) = (random(seed ^ 2, c), random(seed ^ 3, c));
        let (y, dx, dg, db) = naive::layer_norm(&x, &dy, &g, &b, c, 1e-5);
        // Row statistics are sums of c terms of |x| ≤ 4, off by about
        // 2(c + 2)·u·4 in absolute terms; divided by the row's spread (×
        // rstd) that moves every normalised value and gradient.
        let rstd: Vec<f64> = x
            .chunks(c)
            .map(|row| {
                let m = row.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
                let var = row.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / c as f64;
                1.0 / (var + 1e-5).sqrt()
            })
            .collect();
        let row_bound = |i: usize, w: f32| {
            8.0 * (c as f64 + 2.0) * UNIT_ROUNDOFF * (1.0 + w.abs() as f64) * (1.0 + 4.0 * rstd[i / c])
        };
        for (name, d) in devices() {
            let [gy, gdx, gdg, gdb] = d.layer_norm(&x, &dy, &g, &b, c);
            within(&format!("{name} layer_norm y"), &gy, &y, |i| row_bound(i, y[i]))?;
            within(&format!("{name} layer_norm dx"), &gdx, &dx, |i| row_bound(i, dx[i]))?;
            // Column sums over the rows of dy·x̂, each x̂ off as above.
            let worst = (0..r).map(|row| row_bound(row * c, 1.0)).fold(0.0, f64::max);
            within(&format!("{name} layer_norm dgamma"), &gdg, &dg, |_| {
                sum_tolerance(r, 4.0 * r as f64) + r as f64 * worst
            })?;
            within(&format!("{name} layer_norm dbeta"), &gdb, &db, |_| sum_tolerance(r, r as f64))?;
        }
    }

    #[test]
    fn activation_derivatives_from_the_input(n in 1usize..=200, act in 0usize..7, seed: u64) {
        let act = Activation::ALL[act];
        let x: Vec<f32> = random(seed, n).iter().map(|v| 4.0 * v).collect();
        let dy = random(seed ^ 1, n);
        let want = naive::activation_backward_from_input(&x, &dy, act);
        for (name, d) in devices() {
            let got = d.act_from_input(&x, &dy, act);
            // The devices' exp/tanh differ from libm's by a few ulp.
            within(&format!("{name} {act:?} from input"), &got, &want, |i| {
                1e-6 + 16.0 * UNIT_ROUNDOFF * want[i].abs() as f64
            })?;
        }
    }

    #[test]
    fn dropout_masks_are_the_definition_exactly(n in 1usize..=3000, rate in 0.0f32..0.95,
                                                seed: u32, step: u32) {
        let want = naive::dropout_mask(n, rate, seed, step);
        let mask = DropoutMask { rate, seed, step };
        for (name, d) in devices() {
            prop_assert_eq!(&d.dropout(n, &mask), &want, "{}", name);
        }
    }

    #[test]
    fn optimizer_updates(n in 1usize..=300, step in 1u32..=5, seed: u64) {
        let p = random(seed, n);
        let g = random(seed ^ 1, n);
        let hp = AdamStep { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, decoupled_decay: 0.02, step };
        let mut want_sgd = p.clone();
        naive::sgd(&mut want_sgd, &g, 0.5, 0.1, 0.01);
        let mut want_mom = p.clone();
        let mut v = random(9, n);
        naive::momentum(&mut want_mom, &mut v, &g, 0.5, 0.1, 0.9, 0.01);
        let mut want_adam = p.clone();
        let mut m = random(10, n);
        let mut vv: Vec<f32> = random(11, n).iter().map(|v| v.abs()).collect();
        naive::adam(&mut want_adam, &mut m, &mut vv, &g, 0.5, &hp);
        // A handful of roundings per element, of values of order 1.
        let bound = |w: f32| 16.0 * UNIT_ROUNDOFF * (1.0 + w.abs() as f64);
        for (name, d) in devices() {
            {
                let [gs, gm, ga, gmm] = d.optim(&p, &g, &hp);
                let checked: Result<(), TestCaseError> = (|| {
                    within(&format!("{name} sgd"), &gs, &want_sgd, |i| bound(want_sgd[i]))?;
                    within(&format!("{name} momentum"), &gm, &want_mom, |i| bound(want_mom[i]))?;
                    within(&format!("{name} adam"), &ga, &want_adam, |i| bound(want_adam[i]))?;
                    within(&format!("{name} adam m"), &gmm, &m, |i| bound(m[i]))
                })();
                checked?;
            }
        }
    }
}
