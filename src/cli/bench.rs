//! `wgtrain bench`: the benches/WORKLOADS.md workloads on the CPU and GPU devices.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use wgtrain::bench::baseline::{compare, read_records, Record, Verdict};
use wgtrain::bench::{run as measure, workloads, Budget, Unit, Workload};
use wgtrain::device::Precision;
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
    /// An earlier `bench --json` output: mark each workload faster, slower
    /// or within noise (the repetitions' ranges overlap) against it.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// With --baseline: exit non-zero when a workload is slower beyond noise.
    #[arg(long, requires = "baseline")]
    pub fail_on_regression: bool,
    /// Matrix-product operands at this precision (`f16`: see `train
    /// --precision`); the device column then reads `gpu-f16` or `cpu-f16`.
    #[arg(long, value_parser = super::train::parse_precision, default_value = "f32")]
    pub precision: Precision,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchDevice {
    Cpu,
    Gpu,
    All,
}

pub(crate) fn selected(filter: Option<&str>) -> anyhow::Result<Vec<Workload>> {
    let all = workloads();
    let Some(f) = filter else {
        return Ok(all.into_iter().filter(|w| !w.on_request).collect());
    };
    let wanted: Vec<&str> = f
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if wanted.is_empty() {
        return Err(Error::Config("--workloads names no workload".into()).into());
    }
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
    // Read before measuring: a bad file should not cost a benchmark run.
    let baseline = args.baseline.as_deref().map(read_records).transpose()?;
    let budget = if args.quick {
        Budget::QUICK
    } else {
        Budget::FULL
    };
    if !args.json {
        crate::outln_lenient!(
            "{:<9} {:<44} {:<6} {:>11} {:>11} {:>11}  {:<9} adapter",
            "workload",
            "what",
            "device",
            "median",
            "min",
            "max",
            "unit"
        );
    }
    let mut records = Vec::new();
    let f16 = args.precision == Precision::F16;
    // Opened first, so an adapter that refuses (no f16) costs no CPU run.
    let gpu = match args.device {
        BenchDevice::Gpu | BenchDevice::All => {
            Some(GpuDevice::new()?.with_precision(args.precision)?)
        }
        BenchDevice::Cpu => None,
    };
    if matches!(args.device, BenchDevice::Cpu | BenchDevice::All) {
        let dev = CpuDevice::new().with_precision(args.precision)?;
        let name = if f16 { "cpu-f16" } else { "cpu" };
        records.extend(bench_on(&dev, name, None, &list, budget, &args, None)?);
    }
    if let Some(gpu) = gpu {
        let adapter = gpu.adapter_info().name.clone();
        let peak = gpu.measure_peak_gflops()?;
        let peak_note = Some(peak);
        let record = Record {
            id: "peak".into(),
            device: "gpu".into(),
            adapter: Some(adapter.clone()),
            median: peak,
            min: peak,
            max: peak,
            unit: Unit::GflopPerSec.label().into(),
            peak_fraction: None,
            reps: 1,
        };
        if args.json {
            crate::outln_lenient!("{}", serde_json::to_string(&record)?);
        } else {
            crate::outln_lenient!(
                "{:<9} {:<44} {:<6} {:>11.2} {:>11} {:>11}  {:<9} {adapter}",
                "peak",
                "FP32 FMA peak (register-only kernel)",
                "gpu",
                peak,
                "-",
                "-",
                "GFLOP/s"
            );
        }
        records.push(record);
        records.extend(bench_on(
            &gpu,
            if f16 { "gpu-f16" } else { "gpu" },
            Some(adapter),
            &list,
            budget,
            &args,
            peak_note,
        )?);
    }
    if let Some(base) = baseline {
        report_changes(&base, &records, &args)?;
    }
    Ok(())
}

/// Prints each workload against the baseline (on stderr under --json, so
/// standard output stays a file of records), and fails on a slowdown when
/// asked.
fn report_changes(base: &[Record], now: &[Record], args: &BenchArgs) -> anyhow::Result<()> {
    let changes = compare(base, now);
    if changes.is_empty() {
        return Err(Error::Config(
            "no workload of this run is in the baseline (same ids, device, adapter and --quick or not): nothing to compare"
                .into(),
        )
        .into());
    }
    let mut text = format!(
        "\n{:<9} {:<6} {:>11} {:>11} {:>7}  against the baseline\n",
        "workload", "device", "before", "after", "ratio"
    );
    for c in &changes {
        let verdict = match c.verdict {
            Verdict::Faster => "faster",
            Verdict::Slower => "SLOWER",
            Verdict::WithinNoise => "within noise",
        };
        text += &format!(
            "{:<9} {:<6} {:>11.4} {:>11.4} {:>6.2}×  {verdict}\n",
            c.id, c.device, c.before, c.after, c.ratio
        );
    }
    let missing = now.iter().filter(|r| r.id != "peak").count() - changes.len();
    if missing > 0 {
        text += &format!("({missing} workload(s) not in the baseline)\n");
    }
    if args.json {
        crate::err!("{text}");
    } else {
        crate::out_lenient!("{text}");
    }
    let slower: Vec<&str> = changes
        .iter()
        .filter(|c| c.verdict == Verdict::Slower)
        .map(|c| c.id.as_str())
        .collect();
    if args.fail_on_regression && !slower.is_empty() {
        return Err(Error::Config(format!(
            "slower than the baseline beyond noise: {}",
            slower.join(", ")
        ))
        .into());
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
) -> anyhow::Result<Vec<Record>> {
    let as_json = args.json;
    let mut records = Vec::with_capacity(list.len());
    for w in list {
        let m = measure(dev, w, budget, args.profile)?;
        // Matmul throughput as a share of the measured FMA peak.
        let of_peak = match (peak, w.unit) {
            (Some(p), Unit::GflopPerSec) => Some(m.median / p),
            _ => None,
        };
        let record = Record {
            id: w.id.into(),
            device: device.into(),
            adapter: adapter.clone(),
            median: m.median,
            min: m.min,
            max: m.max,
            unit: w.unit.label().into(),
            peak_fraction: of_peak,
            reps: m.reps,
        };
        if as_json {
            crate::outln_lenient!("{}", serde_json::to_string(&record)?);
        } else {
            let fmt = |v: f64| match w.unit {
                Unit::GflopPerSec | Unit::GbPerSec => format!("{v:.2}"),
                _ => format!("{v:.0}"),
            };
            crate::outln_lenient!(
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
                crate::outln_lenient!("{:<9} {:.1}% of the measured FP32 peak", "", 100.0 * f);
            }
        }
        if args.profile && m.steps > 0 && !as_json {
            crate::out_lenient!("{}", wgtrain::profile::report().table(m.steps));
        }
        records.push(record);
    }
    Ok(records)
}
