//! `wgtrain predict`: a trained model's predictions for CSV rows or IDX
//! images, as CSV.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use wgtrain::checkpoint::{self, Checkpoint};
use wgtrain::data::idx::read_idx;
use wgtrain::data::{Features, Normalizer};
use wgtrain::device::{sigmoid, Device};
use wgtrain::loss::Loss;
use wgtrain::models::Task;
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
    /// Where to write the predictions (default: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
}

/// Reads the input samples: `(features, samples)`.
fn read_input(ck: &Checkpoint, path: &Path) -> anyhow::Result<(Features, usize)> {
    let width: usize = ck.meta.model.input_shape.iter().product();
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if !path.exists() {
        return Err(Error::data(path, "no such file").into());
    }
    if is_csv {
        let mut reader =
            csv::Reader::from_path(path).map_err(|e| Error::data(path, e.to_string()))?;
        let headers = reader
            .headers()
            .map_err(|e| Error::data(path, e.to_string()))?
            .clone();
        let cols = headers.len();
        if cols != width && cols != width + 1 {
            return Err(Error::data(
                path,
                format!("{cols} columns, but the model takes {width} features (plus an optional target column)"),
            )
            .into());
        }
        let mut values = Vec::new();
        let mut n = 0;
        for (i, rec) in reader.records().enumerate() {
            let rec = rec.map_err(|e| Error::data(path, format!("line {}: {e}", i + 2)))?;
            for (c, cell) in rec.iter().take(width).enumerate() {
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
                values.push(v);
            }
            n += 1;
        }
        if n == 0 {
            return Err(Error::data(path, "no rows to predict").into());
        }
        Ok((Features::F32(values), n))
    } else {
        let images = read_idx(path)?;
        let n = images.dims.first().copied().unwrap_or(0);
        let per: usize = images.dims.iter().skip(1).product();
        if per != width || !matches!(ck.meta.normalizer, Normalizer::Global { .. }) {
            return Err(Error::data(
                path,
                format!(
                    "images of shape {:?} do not fit this model, which takes {:?}",
                    &images.dims[1..],
                    ck.meta.model.input_shape
                ),
            )
            .into());
        }
        Ok((Features::U8(images.data), n))
    }
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let (_, ck) = load_model_file(&args.model)?;
    if ck.meta.model.task == Task::Text {
        return Err(Error::Config("rnn models generate text: use `wgtrain sample`".into()).into());
    }
    if args.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()).into());
    }
    let (features, n) = read_input(&ck, &args.input)?;
    let mut shape = vec![n];
    shape.extend_from_slice(&ck.meta.model.input_shape);
    let chosen = choose_device(args.device, true)?;
    let logits = on_device!(chosen, |dev| {
        let mut model = ck.model(&dev)?;
        let mut out = Vec::new();
        let width: usize = ck.meta.model.input_shape.iter().product();
        for start in (0..n).step_by(args.batch_size) {
            let count = args.batch_size.min(n - start);
            let mut bshape = shape.clone();
            bshape[0] = count;
            let x = match &features {
                Features::F32(v) => {
                    let mut rows = v[start * width..(start + count) * width].to_vec();
                    ck.meta.normalizer.apply(&mut rows, width);
                    dev.upload(&rows, bshape)?
                }
                Features::U8(b) => {
                    let (scale, shift) = ck.meta.normalizer.affine();
                    let rows: Vec<f32> = b[start * width..(start + count) * width]
                        .iter()
                        .map(|&v| v as f32 * scale + shift)
                        .collect();
                    dev.upload(&rows, bshape)?
                }
            };
            out.extend(dev.download(&model.forward(&dev, &x, false)?)?);
        }
        out
    });
    let text = format_predictions(&ck, &logits, n);
    match &args.output {
        Some(p) => checkpoint::write_atomically(p, text.as_bytes())?,
        None => match std::io::stdout().write_all(text.as_bytes()) {
            // A closed pipe (`wgtrain predict ... | head`) is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other?,
        },
    }
    Ok(())
}

/// CSV lines: `prediction` (regression, in target units) or `prediction`
/// and one probability per class.
fn format_predictions(ck: &Checkpoint, logits: &[f32], n: usize) -> String {
    let m = &ck.meta.model;
    let width = logits.len() / n.max(1);
    let mut s = String::new();
    match (m.task, m.loss()) {
        (Task::Regression, _) => {
            let mut v = logits.to_vec();
            if let Some(sc) = &ck.meta.target_scaler {
                sc.unscale(&mut v);
            }
            let names: Vec<String> = if width == 1 {
                vec!["prediction".into()]
            } else {
                (0..width).map(|j| format!("prediction_{j}")).collect()
            };
            s += &names.join(",");
            s.push('\n');
            for row in v.chunks(width) {
                let cells: Vec<String> = row.iter().map(|x| x.to_string()).collect();
                s += &cells.join(",");
                s.push('\n');
            }
        }
        (_, Loss::BinaryCrossEntropy) => {
            s += "prediction,p_0,p_1\n";
            for &z in logits {
                let p = sigmoid(z);
                s += &format!("{},{:.6},{:.6}\n", u8::from(z > 0.0), 1.0 - p, p);
            }
        }
        _ => {
            let header: Vec<String> = (0..width).map(|c| format!("p_{c}")).collect();
            s += &format!("prediction,{}\n", header.join(","));
            for row in logits.chunks(width) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exp: Vec<f64> = row.iter().map(|&z| ((z - max) as f64).exp()).collect();
                let total: f64 = exp.iter().sum();
                let best = (0..width)
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                    .unwrap_or(0);
                let probs: Vec<String> = exp.iter().map(|e| format!("{:.6}", e / total)).collect();
                s += &format!("{best},{}\n", probs.join(","));
            }
        }
    }
    s
}
