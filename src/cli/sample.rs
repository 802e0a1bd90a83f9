//! `wgtrain sample`: text from a model trained on text.

use std::path::PathBuf;

use clap::Args;
use wgtrain::data::Task;
use wgtrain::data::TextCorpus;
use wgtrain::models::sample_text;
use wgtrain::Error;

use super::{choose_device, load_model_file, on_device, parse_finite, DeviceArg};

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// A run directory or a model .safetensors file, trained on text.
    #[arg(long)]
    pub model: PathBuf,
    /// Text the model reads before generating.
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Characters to generate.
    #[arg(long, default_value_t = 300)]
    pub length: usize,
    /// Softmax temperature: lower is more conservative, 0 always takes the
    /// most likely character.
    #[arg(long, default_value_t = 0.8, value_parser = parse_finite)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
}

pub fn run(args: SampleArgs) -> anyhow::Result<()> {
    let max = wgtrain::data::limits::MAX_SAMPLE_LENGTH;
    if args.length > max {
        return Err(Error::Config(format!(
            "--length {} is over the limit of {max} characters",
            args.length
        ))
        .into());
    }
    let (path, ck) = load_model_file(&args.model)?;
    if ck.meta.task != Task::Text {
        return Err(Error::data(
            &path,
            format!(
                "a {} model does not generate text; sample needs a model trained on text",
                ck.meta.task.name()
            ),
        )
        .into());
    }
    let vocab = ck.meta.vocab.clone().unwrap_or_default();
    let prompt = TextCorpus::encode(&vocab, &args.prompt)?;
    let chosen = choose_device(args.device, true)?;
    let ids = on_device!(chosen, |dev| {
        let mut model = ck.model(&dev)?;
        sample_text(
            &mut model,
            &dev,
            &prompt,
            args.length,
            args.temperature,
            args.seed,
        )?
    });
    crate::outln!("{}{}", args.prompt, TextCorpus::decode(&vocab, &ids))?;
    Ok(())
}
