//! Generating text from a trained rnn model, one character at a time.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Model, Output};
use crate::device::Device;
use crate::error::{Error, Result};

/// Feeds `prompt` (token ids) through the model, then draws `length` tokens
/// from the softmax of the logits divided by `temperature` (greedy when it is
/// 0). Returns the generated ids, prompt excluded.
pub fn sample_text<D: Device>(
    model: &mut Model<D>,
    dev: &D,
    prompt: &[u32],
    length: usize,
    temperature: f32,
    seed: u64,
) -> Result<Vec<u32>> {
    let Output::NextToken { vocab } = model.spec.output else {
        return Err(Error::Config(
            "only models trained on text (next-token prediction) generate text".into(),
        ));
    };
    if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
        return Err(Error::Config(format!(
            "prompt token {bad} is outside the vocabulary of {vocab}"
        )));
    }
    if !(temperature.is_finite() && temperature >= 0.0) {
        return Err(Error::Config(format!(
            "temperature must be ≥ 0, got {temperature}"
        )));
    }
    let rng = &mut ChaCha8Rng::seed_from_u64(seed);
    model.set_carry_state(true);
    let result = generate(model, dev, prompt, length, temperature, rng);
    model.set_carry_state(false);
    result
}

fn generate<D: Device>(
    model: &mut Model<D>,
    dev: &D,
    prompt: &[u32],
    length: usize,
    temperature: f32,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<u32>> {
    let vocab = model.spec.output.size();
    // Grows with what is generated, not with what was asked for.
    let mut out = Vec::new();
    // The prompt goes in as one sequence; the state carries on from its end.
    let start: Vec<f32> = if prompt.is_empty() {
        vec![0.0]
    } else {
        prompt.iter().map(|&t| t as f32).collect()
    };
    let mut input = dev.upload(&start, [1, start.len()])?;
    for _ in 0..length {
        let logits = model.forward(dev, &input, false)?;
        let all = dev.download(&logits)?;
        let last = &all[all.len() - vocab..];
        let next = pick(last, temperature, rng);
        out.push(next);
        input = dev.upload(&[next as f32], [1, 1])?;
    }
    Ok(out)
}

fn pick(logits: &[f32], temperature: f32, rng: &mut ChaCha8Rng) -> u32 {
    let argmax = || {
        (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap_or(0) as u32
    };
    if temperature == 0.0 {
        return argmax();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| (((l - max) / temperature) as f64).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut r = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        r -= w;
        if r <= 0.0 {
            return i as u32;
        }
    }
    argmax()
}
