//! CSV tables: one header line, numeric cells, one target column.

use std::path::Path;

use super::limits::MAX_CLASSES;
use super::Task;
use super::{Dataset, Features, Targets};
use crate::error::{Error, Result};

/// The trimmed names of a CSV table's header line, at least one not empty.
pub fn read_header<R: std::io::Read>(
    reader: &mut csv::Reader<R>,
    path: &Path,
) -> Result<Vec<String>> {
    let err = |m: String| Error::data(path, m);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| err(format!("cannot read the header line: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if headers.iter().all(String::is_empty) {
        return Err(err(if headers.len() > 1 {
            "the header line names no columns".into()
        } else {
            "empty file: expected a header line and rows of numbers".into()
        }));
    }
    Ok(headers)
}

/// Refuses a header that repeats the name of a column in `used` (a
/// repeated name makes a column unfindable by name: one of the two would be
/// read for both).
pub fn refuse_repeated(headers: &[String], used: &[usize], path: &Path) -> Result<()> {
    for &c in used {
        let h = &headers[c];
        if !h.is_empty() && headers.iter().filter(|x| *x == h).count() > 1 {
            return Err(Error::data(
                path,
                format!("the header names column '{h}' twice"),
            ));
        }
    }
    Ok(())
}

/// Parses a CSV table. The target is the column named `target`, or the last
/// column. For classification the target must hold integer class ids ≥ 0.
pub fn parse_csv(bytes: &[u8], path: &Path, target: Option<&str>, task: Task) -> Result<Dataset> {
    let err = |m: String| Error::data(path, m);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let headers = read_header(&mut reader, path)?;
    refuse_repeated(&headers, &(0..headers.len()).collect::<Vec<_>>(), path)?;
    if headers.len() < 2 {
        return Err(err(format!(
            "needs at least one feature column and a target column, found {} column",
            headers.len()
        )));
    }
    let tcol = match target {
        Some(name) => headers.iter().position(|h| h == name).ok_or_else(|| {
            err(format!(
                "no column named '{name}' (columns: {})",
                headers.join(", ")
            ))
        })?,
        None => headers.len() - 1,
    };
    let mut features = Vec::new();
    let mut targets = Vec::new();
    // Classification targets may be names (`setosa`): kept as text, mapped
    // to ids (in sorted order) once every row is read.
    let mut labels: Vec<String> = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2; // 1-based, after the header
        let record = record.map_err(|e| match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => err(format!(
                "line {line}: {len} cells, expected {expected_len} like the header"
            )),
            _ => err(format!("line {line}: {e}")),
        })?;
        for (c, cell) in record.iter().enumerate() {
            if c == tcol && task == Task::Classification {
                labels.push(cell.trim().to_string());
                continue;
            }
            let v: f32 = cell.trim().parse().map_err(|_| {
                err(format!(
                    "line {line}, column {} ('{}'): '{cell}' is not a number",
                    c + 1,
                    headers[c]
                ))
            })?;
            if !v.is_finite() {
                return Err(err(format!(
                    "line {line}, column {} ('{}'): value {cell} is not finite",
                    c + 1,
                    headers[c]
                )));
            }
            if c == tcol {
                targets.push(v);
            } else {
                features.push(v);
            }
        }
    }
    if targets.is_empty() && labels.is_empty() {
        return Err(err("no data rows after the header".into()));
    }
    let mut class_names = Vec::new();
    let targets = match task {
        Task::Classification if labels.iter().any(|l| l.parse::<f32>().is_err()) => {
            // Named classes: ids in sorted name order.
            let mut names: Vec<String> = labels.clone();
            names.sort();
            names.dedup();
            if names.len() > MAX_CLASSES {
                return Err(err(format!(
                    "'{}' has {} distinct labels, over the limit of {MAX_CLASSES} classes",
                    headers[tcol],
                    names.len()
                )));
            }
            if let Some(empty) = labels.iter().position(String::is_empty) {
                return Err(err(format!(
                    "line {}: the class label in '{}' is empty",
                    empty + 2,
                    headers[tcol]
                )));
            }
            let ids = labels
                .iter()
                .map(|l| names.binary_search(l).expect("every label is a name") as u32)
                .collect();
            let classes = names.len();
            class_names = names;
            Targets::Classes {
                ids,
                classes,
                per_sample: 1,
            }
        }
        Task::Classification => {
            let targets: Vec<f32> = labels.iter().map(|l| l.parse().expect("checked")).collect();
            let mut ids = Vec::with_capacity(targets.len());
            for (i, &t) in targets.iter().enumerate() {
                if t < 0.0 || t.fract() != 0.0 {
                    return Err(err(format!(
                        "line {}: class label {t} in '{}' is not an integer ≥ 0 (use --task regression for real values)",
                        i + 2,
                        headers[tcol]
                    )));
                }
                if t >= MAX_CLASSES as f32 {
                    return Err(err(format!(
                        "line {}: class label {t} in '{}' is over the limit of {MAX_CLASSES} classes (labels are ids 0, 1, 2, …)",
                        i + 2,
                        headers[tcol]
                    )));
                }
                ids.push(t as u32);
            }
            let classes = *ids.iter().max().unwrap() as usize + 1;
            Targets::Classes {
                ids,
                classes,
                per_sample: 1,
            }
        }
        _ => Targets::Values {
            values: targets,
            dims: 1,
        },
    };
    let feature_names = headers
        .iter()
        .enumerate()
        .filter(|&(c, _)| c != tcol)
        .map(|(_, h)| h.clone())
        .collect();
    Ok(Dataset {
        name: path.display().to_string(),
        task,
        sample_shape: vec![headers.len() - 1],
        features: Features::F32(features),
        targets,
        feature_names,
        target_name: headers[tcol].clone(),
        class_names,
    })
}
