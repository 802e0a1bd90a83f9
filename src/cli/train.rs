//! `wgtrain train`: a training run with progress, checkpoints and a summary.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;
use wgtrain::checkpoint::{self, restore_optimizer, ModelMeta};
use wgtrain::experiment::{Experiment, ExperimentConfig};
use wgtrain::models::{ModelKind, Task};
use wgtrain::optim::OptimizerKind;
use wgtrain::train::{restore, Schedule};
use wgtrain::{Device, Error};

use super::report::{self, RunHooks};
use super::{choose_device, on_device, parse_finite, parse_sizes, DeviceArg, Sizes};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model family: linear, logistic, mlp, cnn or rnn.
    #[arg(value_parser = parse_model)]
    pub model: ModelKind,
    /// Dataset: a built-in name (digits, iris, breast-cancer, diabetes,
    /// austen), `mnist` (data/mnist), a directory of MNIST-format IDX files,
    /// a .csv file, or a text file (rnn). Default: the model's built-in set.
    #[arg(long)]
    pub data: Option<String>,
    /// Where to train.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Passes over the training split.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Samples per step, or `full` for the whole training split.
    #[arg(long, value_parser = parse_batch)]
    pub batch_size: Option<BatchArg>,
    /// Base learning rate.
    #[arg(long, value_parser = parse_finite, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerArg>,
    /// Momentum μ (momentum) or β1 (adam).
    #[arg(long, value_parser = parse_finite, allow_negative_numbers = true)]
    pub momentum: Option<f32>,
    /// L2 penalty on weights (not biases).
    #[arg(long, value_parser = parse_finite, allow_negative_numbers = true)]
    pub weight_decay: Option<f32>,
    /// Clip gradients to this global norm.
    #[arg(long, value_parser = parse_finite, allow_negative_numbers = true)]
    pub clip_norm: Option<f32>,
    /// Learning-rate schedule over the run.
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleArg>,
    /// Hidden layer sizes (mlp: e.g. 256,128; rnn: one size).
    #[arg(long, value_parser = parse_sizes)]
    pub hidden: Option<Sizes>,
    /// Channels of each conv stage (cnn), e.g. 8,16.
    #[arg(long, value_parser = parse_sizes)]
    pub channels: Option<Sizes>,
    /// Characters per training sequence (rnn).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Fraction of samples held out for validation (early stopping, model
    /// selection).
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// Fraction held out for the final test (ignored when the data has its
    /// own test set, like MNIST's t10k files).
    #[arg(long)]
    pub test_fraction: Option<f64>,
    /// CSV target column (default: the last column).
    #[arg(long)]
    pub target: Option<String>,
    /// What a CSV's target is (default: regression for linear, else
    /// classification).
    #[arg(long, value_enum)]
    pub task: Option<TaskArg>,
    /// Stop after this many epochs without a better validation metric.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Seed for weights, splits and shuffles.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train on at most this many samples of the training split.
    #[arg(long)]
    pub max_train_samples: Option<usize>,
    /// Read the training loss back from the device every N steps.
    #[arg(long)]
    pub log_every: Option<usize>,
    /// Run directory (default: runs/<model>-<timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint (other
    /// settings come from the checkpoint; --epochs may extend the run).
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Return after this many epochs; --resume continues exactly.
    #[arg(long)]
    pub stop_after_epochs: Option<usize>,
    /// Print where a training step's time goes at the end (forward,
    /// backward, optimizer, host waits; on the GPU per kernel, measured with
    /// timestamp queries; profiling adds waits, so the run is slower).
    #[arg(long)]
    pub profile: bool,
    /// Print only the final summary.
    #[arg(long)]
    pub quiet: bool,
    /// Print a JSON summary as the last line of standard output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchArg {
    Full,
    Size(usize),
}

fn parse_batch(s: &str) -> Result<BatchArg, String> {
    if s == "full" {
        return Ok(BatchArg::Full);
    }
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (or `full`)".into()),
        Ok(n) => Ok(BatchArg::Size(n)),
        Err(_) => Err(format!("'{s}' is not a number or `full`")),
    }
}

fn parse_model(s: &str) -> Result<ModelKind, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OptimizerArg {
    Sgd,
    Momentum,
    Adam,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScheduleArg {
    Constant,
    Cosine,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TaskArg {
    Regression,
    Classification,
}

/// The run's configuration: the model's defaults overridden by flags.
fn config_from(args: &TrainArgs) -> ExperimentConfig {
    let mut c = ExperimentConfig::defaults(args.model);
    if let Some(d) = &args.data {
        c.data = d.clone();
    }
    if let Some(t) = args.task {
        c.task = match t {
            TaskArg::Regression => Task::Regression,
            TaskArg::Classification => Task::Classification,
        };
    }
    macro_rules! set {
        ($($field:ident),*) => { $(if let Some(v) = args.$field.clone() { c.$field = v; })* };
    }
    set!(
        epochs,
        seq_len,
        val_fraction,
        test_fraction,
        seed,
        log_every
    );
    if let Some(Sizes(h)) = &args.hidden {
        c.hidden = h.clone();
    }
    if let Some(Sizes(ch)) = &args.channels {
        c.channels = ch.clone();
    }
    c.target = args.target.clone().or(c.target);
    c.patience = args.patience.or(c.patience);
    c.max_train_samples = args.max_train_samples.or(c.max_train_samples);
    match args.batch_size {
        Some(BatchArg::Full) => c.batch_size = None,
        Some(BatchArg::Size(n)) => c.batch_size = Some(n),
        None => {}
    }
    if let Some(o) = args.optimizer {
        c.optim.kind = match o {
            OptimizerArg::Sgd => OptimizerKind::Sgd,
            OptimizerArg::Momentum => OptimizerKind::Momentum,
            OptimizerArg::Adam => OptimizerKind::Adam,
        };
    }
    if let Some(s) = args.schedule {
        c.schedule = match s {
            ScheduleArg::Constant => Schedule::Constant,
            ScheduleArg::Cosine => Schedule::Cosine,
        };
    }
    c.optim.lr = args.lr.unwrap_or(c.optim.lr);
    c.optim.momentum = args.momentum.unwrap_or(c.optim.momentum);
    c.optim.weight_decay = args.weight_decay.unwrap_or(c.optim.weight_decay);
    c.optim.clip_norm = args.clip_norm.or(c.optim.clip_norm);
    c
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let chosen = choose_device(args.device, args.quiet || args.json)?;
    let adapter = chosen.adapter();
    let device = chosen.kind();
    let describe = chosen.describe();
    on_device!(chosen, |dev| train_on(
        &dev, &args, device, adapter, &describe
    ))
}

fn train_on<D: Device + 'static>(
    dev: &D,
    args: &TrainArgs,
    device: &str,
    adapter: Option<String>,
    describe: &str,
) -> anyhow::Result<()> {
    let (config, out, resume) = match &args.resume {
        Some(dir) => {
            let last = checkpoint::load(&dir.join("last.safetensors"))?;
            let mut config = last.meta.experiment.clone();
            if config.model != args.model {
                return Err(Error::Config(format!(
                    "{} holds a {} run, not {}",
                    dir.display(),
                    config.model.name(),
                    args.model.name()
                ))
                .into());
            }
            if let Some(e) = args.epochs {
                config.epochs = e;
            }
            (config, dir.clone(), Some(last))
        }
        None => {
            let out = args.out.clone().unwrap_or_else(|| {
                let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
                PathBuf::from("runs").join(format!("{}-{stamp}", args.model.name()))
            });
            (config_from(args), out, None)
        }
    };
    let mut exp = Experiment::new(dev, config)?;
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    if let Some(last) = &resume {
        let (meta, opt_state) = last.resume.as_ref().ok_or_else(|| {
            Error::data(out.join("last.safetensors"), "not a resumable checkpoint")
        })?;
        restore(dev, &mut exp.model, &last.params)?;
        restore_optimizer(
            dev,
            &exp.model,
            &mut exp.optimizer,
            meta.optimizer_steps,
            opt_state,
        )?;
        meta.state.validate()?;
        exp.state = meta.state.clone();
        let best = out.join("model.safetensors");
        exp.best = if best.exists() {
            Some(checkpoint::load(&best)?.params)
        } else {
            None
        };
    }
    let meta = ModelMeta {
        format: checkpoint::FORMAT,
        wgtrain_version: env!("CARGO_PKG_VERSION").to_string(),
        model: exp.model.config.clone(),
        normalizer: exp.prepared.normalizer.clone(),
        target_scaler: exp.prepared.target_scaler.clone(),
        vocab: exp.prepared.vocab.clone(),
        experiment: exp.config.clone(),
    };
    let quiet = args.quiet;
    let say = |line: String| {
        if !quiet {
            if args.json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        }
    };
    say(format!(
        "{} on {} ({} train / {} val / {} test samples), {} parameters, device {describe}",
        exp.config.model.name(),
        exp.prepared.source,
        exp.prepared.train.len(),
        exp.prepared.val.len(),
        exp.prepared.test.len(),
        exp.model.param_count(),
    ));
    if resume.is_some() {
        say(format!(
            "resuming {} after epoch {}",
            out.display(),
            exp.state.epoch
        ));
    }
    let mut hooks = RunHooks::new(dev, &out, meta, quiet, args.json);
    let first_epoch = exp.state.epoch;
    if args.profile {
        wgtrain::profile::enable();
    }
    if let Err(e) = exp.run(dev, &mut hooks, args.stop_after_epochs) {
        let kept = if exp.state.epoch > 0 {
            format!(
                "; the checkpoints of epoch {} are kept in {}",
                exp.state.epoch,
                out.display()
            )
        } else {
            String::new()
        };
        return Err(anyhow::anyhow!("{e}{kept}"));
    }
    hooks.finish();
    if args.profile {
        let n = exp.prepared.train.len();
        let steps =
            (exp.state.epoch - first_epoch) * n.div_ceil(exp.config.batch_size.unwrap_or(n));
        eprint!(
            "profile over {steps} steps (validation included):\n{}",
            wgtrain::profile::report().table(steps)
        );
    }
    let test_split = if exp.prepared.test.is_empty() {
        "val"
    } else {
        "test"
    };
    let test = exp.evaluate(dev, test_split)?;
    let history = exp.history();
    let seconds: f64 = history.iter().map(|h| h.seconds).sum();
    let samples = exp
        .prepared
        .train
        .len()
        .min(exp.config.max_train_samples.unwrap_or(usize::MAX));
    let samples_per_sec = if seconds > 0.0 {
        (samples * history.len()) as f64 / seconds
    } else {
        0.0
    };
    let last = history.last();
    if let Some(t) = &test {
        say(format!(
            "{test_split}: loss {:.4}, {} (best epoch {} of {})",
            t.loss,
            t.headline(),
            exp.state.best_epoch,
            exp.state.epoch
        ));
        if let Some(cm) = &t.confusion {
            if !quiet && !args.json && cm.len() <= 20 {
                print!("{}", report::confusion_table(cm));
            }
        }
    }
    let mut summary = json!({
        "command": "train",
        "model": exp.config.model.name(),
        "device": device,
        "adapter": adapter,
        "params": exp.model.param_count(),
        "epochs": exp.state.epoch,
        "best_epoch": exp.state.best_epoch,
        "seconds": seconds,
        "samples_per_sec": samples_per_sec,
        "train_loss": last.map(|h| h.train_loss),
        "val_loss": last.and_then(|h| h.val.as_ref().map(|v| v.loss)),
        "out": out.display().to_string(),
    });
    if let Some(t) = &test {
        summary["test"] = report::evaluation_json(t);
        summary["test_split"] = json!(test_split);
    }
    report::write_summary(&out, &summary)?;
    if quiet && !args.json {
        println!(
            "{}: {} in {:.1}s, model in {}",
            exp.config.model.name(),
            test.as_ref()
                .map_or("trained".to_string(), |t| t.headline()),
            seconds,
            out.display()
        );
    } else if !args.json {
        println!(
            "model, metrics.csv, loss.svg and summary.json in {}",
            out.display()
        );
    }
    if args.json {
        println!("{summary}");
    }
    Ok(())
}
