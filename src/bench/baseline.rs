//! Comparing a benchmark run with an earlier one: the JSON lines
//! `wgtrain bench --json` prints are [`Record`]s; [`compare`] marks each
//! workload faster, slower or within noise.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::limits::{read_capped, MAX_TEXT_BYTES};
use crate::error::{Error, Result};

/// One line of `wgtrain bench --json`: a workload's rates on one device.
/// Every unit is a rate (higher is faster).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The workload (`K1-1024`, `T3`, or `peak`).
    pub id: String,
    /// `cpu` or `gpu`.
    pub device: String,
    /// The GPU adapter's name; `null` on the CPU.
    pub adapter: Option<String>,
    /// Median over the timed repetitions.
    pub median: f64,
    /// Slowest repetition.
    pub min: f64,
    /// Fastest repetition.
    pub max: f64,
    /// What the rates count (`GFLOP/s`, `images/s`, `GB/s`, `samples/s`).
    pub unit: String,
    /// Matmul workloads on a GPU: the share of the measured FP32 peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_fraction: Option<f64>,
    /// Timed repetitions (10 for a full run, 3 for `--quick`, whose training
    /// workloads also run fewer steps); 0 when not recorded.
    #[serde(default)]
    pub reps: usize,
}

/// How a workload's new figures compare with its baseline's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Even the slowest new repetition beat the fastest old one.
    Faster,
    /// Even the fastest new repetition was slower than the slowest old one.
    Slower,
    /// The repetitions' ranges overlap: no difference the runs can show.
    WithinNoise,
}

/// One workload on one device, before and after.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// The workload.
    pub id: String,
    /// `cpu` or `gpu`.
    pub device: String,
    /// The baseline's median.
    pub before: f64,
    /// The new median.
    pub after: f64,
    /// `after / before`: above 1 is faster.
    pub ratio: f64,
    /// Judged from both runs' spreads.
    pub verdict: Verdict,
}

/// Reads a file of [`Record`]s, one JSON object per line (blank lines
/// skipped). Anything else is an error naming its line: the file is
/// untrusted, and a baseline read wrong would judge every workload wrong.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let bytes = read_capped(path, MAX_TEXT_BYTES)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::data(path, "is not UTF-8 text"))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: Record = serde_json::from_str(line).map_err(|e| {
            Error::data(
                path,
                format!("line {}: not a `wgtrain bench --json` record ({e})", i + 1),
            )
        })?;
        let finite = [r.median, r.min, r.max]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0);
        if !finite || r.min > r.max {
            return Err(Error::data(
                path,
                format!(
                    "line {}: median/min/max must be finite, > 0 and min ≤ max",
                    i + 1
                ),
            ));
        }
        out.push(r);
    }
    if out.is_empty() {
        return Err(Error::data(path, "holds no benchmark records"));
    }
    Ok(out)
}

/// Each workload of `current` that `baseline` also has (same id, device,
/// adapter, unit and repetitions: a `--quick` run is not compared with a
/// full one), in `current`'s order. The verdict compares the
/// repetitions' ranges, `[min, max]`: a change is claimed only when the
/// ranges do not overlap, so the noise the runs themselves show is never
/// called a change. The GPU's `peak` is one measurement, with no range to
/// judge by, and is left out.
pub fn compare(baseline: &[Record], current: &[Record]) -> Vec<Change> {
    current
        .iter()
        .filter(|now| now.id != "peak")
        .filter_map(|now| {
            let old = baseline.iter().find(|b| {
                b.id == now.id
                    && b.device == now.device
                    && b.adapter == now.adapter
                    && b.unit == now.unit
                    && b.reps == now.reps
            })?;
            let verdict = if now.min > old.max {
                Verdict::Faster
            } else if now.max < old.min {
                Verdict::Slower
            } else {
                Verdict::WithinNoise
            };
            Some(Change {
                id: now.id.clone(),
                device: now.device.clone(),
                before: old.median,
                after: now.median,
                ratio: now.median / old.median,
                verdict,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, median: f64, min: f64, max: f64) -> Record {
        Record {
            id: id.into(),
            device: "cpu".into(),
            adapter: None,
            median,
            min,
            max,
            unit: "GFLOP/s".into(),
            peak_fraction: None,
            reps: 3,
        }
    }

    #[test]
    fn verdicts_need_ranges_that_do_not_overlap() {
        let base = [
            rec("a", 10.0, 9.0, 11.0),
            rec("b", 10.0, 9.0, 11.0),
            rec("c", 10.0, 9.0, 11.0),
        ];
        let now = [
            rec("a", 12.0, 11.5, 12.5), // every repetition faster
            rec("b", 8.0, 7.5, 8.9),    // every repetition slower
            rec("c", 10.8, 10.5, 11.2), // overlaps
            rec("d", 1.0, 1.0, 1.0),    // not in the baseline
        ];
        let c = compare(&base, &now);
        let v: Vec<_> = c.iter().map(|c| (c.id.as_str(), c.verdict)).collect();
        assert_eq!(
            v,
            [
                ("a", Verdict::Faster),
                ("b", Verdict::Slower),
                ("c", Verdict::WithinNoise)
            ]
        );
        assert!((c[0].ratio - 1.2).abs() < 1e-12);
    }

    #[test]
    fn records_round_trip_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.jsonl");
        let line = serde_json::to_string(&rec("a", 1.0, 0.5, 2.0)).unwrap();
        std::fs::write(&path, format!("{line}\n\n{line}\n")).unwrap();
        assert_eq!(read_records(&path).unwrap().len(), 2);
        std::fs::write(&path, format!("{line}\nnot json\n")).unwrap();
        let e = read_records(&path).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        let bad = line.replace("\"min\":0.5", "\"min\":3.0");
        std::fs::write(&path, bad).unwrap();
        assert!(read_records(&path).is_err());
    }
}
