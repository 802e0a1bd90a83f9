//! `wgtrain eval`: a trained model's loss and metric on a dataset.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde_json::json;
use wgtrain::checkpoint::Checkpoint;
use wgtrain::data::spec::{load, Loaded};
use wgtrain::data::{
    prepare, DataSource, Dataset, DeviceData, PrepareOptions, Targets, TextCorpus,
};
use wgtrain::metrics::{evaluate, identity_order};
use wgtrain::models::Task;
use wgtrain::Error;

use super::report::{confusion_table, evaluation_json};
use super::{choose_device, load_model_file, on_device, DeviceArg};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A run directory or a model .safetensors file.
    #[arg(long)]
    pub model: PathBuf,
    /// Dataset (same forms as `train --data`). Default: the data the model
    /// was trained on.
    #[arg(long)]
    pub data: Option<String>,
    /// Which samples: the split training held out (`test`, `val`, `train`,
    /// recreated from the model's seed), or `all`. Default `auto`: the
    /// training run's test split for its own data; otherwise the data's own
    /// test set (MNIST t10k) or all of it.
    #[arg(long, value_enum, default_value_t = SplitArg::Auto)]
    pub split: SplitArg,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Print a JSON summary as the last line of standard output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    Auto,
    All,
    Train,
    Val,
    Test,
}

/// The samples to evaluate on and a description of them.
pub fn eval_dataset(
    ck: &Checkpoint,
    spec: &str,
    split: SplitArg,
) -> anyhow::Result<(Dataset, String)> {
    let exp = &ck.meta.experiment;
    let same_data = spec == exp.data;
    let split = match split {
        SplitArg::Auto if same_data => SplitArg::Test,
        s => s,
    };
    let task = ck.meta.model.task;
    let ds = match split {
        SplitArg::Train | SplitArg::Val | SplitArg::Test => {
            let p = prepare(
                spec,
                &PrepareOptions {
                    task,
                    target: exp.target.clone(),
                    val_fraction: exp.val_fraction,
                    test_fraction: exp.test_fraction,
                    seq_len: exp.seq_len,
                    seed: exp.seed,
                },
            )?;
            if task == Task::Text && p.vocab.as_deref() != ck.meta.vocab.as_deref() {
                return Err(Error::Config(format!(
                    "{spec} has a different character set from the model's training text; use --split all"
                ))
                .into());
            }
            let (ds, name) = match split {
                SplitArg::Train => (p.train, "training split"),
                SplitArg::Val => (p.val, "validation split"),
                _ if p.test.is_empty() => (p.val, "held-out split"),
                _ => (p.test, "test split"),
            };
            (ds, format!("{name} of {spec}"))
        }
        SplitArg::All | SplitArg::Auto => {
            let source = DataSource::parse(spec)?;
            match load(&source, task, exp.target.as_deref())? {
                Loaded::Samples {
                    test: Some(test), ..
                } if split == SplitArg::Auto => (test, format!("test set of {spec}")),
                Loaded::Samples { all, test } => {
                    let mut all = all;
                    if let (SplitArg::All, Some(t)) = (split, test) {
                        all = concat(all, t);
                    }
                    (all, format!("all of {spec}"))
                }
                Loaded::Text(_) => {
                    let bytes = text_bytes(&source)?;
                    let vocab = ck.meta.vocab.as_deref().unwrap_or_default();
                    let corpus = TextCorpus::with_vocab(&bytes, Path::new(spec), vocab)?;
                    (
                        corpus.windows(0..corpus.ids.len(), exp.seq_len, spec),
                        format!("all of {spec}"),
                    )
                }
            }
        }
    };
    check_fits(ck, &ds.0, spec)?;
    Ok(ds)
}

fn text_bytes(source: &DataSource) -> anyhow::Result<Vec<u8>> {
    Ok(match source {
        DataSource::Builtin(n) => match wgtrain::data::builtin::builtin(n) {
            Some(wgtrain::data::builtin::Builtin::Text(b)) => b.to_vec(),
            _ => unreachable!("load() returned text"),
        },
        DataSource::Text(p) => std::fs::read(p).map_err(|e| Error::io(p, e))?,
        _ => unreachable!("load() returned text"),
    })
}

fn concat(mut a: Dataset, b: Dataset) -> Dataset {
    use wgtrain::data::Features;
    match (&mut a.features, b.features) {
        (Features::U8(x), Features::U8(y)) => x.extend(y),
        (Features::F32(x), Features::F32(y)) => x.extend(y),
        _ => unreachable!("one source has one feature type"),
    }
    match (&mut a.targets, b.targets) {
        (Targets::Classes { ids: x, .. }, Targets::Classes { ids: y, .. }) => x.extend(y),
        (Targets::Values { values: x, .. }, Targets::Values { values: y, .. }) => x.extend(y),
        _ => unreachable!("one source has one target type"),
    }
    a
}

/// The data must have the model's sample shape and stay within its classes.
pub fn check_fits(ck: &Checkpoint, ds: &Dataset, spec: &str) -> anyhow::Result<()> {
    let m = &ck.meta.model;
    let model_len: usize = m.input_shape.iter().product();
    if ds.sample_len() != model_len && m.task != Task::Text {
        return Err(Error::data(
            spec,
            format!(
                "samples of shape {:?} do not fit this {} model, which takes {:?}",
                ds.sample_shape,
                m.kind.name(),
                m.input_shape
            ),
        )
        .into());
    }
    if let Targets::Classes { ids, .. } = &ds.targets {
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= m.outputs) {
            return Err(Error::data(
                spec,
                format!(
                    "label {bad} is out of range for a model of {} classes",
                    m.outputs
                ),
            )
            .into());
        }
    }
    if ds.is_empty() {
        return Err(Error::data(spec, "no samples to evaluate").into());
    }
    Ok(())
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let (path, ck) = load_model_file(&args.model)?;
    if args.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()).into());
    }
    let spec = args
        .data
        .clone()
        .unwrap_or_else(|| ck.meta.experiment.data.clone());
    let (ds, what) = eval_dataset(&ck, &spec, args.split)?;
    let chosen = choose_device(args.device, args.json)?;
    let (device, adapter) = (chosen.kind(), chosen.adapter());
    let e = on_device!(chosen, |dev| {
        let mut model = ck.model(&dev)?;
        let data = DeviceData::upload(
            &dev,
            &ds,
            &ck.meta.normalizer,
            ck.meta.target_scaler.as_ref(),
        )?;
        let order = identity_order(&dev, data.len())?;
        evaluate(
            &dev,
            &mut model,
            &data,
            &order,
            args.batch_size,
            ck.meta.target_scaler.as_ref(),
        )?
    });
    let params: usize = ck.params.iter().map(|t| t.values.len()).sum();
    if args.json {
        let summary = json!({
            "command": "eval",
            "model": ck.meta.model.kind.name(),
            "device": device,
            "adapter": adapter,
            "params": params,
            "data": spec,
            "split": what,
            "test": evaluation_json(&e),
        });
        println!("{summary}");
    } else {
        println!(
            "{} ({} model, {params} parameters)",
            path.display(),
            ck.meta.model.kind.name()
        );
        println!(
            "{what}: {} samples, loss {:.4}, {}",
            e.samples,
            e.loss,
            e.headline()
        );
        if let Some(cm) = &e.confusion {
            if cm.len() <= 20 {
                print!("{}", confusion_table(cm));
            }
        }
    }
    Ok(())
}
