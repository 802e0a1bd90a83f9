//! `wgtrain bench`: the benches/WORKLOADS.md workloads on the CPU and GPU devices.

use clap::{Args, ValueEnum};
use serde_json::json;
use wgtrain::bench::{run as measure, workloads, Budget, Unit, Workload};
use wgtrain::{CpuDevice, Device, Error, GpuDevice};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = BenchDevice::All)]
    pub device: BenchDevice,
    /// Comma-separated workload ids or groups (K1, K1-1024, T3, ...).
    /// Default: all.
    #[arg(long)]
    pub workloads: Option<String>,
    /// Fewer and shorter repetitions (a smoke run).
    #[arg(long)]
    pub quick: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// After each training workload, print where a step's time goes
    /// (forward, backward, optimizer, host waits; GPU time per kernel).
    #[arg(long)]
    pub profile: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchDevice {
    Cpu,
    Gpu,
    All,
}

fn selected(filter: Option<&str>) -> anyhow::Result<Vec<Workload>> {
    let all = workloads();
    let Some(f) = filter else { return Ok(all) };
    let wanted: Vec<&str> = f
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for w in &wanted {
        if !all.iter().any(|x| x.id == *w || x.group == *w) {
            let ids: Vec<&str> = all.iter().map(|x| x.id).collect();
            return Err(Error::Config(format!(
                "unknown workload '{w}' (known: {})",
                ids.join(", ")
            ))
            .into());
        }
    }
    Ok(all
        .into_iter()
        .filter(|x| wanted.iter().any(|w| x.id == *w || x.group == *w))
        .collect())
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let list = selected(args.workloads.as_deref())?;
    let budget = if args.quick {
        Budget::QUICK
    } else {
        Budget::FULL
    };
    if !args.json {
        println!(
            "{:<9} {:<44} {:<6} {:>11} {:>11} {:>11}  {:<9} adapter",
            "workload", "what", "device", "median", "min", "max", "unit"
        );
    }
    if matches!(args.device, BenchDevice::Cpu | BenchDevice::All) {
        bench_on(&CpuDevice::new(), "cpu", None, &list, budget, &args, None)?;
    }
    if matches!(args.device, BenchDevice::Gpu | BenchDevice::All) {
        let gpu = GpuDevice::new()?;
        let adapter = gpu.adapter_info().name.clone();
        let peak = gpu.measure_peak_gflops()?;
        let peak_note = Some(peak);
        if args.json {
            println!(
                "{}",
                json!({"id": "peak", "device": "gpu", "adapter": adapter, "median": peak, "min": peak, "max": peak, "unit": "GFLOP/s"})
            );
        } else {
            println!(
                "{:<9} {:<44} {:<6} {:>11.2} {:>11} {:>11}  {:<9} {adapter}",
                "peak", "FP32 FMA peak (register-only kernel)", "gpu", peak, "-", "-", "GFLOP/s"
            );
        }
        bench_on(&gpu, "gpu", Some(adapter), &list, budget, &args, peak_note)?;
    }
    Ok(())
}

fn bench_on<D: Device + 'static>(
    dev: &D,
    device: &str,
    adapter: Option<String>,
    list: &[Workload],
    budget: Budget,
    args: &BenchArgs,
    peak: Option<f64>,
) -> anyhow::Result<()> {
    let as_json = args.json;
    for w in list {
        let m = measure(dev, w, budget, args.profile)?;
        // Matmul throughput as a share of the measured FMA peak.
        let of_peak = match (peak, w.unit) {
            (Some(p), Unit::GflopPerSec) => Some(m.median / p),
            _ => None,
        };
        if as_json {
            let mut row = json!({
                "id": w.id, "device": device, "adapter": adapter,
                "median": m.median, "min": m.min, "max": m.max, "unit": w.unit.label(),
            });
            if let Some(f) = of_peak {
                row["peak_fraction"] = json!(f);
            }
            println!("{row}");
        } else {
            let fmt = |v: f64| match w.unit {
                Unit::GflopPerSec | Unit::GbPerSec => format!("{v:.2}"),
                _ => format!("{v:.0}"),
            };
            println!(
                "{:<9} {:<44} {:<6} {:>11} {:>11} {:>11}  {:<9} {}",
                w.id,
                w.what,
                device,
                fmt(m.median),
                fmt(m.min),
                fmt(m.max),
                w.unit.label(),
                adapter.as_deref().unwrap_or("-")
            );
            if let Some(f) = of_peak {
                println!("{:<9} {:.1}% of the measured FP32 peak", "", 100.0 * f);
            }
        }
        if args.profile && m.steps > 0 && !as_json {
            print!("{}", wgtrain::profile::report().table(m.steps));
        }
    }
    Ok(())
}
