//! `wgtrain check`: every Device op on the GPU against the CPU reference.

use clap::Args;
use wgtrain::check::{cases, check_case, Outcome};
use wgtrain::device::gpu::tune::{ConvVariant, RnnVariant, Variant};
use wgtrain::device::gpu::MatmulKernel;
use wgtrain::device::Precision;
use wgtrain::{CpuDevice, Device, GpuDevice};

use super::summary::{CheckRow, CheckSummary};

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Only run ops whose name contains this text (e.g. "matmul").
    #[arg(long)]
    pub filter: Option<String>,
    /// Print only failures and the summary.
    #[arg(long)]
    pub quiet: bool,
    /// Print one JSON object (every check with its errors) instead of the
    /// table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CheckArgs) -> anyhow::Result<()> {
    // Unwritten output elements read NaN, not a stale right answer.
    let gpu = GpuDevice::new()?.with_poisoned_allocations();
    let cpu = CpuDevice::new();
    let table = !args.json;
    if table {
        crate::outln_lenient!("checking {} against the CPU reference", gpu.name());
        crate::outln_lenient!(
            "{:<28} {:<34} {:>11} {:>11}  result",
            "op",
            "shape",
            "max abs err",
            "max rel err"
        );
    }
    let mut rows = Vec::new();
    let mut selected: Vec<_> = cases()
        .into_iter()
        .filter(|c| args.filter.as_deref().is_none_or(|f| c.op.contains(f)))
        .collect();
    // Without f16 support the f16 cases cannot run: said, not failed.
    let mut skipped = 0;
    if gpu.with_precision(Precision::F16).is_err() {
        let before = selected.len();
        selected.retain(|c| c.precision() != Precision::F16);
        skipped = before - selected.len();
    }
    if selected.is_empty() && skipped == 0 {
        return Err(wgtrain::Error::Config(format!(
            "--filter '{}' matches no op (ops are named like 'matmul', 'conv2d', 'softmax')",
            args.filter.as_deref().unwrap_or_default()
        ))
        .into());
    }
    // Every matmul kernel family is checked, whichever this adapter uses.
    let families: Vec<_> = MatmulKernel::ALL
        .iter()
        .map(|&k| {
            (
                format!(" [{k:?}]").to_lowercase(),
                gpu.with_matmul_kernel(k),
            )
        })
        .collect();
    let mut failed = 0;
    let mut total = 0;
    for case in &selected {
        // Ops with tuned kernels run each kernel forced: the tuned device's
        // timing launches would write the output before the chosen kernel
        // does, so an element it leaves unwritten would not read NaN.
        let outcomes: Vec<_> = if case.is_matmul() {
            families
                .iter()
                .map(|(name, dev)| (name.clone(), check_case(&cpu, dev, case)))
                .collect()
        } else if case.group == "rnn" {
            RnnVariant::ALL
                .iter()
                .map(|&w| {
                    let name = format!(" [{}]", w.name());
                    (name, check_case(&cpu, &gpu.with_rnn_kernel(w), case))
                })
                .collect()
        } else if case.op.starts_with("conv2d") {
            ConvVariant::ALL
                .iter()
                .filter(|&&k| k == ConvVariant::Plain || gpu.has_bcast_matmul())
                .map(|&k| {
                    let name = format!(" [{}]", k.name());
                    (name, check_case(&cpu, &gpu.with_conv_kernel(k), case))
                })
                .collect()
        } else {
            vec![(String::new(), check_case(&cpu, &gpu, case))]
        };
        for (suffix, o) in outcomes {
            total += 1;
            if !o.passed() {
                failed += 1;
            }
            let op = format!("{}{suffix}", o.case.op);
            if table && (!args.quiet || !o.passed()) {
                print_row(&op, &o);
            }
            rows.push(CheckRow {
                pass: o.passed(),
                max_abs: o.result.as_ref().ok().map(|c| c.max_abs),
                max_rel: o.result.as_ref().ok().map(|c| c.max_rel),
                error: o.result.as_ref().err().cloned(),
                shape: o.case.shape.clone(),
                op,
            });
        }
    }
    if table {
        crate::outln_lenient!(
            "\n{} of {total} checks passed on {}",
            total - failed,
            gpu.name()
        );
        if skipped > 0 {
            crate::outln_lenient!("{skipped} f16 checks skipped: the adapter has no SHADER_F16");
        }
    } else {
        let summary = CheckSummary {
            adapter: gpu.name().to_string(),
            passed: total - failed,
            total,
            skipped_f16: skipped,
            checks: rows,
        };
        crate::outln_lenient!("{}", serde_json::to_string(&summary)?);
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {total} GPU checks disagree with the CPU reference");
    }
    Ok(())
}

fn print_row(op: &str, o: &Outcome) {
    match &o.result {
        Ok(c) => crate::outln_lenient!(
            "{:<28} {:<34} {:>11.3e} {:>11.3e}  {}",
            op,
            o.case.shape,
            c.max_abs,
            c.max_rel,
            if c.pass { "ok" } else { "FAIL" }
        ),
        Err(e) => crate::outln_lenient!(
            "{op:<28} {:<34} {:>11} {:>11}  FAIL: {e}",
            o.case.shape,
            "-",
            "-"
        ),
    }
}
