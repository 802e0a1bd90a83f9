//! `wgtrain train`: a training run with progress, checkpoints and a summary.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::summary::{RunInfo, SplitSizes, TrainSummary};
use clap::{Args, ValueEnum};
use wgtrain::data::{Missing, Task};
use wgtrain::device::Precision;
use wgtrain::models::{format_layers, parse_layers, Preset};
use wgtrain::optim::{LossScale, OptimizerKind, Schedule};
use wgtrain::run::checkpoint::{self, ModelMeta};
use wgtrain::run::fit::restore;
use wgtrain::run::{Experiment, ExperimentConfig, FitEnd, RunDir};
use wgtrain::{Device, Error};

use super::report::{self, RunHooks};
use super::{choose_device, on_device, parse_finite, parse_sizes, DeviceArg, Sizes};

/// The layer-list grammar, shown by `wgtrain train --help`.
pub const LAYERS_HELP: &str = "\
Layer lists (--layers, or `layers` in a config file): comma-separated layers,
each a name and colon-separated numbers. The output layer is added from the
data (classes, targets or vocabulary); token ids are one-hot encoded first.
  dense:UNITS                             fully connected (on the last dimension)
  conv2d:CHANNELS:KERNEL[:STRIDE[:PADDING]]  stride 1 and padding KERNEL/2 (odd kernels) by default
  maxpool:SIZE[:STRIDE]                   max over SIZE×SIZE windows, STRIDE apart (default SIZE)
  avgpool:SIZE[:STRIDE]                   mean over SIZE×SIZE windows, STRIDE apart (default SIZE)
  flatten                                 [C, H, W] -> [C·H·W]
  global_avgpool                          [C, H, W] -> [C], each channel's mean
  rnn:HIDDEN                              Elman recurrent layer over a sequence
  lstm:HIDDEN, gru:HIDDEN                 LSTM / GRU layer (PyTorch's equations); stack them freely
  one_hot[:DEPTH]                         token ids -> one-hot vectors
  embedding:DIM[:VOCAB]                   token ids -> learned vectors of DIM
  dropout:RATE                            zero a RATE fraction in training (inverted dropout)
  layernorm                               normalise each sample's features, learned scale and shift
  batchnorm                               normalise each channel over the batch (running averages for eval)
  last                                    a sequence's last step (added when one output per sample is needed)
  tanh, relu, sigmoid, identity           activations; also leaky_relu (slope 0.01), softplus, gelu
Example: --layers conv2d:16:3,relu,maxpool:2,conv2d:32:3,relu,maxpool:2,flatten,dense:128,relu

Presets: linear (flatten), logistic (flatten), mlp (flatten,dense:256,tanh,dense:128,tanh),
cnn (conv2d:8:3,tanh,maxpool:2,conv2d:16:3,tanh,maxpool:2,flatten), rnn (one_hot,rnn:128),
lstm (one_hot,lstm:256), gru (one_hot,gru:256); --hidden 256,256 stacks two recurrent layers.
Training defaults (epochs on the built-in data / batch size / learning rate, optimizer; --print-config
shows all). Epochs scale with the data: × √(built-in training samples / yours), 5 to 4× the count.
Early stopping after 10 epochs without a better validation metric or loss (not linear, which has no validation split):
  linear 2000 / full / 0.3, momentum     logistic 200 / 32 / 0.05, adam
  mlp 40 / 32 / 0.002, adam              cnn 40 / 32 / 0.003, adam
  rnn 20 / 64 / 0.003, adam              custom (--layers) 20 for 10,000 samples / 32 / 0.001, adam
  lstm 20 / 32 / 0.003, adam             gru 20 / 32 / 0.003, adam (both --seq-len 64)";

#[derive(Args, Debug)]
#[command(after_help = LAYERS_HELP)]
pub struct TrainArgs {
    /// A preset: linear, logistic, mlp, cnn, rnn, lstm or gru. Optional with --layers
    /// or --config.
    #[arg(value_parser = parse_preset)]
    pub model: Option<Preset>,
    /// The layers before the output layer, e.g. `dense:128,relu` (grammar
    /// below). Replaces the preset's layers.
    #[arg(long)]
    pub layers: Option<String>,
    /// A TOML file with the layers and every training setting (as written
    /// by --print-config); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the run's effective configuration as TOML and exit without
    /// training.
    #[arg(long)]
    pub print_config: bool,
    /// Dataset: a built-in name (digits, iris, breast-cancer, diabetes,
    /// austen), `mnist` (data/mnist), a directory of MNIST-format IDX files,
    /// a .csv file, or a text file (rnn). Default: the model's built-in set.
    #[arg(long)]
    pub data: Option<String>,
    /// Where to train.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Passes over the training split, or `auto` (the default): the
    /// preset's count scaled to the data's size ("Training defaults"
    /// below).
    #[arg(long, value_parser = count_or("auto"))]
    pub epochs: Option<Count>,
    /// Samples per step, or `full` for the whole training split.
    #[arg(long, value_parser = count_or("full"))]
    pub batch_size: Option<Count>,
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
    /// Clip gradients to this global norm, or `off` (the rnn, lstm and gru
    /// presets clip at 5).
    #[arg(long, value_parser = norm_or_off, allow_negative_numbers = true)]
    pub clip_norm: Option<ClipNorm>,
    /// Learning-rate schedule over the run.
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleArg>,
    /// Hidden layer sizes (mlp: e.g. 256,128; rnn, lstm, gru: one
    /// recurrent layer per size).
    #[arg(long, value_parser = parse_sizes)]
    pub hidden: Option<Sizes>,
    /// Channels of each conv stage (cnn), e.g. 8,16.
    #[arg(long, value_parser = parse_sizes)]
    pub channels: Option<Sizes>,
    /// Characters per training sequence (rnn, lstm, gru).
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
    /// Read the CSV as a time series: each sample is N consecutive rows of
    /// --features, its target the target column in the next row (regression
    /// unless --task says otherwise). Split in time order: the last
    /// fractions validate and test.
    #[arg(long)]
    pub window: Option<usize>,
    /// Read each CSV row's feature columns, in order, as one sequence (one
    /// value per step) for a recurrent model.
    #[arg(long)]
    pub sequence: bool,
    /// Time series: the columns read at each step, comma-separated (default:
    /// the target column alone).
    #[arg(long, value_delimiter = ',')]
    pub features: Option<Vec<String>>,
    /// Time series: an empty cell is an error (`error`, the default), or its
    /// row is left out (`drop`), or it is filled linearly from its
    /// neighbours (`interpolate`).
    #[arg(long, value_parser = parse_missing)]
    pub missing: Option<Missing>,
    /// Time series: forecast the change from each window's last value of
    /// the target (which must be among --features), so a trend beyond the
    /// training range needs no extrapolation.
    #[arg(long)]
    pub relative: bool,
    /// What a CSV's target is (default: regression for linear, else
    /// classification).
    #[arg(long, value_enum)]
    pub task: Option<TaskArg>,
    /// Stop after this many epochs without a better validation metric or loss
    /// (default 10; the best epoch is kept), or `off`.
    #[arg(long, value_parser = count_or("off"))]
    pub patience: Option<Count>,
    /// Seed for weights, splits and shuffles.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train on at most this many samples of the training split.
    #[arg(long)]
    pub max_train_samples: Option<usize>,
    /// Read the training loss back from the device every N steps.
    #[arg(long)]
    pub log_every: Option<usize>,
    /// Keep the data on the host and stream it to the device in chunks, the
    /// next uploaded while the current one trains (automatic for data
    /// larger than one device buffer; results are the same).
    #[arg(long)]
    pub stream: bool,
    /// `f16`: round the operands of matrix products to half precision, and
    /// keep the activations of dense, activation, convolution and recurrent
    /// layers for the backward pass in f16 (sums stay f32, and so do
    /// weights, convolutions, the forward recurrence and everything else); needs a GPU with
    /// SHADER_F16 (on the CPU it is emulated, slowly). Default f32.
    #[arg(long, value_parser = parse_precision)]
    pub precision: Option<Precision>,
    /// Scale the loss before backpropagation so small gradients survive
    /// f16 operands: `dynamic` (the default under f16: 2^16 to start,
    /// halved at an overflow, whose step is skipped, doubled after 2000
    /// good steps), a fixed number, or `off` (the default under f32).
    #[arg(long, value_parser = parse_loss_scale, allow_negative_numbers = true)]
    pub loss_scale: Option<LossScale>,
    /// Run directory (default: runs/<model>-<timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint (other
    /// settings come from the checkpoint; --epochs may extend the run).
    #[arg(long, conflicts_with_all = ["out", "overwrite"])]
    pub resume: Option<PathBuf>,
    /// Replace the run already in --out (its model, checkpoints and logs).
    #[arg(long, requires = "out")]
    pub overwrite: bool,
    /// Write checkpoints at most every this many seconds (and always at the
    /// end); 0 writes them after every epoch.
    #[arg(long, default_value_t = 30.0, value_parser = parse_finite)]
    pub save_every: f32,
    /// Return after this many epochs; --resume continues exactly.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
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

/// A count flag's value: a number, or its word (`full`, `auto`, `off`) for
/// `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count(pub Option<usize>);

fn parse_missing(s: &str) -> Result<Missing, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

fn count_or(word: &'static str) -> impl Fn(&str) -> Result<Count, String> + Clone {
    move |s| {
        if s == word {
            return Ok(Count(None));
        }
        match s.parse::<usize>() {
            Ok(0) => Err(format!("must be at least 1 (or `{word}`)")),
            Ok(n) => Ok(Count(Some(n))),
            Err(_) => Err(format!("'{s}' is not a number or `{word}`")),
        }
    }
}

/// `--clip-norm`: a norm, or `None` for `off`.
#[derive(Clone, Copy, Debug)]
pub struct ClipNorm(Option<f32>);

fn norm_or_off(s: &str) -> Result<ClipNorm, String> {
    if s == "off" {
        return Ok(ClipNorm(None));
    }
    match parse_finite(s) {
        Ok(v) if v > 0.0 => Ok(ClipNorm(Some(v))),
        Ok(_) => Err("must be positive (or `off`)".into()),
        Err(_) => Err(format!("'{s}' is not a number or `off`")),
    }
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OptimizerArg {
    Sgd,
    Momentum,
    Adam,
    /// Adam with decoupled weight decay.
    Adamw,
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

/// The flags that would change a run's settings (all but `--epochs`, which
/// may extend it), as they were given.
fn settings_flags(args: &TrainArgs) -> Vec<&'static str> {
    let set = [
        ("--layers", args.layers.is_some()),
        ("--config", args.config.is_some()),
        ("--data", args.data.is_some()),
        ("--batch-size", args.batch_size.is_some()),
        ("--lr", args.lr.is_some()),
        ("--optimizer", args.optimizer.is_some()),
        ("--momentum", args.momentum.is_some()),
        ("--weight-decay", args.weight_decay.is_some()),
        ("--clip-norm", args.clip_norm.is_some()),
        ("--schedule", args.schedule.is_some()),
        ("--hidden", args.hidden.is_some()),
        ("--channels", args.channels.is_some()),
        ("--seq-len", args.seq_len.is_some()),
        ("--val-fraction", args.val_fraction.is_some()),
        ("--test-fraction", args.test_fraction.is_some()),
        ("--target", args.target.is_some()),
        ("--window", args.window.is_some()),
        ("--sequence", args.sequence),
        ("--features", args.features.is_some()),
        ("--missing", args.missing.is_some()),
        ("--relative", args.relative),
        ("--task", args.task.is_some()),
        ("--patience", args.patience.is_some()),
        ("--seed", args.seed.is_some()),
        ("--max-train-samples", args.max_train_samples.is_some()),
        ("--log-every", args.log_every.is_some()),
        ("--precision", args.precision.is_some()),
        ("--loss-scale", args.loss_scale.is_some()),
    ];
    set.into_iter()
        .filter(|(_, on)| *on)
        .map(|(f, _)| f)
        .collect()
}

/// The run's configuration: a preset's defaults (or a custom model's), then
/// the config file, then flags.
fn config_from(args: &TrainArgs) -> anyhow::Result<ExperimentConfig> {
    let mut c = match (&args.config, args.model) {
        (Some(path), preset) => {
            let bytes = wgtrain::data::limits::read_capped(path, 1 << 20)?;
            let text =
                String::from_utf8(bytes).map_err(|_| Error::data(path, "is not UTF-8 text"))?;
            ExperimentConfig::from_toml(&text, preset)
                .map_err(|e| Error::data(path, e.to_string()))?
        }
        (None, Some(preset)) => ExperimentConfig::preset(preset),
        (None, None) if args.layers.is_some() => ExperimentConfig::custom(Vec::new(), ""),
        (None, None) => return Err(Error::Config(
            "say what to train: a preset (linear, logistic, mlp, cnn, rnn, lstm, gru), --layers or --config"
                .into(),
        )
        .into()),
    };
    let sizes = (args.hidden.as_ref(), args.channels.as_ref());
    if sizes != (None, None) {
        let preset = match (c.preset, &args.layers) {
            (Some(p), None) => p,
            _ => {
                return Err(Error::Config(
                    "--hidden and --channels size a preset's layers; with --layers, write the sizes into the list"
                        .into(),
                )
                .into())
            }
        };
        c.layers = preset.layers(
            sizes.0.map(|s| s.0.as_slice()),
            sizes.1.map(|s| s.0.as_slice()),
        )?;
    }
    if let Some(l) = &args.layers {
        c.layers = parse_layers(l)?;
        c.preset = None;
    }
    if let Some(d) = &args.data {
        c.data = d.clone();
    }
    if c.data.is_empty() {
        return Err(Error::Config("--data is needed for a model without a preset".into()).into());
    }
    if let Some(t) = args.task {
        c.task = Some(match t {
            TaskArg::Regression => Task::Regression,
            TaskArg::Classification => Task::Classification,
        });
    }
    macro_rules! set {
        ($($field:ident),*) => { $(if let Some(v) = args.$field.clone() { c.$field = v; })* };
    }
    set!(seq_len, val_fraction, test_fraction, seed, log_every);
    c.target = args.target.clone().or(c.target);
    c.window = args.window.or(c.window);
    c.sequence |= args.sequence;
    c.features = args.features.clone().or(c.features.take());
    c.missing = args.missing.unwrap_or(c.missing);
    c.relative |= args.relative;
    for (flag, setting) in [
        (args.epochs, &mut c.epochs),
        (args.patience, &mut c.patience),
        (args.batch_size, &mut c.batch_size),
    ] {
        if let Some(Count(v)) = flag {
            *setting = v;
        }
    }
    c.max_train_samples = args.max_train_samples.or(c.max_train_samples);
    c.stream |= args.stream;
    c.precision = args.precision.unwrap_or(c.precision);
    if let Some(o) = args.optimizer {
        c.optim.kind = match o {
            OptimizerArg::Sgd => OptimizerKind::Sgd,
            OptimizerArg::Momentum => OptimizerKind::Momentum,
            OptimizerArg::Adam => OptimizerKind::Adam,
            OptimizerArg::Adamw => OptimizerKind::AdamW,
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
    if let Some(ClipNorm(v)) = args.clip_norm {
        c.optim.clip_norm = v;
    }
    c.optim.loss_scale = args.loss_scale.or(c.optim.loss_scale);
    // Written out, so the printed config does not depend on how the data
    // is guessed.
    c.task = Some(c.resolved_task()?);
    Ok(c)
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    if args.print_config {
        let config = match &args.resume {
            Some(dir) => {
                checkpoint::load(&dir.join("last.safetensors"))?
                    .meta
                    .experiment
            }
            None => config_from(&args)?,
        };
        crate::out!("{}", config.to_toml()?)?;
        return Ok(());
    }
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
    device: &'static str,
    adapter: Option<String>,
    describe: &str,
) -> anyhow::Result<()> {
    if args.save_every < 0.0 {
        return Err(Error::Config("--save-every must be ≥ 0 seconds".into()).into());
    }
    let (config, rundir, resume) = match &args.resume {
        Some(dir) => {
            let changed = settings_flags(args);
            if !changed.is_empty() {
                return Err(Error::Config(format!(
                    "--resume continues a run with the settings it started with; {} would change them (only --epochs may extend it): start a new run instead",
                    changed.join(", ")
                ))
                .into());
            }
            // Locked first: nothing else may write the run while it is read.
            let rundir = RunDir::resume(dir)?;
            let last = checkpoint::load(&dir.join("last.safetensors"))?;
            let mut config = last.meta.experiment.clone();
            // Where the data lives does not change the results.
            config.stream |= args.stream;
            if let Some(p) = args.model.filter(|&p| config.preset != Some(p)) {
                return Err(Error::Config(format!(
                    "{} holds a {} run, not {p}",
                    dir.display(),
                    config.name()
                ))
                .into());
            }
            match args.epochs {
                Some(Count(Some(e))) => {
                    let done = last.resume.as_ref().map_or(0, |(m, _)| m.state.epoch);
                    if e < done {
                        return Err(Error::Config(format!(
                            "--epochs {e} is fewer than the {done} this run has done: give at least {done}"
                        ))
                        .into());
                    }
                    config.epochs = Some(e)
                }
                Some(Count(None)) => {
                    return Err(Error::Config(
                        "--resume keeps the run's epoch count unless --epochs gives a number"
                            .into(),
                    )
                    .into())
                }
                None => {}
            }
            (config, Some(rundir), Some(last))
        }
        None => (config_from(args)?, None, None),
    };
    let auto_epochs = config.epochs.is_none();
    let dev = &dev.with_precision(config.precision)?;
    let mut exp = Experiment::new(dev, config)?;
    // The directory only once the run is known to start.
    let rundir = match (rundir, &args.out) {
        (Some(r), _) => r,
        (None, Some(out)) => RunDir::create(out, false, args.overwrite)?,
        (None, None) => {
            let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
            let name = format!("{}-{stamp}", exp.config.name());
            RunDir::create(&PathBuf::from("runs").join(name), true, false)?
        }
    };
    let out = rundir.path().to_path_buf();
    let mut resumed_at = None;
    if let Some(last) = &resume {
        let (meta, opt_state) = last.resume.as_ref().ok_or_else(|| {
            Error::data(out.join("last.safetensors"), "not a resumable checkpoint")
        })?;
        meta.state.validate()?;
        // At most one update per sample per epoch begun.
        let most = (exp.prepared.train.len() as u64).saturating_mul(meta.state.epoch as u64 + 1);
        if meta.optimizer_steps > most {
            return Err(Error::data(
                out.join("last.safetensors"),
                format!(
                    "inconsistent training state: {} optimizer steps after {} epochs",
                    meta.optimizer_steps, meta.state.epoch
                ),
            )
            .into());
        }
        if last
            .meta
            .data_checksum
            .is_some_and(|c| c != exp.data_checksum)
        {
            return Err(Error::Config(format!(
                "{} has changed since this run began: resuming on other data would mix two runs",
                exp.config.data
            ))
            .into());
        }
        restore(dev, &mut exp.model, &last.params)?;
        exp.optimizer
            .load_state(dev, &exp.model.params(), meta.optimizer_steps, opt_state)?;
        exp.state = meta.state.clone();
        let best = out.join("model.safetensors");
        exp.best = if best.exists() {
            Some(checkpoint::load(&best)?.params)
        } else {
            None
        };
        resumed_at = Some((exp.state.epoch, exp.state.best_epoch));
    }
    let meta = ModelMeta {
        format: checkpoint::FORMAT,
        wgtrain_version: env!("CARGO_PKG_VERSION").to_string(),
        model: exp.model.spec.clone(),
        task: exp.prepared.train.task,
        normalizer: exp.prepared.normalizer.clone(),
        target_scaler: exp.prepared.target_scaler.clone(),
        vocab: exp.prepared.vocab.clone(),
        feature_names: exp.prepared.train.feature_names.clone(),
        target_name: exp.prepared.train.target_name.clone(),
        class_names: exp.prepared.train.class_names.clone(),
        experiment: exp.config.clone(),
        data_checksum: Some(exp.data_checksum),
    };
    let quiet = args.quiet;
    let say = |line: String| {
        if !quiet {
            if args.json {
                crate::errln!("{line}");
            } else {
                crate::cli::console::out_lenient(format_args!("{line}\n"));
            }
        }
    };
    let config_path = out.join("config.toml");
    checkpoint::write_atomically(&config_path, exp.config.to_toml()?.as_bytes())?;
    for w in &exp.prepared.warnings {
        crate::errln!("warning: {w}");
    }
    say(format!(
        "{} on {} ({} train / {} val / {} test samples), {} parameters, device {describe}",
        exp.config.name(),
        exp.prepared.source,
        exp.prepared.train.len(),
        exp.prepared.val.len(),
        exp.prepared.test.len(),
        exp.model.param_count(),
    ));
    if exp.streams_data() {
        say("data: kept on the host, streamed to the device in chunks".into());
    }
    if exp.config.precision == Precision::F16 {
        let how = if device == "cpu" { ", emulated" } else { "" };
        let scaled = match exp.config.optim.loss_scale.unwrap_or_default() {
            LossScale::Off => "no loss scaling".to_string(),
            s => format!("loss scale {s}"),
        };
        say(format!(
            "precision: f16 matrix-product operands, f32 sums and weights{how}; {scaled}"
        ));
    } else if let Some(s) = exp.config.optim.loss_scale.filter(|s| *s != LossScale::Off) {
        say(format!("loss scale {s}"));
    }
    say(format!(
        "layers: {} (output layer from the data)",
        format_layers(&exp.model.spec.layers)
    ));
    let epochs = exp.config.epochs.unwrap_or_default();
    let plural = if epochs == 1 { "" } else { "s" };
    let how_many = if auto_epochs {
        format!(
            "{epochs} epoch{plural} (auto: scaled to {} training samples; --epochs to choose)",
            exp.prepared.train.len()
        )
    } else {
        format!("{epochs} epoch{plural}")
    };
    let stopping = match exp.config.patience {
        _ if exp.prepared.val.is_empty() => "no early stopping (no validation split)".to_string(),
        Some(p) => format!(
            "early stopping after {p} epochs without a better validation metric or loss (--patience off to train all)"
        ),
        None => "no early stopping (--patience off)".to_string(),
    };
    say(format!("{how_many}, {stopping}"));
    if resume.is_some() {
        say(format!(
            "resuming {} after epoch {}",
            out.display(),
            exp.state.epoch
        ));
    }
    let mut hooks = RunHooks::new(
        dev,
        &rundir,
        meta,
        (quiet, args.json),
        Duration::try_from_secs_f32(args.save_every).unwrap_or(Duration::MAX),
        resumed_at,
    )?;
    let first_epoch = exp.state.epoch;
    if args.profile {
        wgtrain::profile::enable();
    }
    let started = Instant::now();
    super::catch_interrupts();
    let ended = exp.run(dev, &mut hooks, args.stop_after_epochs);
    if let Ok(FitEnd::Interrupted) = ended {
        hooks.finish();
        hooks.save_state(
            &exp.state,
            &exp.model,
            exp.optimizer.as_ref(),
            exp.best.as_deref(),
        )?;
        if rundir.holds_previous() {
            // Inside its first epoch: the run it was to replace comes back
            // (when `rundir` is dropped), and this one is not kept.
            return Err(super::Interrupted(format!(
                "interrupted in the first epoch: nothing replaced the run in {}",
                out.display()
            ))
            .into());
        }
        return Err(super::Interrupted(format!(
            "interrupted at epoch {}, step {}: the run is saved in {}; continue it with `wgtrain train --resume {}`",
            exp.state.epoch + 1,
            exp.state.step,
            out.display(),
            out.display()
        ))
        .into());
    }
    if let Err(e) = ended {
        hooks.finish();
        // Keep the best model, and say what is really on disk.
        let best = hooks.save_best(exp.best.as_deref(), exp.state.best_epoch);
        let kept = match (best, hooks.saved_epoch.filter(|&n| n > 0)) {
            (Some(b), Some(n)) => format!(
                "; kept in {}: the best model (epoch {b}) and the checkpoints of epoch {n}",
                out.display()
            ),
            (Some(b), None) => format!(
                "; kept in {}: the best model (epoch {b}), no resumable checkpoint",
                out.display()
            ),
            (None, Some(n)) => format!(
                "; the checkpoints of epoch {n} are kept in {}",
                out.display()
            ),
            (None, None) if rundir.holds_previous() => format!(
                "; nothing was saved, and the run it was to replace stays in {}",
                out.display()
            ),
            (None, None) => format!("; nothing was saved in {}", out.display()),
        };
        return Err(anyhow::anyhow!("{e}{kept}"));
    }
    let early_stopped = matches!(ended, Ok(FitEnd::EarlyStopped));
    if early_stopped {
        say(format!(
            "early stopping after epoch {}: {} epochs without a better validation metric or loss (--patience); epoch {} is kept",
            exp.state.epoch,
            exp.config.patience.unwrap_or_default(),
            exp.state.best_epoch
        ));
    }
    let seconds = started.elapsed().as_secs_f64();
    hooks.finish();
    if args.profile {
        let n = exp.prepared.train.len();
        let steps =
            (exp.state.epoch - first_epoch) * n.div_ceil(exp.config.batch_size.unwrap_or(n));
        crate::err!(
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
    // Wall time of this invocation's training, checkpoints included.
    let trained = exp.prepared.train.len() * (exp.state.epoch - first_epoch);
    let samples_per_sec = if seconds > 0.0 {
        trained as f64 / seconds
    } else {
        0.0
    };
    let last = exp.last_epoch();
    let held_out = if test_split == "test" {
        &exp.prepared.test
    } else {
        &exp.prepared.val
    };
    let baselines = wgtrain::run::baselines(&exp.prepared, held_out);
    if let Some(t) = &test {
        say(format!(
            "{test_split}: loss {:.4}, {} (best epoch {} of {})",
            t.loss,
            t.headline(),
            exp.state.best_epoch,
            exp.state.epoch
        ));
        if !baselines.is_empty() {
            let list: Vec<String> = baselines
                .iter()
                .map(|b| format!("{} {} {:.4}", b.name, b.metric, b.value))
                .collect();
            say(format!("baselines on the same split: {}", list.join("; ")));
        }
        if let Some(cm) = &t.confusion {
            if !quiet && !args.json && cm.len() <= 20 {
                crate::cli::console::out_lenient(format_args!("{}", report::confusion_table(cm)));
            }
        }
    }
    let summary = TrainSummary {
        command: "train",
        run: RunInfo {
            model: exp.config.name(),
            layers: format_layers(&exp.model.spec.layers),
            device,
            adapter,
            params: exp.model.param_count(),
        },
        samples: SplitSizes {
            train: exp.prepared.train.len(),
            val: exp.prepared.val.len(),
            test: exp.prepared.test.len(),
        },
        max_epochs: exp.config.epochs.unwrap_or_default(),
        patience: exp.config.patience.filter(|_| !exp.prepared.val.is_empty()),
        epochs: exp.state.epoch,
        best_epoch: exp.state.best_epoch,
        ended: if early_stopped {
            "early_stopped"
        } else {
            "finished"
        },
        seconds,
        samples_per_sec,
        train_loss: last.map(|h| h.train_loss),
        val_loss: last.and_then(|h| h.val.as_ref().map(|v| v.loss)),
        out: out.display().to_string(),
        test_split: test.is_some().then_some(test_split),
        test: test.as_ref().map(Into::into),
        baselines: test.is_some().then_some(baselines),
    };
    report::write_summary(&out, &summary)?;
    if quiet && !args.json {
        crate::outln!(
            "{}: {} in {:.1}s, model in {}",
            exp.config.name(),
            test.as_ref()
                .map_or("trained".to_string(), |t| t.headline()),
            seconds,
            out.display()
        )?;
    } else if !args.json {
        crate::outln!(
            "model, config.toml, metrics.csv, plots and summary.json in {}",
            out.display()
        )?;
    }
    if args.json {
        crate::outln!("{}", serde_json::to_string(&summary)?)?;
    }
    Ok(())
}

/// `--precision`.
pub(super) fn parse_precision(s: &str) -> Result<Precision, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

/// `--loss-scale`.
fn parse_loss_scale(s: &str) -> Result<LossScale, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults `--help` lists are the ones the presets use.
    #[test]
    fn help_lists_the_real_defaults() {
        let configs = Preset::ALL
            .into_iter()
            .map(|p| (p.name(), ExperimentConfig::preset(p)))
            .chain([(
                "custom (--layers)",
                ExperimentConfig::custom(Vec::new(), "x"),
            )]);
        for (name, c) in configs {
            let batch = c.batch_size.map_or("full".to_string(), |b| b.to_string());
            let (epochs, reference) = c.epoch_reference();
            let epochs = if c.preset.is_none() {
                let r = reference.to_string();
                let (head, tail) = r.split_at(r.len() - 3);
                format!("{epochs} for {head},{tail} samples")
            } else {
                epochs.to_string()
            };
            let line = format!(
                "{name} {epochs} / {batch} / {}, {}",
                c.optim.lr,
                c.optim.kind.name()
            );
            assert!(LAYERS_HELP.contains(&line), "--help lacks '{line}'");
        }
    }
}
