//! Command-line interface: argument definitions, device choice, dispatch.
//! One module per subcommand.

mod bench;
mod check;
pub mod console;
mod devices;
mod eval;
mod export;
mod predict;
mod report;
mod sample;
mod summary;
mod train;
mod tune;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use wgtrain::run::checkpoint::{self, Checkpoint};
use wgtrain::{CpuDevice, Error, GpuDevice};

#[derive(Parser, Debug)]
#[command(
    name = "wgtrain",
    version,
    about = "Train neural models on a GPU through wgpu compute shaders, checked against a CPU reference",
    after_help = "GPU selection: WGTRAIN_ADAPTER=<name substring>, WGTRAIN_BACKENDS=vulkan,metal,dx12,gl"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More messages on stderr: -v shows warnings from wgpu and the driver,
    /// -vv wgtrain's own progress notes too. RUST_LOG overrides (e.g.
    /// RUST_LOG=wgpu_core=info).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// Logging for `-v`: off by default (wgpu's warnings are noise to most
/// users), warnings at -v, info at -vv; RUST_LOG, when set, decides.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "off",
        1 => "warn",
        2 => "info",
        _ => "debug",
    };
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .try_init();
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (on its built-in dataset unless --data says otherwise).
    Train(Box<train::TrainArgs>),
    /// Loss and metric of a trained model on a dataset.
    Eval(eval::EvalArgs),
    /// Predictions of a trained model for CSV rows or IDX images.
    Predict(predict::PredictArgs),
    /// Write a trained model in another tool's layout (PyTorch state_dict).
    Export(export::ExportArgs),
    /// Generate text with a model trained on text (rnn, lstm, gru or a layer list).
    Sample(sample::SampleArgs),
    /// Measure the benches/WORKLOADS.md workloads (kernels K1–K4, training steps
    /// T1–T5) on the CPU and/or GPU device.
    Bench(bench::BenchArgs),
    /// List the GPU adapters wgpu sees and say which one wgtrain would use.
    Devices(devices::DevicesArgs),
    /// Time the GPU's matmul, convolution and recurrence kernels on the benchmark
    /// workloads' shapes and cache the fastest per shape class (training
    /// tunes new shapes on first use; WGTRAIN_TUNE=0 turns tuning off);
    /// prints the table.
    Tune(tune::TuneArgs),
    /// Run every GPU operation against the CPU reference on random inputs and
    /// print a table of errors; exits non-zero if any operation disagrees.
    Check(check::CheckArgs),
    /// Print a shell completion script (e.g. `wgtrain completions bash >
    /// ~/.local/share/bash-completion/completions/wgtrain`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.verbose);
    match cli.command {
        Command::Train(args) => train::run(*args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Export(args) => export::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Devices(args) => devices::run(args),
        Command::Tune(args) => tune::run(args),
        Command::Check(args) => check::run(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            // Into memory first: clap_complete panics on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "wgtrain", &mut script);
            crate::out!("{}", String::from_utf8_lossy(&script))
        }
    }
}

/// `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The GPU if an adapter exists, else the CPU.
    Auto,
    Cpu,
    Gpu,
}

/// The device a command runs on.
pub enum Chosen {
    Cpu(CpuDevice),
    Gpu(GpuDevice),
}

impl Chosen {
    /// `"cpu"` or `"gpu"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Chosen::Cpu(_) => "cpu",
            Chosen::Gpu(_) => "gpu",
        }
    }

    /// The adapter's name on the GPU.
    pub fn adapter(&self) -> Option<String> {
        match self {
            Chosen::Cpu(_) => None,
            Chosen::Gpu(g) => Some(g.adapter_info().name.clone()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Chosen::Cpu(_) => "cpu".into(),
            Chosen::Gpu(g) => format!(
                "gpu: {} ({:?}, {:?})",
                g.adapter_info().name,
                g.adapter_info().backend,
                g.adapter_info().device_type
            ),
        }
    }
}

/// Opens the device `arg` asks for. `auto` falls back to the CPU, saying
/// why, when no adapter can be opened, but not when a `WGTRAIN_*` variable
/// is misspelt: that is the user's to fix, not a missing GPU.
pub fn choose_device(arg: DeviceArg, quiet: bool) -> anyhow::Result<Chosen> {
    match arg {
        DeviceArg::Cpu => Ok(Chosen::Cpu(CpuDevice::new())),
        DeviceArg::Gpu => Ok(Chosen::Gpu(GpuDevice::new()?)),
        DeviceArg::Auto => match GpuDevice::new() {
            Ok(g) => Ok(Chosen::Gpu(g)),
            Err(e @ Error::Config(_)) => Err(e.into()),
            Err(e) => {
                if !quiet {
                    crate::errln!("no usable GPU ({e}); training on the CPU");
                }
                Ok(Chosen::Cpu(CpuDevice::new()))
            }
        },
    }
}

/// Runs `$body` with `$dev` bound to the chosen device, whichever it is.
macro_rules! on_device {
    ($chosen:expr, |$dev:ident| $body:expr) => {
        match $chosen {
            $crate::cli::Chosen::Cpu($dev) => $body,
            $crate::cli::Chosen::Gpu($dev) => $body,
        }
    };
}
pub(crate) use on_device;

/// Ctrl-C presses so far.
static INTERRUPTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether the user pressed Ctrl-C (training stops after the current step).
pub fn interrupted() -> bool {
    INTERRUPTS.load(std::sync::atomic::Ordering::Relaxed) > 0
}

/// Ctrl-C during training: the first stops after the current step (the run
/// is saved and can be resumed), a second aborts at once. Exit status 130
/// either way, as for any program stopped by SIGINT.
pub fn catch_interrupts() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
            crate::errln!("\nstopping after this step to save the run (Ctrl-C again to abort now)");
        } else {
            crate::errln!("\naborted");
            std::process::exit(130);
        }
    });
}

/// The error a run stopped by Ctrl-C ends with: the program exits 130.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// A model argument: a run directory (its model.safetensors) or a file.
pub fn model_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("model.safetensors")
    } else {
        p.to_path_buf()
    }
}

/// Refuses an output path that would replace one of the command's `inputs`,
/// a file of a training run (`export --output run/last.safetensors`) or a
/// read-only file.
pub fn check_output(output: &Path, inputs: &[&Path]) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(output).is_ok_and(|m| m.is_file() && m.permissions().readonly()) {
        return Err(Error::data(output, "is read-only: refusing to replace it").into());
    }
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if inputs.iter().any(|i| same(output, i)) {
        return Err(Error::data(
            output,
            "is also this command's input: write to another file",
        )
        .into());
    }
    if wgtrain::run::rundir::is_run_file(output) {
        return Err(Error::data(
            output,
            "is a file of the training run beside it: write to another file",
        )
        .into());
    }
    Ok(())
}

/// Loads `--model`, naming the file in errors.
pub fn load_model_file(p: &Path) -> anyhow::Result<(PathBuf, Checkpoint)> {
    let path = model_path(p);
    if !path.exists() {
        return Err(Error::data(
            &path,
            "no such model file (give a run directory or a .safetensors file)",
        )
        .into());
    }
    let ck = checkpoint::load(&path)?;
    Ok((path, ck))
}

/// A list of layer sizes, `256,128`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sizes(pub Vec<usize>);

/// Parses `256,128` into sizes.
pub fn parse_sizes(s: &str) -> Result<Sizes, String> {
    s.split(',')
        .map(|p| {
            p.trim()
                .parse::<usize>()
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| {
                    format!("'{p}' is not a positive integer (expected a list like 256,128)")
                })
        })
        .collect::<Result<_, _>>()
        .map(Sizes)
}

/// Parses a finite float.
pub fn parse_finite(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a finite number")),
    }
}
