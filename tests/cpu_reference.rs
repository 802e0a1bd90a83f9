//! The CPU reference against small examples worked out by hand, so the
//! reference itself is checked and not only the GPU against it.

use wgtrain::device::dropout::pcg;
use wgtrain::device::{
    Activation, AdamStep, Binary, ConvStep, DropoutMask, LossScaleStep, MatmulSpec, PoolWindow,
    Precision, Reduce,
};
use wgtrain::{CpuDevice, Device, Shape, Tensor};

fn dev() -> CpuDevice {
    CpuDevice::new()
}

fn t(data: &[f32], shape: &[usize]) -> wgtrain::device::cpu::CpuTensor {
    dev().upload(data, Shape::from(shape)).unwrap()
}

fn get(x: &wgtrain::device::cpu::CpuTensor) -> Vec<f32> {
    dev().download(x).unwrap()
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{got:?} vs {want:?}"
        );
    }
}

#[test]
fn matmul_every_transpose() {
    // A = [[1,2,3],[4,5,6]], B = [[1,0],[0,1],[1,1]]: A·B = [[4,5],[10,11]].
    let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let b = t(&[1., 0., 0., 1., 1., 1.], &[3, 2]);
    assert_eq!(
        get(&dev().matmul(&a, &b, None, MatmulSpec::NN).unwrap()),
        [4., 5., 10., 11.]
    );
    // Aᵀ stored: the same product from the transposed layouts.
    let at = t(&[1., 4., 2., 5., 3., 6.], &[3, 2]);
    let bt = t(&[1., 0., 1., 0., 1., 1.], &[2, 3]);
    let tn = dev().matmul(&at, &b, None, MatmulSpec::TN).unwrap();
    let nt = dev().matmul(&a, &bt, None, MatmulSpec::NT).unwrap();
    let tt = MatmulSpec {
        trans_a: true,
        trans_b: true,
        ..MatmulSpec::NN
    };
    let tt = dev().matmul(&at, &bt, None, tt).unwrap();
    for c in [tn, nt, tt] {
        assert_eq!(get(&c), [4., 5., 10., 11.]);
        assert_eq!(c.shape_dims(), [2, 2]);
    }
}

trait Dims {
    fn shape_dims(&self) -> Vec<usize>;
}
impl Dims for wgtrain::device::cpu::CpuTensor {
    fn shape_dims(&self) -> Vec<usize> {
        use wgtrain::Tensor;
        self.shape().dims().to_vec()
    }
}

/// Under f16 both operands are rounded (nearest, ties to even) before an
/// f32 product: 1 + 2^-11 and 2049 are ties and go down to 1 and 2048;
/// 3 + 2^-9 is exact. f32 would give 2050.0005 and 3.0019531.
#[test]
fn matmul_at_f16_rounds_both_operands() {
    let d = dev().with_precision(Precision::F16).unwrap();
    assert_eq!(d.precision(), Precision::F16);
    let a = t(
        &[1.0 + 2f32.powi(-11), 2049.0, 3.0 + 2f32.powi(-9), 0.0],
        &[2, 2],
    );
    let b = t(&[1.0, 1.0], &[2, 1]);
    let got = get(&d.matmul(&a, &b, None, MatmulSpec::NN).unwrap());
    assert_eq!(got, [2049.0, 3.0 + 2f32.powi(-9)]);
    // The operand order does not matter: B is rounded too.
    let got = get(&d.matmul(&b, &a, None, MatmulSpec::TN).unwrap());
    assert_eq!(got, [1.0 + 3.0 + 2f32.powi(-9), 2048.0]);
    // And f32 is untouched.
    let got = get(&dev().matmul(&a, &b, None, MatmulSpec::NN).unwrap());
    assert_eq!(got, [2050.0 + 2f32.powi(-11), 3.0 + 2f32.powi(-9)]);
}

/// A tensor kept in f16 holds each value rounded as an f16 operand is
/// (1 + 2^-11 and 2049 are ties, down to 1 and 2048; 65520 is halfway to
/// 65536, so infinity; 3·2^-25 a tie between subnormals, up to 2^-23), and
/// reads back exactly; a product or an activation's derivative reads those
/// rounded values, at either precision.
#[test]
fn tensors_kept_in_f16_hold_the_rounded_values() {
    let p = |e: i32| 2f32.powi(e);
    let x = t(
        &[
            1.0 + p(-11),
            2049.0,
            65520.0,
            3.0 * p(-25),
            -0.5,
            3.0 + p(-9),
        ],
        &[3, 2],
    );
    let want = [1.0, 2048.0, f32::INFINITY, p(-23), -0.5, 3.0 + p(-9)];
    for d in [dev(), dev().with_precision(Precision::F16).unwrap()] {
        let h = d.to_half(&x).unwrap();
        assert_eq!(h.shape(), &Shape::from([3, 2]));
        assert_eq!(get(&d.half_to_f32(&h).unwrap()), want);
    }
    // A = [[1 + 2^-11, 2049], [3 + 2^-9, 0]] is kept as [[1, 2048],
    // [3 + 2^-9, 0]]; times [1, 1], exactly the rounded rows' sums.
    let a = t(&[1.0 + p(-11), 2049.0, 3.0 + p(-9), 0.0], &[2, 2]);
    let b = t(&[1.0, 1.0], &[2, 1]);
    for d in [dev(), dev().with_precision(Precision::F16).unwrap()] {
        let h = d.to_half(&a).unwrap();
        let got = get(&d.matmul_half(&h, &b, None, MatmulSpec::NN).unwrap());
        assert_eq!(got, [2049.0, 3.0 + p(-9)]);
    }
    // Sigmoid's derivative y·(1 − y) at y = 0.1, kept as 0.0999755859375
    // (the nearest half), times dy = 2: 2 · 0.0999755859375 ·
    // 0.9000244140625 = 0.17996093630790710...
    let y = dev().to_half(&t(&[0.1], &[1])).unwrap();
    let dy = t(&[2.0], &[1]);
    let got = get(&dev()
        .activation_backward_half(&y, &dy, Activation::Sigmoid)
        .unwrap());
    assert_close(&got, &[0.179_960_94]);
    // An activation keeping its halves: ReLU of [-2049, 2049, 1 + 2^-11]
    // is [0, 2049, 1 + 2^-11], kept as [0, 2048, 1]; GELU keeps its input,
    // [-2048, 2048, 1].
    let x = t(&[-2049.0, 2049.0, 1.0 + p(-11)], &[3]);
    let (y, kept) = dev().activation_keeping_half(&x, Activation::Relu).unwrap();
    assert_eq!(get(&y), [0.0, 2049.0, 1.0 + p(-11)]);
    assert_eq!(get(&dev().half_to_f32(&kept).unwrap()), [0.0, 2048.0, 1.0]);
    let (_, kept) = dev().activation_keeping_half(&x, Activation::Gelu).unwrap();
    assert_eq!(
        get(&dev().half_to_f32(&kept).unwrap()),
        [-2048.0, 2048.0, 1.0]
    );
}

#[test]
fn matmul_bias_and_activation_epilogue() {
    let a = t(&[1., -1.], &[1, 2]);
    let b = t(&[2., 0., 0., 3.], &[2, 2]);
    let bias = t(&[-1., 1.], &[2]);
    // [2, -3] + [-1, 1] = [1, -2]
    let relu = dev()
        .matmul(
            &a,
            &b,
            Some(&bias),
            MatmulSpec::NN.with_act(Activation::Relu),
        )
        .unwrap();
    assert_eq!(get(&relu), [1., 0.]);
    let tanh = dev()
        .matmul(
            &a,
            &b,
            Some(&bias),
            MatmulSpec::NN.with_act(Activation::Tanh),
        )
        .unwrap();
    assert_close(&get(&tanh), &[1f32.tanh(), (-2f32).tanh()]);
}

#[test]
fn matmul_rejects_mismatched_inner_dimensions() {
    let a = t(&[1., 2., 3.], &[1, 3]);
    let err = dev().matmul(&a, &a, None, MatmulSpec::NN).unwrap_err();
    assert!(err.to_string().contains("inner dimensions"), "{err}");
}

#[test]
fn conv2d_by_hand() {
    // 3×3 input 1..9, 2×2 kernel of ones, no padding: sums of 2×2 windows.
    let x = t(&[1., 2., 3., 4., 5., 6., 7., 8., 9.], &[1, 1, 3, 3]);
    let w = t(&[1., 1., 1., 1.], &[1, 1, 2, 2]);
    let b = t(&[0.5], &[1]);
    let y = dev().conv2d(&x, &w, Some(&b), ConvStep::padded(0)).unwrap();
    assert_eq!(y.shape_dims(), [1, 1, 2, 2]);
    assert_eq!(get(&y), [12.5, 16.5, 24.5, 28.5]);
    // Padding 1 with a 3×3 centre-only kernel is the identity.
    let mut centre = [0.0f32; 9];
    centre[4] = 1.0;
    let id = dev()
        .conv2d(&x, &t(&centre, &[1, 1, 3, 3]), None, ConvStep::padded(1))
        .unwrap();
    assert_eq!(get(&id), get(&x));
}

#[test]
fn conv2d_gradients_by_hand() {
    let x = t(&[1., 2., 3., 4., 5., 6., 7., 8., 9.], &[1, 1, 3, 3]);
    let w = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]);
    let dy = t(&[1., 0., 0., 0.], &[1, 1, 2, 2]);
    // Only the top-left output has gradient: dx is w placed at the top-left,
    // dw is the top-left input window.
    let step = ConvStep::padded(0);
    let dx = dev().conv2d_input_grad(&dy, &w, x.shape(), step).unwrap();
    assert_eq!(get(&dx), [1., 2., 0., 3., 4., 0., 0., 0., 0.]);
    let dw = dev().conv2d_weight_grad(&x, &dy, step, (2, 2)).unwrap();
    assert_eq!(get(&dw), [1., 2., 4., 5.]);
    let ones = t(&[1.; 4], &[1, 1, 2, 2]);
    assert_eq!(get(&dev().channel_sum(&ones).unwrap()), [4.]);
}

#[test]
fn max_pool_routes_gradient_to_the_maximum() {
    let x = t(
        &[
            1., 5., 2., 0., 3., 4., 8., 1., 0., 0., 0., 0., 0., 0., 0., 9.,
        ],
        &[1, 1, 4, 4],
    );
    let (y, arg) = dev().max_pool2d(&x, PoolWindow::tiled(2)).unwrap();
    assert_eq!(get(&y), [5., 8., 0., 9.]);
    // Ties (the all-zero window) pick the first position.
    assert_eq!(get(&arg), [1., 6., 8., 15.]);
    let dy = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]);
    let dx = dev()
        .max_pool2d_backward(&dy, &arg, &Shape::new([1, 1, 4, 4]), PoolWindow::tiled(2))
        .unwrap();
    let mut want = [0.0f32; 16];
    want[1] = 1.;
    want[6] = 2.;
    want[8] = 3.;
    want[15] = 4.;
    assert_eq!(get(&dx), want);
}

#[test]
fn max_pool_backward_refuses_an_index_outside_its_plane() {
    // Two 2×2 planes pooled to one value each; the first window's arg-max
    // points into the second plane.
    let dy = t(&[1., 2.], &[1, 2, 1, 1]);
    let x_shape = Shape::new([1, 2, 2, 2]);
    let inside = t(&[3., 4.], &[1, 2, 1, 1]);
    let dx = dev()
        .max_pool2d_backward(&dy, &inside, &x_shape, PoolWindow::tiled(2))
        .unwrap();
    assert_eq!(get(&dx), [0., 0., 0., 1., 2., 0., 0., 0.]);
    let outside = t(&[5., 4.], &[1, 2, 1, 1]);
    let err = dev()
        .max_pool2d_backward(&dy, &outside, &x_shape, PoolWindow::tiled(2))
        .unwrap_err();
    assert!(err.to_string().contains("outside its plane"), "{err}");
}

#[test]
fn activations_and_their_derivatives() {
    let x = t(&[-2., 0., 3.], &[3]);
    assert_eq!(
        get(&dev().activation(&x, Activation::Relu).unwrap()),
        [0., 0., 3.]
    );
    let s = dev().activation(&x, Activation::Sigmoid).unwrap();
    assert_close(&get(&s), &[0.11920292, 0.5, 0.95257413]);
    let dy = t(&[1., 1., 1.], &[3]);
    // σ' = σ(1-σ)
    let ds = dev()
        .activation_backward(&s, &dy, Activation::Sigmoid)
        .unwrap();
    assert_close(&get(&ds), &[0.10499359, 0.25, 0.04517666]);
    let th = dev().activation(&x, Activation::Tanh).unwrap();
    let dth = dev()
        .activation_backward(&th, &dy, Activation::Tanh)
        .unwrap();
    assert_close(&get(&dth), &[0.07065082, 1.0, 0.009866]);
    // leaky ReLU: slope 0.01 below zero, in both directions.
    let lr = dev().activation(&x, Activation::LeakyRelu).unwrap();
    assert_close(&get(&lr), &[-0.02, 0.0, 3.0]);
    let dlr = dev()
        .activation_backward(&lr, &dy, Activation::LeakyRelu)
        .unwrap();
    assert_close(&get(&dlr), &[0.01, 0.01, 1.0]);
    // softplus ln(1 + eˣ), and its derivative σ(x) from the output.
    let sp = dev().activation(&x, Activation::Softplus).unwrap();
    assert_close(&get(&sp), &[0.12692801, std::f32::consts::LN_2, 3.0485873]);
    let dsp = dev()
        .activation_backward(&sp, &dy, Activation::Softplus)
        .unwrap();
    assert_close(&get(&dsp), &[0.11920292, 0.5, 0.95257413]);
}

#[test]
fn arithmetic() {
    let a = t(&[1., 2.], &[2]);
    let b = t(&[3., 5.], &[2]);
    assert_eq!(get(&dev().binary(&a, &b, Binary::Add).unwrap()), [4., 7.]);
    assert_eq!(get(&dev().binary(&a, &b, Binary::Sub).unwrap()), [-2., -3.]);
    assert_eq!(get(&dev().binary(&a, &b, Binary::Mul).unwrap()), [3., 10.]);
    assert_eq!(get(&dev().scale(&a, 3.).unwrap()), [3., 6.]);
    assert_eq!(get(&dev().axpy(2., &a, &b).unwrap()), [5., 9.]);
}

#[test]
fn reductions() {
    let x = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    assert_eq!(get(&dev().sum_rows(&x).unwrap()), [5., 7., 9.]);
    assert_eq!(get(&dev().sum_cols(&x).unwrap()), [6., 15.]);
    assert_eq!(get(&dev().reduce(&x, Reduce::Sum).unwrap()), [21.]);
    assert_eq!(get(&dev().reduce(&x, Reduce::SumSquares).unwrap()), [91.]);
    assert_eq!(get(&dev().reduce(&x, Reduce::Max).unwrap()), [6.]);
    assert_eq!(get(&dev().argmax_rows(&x).unwrap()), [2., 2.]);
}

#[test]
fn softmax_and_cross_entropy() {
    let x = t(&[0., (2f32).ln(), 1000., 1000.], &[2, 2]);
    // Row 0: e^0 : e^ln2 = 1:2. Row 1 has huge equal logits: stable → ½, ½.
    let s = dev().softmax_rows(&x).unwrap();
    assert_close(&get(&s), &[1. / 3., 2. / 3., 0.5, 0.5]);
    let labels = t(&[1., 0.], &[2]);
    let lg = dev().softmax_cross_entropy(&x, &labels).unwrap();
    // Mean of -ln(2/3) and -ln(1/2).
    let want = ((1.5f32).ln() + (2f32).ln()) / 2.0;
    assert_close(&get(&lg.loss), &[want]);
    // (softmax - onehot) / rows
    assert_close(&get(&lg.grad), &[1. / 6., -1. / 6., -0.25, 0.25]);
}

#[test]
fn mse_and_bce() {
    let p = t(&[1., 3.], &[2]);
    let y = t(&[0., 1.], &[2]);
    let lg = dev().mse(&p, &y).unwrap();
    assert_eq!(get(&lg.loss), [2.5]); // (1 + 4) / 2
    assert_eq!(get(&lg.grad), [1., 2.]); // 2(p-y)/2
                                         // BCE at z = 0 is ln 2 whatever the target; huge logits stay finite.
    let z = t(&[0., 100., -100.], &[3]);
    let tg = t(&[1., 1., 1.], &[3]);
    let lg = dev().bce_with_logits(&z, &tg).unwrap();
    assert_close(&get(&lg.loss), &[((2f32).ln() + 0.0 + 100.0) / 3.0]);
    assert_close(&get(&lg.grad), &[-0.5 / 3., 0., -1. / 3.]);
}

#[test]
fn data_ops() {
    let src = t(&[0., 1., 10., 11., 20., 21.], &[3, 2]);
    let idx = t(&[9., 2., 0., 9.], &[4]);
    assert_eq!(
        get(&dev().gather_rows(&src, &idx, 1, 2).unwrap()),
        [20., 21., 0., 1.]
    );
    assert!(
        dev().gather_rows(&src, &idx, 0, 1).is_err(),
        "index 9 is out of range"
    );
    assert_eq!(
        get(&dev().one_hot(&t(&[2., 0.], &[2]), 3).unwrap()),
        [0., 0., 1., 1., 0., 0.]
    );
    assert_eq!(get(&dev().slice_rows(&src, 1, 1).unwrap()), [10., 11.]);
    let c = dev().concat_rows(&src, &src).unwrap();
    assert_eq!(c.shape_dims(), [6, 2]);
    assert_eq!(
        get(&dev()
            .count_equal(&idx, &t(&[9., 0., 0., 1.], &[4]))
            .unwrap()),
        [2.]
    );
}

#[test]
fn rnn_two_steps_by_hand() {
    // H = 1, B = 1: h1 = tanh(0.5 + 2·h0), h2 = tanh(-1 + 2·h1), h0 = 0.25.
    let xw = t(&[0.5, -1.0], &[2, 1, 1]);
    let u = t(&[2.0], &[1, 1]);
    let h0 = t(&[0.25], &[1, 1]);
    let h = get(&dev().rnn_forward(&xw, &u, &h0).unwrap());
    let h1 = (0.5f32 + 0.5).tanh();
    let h2 = (-1.0f32 + 2.0 * h1).tanh();
    assert_close(&h, &[h1, h2]);
    // Loss = h2: da2 = 1-h2², da1 = da2·U·(1-h1²), dh0 = da1·U.
    let hs = t(&h, &[2, 1, 1]);
    let dh = t(&[0.0, 1.0], &[2, 1, 1]);
    let (da, dh0) = dev().rnn_backward(&hs, &u, &dh).unwrap();
    let da2 = 1.0 - h2 * h2;
    let da1 = da2 * 2.0 * (1.0 - h1 * h1);
    assert_close(&get(&da), &[da1, da2]);
    assert_close(&get(&dh0), &[da1 * 2.0]);
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn lstm_two_steps_by_hand() {
    // H = 1, B = 1, gates i, f, g, o; h0 = 0.5, c0 = -1.
    let xw = [0.1f32, 0.2, -0.3, 0.4, -0.5, 0.6, 0.7, -0.8];
    let uv = [0.5f32, -0.25, 1.0, 0.75];
    let (mut h, mut c) = (0.5f32, -1.0f32);
    let (mut hs, mut cs, mut gates) = (vec![], vec![], vec![]);
    for step in xw.chunks(4) {
        let a: Vec<f32> = step.iter().zip(&uv).map(|(x, u)| x + h * u).collect();
        let (i, f, g, o) = (sigmoid(a[0]), sigmoid(a[1]), a[2].tanh(), sigmoid(a[3]));
        c = f * c + i * g;
        h = o * c.tanh();
        hs.push(h);
        cs.push(c);
        gates.extend([i, f, g, o]);
    }
    let (h_out, c_out, g_out) = dev()
        .lstm_forward(
            &t(&xw, &[2, 1, 4]),
            &t(&uv, &[1, 4]),
            &t(&[0.5], &[1, 1]),
            &t(&[-1.0], &[1, 1]),
        )
        .unwrap();
    assert_close(&get(&h_out), &hs);
    assert_close(&get(&c_out), &cs);
    assert_close(&get(&g_out), &gates);
}

#[test]
fn gru_two_steps_by_hand() {
    // H = 1, B = 1, gates r, z, n; h0 = 0.5; the recurrent bias b_hn = 0.3
    // is scaled by r with the recurrent product.
    let xw = [0.1f32, 0.2, -0.3, 0.4, -0.5, 0.6];
    let uv = [0.5f32, -0.25, 1.0];
    let ub = [0.1f32, -0.2, 0.3];
    let mut h = 0.5f32;
    let (mut hs, mut gates) = (vec![], vec![]);
    for x in xw.chunks(3) {
        let r = sigmoid(x[0] + h * uv[0] + ub[0]);
        let z = sigmoid(x[1] + h * uv[1] + ub[1]);
        let hn = h * uv[2] + ub[2];
        let n = (x[2] + r * hn).tanh();
        h = (1.0 - z) * n + z * h;
        hs.push(h);
        gates.extend([r, z, n, hn]);
    }
    let (h_out, g_out) = dev()
        .gru_forward(
            &t(&xw, &[2, 1, 3]),
            &t(&uv, &[1, 3]),
            &t(&ub, &[3]),
            &t(&[0.5], &[1, 1]),
        )
        .unwrap();
    assert_close(&get(&h_out), &hs);
    assert_close(&get(&g_out), &gates);
}

#[test]
fn batch_norm_by_hand() {
    // One channel of three values 0, 1, 5: mean 2, variance 14/3.
    let x = t(&[0.0, 1.0, 5.0], &[3, 1]);
    let stats = dev().channel_stats(&x).unwrap();
    assert_close(&get(&stats), &[2.0, 14.0 / 3.0]);
    let (gamma, beta, eps) = (t(&[2.0], &[1]), t(&[0.5], &[1]), 1e-5f32);
    let r = 1.0 / (14.0f32 / 3.0 + eps).sqrt();
    let y = get(&dev().batch_norm(&x, &stats, &gamma, &beta, eps).unwrap());
    assert_close(
        &y,
        &[-2.0 * r * 2.0 + 0.5, -r * 2.0 + 0.5, 3.0 * r * 2.0 + 0.5],
    );
    // dy = (1, 0, 0): dbeta = 1, dgamma = x̂₀ = −2r, and
    // dx = γ·r·(dy − 1/3 − x̂·(−2r)/3).
    let dy = t(&[1.0, 0.0, 0.0], &[3, 1]);
    let (dx, dg, db) = dev()
        .batch_norm_backward(&dy, &x, &stats, &gamma, eps)
        .unwrap();
    assert_close(&get(&db), &[1.0]);
    assert_close(&get(&dg), &[-2.0 * r]);
    let xhat = [-2.0 * r, -r, 3.0 * r];
    let want: Vec<f32> = [1.0, 0.0, 0.0]
        .iter()
        .zip(xhat)
        .map(|(g, xh)| 2.0 * r * (g - 1.0 / 3.0 + xh * 2.0 * r / 3.0))
        .collect();
    assert_close(&get(&dx), &want);
    // Channels are the second dimension: [N=2, C=2, S=2].
    let x = t(&[1., 2., 10., 20., 3., 4., 30., 40.], &[2, 2, 2]);
    let s = get(&dev().channel_stats(&x).unwrap());
    assert_close(&s[..2], &[2.5, 25.0]);
    assert_close(&s[2..], &[1.25, 125.0]);
}

#[test]
fn optimizer_steps_by_hand() {
    let g = t(&[1.0], &[1]);
    let one = t(&[1.0], &[1]);
    let mut p = t(&[2.0], &[1]);
    // p -= lr·(g + wd·p) = 2 - 0.1·(1 + 0.1·2)
    dev().sgd_update(&mut p, &g, &one, 0.1, 0.1).unwrap();
    assert_close(&get(&p), &[1.88]);

    let mut p = t(&[2.0], &[1]);
    let mut v = t(&[1.0], &[1]);
    // v = 0.9·1 + 1 = 1.9; p = 2 - 0.1·1.9
    dev()
        .momentum_update(&mut p, &mut v, &g, &one, 0.1, 0.9, 0.0)
        .unwrap();
    assert_close(&get(&p), &[1.81]);
    assert_close(&get(&v), &[1.9]);

    // Adam's first step moves every weight by about lr, against the gradient.
    let mut p = t(&[2.0], &[1]);
    let mut m = t(&[0.0], &[1]);
    let mut v = t(&[0.0], &[1]);
    let hp = AdamStep {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled_decay: 0.0,
        step: 1,
    };
    let half = t(&[0.5], &[1]);
    dev()
        .adam_update(&mut p, &mut m, &mut v, &g, &half, &hp)
        .unwrap();
    assert_close(&get(&p), &[1.99]);
    assert_close(&get(&m), &[0.05]);

    // AdamW adds the decoupled decay lr·0.1·p = 0.002 beside that step.
    let mut p = t(&[2.0], &[1]);
    let (mut m, mut v) = (t(&[0.0], &[1]), t(&[0.0], &[1]));
    let adamw = AdamStep {
        decoupled_decay: 0.1,
        ..hp
    };
    dev()
        .adam_update(&mut p, &mut m, &mut v, &g, &half, &adamw)
        .unwrap();
    assert_close(&get(&p), &[1.988]);

    assert_eq!(
        get(&dev().clip_factor(&t(&[100.0], &[1]), 5.0).unwrap()),
        [0.5]
    );
    assert_eq!(
        get(&dev().clip_factor(&t(&[4.0], &[1]), 5.0).unwrap()),
        [1.0]
    );
}

/// Loss scaling by hand: the loss gradient times a device scalar; the step
/// that unscales and clips (norm 2·1024 at scale 1024 is 2, clipped to 1),
/// counts, grows at the interval and backs off at an overflow; and every
/// update leaves parameters and state alone at a zero factor.
#[test]
fn loss_scaling_by_hand() {
    let d = dev();
    assert_eq!(
        get(&d
            .scale_by(&t(&[1.0, -2.0, 3.0], &[3]), &t(&[4.0], &[1]))
            .unwrap()),
        [4.0, -8.0, 12.0]
    );
    let rule = LossScaleStep {
        max_norm: Some(1.0),
        growth_interval: 2,
    };
    let (mut scale, mut good) = (t(&[1024.0], &[1]), t(&[0.0], &[1]));
    let sq = t(&[4.0 * 1024.0 * 1024.0], &[1]);
    let f = d
        .loss_scale_step(&sq, &mut scale, &mut good, &rule)
        .unwrap();
    assert_eq!(
        (get(&f), get(&scale), get(&good)),
        (vec![0.5 / 1024.0], vec![1024.0], vec![1.0])
    );
    let f = d
        .loss_scale_step(&sq, &mut scale, &mut good, &rule)
        .unwrap();
    assert_eq!(
        (get(&f), get(&scale), get(&good)),
        (vec![0.5 / 1024.0], vec![2048.0], vec![0.0])
    );
    let inf = t(&[f32::INFINITY], &[1]);
    let f = d
        .loss_scale_step(&inf, &mut scale, &mut good, &rule)
        .unwrap();
    assert_eq!(
        (get(&f), get(&scale), get(&good)),
        (vec![0.0], vec![1024.0], vec![0.0])
    );
    let zero = t(&[0.0], &[1]);
    let (mut p, mut m, mut v) = (
        t(&[1.0, 2.0], &[2]),
        t(&[0.5, 0.5], &[2]),
        t(&[0.25, 0.25], &[2]),
    );
    let g = t(&[3.0, -3.0], &[2]);
    d.sgd_update(&mut p, &g, &zero, 0.1, 0.1).unwrap();
    d.momentum_update(&mut p, &mut m, &g, &zero, 0.1, 0.9, 0.1)
        .unwrap();
    let hp = AdamStep {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
        decoupled_decay: 0.1,
        step: 1,
    };
    d.adam_update(&mut p, &mut m, &mut v, &g, &zero, &hp)
        .unwrap();
    assert_eq!(
        (get(&p), get(&m), get(&v)),
        (vec![1.0, 2.0], vec![0.5, 0.5], vec![0.25, 0.25])
    );
}

/// The squared norm of several tensors together, by hand (clipping's);
/// none at all is 0.
#[test]
fn sum_of_squares_over_many_tensors_by_hand() {
    let d = dev();
    let (a, b, c) = (
        t(&[3.0], &[1]),
        t(&[1.0, -2.0], &[2]),
        t(&[0.5; 4], &[2, 2]),
    );
    // 9 + 1 + 4 + 4 · 0.25
    assert_close(&get(&d.sum_squares_many(&[&a, &b, &c]).unwrap()), &[15.0]);
    assert_close(&get(&d.sum_squares_many(&[]).unwrap()), &[0.0]);
}

/// The many-tensor updates, by hand: each tensor with its own decay, as the
/// single-tensor examples above.
#[test]
fn many_tensor_optimizer_steps_by_hand() {
    let d = dev();
    let one = t(&[1.0], &[1]);
    let g = [t(&[1.0], &[1]), t(&[1.0, 1.0], &[2])];
    let g: Vec<_> = g.iter().collect();
    let (mut a, mut b) = (t(&[2.0], &[1]), t(&[2.0, 2.0], &[2]));
    // 2 - 0.1·(1 + 0.1·2) with decay 0.1; 2 - 0.1·1 without.
    d.sgd_update_many(&mut [&mut a, &mut b], &g, &one, 0.1, &[0.1, 0.0])
        .unwrap();
    assert_close(&get(&a), &[1.88]);
    assert_close(&get(&b), &[1.9, 1.9]);

    let (mut a, mut b) = (t(&[2.0], &[1]), t(&[2.0, 2.0], &[2]));
    let (mut va, mut vb) = (t(&[1.0], &[1]), t(&[0.0, 0.0], &[2]));
    // v = 0.9·1 + 1 = 1.9, p = 2 - 0.1·1.9; v = 1, p = 1.9.
    d.momentum_update_many(
        &mut [&mut a, &mut b],
        &mut [&mut va, &mut vb],
        &g,
        &one,
        0.1,
        0.9,
        &[0.0, 0.0],
    )
    .unwrap();
    assert_close(&get(&a), &[1.81]);
    assert_close(&get(&vb), &[1.0, 1.0]);
    assert_close(&get(&b), &[1.9, 1.9]);

    // Adam's first step, and AdamW's decoupled decay on the second tensor.
    let hp = AdamStep {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled_decay: 0.0,
        step: 1,
    };
    let adamw = AdamStep {
        decoupled_decay: 0.1,
        ..hp
    };
    let (mut a, mut b) = (t(&[2.0], &[1]), t(&[2.0, 2.0], &[2]));
    let (mut ma, mut mb) = (t(&[0.0], &[1]), t(&[0.0, 0.0], &[2]));
    let (mut va, mut vb) = (t(&[0.0], &[1]), t(&[0.0, 0.0], &[2]));
    let half = t(&[0.5], &[1]);
    d.adam_update_many(
        &mut [&mut a, &mut b],
        &mut [&mut ma, &mut mb],
        &mut [&mut va, &mut vb],
        &g,
        &half,
        &[hp, adamw],
    )
    .unwrap();
    assert_close(&get(&a), &[1.99]);
    assert_close(&get(&b), &[1.988, 1.988]);
    // Lists of different lengths are a shape error.
    let err = d
        .sgd_update_many(&mut [&mut a], &g, &one, 0.1, &[0.0])
        .unwrap_err();
    assert!(
        err.to_string().contains("1 tensors but a list of 2"),
        "{err}"
    );
}

#[test]
fn memory_ops_by_hand() {
    let d = dev();
    assert_eq!(d.name(), "cpu");
    assert_eq!(get(&d.full([3], 2.5).unwrap()), [2.5, 2.5, 2.5]);
    let z = d.zeros([2, 2]).unwrap();
    assert_eq!((get(&z), z.shape_dims()), (vec![0.0; 4], vec![2, 2]));
    // Reshape keeps the data and takes the new shape; a different element
    // count is an error.
    let x = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let r = d.reshape(&x, [3, 2]).unwrap();
    assert_eq!(
        (get(&r), r.shape_dims()),
        (vec![1., 2., 3., 4., 5., 6.], vec![3, 2])
    );
    assert!(d.reshape(&x, [4]).is_err());
    // [[1,2,3],[4,5,6]]ᵀ = [[1,4],[2,5],[3,6]].
    let tr = d.transpose(&x).unwrap();
    assert_eq!(
        (get(&tr), tr.shape_dims()),
        (vec![1., 4., 2., 5., 3., 6.], vec![3, 2])
    );
    d.synchronize().unwrap();
    // Bytes gathered by index and mapped through v·scale + shift.
    let bytes = d.upload_u8(&[0, 10, 20, 30, 40, 50], [3, 2]).unwrap();
    let idx = t(&[2., 0.], &[2]);
    let g = d.gather_rows_u8(&bytes, &idx, 0, 2, 0.5, -1.0).unwrap();
    assert_eq!(
        (get(&g), g.shape_dims()),
        (vec![19., 24., -1., 4.], vec![2, 2])
    );
    // add, sub and mul are `binary` by another name.
    let (a, b) = (t(&[1., 2.], &[2]), t(&[3., 5.], &[2]));
    assert_eq!(get(&d.add(&a, &b).unwrap()), [4., 7.]);
    assert_eq!(get(&d.sub(&a, &b).unwrap()), [-2., -3.]);
    assert_eq!(get(&d.mul(&a, &b).unwrap()), [3., 10.]);
}

#[test]
fn dropout_masks_by_hand() {
    // pcg(0..4), computed by hand from the definition (Python's integers,
    // reduced mod 2³²).
    let want = [129708002, 2831084092, 2055130248, 2131687100];
    assert_eq!((0..4).map(pcg).collect::<Vec<_>>(), want);
    // seed 7, step 3, rate 0.5: key pcg(7 ^ pcg(3)) = 3952640559; an element
    // is kept (×2) where pcg(i ^ key) ≥ 2³¹.
    let m = DropoutMask {
        rate: 0.5,
        seed: 7,
        step: 3,
    };
    assert_eq!(m.key(), 3952640559);
    let mask = get(&dev().dropout_mask([8].into(), &m).unwrap());
    assert_eq!(mask, [2., 0., 0., 2., 0., 2., 2., 0.]);
    // Over many elements the dropped fraction is the rate, and the kept
    // ones are scaled so the mean stays 1.
    let m = DropoutMask {
        rate: 0.3,
        seed: 1,
        step: 0,
    };
    let mask = get(&dev().dropout_mask([100_000].into(), &m).unwrap());
    let dropped = mask.iter().filter(|&&v| v == 0.0).count() as f64 / 1e5;
    assert!((dropped - 0.3).abs() < 0.005, "dropped {dropped}");
    assert!(mask.iter().all(|&v| v == 0.0 || v == 1.0 / 0.7));
    // Another step draws another mask; rate 0 keeps everything.
    let other = get(&dev()
        .dropout_mask([100_000].into(), &DropoutMask { step: 1, ..m })
        .unwrap());
    assert_ne!(mask, other);
    let none = DropoutMask { rate: 0.0, ..m };
    assert!(get(&dev().dropout_mask([1000].into(), &none).unwrap())
        .iter()
        .all(|&v| v == 1.0));
}

#[test]
fn scatter_add_rows_by_hand() {
    // Rows 0 and 2 go to id 2, row 1 to id 0; id 1 gets nothing.
    let dy = t(&[1., 2., 3., 4., 5., 6.], &[3, 2]);
    let ids = t(&[2., 0., 2.], &[3]);
    let out = dev().scatter_add_rows(&dy, &ids, 3).unwrap();
    assert_eq!(out.shape().dims(), [3, 2]);
    assert_eq!(get(&out), [3., 4., 0., 0., 6., 8.]);
    // An id outside the table is an error, not a silent drop.
    let bad = t(&[3., 0., 2.], &[3]);
    assert!(dev().scatter_add_rows(&dy, &bad, 3).is_err());
}

#[test]
fn layer_norm_by_hand() {
    // Row [0, 1, 2]: mean 1, variance 2/3, rstd √1.5 = 1.2247449, so
    // x̂ = [−1.2247449, 0, 1.2247449]; y = x̂·gamma + beta.
    let x = t(&[0., 1., 2.], &[1, 3]);
    let gamma = t(&[2., 1., 0.5], &[3]);
    let beta = t(&[0., 10., -1.], &[3]);
    let (y, stats) = dev().layer_norm(&x, &gamma, &beta, 0.0).unwrap();
    assert_close(&get(&y), &[-2.4494897, 10.0, -0.38762756]);
    assert_close(&get(&stats), &[1.0, 1.2247449]);
    // dy = [1, 0, 0.5]: ĝ = dy·gamma = [2, 0, 0.25]; dx = rstd·(ĝ − mean(ĝ)
    // − x̂·mean(ĝ·x̂)) (checked against finite differences in numpy).
    let dy = t(&[1., 0., 0.5], &[1, 3]);
    let (dx, dg, db) = dev().layer_norm_backward(&dy, &x, &stats, &gamma).unwrap();
    assert_close(&get(&dx), &[0.45927933, -0.91855865, 0.45927933]);
    assert_close(&get(&dg), &[-1.2247449, 0.0, 0.61237244]);
    assert_close(&get(&db), &[1.0, 0.0, 0.5]);
}

#[test]
fn gelu_and_its_derivative_from_the_input() {
    // ½x(1 + tanh(√(2/π)(x + 0.044715x³))) and its derivative, at −2, 0, 3
    // (Python's math, checked against finite differences).
    let x = t(&[-2., 0., 3.], &[3]);
    let y = dev().activation(&x, Activation::Gelu).unwrap();
    assert_close(&get(&y), &[-0.045402306, 0.0, 2.9963626]);
    let dy = t(&[1., 1., 2.], &[3]);
    let dx = dev()
        .activation_backward_from_input(&x, &dy, Activation::Gelu)
        .unwrap();
    assert_close(&get(&dx), &[-0.08609926, 0.5, 2.0231683]);
    // The same op for an activation the output determines agrees with the
    // output-based one.
    let th = dev().activation(&x, Activation::Tanh).unwrap();
    let from_y = dev()
        .activation_backward(&th, &dy, Activation::Tanh)
        .unwrap();
    let from_x = dev()
        .activation_backward_from_input(&x, &dy, Activation::Tanh)
        .unwrap();
    assert_close(&get(&from_x), &get(&from_y));
    // And GELU refuses the output-based one.
    assert!(dev()
        .activation_backward(&y, &dy, Activation::Gelu)
        .is_err());
}

#[test]
fn avg_pool_by_hand() {
    // One 3×3 plane pooled 2×2: the last row and column are dropped.
    let x = t(&[1., 2., 9., 3., 6., 9., 9., 9., 9.], &[1, 1, 3, 3]);
    let y = dev().avg_pool2d(&x, PoolWindow::tiled(2)).unwrap();
    assert_eq!(y.shape().dims(), [1, 1, 1, 1]);
    assert_eq!(get(&y), [3.]);
    let dy = t(&[8.], &[1, 1, 1, 1]);
    let dx = dev()
        .avg_pool2d_backward(&dy, &Shape::new([1, 1, 3, 3]), PoolWindow::tiled(2))
        .unwrap();
    assert_eq!(get(&dx), [2., 2., 0., 2., 2., 0., 0., 0., 0.]);
}

#[test]
fn strided_conv2d_by_hand() {
    // 4×4 input 1..16, 2×2 kernel of ones, stride 2: the sums of the four
    // 2×2 blocks; each block's input gradient is its dy; the weight
    // gradient for dy on the top-left output alone is that block.
    let x: Vec<f32> = (1..=16).map(|v| v as f32).collect();
    let x = t(&x, &[1, 1, 4, 4]);
    let w = t(&[1., 1., 1., 1.], &[1, 1, 2, 2]);
    let step = ConvStep { stride: 2, pad: 0 };
    let y = dev().conv2d(&x, &w, None, step).unwrap();
    assert_eq!(y.shape_dims(), [1, 1, 2, 2]);
    assert_eq!(get(&y), [14., 22., 46., 54.]);
    let dy = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]);
    let dx = dev().conv2d_input_grad(&dy, &w, x.shape(), step).unwrap();
    assert_eq!(
        get(&dx),
        [1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.]
    );
    let dy = t(&[1., 0., 0., 0.], &[1, 1, 2, 2]);
    let dw = dev().conv2d_weight_grad(&x, &dy, step, (2, 2)).unwrap();
    assert_eq!(get(&dw), [1., 2., 5., 6.]);
    // A 5×5 input gives the same 2×2 output; its last row and column are in
    // no window and get no gradient.
    let x5 = t(&[1.0; 25], &[1, 1, 5, 5]);
    let dy = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]);
    let dx = get(&dev().conv2d_input_grad(&dy, &w, x5.shape(), step).unwrap());
    assert_eq!(&dx[..5], [1., 1., 2., 2., 0.]);
    assert_eq!(&dx[20..], [0.; 5]);
    // A gradient of the wrong size for this input is refused.
    let x6 = Shape::new([1, 1, 6, 6]);
    let err = dev().conv2d_input_grad(&dy, &w, &x6, step).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn overlapping_pools_by_hand() {
    // 2×2 windows with stride 1 over a 3×3 plane whose centre is the
    // maximum of all four windows: its gradient is the sum of all four.
    let x = t(&[1., 2., 3., 4., 9., 5., 6., 7., 8.], &[1, 1, 3, 3]);
    let win = PoolWindow::new(2, 1);
    let (y, arg) = dev().max_pool2d(&x, win).unwrap();
    assert_eq!(get(&y), [9.; 4]);
    assert_eq!(get(&arg), [4.; 4]);
    let dy = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]);
    let dx = dev()
        .max_pool2d_backward(&dy, &arg, x.shape(), win)
        .unwrap();
    assert_eq!(get(&dx), [0., 0., 0., 0., 10., 0., 0., 0., 0.]);
    let y = dev().avg_pool2d(&x, win).unwrap();
    assert_eq!(get(&y), [4., 4.75, 6.5, 7.25]);
    let dy = t(&[4., 8., 12., 16.], &[1, 1, 2, 2]);
    let dx = dev().avg_pool2d_backward(&dy, x.shape(), win).unwrap();
    // Each window adds dy/4 = 1, 2, 3, 4 to its four pixels.
    assert_eq!(get(&dx), [1., 3., 2., 4., 10., 6., 3., 7., 4.]);
}

#[test]
fn empty_dimensions_and_misshapen_scales_are_errors() {
    // Zero-sized channels or rows would split the work into empty chunks;
    // a scale must be one value, not the first of several or none.
    let d = dev();
    let zeros = |shape: &[usize]| d.zeros(Shape::from(shape)).unwrap();
    let e = d
        .conv2d(
            &zeros(&[1, 1, 4, 4]),
            &zeros(&[0, 1, 3, 3]),
            None,
            ConvStep::padded(1),
        )
        .unwrap_err();
    assert!(e.to_string().contains("a dimension of 0"), "{e}");
    let e = d
        .layer_norm(&zeros(&[2, 0]), &zeros(&[0]), &zeros(&[0]), 1e-5)
        .unwrap_err();
    assert!(e.to_string().contains("rows of 0 features"), "{e}");
    let mut p = zeros(&[3]);
    for scale in [zeros(&[0]), zeros(&[3])] {
        let e = d
            .sgd_update(&mut p, &zeros(&[3]), &scale, 0.1, 0.0)
            .unwrap_err();
        assert!(e.to_string().contains("expected a [1] tensor"), "{e}");
        let e = d.clip_factor(&scale, 1.0).unwrap_err();
        assert!(e.to_string().contains("expected a [1] tensor"), "{e}");
    }
}
