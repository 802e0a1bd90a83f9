//! `wgtrain eval`: a trained model's loss and metric on a dataset.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use wgtrain::models::format_layers;
use wgtrain::run::{eval_dataset, Split};
use wgtrain::Error;

use super::report::confusion_table;
use super::summary::{EvalSummary, RunInfo};
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

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let (path, ck) = load_model_file(&args.model)?;
    if args.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()).into());
    }
    let spec = args
        .data
        .clone()
        .unwrap_or_else(|| ck.meta.experiment.data.clone());
    let split = match args.split {
        SplitArg::Auto => Split::Auto,
        SplitArg::All => Split::All,
        SplitArg::Train => Split::Train,
        SplitArg::Val => Split::Val,
        SplitArg::Test => Split::Test,
    };
    let (ds, what) = eval_dataset(&ck, &spec, split)?;
    let chosen = choose_device(args.device, args.json)?;
    let (device, adapter) = (chosen.kind(), chosen.adapter());
    let e = on_device!(chosen, |dev| ck.evaluate(&dev, &ds, args.batch_size)?);
    let params: usize = ck.params.iter().map(|t| t.values.len()).sum();
    if args.json {
        let summary = EvalSummary {
            command: "eval",
            run: RunInfo {
                model: ck.meta.experiment.name(),
                layers: format_layers(&ck.meta.model.layers),
                device,
                adapter,
                params,
            },
            data: spec,
            split: what,
            test: (&e).into(),
        };
        crate::outln!("{}", serde_json::to_string(&summary)?)?;
    } else {
        crate::outln!(
            "{} ({} model: {}; {params} parameters)",
            path.display(),
            ck.meta.experiment.name(),
            format_layers(&ck.meta.model.layers)
        )?;
        crate::outln!(
            "{what}: {} samples, loss {:.4}, {}",
            e.samples,
            e.loss,
            e.headline()
        )?;
        if let Some(cm) = &e.confusion {
            if cm.len() <= 20 {
                crate::out!("{}", confusion_table(cm))?;
            }
        }
    }
    Ok(())
}
