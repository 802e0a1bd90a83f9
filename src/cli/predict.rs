//! `wgtrain predict`: a trained model's predictions for CSV rows or IDX
//! images, as CSV.

use std::path::{Path, PathBuf};

use clap::Args;
use wgtrain::data::idx::read_idx;
use wgtrain::data::limits::{read_capped, MAX_FILE_BYTES};
use wgtrain::data::series::prediction_windows;
use wgtrain::data::{Features, Normalizer, Task};
use wgtrain::run::checkpoint::{self, Checkpoint};
use wgtrain::run::Predictions;
use wgtrain::Error;

use super::{choose_device, load_model_file, on_device, DeviceArg};

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A run directory or a model .safetensors file.
    #[arg(long)]
    pub model: PathBuf,
    /// A CSV file with a header line (the model's feature columns, and
    /// optionally its target column last, which is ignored), or an IDX
    /// images file (.gz too).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the predictions (default, or `-`: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
}

/// Which CSV column holds each of the model's features. A model trained on a
/// named table finds its columns by name, in any order: a missing one is an
/// error naming it, extra ones (the target, ids) are ignored with a note.
/// Without names, the first `width` columns in order (plus an optional
/// target column).
fn feature_columns(
    ck: &Checkpoint,
    headers: &[String],
    width: usize,
    path: &Path,
) -> anyhow::Result<Vec<usize>> {
    let names = &ck.meta.feature_names;
    let all = headers;
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    if names.is_empty() {
        let cols = headers.len();
        if cols != width && cols != width + 1 {
            return Err(Error::data(
                path,
                format!("{cols} columns, but the model takes {width} features (plus an optional target column)"),
            )
            .into());
        }
        return Ok((0..width).collect());
    }
    let missing: Vec<&str> = names
        .iter()
        .filter(|n| !headers.contains(&n.as_str()))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::data(
            path,
            format!(
                "lacks the model's feature column{} {} (it takes {})",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                names.join(", ")
            ),
        )
        .into());
    }
    let extra: Vec<&str> = headers
        .iter()
        .filter(|h| !names.iter().any(|n| n == *h))
        .copied()
        .collect();
    if !extra.is_empty() {
        crate::errln!(
            "note: ignoring column(s) the model does not take: {}",
            extra.join(", ")
        );
    }
    let columns: Vec<usize> = names
        .iter()
        .map(|n| headers.iter().position(|h| h == n).expect("checked above"))
        .collect();
    wgtrain::data::tabular::refuse_repeated(all, &columns, path)?;
    Ok(columns)
}

/// Reads the input samples: `(features, samples, offsets)`, where a
/// relative forecasting model's predictions get `offsets` (each window's
/// last value) added back.
fn read_input(ck: &Checkpoint, path: &Path) -> anyhow::Result<(Features, usize, Vec<f32>)> {
    let width = ck.meta.model.input.numel();
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if !path.exists() {
        return Err(Error::data(path, "no such file").into());
    }
    let exp = &ck.meta.experiment;
    if let (true, Some(window)) = (is_csv, exp.window) {
        // A forecasting model: every window of the series, the last one
        // included (its prediction is the row after the file's last).
        let bytes = read_capped(path, MAX_FILE_BYTES)?;
        let names = &ck.meta.feature_names;
        let relative = match exp.relative {
            true => Some(
                names
                    .iter()
                    .position(|c| *c == ck.meta.target_name)
                    .ok_or_else(|| {
                        Error::Config("a relative model without its target column".into())
                    })?,
            ),
            false => None,
        };
        let (values, n, offsets) =
            prediction_windows(&bytes, path, names, window, exp.missing, relative)?;
        return Ok((Features::F32(values), n, offsets));
    }
    if is_csv {
        let bytes = read_capped(path, MAX_FILE_BYTES)?;
        let mut reader = csv::Reader::from_reader(&bytes[..]);
        let headers = wgtrain::data::tabular::read_header(&mut reader, path)?;
        let columns = feature_columns(ck, &headers, width, path)?;
        let mut values = Vec::new();
        let mut n = 0;
        for (i, rec) in reader.records().enumerate() {
            let rec = rec.map_err(|e| Error::data(path, format!("line {}: {e}", i + 2)))?;
            for &c in &columns {
                let cell = rec.get(c).unwrap_or_default();
                let v: f32 = cell.trim().parse().map_err(|_| {
                    Error::data(
                        path,
                        format!(
                            "line {}, column {} ('{}'): '{cell}' is not a number",
                            i + 2,
                            c + 1,
                            &headers[c]
                        ),
                    )
                })?;
                if !v.is_finite() {
                    return Err(Error::data(
                        path,
                        format!(
                            "line {}, column {} ('{}'): value {cell} is not finite",
                            i + 2,
                            c + 1,
                            &headers[c]
                        ),
                    )
                    .into());
                }
                values.push(v);
            }
            n += 1;
        }
        if n == 0 {
            return Err(Error::data(path, "no rows to predict").into());
        }
        Ok((Features::F32(values), n, Vec::new()))
    } else {
        let images = read_idx(path)?;
        let n = images.dims.first().copied().unwrap_or(0);
        if n == 0 || images.dims.len() < 2 {
            return Err(Error::data(path, "holds no images to predict").into());
        }
        // The model's own shape, or [H, W] for its one channel; a flat
        // input takes any image of as many pixels.
        let (image, model) = (&images.dims[1..], ck.meta.model.input.dims());
        let fits = match model.as_slice() {
            [1, h, w] => image == [*h, *w] || image == model,
            [features] => image.iter().product::<usize>() == *features,
            _ => image == model,
        };
        if !fits || !matches!(ck.meta.normalizer, Normalizer::Global { .. }) {
            return Err(Error::data(
                path,
                format!(
                    "images of shape {:?} do not fit this model, which takes {:?}",
                    &images.dims[1..],
                    ck.meta.model.input.dims()
                ),
            )
            .into());
        }
        Ok((Features::U8(images.data), n, Vec::new()))
    }
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let (model_path, ck) = load_model_file(&args.model)?;
    let output = args
        .output
        .as_deref()
        .filter(|p| *p != std::path::Path::new("-"));
    if let Some(p) = output {
        super::check_output(p, &[&model_path, &args.input])?;
    }
    if ck.meta.task == Task::Text {
        return Err(Error::Config(
            "a model trained on text generates text: use `wgtrain sample`".into(),
        )
        .into());
    }
    if args.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()).into());
    }
    let (features, n, offsets) = read_input(&ck, &args.input)?;
    let chosen = choose_device(args.device, true)?;
    let mut predictions = on_device!(chosen, |dev| ck.predict(
        &dev,
        &features,
        n,
        args.batch_size
    )?);
    if let Predictions::Values { values, .. } = &mut predictions {
        for (v, o) in values.iter_mut().zip(&offsets) {
            *v += o;
        }
    }
    let text = format_predictions(&predictions, &ck.meta.class_names);
    match output {
        Some(p) => checkpoint::write_atomically(p, text.as_bytes())?,
        None => crate::out!("{text}")?,
    }
    Ok(())
}

/// CSV lines: `prediction` (regression, in target units; `prediction_j`
/// for several targets) or `prediction` and one probability per class
/// (`p_<id>`, or `p_<name>` with the class names of a named-label model,
/// whose predictions are then names too).
fn format_predictions(p: &Predictions, class_names: &[String]) -> String {
    let mut s = String::new();
    match p {
        Predictions::Values { values, targets } => {
            let names: Vec<String> = if *targets == 1 {
                vec!["prediction".into()]
            } else {
                (0..*targets).map(|j| format!("prediction_{j}")).collect()
            };
            s += &names.join(",");
            s.push('\n');
            for row in values.chunks((*targets).max(1)) {
                let cells: Vec<String> = row.iter().map(|x| x.to_string()).collect();
                s += &cells.join(",");
                s.push('\n');
            }
        }
        Predictions::Classes {
            labels,
            probabilities,
            classes,
        } => {
            let name = |c: usize| class_names.get(c).cloned().unwrap_or_else(|| c.to_string());
            let header: Vec<String> = (0..*classes).map(|c| format!("p_{}", name(c))).collect();
            s += &format!("prediction,{}\n", header.join(","));
            for (&label, row) in labels.iter().zip(probabilities.chunks((*classes).max(1))) {
                let probs: Vec<String> = row.iter().map(|p| format!("{p:.6}")).collect();
                s += &format!("{},{}\n", name(label as usize), probs.join(","));
            }
        }
    }
    s
}
