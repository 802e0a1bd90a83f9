//! `wgtrain tune`: tunes the GPU's matmul, convolution and recurrence kernels ahead of
//! training, on the shapes of the benchmark workloads, and prints the table.

use clap::Args;
use wgtrain::bench::{Budget, Prepared};
use wgtrain::device::gpu::tune::{ConvVariant, MatmulVariant, RnnVariant, Variant};
use wgtrain::device::Precision;
use wgtrain::{Device, Error, GpuDevice};

use super::bench::selected;

#[derive(Args, Debug)]
pub struct TuneArgs {
    /// Comma-separated workload ids or groups whose shapes to tune (K1,
    /// T3, ...). Default: all. A model's other shapes are tuned on their
    /// first use in training.
    #[arg(long)]
    pub workloads: Option<String>,
    /// Forget this adapter's cached table first and time everything again.
    #[arg(long)]
    pub fresh: bool,
    /// Print the table as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Tune the kernels of this precision (`f16`: the f16-operand kernels
    /// of `train --precision f16`, tuned as classes of their own).
    #[arg(long, value_parser = super::train::parse_precision, default_value = "f32")]
    pub precision: Precision,
}

pub fn run(args: TuneArgs) -> anyhow::Result<()> {
    let chosen = selected(args.workloads.as_deref())?;
    // Refused before anything is removed (--fresh) on an adapter without f16.
    let mut dev = GpuDevice::new()?.with_precision(args.precision)?;
    let Some(path) = dev.tuner().map(|t| t.path().cloned()) else {
        return Err(Error::Config(
            "kernel tuning is off (WGTRAIN_TUNE=0, or WGTRAIN_MATMUL forces a matmul kernel)"
                .into(),
        )
        .into());
    };
    if args.fresh {
        if let Some(p) = &path {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Config(format!("cannot remove {}: {e}", p.display())).into())
                }
                _ => {}
            }
        }
        dev = GpuDevice::new()?.with_precision(args.precision)?;
    }
    // One repetition of each workload: its first matmul of every shape
    // class is timed with each kernel.
    for w in &chosen {
        Prepared::new(&dev, w, Budget::QUICK)?.run_once()?;
    }
    let tuner = dev.tuner().expect("tuning was on above");
    let table = tuner.table();
    if args.json {
        crate::outln_lenient!(
            "{}",
            serde_json::json!({
                "adapter": dev.adapter_info().name,
                "cache": path,
                "classes": table,
            })
        );
        return Ok(());
    }
    crate::outln_lenient!(
        "matmul, convolution and recurrence kernels tuned on {} (each candidate's best launch, µs; \
         of a slice of the rows where marked):",
        dev.adapter_info().name
    );
    let kernels: Vec<&str> = MatmulVariant::ALL
        .iter()
        .map(|v| v.name())
        .chain(ConvVariant::ALL.iter().map(|v| v.name()))
        .chain(RnnVariant::ALL.iter().map(|v| v.name()))
        .collect();
    // Columns as wide as the longest kernel name (at least 9, for times).
    let wide = kernels.iter().map(|k| k.len()).max().unwrap_or(0).max(9);
    let mut header = format!("{:<48} {:<wide$}", "shape class", "kernel");
    for name in &kernels {
        header.push_str(&format!(" {name:>w$}", w = name.len().max(9)));
    }
    crate::outln_lenient!("{header}");
    for (class, t) in &table {
        let class = match t.rows {
            Some(rows) => format!("{class} (on {rows} rows)"),
            None => class.clone(),
        };
        let mut row = format!("{:<48} {:<wide$}", class, t.kernel);
        for name in &kernels {
            let us = t.micros.get(*name);
            row.push_str(&format!(
                " {:>w$}",
                us.map_or("–".to_string(), |v| format!("{v:.0}")),
                w = name.len().max(9)
            ));
        }
        crate::outln_lenient!("{row}");
    }
    match path {
        Some(p) => crate::outln_lenient!("cached in {}", p.display()),
        None => crate::outln_lenient!("no cache directory: the table lasts for this process only"),
    }
    Ok(())
}
