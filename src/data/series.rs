//! Numeric sequences from CSV files, for recurrent models.
//!
//! - A time series (`--window W`): the rows are consecutive observations;
//!   each sample is `W` consecutive rows of the feature columns (by default
//!   the target column alone), its target the target column's value in the
//!   row after them. Samples stay in time order: the split keeps the last
//!   fractions for validation and test, so nothing is predicted from the
//!   future.
//! - One sequence per row (`--sequence`): the feature columns, in order, are
//!   the steps of a sequence of one value each; rows are independent
//!   samples, split like a table.
//!
//! Empty cells in a time series are an error naming the line unless the
//! user picks a [`Missing`] policy. With [`SeriesOptions::relative`], a
//! window's target-column values and its target are taken relative to the
//! window's last value of the target column (the model forecasts the
//! change; RMSE is unchanged by this, R² is then of the change).

use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::limits::{MAX_CLASSES, MAX_SERIES_VALUES};
use super::{Dataset, Features, Targets, Task};
use crate::error::{Error, Result};

/// How the rows of a CSV file become samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// One sample per row (a table).
    #[default]
    Rows,
    /// A time series cut into windows of this many rows.
    Window(usize),
    /// One sequence per row.
    Sequence,
}

/// What to do with empty cells in a time series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// An empty cell is an error naming its line.
    #[default]
    Error,
    /// Rows with an empty cell in a column used are left out; the rows on
    /// either side become neighbours.
    Drop,
    /// Empty cells are filled on the straight line between the nearest
    /// values above and below in their column; rows before the first or
    /// after the last value of any column used are left out.
    Interpolate,
}

impl Missing {
    /// The name on the command line and in config files.
    pub fn name(self) -> &'static str {
        match self {
            Missing::Error => "error",
            Missing::Drop => "drop",
            Missing::Interpolate => "interpolate",
        }
    }
}

impl Missing {
    /// Whether this is the default policy (an error).
    pub fn is_default(&self) -> bool {
        *self == Missing::Error
    }
}

impl FromStr for Missing {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [Missing::Error, Missing::Drop, Missing::Interpolate]
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::Config(format!(
                    "--missing must be error, drop or interpolate, got '{s}'"
                ))
            })
    }
}

/// How a CSV file is read as sequences (the defaults read a table).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesOptions {
    /// Rows, windows of a time series, or one sequence per row.
    pub layout: Layout,
    /// Time series: the columns read at each step, by name (default: the
    /// target column alone).
    pub features: Option<Vec<String>>,
    /// Time series: what to do with empty cells.
    pub missing: Missing,
    /// Time series: forecast the change from each window's last value of
    /// the target column, with that column's values in the window taken
    /// relative to it too, so a trend that leaves the training range is
    /// no extrapolation for the model.
    pub relative: bool,
}

/// A time series cut into windows, in time order.
#[derive(Clone, Debug)]
pub struct Windows {
    /// Samples `[window, features]`, targets the next row's target value.
    pub dataset: Dataset,
    /// The target column's position among a step's features, when it is
    /// one of them (the "same as last value" baseline reads it).
    pub target_feature: Option<usize>,
    /// What the missing-value policy did, for the user.
    pub notes: Vec<String>,
}

/// The value of a cell: `None` when empty.
fn cell(path: &Path, line: usize, column: &str, text: &str) -> Result<Option<f32>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let v: f32 = text.parse().map_err(|_| {
        Error::data(
            path,
            format!("line {line}, column '{column}': '{text}' is not a number"),
        )
    })?;
    if !v.is_finite() {
        return Err(Error::data(
            path,
            format!("line {line}, column '{column}': value {text} is not finite"),
        ));
    }
    Ok(Some(v))
}

/// The columns used, read from `bytes`: their names (the feature columns,
/// then the target when `with_target`) and, per row, the line it came from
/// and its cells.
#[allow(clippy::type_complexity)]
fn read_columns(
    bytes: &[u8],
    path: &Path,
    target: Option<&str>,
    features: Option<&[String]>,
    with_target: bool,
) -> Result<(Vec<String>, Vec<(usize, Vec<Option<f32>>)>)> {
    let err = |m: String| Error::data(path, m);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let headers = super::tabular::read_header(&mut reader, path)?;
    let find = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            err(format!(
                "no column named '{name}' (columns: {})",
                headers.join(", ")
            ))
        })
    };
    let tcol = match target {
        Some(name) => find(name)?,
        None => headers.len() - 1,
    };
    let mut cols = match features {
        Some([]) => return Err(Error::Config("--features names no columns".into())),
        Some(names) => names.iter().map(|n| find(n)).collect::<Result<Vec<_>>>()?,
        None => vec![tcol],
    };
    if let Some(dup) = (1..cols.len()).find(|&i| cols[..i].contains(&cols[i])) {
        return Err(Error::Config(format!(
            "--features names '{}' twice",
            headers[cols[dup]]
        )));
    }
    if with_target {
        cols.push(tcol);
    }
    super::tabular::refuse_repeated(&headers, &cols, path)?;
    let names = cols.iter().map(|&c| headers[c].clone()).collect();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => err(format!(
                "line {line}: {len} cells, expected {expected_len} like the header"
            )),
            _ => err(format!("line {line}: {e}")),
        })?;
        let cells = cols
            .iter()
            .map(|&c| cell(path, line, &headers[c], &record[c]))
            .collect::<Result<Vec<_>>>()?;
        rows.push((line, cells));
    }
    Ok((names, rows))
}

/// Applies `missing` to `rows`; returns complete rows and notes on what
/// was done.
fn fill_gaps(
    path: &Path,
    names: &[String],
    mut rows: Vec<(usize, Vec<Option<f32>>)>,
    missing: Missing,
) -> Result<(Vec<Vec<f32>>, Vec<String>)> {
    // The target column is read twice when it is also a feature: count
    // each column once.
    let distinct: Vec<usize> = (0..names.len())
        .filter(|&c| !names[..c].contains(&names[c]))
        .collect();
    let gaps = rows
        .iter()
        .map(|(_, r)| distinct.iter().filter(|&&c| r[c].is_none()).count())
        .sum::<usize>();
    let mut notes = Vec::new();
    match missing {
        Missing::Error => {
            if let Some((line, c)) = rows
                .iter()
                .find_map(|(line, cells)| cells.iter().position(Option::is_none).map(|c| (line, c)))
            {
                return Err(Error::data(
                    path,
                    format!(
                        "line {line}, column '{}': empty cell, a gap in the series ({gaps} in all; --missing drop or --missing interpolate)",
                        names[c]
                    ),
                ));
            }
        }
        Missing::Drop => {
            rows.retain(|(_, cells)| cells.iter().all(Option::is_some));
            if gaps > 0 {
                notes.push(format!(
                    "{}: {gaps} empty cells; their rows were left out (--missing drop)",
                    path.display()
                ));
            }
        }
        Missing::Interpolate => {
            // Fill every interior gap of every column on the line between
            // its neighbours, then leave out the rows at either end that a
            // column still has no value for (its gaps before its first or
            // after its last value).
            let mut filled = 0;
            for c in 0..names.len() {
                let mut prev: Option<usize> = None;
                for r in 0..rows.len() {
                    let Some(v) = rows[r].1[c] else { continue };
                    if let Some(p) = prev.filter(|&p| p + 1 < r) {
                        let a = rows[p].1[c].expect("a value");
                        for (k, row) in rows.iter_mut().enumerate().take(r).skip(p + 1) {
                            let t = (k - p) as f32 / (r - p) as f32;
                            row.1[c] = Some(a + t * (v - a));
                        }
                        if distinct.contains(&c) {
                            filled += r - p - 1;
                        }
                    }
                    prev = Some(r);
                }
            }
            let before = rows.len();
            rows.retain(|(_, cells)| cells.iter().all(Option::is_some));
            let trimmed = before - rows.len();
            if rows.is_empty() {
                return Err(Error::data(
                    path,
                    "no row has a value in every column used, even after interpolation",
                ));
            }
            if gaps > 0 {
                notes.push(format!(
                    "{}: {filled} empty cells filled by linear interpolation, {trimmed} rows at the ends without values left out (--missing interpolate)",
                    path.display()
                ));
            }
        }
    }
    let rows = rows
        .into_iter()
        .map(|(_, cells)| {
            cells
                .into_iter()
                .map(|v| v.expect("gaps handled"))
                .collect()
        })
        .collect();
    Ok((rows, notes))
}

/// Reads a time series and cuts it into windows of `window` rows, each
/// labelled with the target column's value in the row that follows.
pub fn parse_windows(
    bytes: &[u8],
    path: &Path,
    target: Option<&str>,
    opts: &SeriesOptions,
    window: usize,
    task: Task,
) -> Result<Windows> {
    if window == 0 {
        return Err(Error::Config("--window must be at least 1".into()));
    }
    if task == Task::Text {
        return Err(Error::Config(
            "a time series is for regression or classification, not text".into(),
        ));
    }
    let (names, rows) = read_columns(bytes, path, target, opts.features.as_deref(), true)?;
    let (rows, notes) = fill_gaps(path, &names, rows, opts.missing)?;
    let f = names.len() - 1; // the last column read is the target
    let n = rows.len().saturating_sub(window);
    if n == 0 {
        return Err(Error::data(
            path,
            format!(
                "a series of {} rows is too short for --window {window} (it needs at least {})",
                rows.len(),
                window.saturating_add(1)
            ),
        ));
    }
    if n.checked_mul(window)
        .and_then(|v| v.checked_mul(f))
        .is_none_or(|v| v > MAX_SERIES_VALUES)
    {
        return Err(Error::Config(format!(
            "{n} windows of {window} rows × {f} columns are over the limit of {MAX_SERIES_VALUES} values"
        )));
    }
    let mut x = Vec::with_capacity(n * window * f);
    for start in 0..n {
        for row in &rows[start..start + window] {
            x.extend_from_slice(&row[..f]);
        }
    }
    let mut next: Vec<f32> = rows[window..].iter().map(|r| r[f]).collect();
    let target_feature = names[..f].iter().position(|c| *c == names[f]);
    if opts.relative {
        let Some(k) = target_feature.filter(|_| task == Task::Regression) else {
            return Err(Error::Config(format!(
                "--relative forecasts the change in '{}' from its last value: it needs regression with the target among --features",
                names[f]
            )));
        };
        for (x, y) in x.chunks_mut(window * f).zip(&mut next) {
            *y -= relative_to(x, f, k);
        }
    }
    let targets = match task {
        Task::Classification => {
            let mut ids = Vec::with_capacity(n);
            for (i, &t) in next.iter().enumerate() {
                if t < 0.0 || t.fract() != 0.0 || t >= MAX_CLASSES as f32 {
                    return Err(Error::data(
                        path,
                        format!(
                            "row {} of the series: class label {t} in '{}' is not an integer in 0..{MAX_CLASSES} (use --task regression for real values)",
                            window + i + 1,
                            names[f]
                        ),
                    ));
                }
                ids.push(t as u32);
            }
            let classes = *ids.iter().max().expect("n > 0") as usize + 1;
            Targets::Classes {
                ids,
                classes,
                per_sample: 1,
            }
        }
        _ => Targets::Values {
            values: next,
            dims: 1,
        },
    };
    Ok(Windows {
        dataset: Dataset {
            name: path.display().to_string(),
            task,
            sample_shape: vec![window, f],
            features: Features::F32(x),
            targets,
            feature_names: names[..f].to_vec(),
            target_name: names[f].clone(),
            class_names: Vec::new(),
        },
        target_feature,
        notes,
    })
}

/// Takes column `k` of a window of `f`-value steps relative to its last
/// value; returns that value.
fn relative_to(window: &mut [f32], f: usize, k: usize) -> f32 {
    let base = window[window.len() - f + k];
    for step in window.chunks_mut(f) {
        step[k] -= base;
    }
    base
}

/// Every window of `window` rows of the columns `features` (a trained
/// model's, by name), the last one included: `(values, windows)`, what a
/// forecasting model predicts the following row from. The target column
/// need not be there. With `relative_to` (a relative model's target
/// column, by position among `features`), the windows are taken relative
/// to their last value of it, and those values are returned to add back to
/// the predictions.
pub fn prediction_windows(
    bytes: &[u8],
    path: &Path,
    features: &[String],
    window: usize,
    missing: Missing,
    relative: Option<usize>,
) -> Result<(Vec<f32>, usize, Vec<f32>)> {
    let (names, rows) = read_columns(bytes, path, None, Some(features), false)?;
    let (rows, notes) = fill_gaps(path, &names, rows, missing)?;
    for n in notes {
        // Best effort, as eprintln! would panic on a closed stderr.
        let _ = writeln!(std::io::stderr(), "note: {n}");
    }
    if window == 0 || rows.len() < window {
        return Err(Error::data(
            path,
            format!(
                "{} rows are fewer than the model's window of {window}",
                rows.len()
            ),
        ));
    }
    let n = rows.len() - window + 1;
    if n.saturating_mul(window).saturating_mul(names.len()) > MAX_SERIES_VALUES {
        return Err(Error::Config(format!(
            "{n} windows are over the limit of {MAX_SERIES_VALUES} values"
        )));
    }
    let f = names.len();
    let mut x = Vec::with_capacity(n * window * f);
    for start in 0..n {
        for row in &rows[start..start + window] {
            x.extend_from_slice(row);
        }
    }
    let bases = match relative {
        Some(k) if k < f => x
            .chunks_mut(window * f)
            .map(|w| relative_to(w, f, k))
            .collect(),
        Some(k) => {
            return Err(Error::Config(format!(
                "the target column's position {k} is not among {f} features"
            )))
        }
        None => Vec::new(),
    };
    Ok((x, n, bases))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(csv: &str, window: usize, missing: Missing) -> Result<Windows> {
        let opts = SeriesOptions {
            layout: Layout::Window(window),
            features: None,
            missing,
            relative: false,
        };
        parse_windows(
            csv.as_bytes(),
            Path::new("s.csv"),
            None,
            &opts,
            window,
            Task::Regression,
        )
    }

    #[test]
    fn windows_of_the_target_column_predict_the_next_row() {
        let w = windows("t,v\n1,10\n2,20\n3,30\n4,40\n", 2, Missing::Error).unwrap();
        assert_eq!(w.dataset.sample_shape, [2, 1]);
        assert_eq!(w.dataset.features, Features::F32(vec![10., 20., 20., 30.]));
        assert_eq!(
            w.dataset.targets,
            Targets::Values {
                values: vec![30., 40.],
                dims: 1
            }
        );
        assert_eq!(w.target_feature, Some(0));
    }

    #[test]
    fn gaps_are_an_error_or_dropped_or_interpolated() {
        let csv = "t,v\n1,\n2,20\n3,\n4,\n5,50\n6,60\n7,\n";
        let e = windows(csv, 1, Missing::Error).unwrap_err().to_string();
        assert!(
            e.contains("line 2, column 'v'") && e.contains("4 in all"),
            "{e}"
        );
        let d = windows(csv, 1, Missing::Drop).unwrap();
        assert_eq!(d.dataset.features, Features::F32(vec![20., 50.]));
        let i = windows(csv, 1, Missing::Interpolate).unwrap();
        // Rows 2..6 kept; 3 and 4 on the line from 20 to 50.
        assert_eq!(i.dataset.features, Features::F32(vec![20., 30., 40., 50.]));
        assert!(i.notes[0].contains("2 empty cells filled"), "{:?}", i.notes);
    }

    #[test]
    fn interpolation_over_several_columns_trims_what_it_cannot_fill() {
        // Column a lacks its first value, b its first and last: the first
        // and last rows cannot be filled and are left out; b's interior
        // gap is interpolated (20).
        let opts = SeriesOptions {
            layout: Layout::Window(1),
            features: Some(vec!["a".into(), "b".into()]),
            missing: Missing::Interpolate,
            relative: false,
        };
        let csv = "a,b\n,\n2,10\n3,\n4,30\n5,\n";
        let w = parse_windows(
            csv.as_bytes(),
            Path::new("s.csv"),
            Some("b"),
            &opts,
            1,
            Task::Regression,
        )
        .unwrap();
        assert_eq!(w.dataset.features, Features::F32(vec![2., 10., 3., 20.]));
        let none = "a,b\n1,\n,2\n";
        let e = parse_windows(
            none.as_bytes(),
            Path::new("s.csv"),
            Some("b"),
            &opts,
            1,
            Task::Regression,
        );
        assert!(e.is_err());
    }

    #[test]
    fn short_series_and_bad_cells_are_refused() {
        let e = windows("t,v\n1,1\n2,2\n", 2, Missing::Error)
            .unwrap_err()
            .to_string();
        assert!(e.contains("too short for --window 2"), "{e}");
        let e = windows("t,v\n1,x\n2,2\n", 1, Missing::Error)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2, column 'v': 'x' is not a number"), "{e}");
        assert!(windows("t,v\n1,1\n2,2\n", 0, Missing::Error).is_err());
    }
}
