//! Every Device op on the GPU against the CPU reference, on the cases of
//! `wgtrain::check` (awkward shapes, every transpose, both matmul kernels).
//! Tolerances are stated and justified on `wgtrain::check::Tolerance`.

mod common;

use wgtrain::check::{cases, check_case, Outcome};
use wgtrain::device::gpu::MatmulKernel;
use wgtrain::CpuDevice;

/// Runs every case whose op name starts with one of `prefixes` and fails
/// with the list of disagreements.
fn check_ops(prefixes: &[&str]) {
    let Some(gpu) = common::gpu() else { return };
    let cpu = CpuDevice::new();
    let selected: Vec<_> = cases()
        .into_iter()
        .filter(|c| prefixes.iter().any(|p| c.op.starts_with(p)))
        .collect();
    assert!(!selected.is_empty(), "no cases match {prefixes:?}");
    let mut failures = Vec::new();
    for case in &selected {
        let mut outcomes: Vec<(&str, Outcome)> = Vec::new();
        if case.is_matmul() {
            for (name, kernel) in [
                ("blocked", MatmulKernel::Blocked),
                ("tiled", MatmulKernel::Tiled),
            ] {
                outcomes.push((
                    name,
                    check_case(&cpu, &gpu.with_matmul_kernel(kernel), case),
                ));
            }
        } else {
            outcomes.push(("", check_case(&cpu, &gpu, case)));
        }
        for (variant, o) in outcomes {
            if !o.passed() {
                failures.push(format!(
                    "{} {variant} {}: {:?}",
                    o.case.op, o.case.shape, o.result
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "GPU disagrees with CPU:\n{}",
        failures.join("\n")
    );
}

#[test]
fn matmul_all_transposes_and_epilogues() {
    check_ops(&["matmul"]);
}

#[test]
fn conv2d_forward_and_gradients() {
    check_ops(&["conv2d", "channel sum"]);
}

#[test]
fn max_pool_forward_and_backward() {
    check_ops(&["max pool"]);
}

#[test]
fn elementwise_activations_and_arithmetic() {
    check_ops(&[
        "Identity", "Tanh", "Sigmoid", "Relu", "Add", "Sub", "Mul", "scale", "axpy", "fill",
    ]);
}

#[test]
fn reductions_softmax_and_losses() {
    check_ops(&[
        "sum over",
        "reduce",
        "softmax",
        "mse",
        "bce",
        "argmax",
        "count equal",
    ]);
}

#[test]
fn data_movement() {
    check_ops(&[
        "gather rows",
        "transpose",
        "one hot",
        "slice+concat",
        "reshape",
    ]);
}

#[test]
fn rnn_forward_and_bptt() {
    check_ops(&["rnn"]);
}

#[test]
fn optimizer_updates() {
    check_ops(&["sgd", "momentum", "adam", "clip"]);
}

#[test]
fn every_case_belongs_to_a_test_above() {
    // Guards against a new op being added to `cases()` but never tested here.
    let covered = [
        "matmul",
        "conv2d",
        "channel sum",
        "max pool",
        "Identity",
        "Tanh",
        "Sigmoid",
        "Relu",
        "Add",
        "Sub",
        "Mul",
        "scale",
        "axpy",
        "fill",
        "sum over",
        "reduce",
        "softmax",
        "mse",
        "bce",
        "argmax",
        "count equal",
        "gather rows",
        "one hot",
        "slice+concat",
        "reshape",
        "transpose",
        "rnn",
        "sgd",
        "momentum",
        "adam",
        "clip",
    ];
    let missing: Vec<String> = cases()
        .into_iter()
        .filter(|c| !covered.iter().any(|p| c.op.starts_with(p)))
        .map(|c| c.op)
        .collect();
    assert!(missing.is_empty(), "cases without a test: {missing:?}");
}
