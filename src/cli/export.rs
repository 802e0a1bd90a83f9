//! `wgtrain export`: a trained model in the layout another tool loads.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use wgtrain::run::export::export_pytorch;
use wgtrain::run::onnx::export_onnx;

use super::load_model_file;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A run directory or a model .safetensors file.
    #[arg(long)]
    pub model: PathBuf,
    /// The target format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Where to write it.
    #[arg(long)]
    pub output: PathBuf,
}

/// What `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// An ONNX model (opset 17) that takes the raw inputs `predict` takes
    /// and outputs what it prints; runs in onnxruntime (README: "Export").
    Onnx,
    /// safetensors with PyTorch `state_dict` names and layouts for an
    /// `nn.Sequential` of the same layers (README: "Export").
    Pytorch,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let (path, ck) = load_model_file(&args.model)?;
    super::check_output(&args.output, &[&path])?;
    match args.format {
        ExportFormat::Onnx => export_onnx(&ck, &args.output)?,
        ExportFormat::Pytorch => export_pytorch(&ck, &args.output)?,
    }
    crate::outln!("wrote {}", args.output.display())?;
    Ok(())
}
