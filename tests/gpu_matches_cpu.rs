//! Every Device op on the GPU against the CPU reference, on the cases of
//! `wgtrain::check` (awkward shapes, every transpose, every matmul kernel family,
//! workgroup reductions with and without subgroup operations, convolutions
//! with and without broadcast weights, f16 matmul operands).
//! Tolerances are stated and justified on `wgtrain::check::Tolerance`.

mod common;

use wgtrain::check::{cases, check_case, Outcome, GROUPS};
use wgtrain::device::gpu::tune::{ConvVariant, RnnVariant};
use wgtrain::device::gpu::MatmulKernel;
use wgtrain::device::{Device, Precision};
use wgtrain::CpuDevice;

/// Runs every case of `group` (one of `wgtrain::check::GROUPS`) and fails
/// with the list of disagreements.
fn check_group(group: &str) {
    let Some(gpu) = common::gpu() else { return };
    let cpu = CpuDevice::new();
    let selected: Vec<_> = cases().into_iter().filter(|c| c.group == group).collect();
    assert!(!selected.is_empty(), "no cases in group {group:?}");
    let mut failures = Vec::new();
    let has_f16 = gpu.with_precision(Precision::F16).is_ok();
    for case in &selected {
        let mut outcomes: Vec<(String, Outcome)> = Vec::new();
        if case.precision() == Precision::F16 && !has_f16 {
            // Not skipped: the adapter must refuse, naming what it lacks.
            let o = check_case(&cpu, &gpu, case);
            let refused = matches!(&o.result, Err(e) if e.contains("SHADER_F16"));
            assert!(refused, "{}: {:?}", case.op, o.result);
            continue;
        }
        if case.is_matmul() {
            for kernel in MatmulKernel::ALL {
                outcomes.push((
                    format!("{kernel:?}"),
                    check_case(&cpu, &gpu.with_matmul_kernel(kernel), case),
                ));
            }
            // The padded copies are made per row on software adapters and
            // per element elsewhere: the other way too.
            let padded = gpu.with_matmul_kernel(MatmulKernel::Padded);
            let other = padded.with_lane_rows(!gpu.lane_rows());
            outcomes.push((
                "Padded, pad per row or element".into(),
                check_case(&cpu, &other, case),
            ));
        } else {
            outcomes.push((String::new(), check_case(&cpu, &gpu, case)));
            // Workgroup reductions have a subgroup and a tree version: the
            // one this adapter does not use by default too, where it has both.
            let other = gpu.with_subgroups(!gpu.subgroups());
            if other.subgroups() != gpu.subgroups() {
                let name = if other.subgroups() {
                    "subgroups"
                } else {
                    "no subgroups"
                };
                outcomes.push((name.into(), check_case(&cpu, &other, case)));
            }
            // Convolutions have a plain and a broadcast kernel: each forced
            // (the default device's choice is tuned), where the adapter has
            // the broadcast one.
            // The recurrences' steps run fused, through the matmul
            // kernels, or (Elman) a whole pass per dispatch: each forced
            // (the default device's choice is tuned).
            if group == "rnn" {
                for way in RnnVariant::ALL {
                    let forced = gpu.with_rnn_kernel(way);
                    outcomes.push((format!("{way:?}"), check_case(&cpu, &forced, case)));
                }
            }
            // Through matmuls, the Elman step's epilogue runs in whichever
            // kernel stores C four columns at a time: each family forced
            // (untuned: `matmul_vec4` for Blocked, the fixed rule's `bcast`
            // block, `matmul_tile128`).
            if case.op.starts_with("rnn ") {
                for kernel in [
                    MatmulKernel::Blocked,
                    MatmulKernel::Broadcast,
                    MatmulKernel::Tile128,
                ] {
                    let forced = gpu
                        .with_matmul_kernel(kernel)
                        .with_rnn_kernel(RnnVariant::Matmul);
                    outcomes.push((
                        format!("Matmul, {kernel:?}"),
                        check_case(&cpu, &forced, case),
                    ));
                }
            }
            // Row gathers run a row per invocation on software adapters
            // (where rows allow) and an element per invocation elsewhere.
            if group == "data movement" {
                let other = gpu.with_lane_rows(!gpu.lane_rows());
                outcomes.push(("lane rows flipped".into(), check_case(&cpu, &other, case)));
            }
            // Optimizer updates run grouped (many tensors per dispatch) or
            // one dispatch per tensor: the way this adapter does not use too.
            if group == "optimizers" {
                let other = gpu.with_grouped_updates(!gpu.grouped_updates());
                let name = if other.grouped_updates() {
                    "grouped"
                } else {
                    "per tensor"
                };
                outcomes.push((name.into(), check_case(&cpu, &other, case)));
            }
            if group == "convolution and pooling" {
                for kernel in ConvVariant::ALL {
                    if kernel == ConvVariant::Plain || gpu.has_bcast_matmul() {
                        let forced = gpu.with_conv_kernel(kernel);
                        outcomes.push((format!("{kernel:?}"), check_case(&cpu, &forced, case)));
                    }
                }
            }
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

/// One test per group, so groups run in parallel and a failure names its
/// group.
const TESTED: [&str; 7] = [
    "matmul",
    "convolution and pooling",
    "elementwise",
    "reductions and losses",
    "data movement",
    "rnn",
    "optimizers",
];

#[test]
fn matmul() {
    check_group(TESTED[0]);
}

#[test]
fn convolution_and_pooling() {
    check_group(TESTED[1]);
}

#[test]
fn elementwise() {
    check_group(TESTED[2]);
}

#[test]
fn reductions_and_losses() {
    check_group(TESTED[3]);
}

#[test]
fn data_movement() {
    check_group(TESTED[4]);
}

#[test]
fn rnn() {
    check_group(TESTED[5]);
}

#[test]
fn optimizers() {
    check_group(TESTED[6]);
}

#[test]
fn every_group_has_a_test_above() {
    // A new group in wgtrain::check must get its test here; cases join a
    // group where they are declared, so no op name is listed twice.
    assert_eq!(GROUPS, TESTED);
}
