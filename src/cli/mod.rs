//! Command-line interface: argument definitions and dispatch.

mod check;
mod devices;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "wgtrain",
    version,
    about = "Train neural models on any GPU through wgpu compute shaders, checked against a CPU reference",
    after_help = "GPU selection: WGTRAIN_ADAPTER=<name substring>, WGTRAIN_BACKENDS=vulkan,metal,dx12,gl"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the GPU adapters wgpu sees and say which one wgtrain would use.
    Devices,
    /// Run every GPU operation against the CPU reference on random inputs and
    /// print a table of errors; exits non-zero if any operation disagrees.
    Check(check::CheckArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Devices => devices::run(),
        Command::Check(args) => check::run(args),
    }
}
