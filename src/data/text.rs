//! UTF-8 text as a character-level corpus.

use std::path::Path;

use super::limits::MAX_VOCAB;
use super::Task;
use super::{Dataset, Features, Targets};
use crate::error::{Error, Result};

/// A text as token ids over its sorted character vocabulary.
#[derive(Clone, Debug, PartialEq)]
pub struct TextCorpus {
    /// Every distinct character of the text, sorted; a token id indexes it.
    pub vocab: Vec<char>,
    /// The text, one id per character.
    pub ids: Vec<u32>,
}

impl TextCorpus {
    /// Decodes UTF-8 bytes; `path` names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Error::data(
                path,
                format!(
                    "not UTF-8 text (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            )
        })?;
        let mut vocab: Vec<char> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for c in text.chars() {
            if seen.insert(c) && seen.len() > MAX_VOCAB {
                return Err(Error::data(
                    path,
                    format!(
                        "has more than {MAX_VOCAB} distinct characters, the limit for a character model"
                    ),
                ));
            }
        }
        vocab.extend(seen);
        let ids = text
            .chars()
            .map(|c| vocab.binary_search(&c).expect("in vocab") as u32)
            .collect();
        Ok(TextCorpus { vocab, ids })
    }

    /// Decodes UTF-8 bytes with a given vocabulary (a trained model's): a
    /// character outside it is an error.
    pub fn with_vocab(bytes: &[u8], path: &Path, vocab: &[char]) -> Result<Self> {
        let own = Self::from_bytes(bytes, path)?;
        if let Some(c) = own.vocab.iter().find(|c| vocab.binary_search(c).is_err()) {
            return Err(Error::data(
                path,
                format!(
                    "character {c:?} is not in the model's vocabulary of {} characters",
                    vocab.len()
                ),
            ));
        }
        let ids = own
            .ids
            .iter()
            .map(|&i| {
                vocab
                    .binary_search(&own.vocab[i as usize])
                    .expect("checked") as u32
            })
            .collect();
        Ok(TextCorpus {
            vocab: vocab.to_vec(),
            ids,
        })
    }

    /// Encodes `s` with this vocabulary.
    pub fn encode(vocab: &[char], s: &str) -> Result<Vec<u32>> {
        s.chars()
            .map(|c| {
                vocab.binary_search(&c).map(|i| i as u32).map_err(|_| {
                    Error::Config(format!("character {c:?} is not in the model's vocabulary"))
                })
            })
            .collect()
    }

    /// Maps ids back to characters; an id outside `vocab` becomes `?`.
    pub fn decode(vocab: &[char], ids: &[u32]) -> String {
        ids.iter()
            .map(|&i| vocab.get(i as usize).copied().unwrap_or('?'))
            .collect()
    }

    /// Non-overlapping windows of `ids[range]`: each sample is `seq_len` input
    /// ids and, as its targets, the `seq_len` ids that follow each of them.
    pub fn windows(&self, range: std::ops::Range<usize>, seq_len: usize, name: &str) -> Dataset {
        let ids = &self.ids[range];
        let n = ids.len().saturating_sub(1) / seq_len.max(1);
        let mut x = Vec::with_capacity(n * seq_len);
        let mut y = Vec::with_capacity(n * seq_len);
        for w in 0..n {
            let s = w * seq_len;
            x.extend(ids[s..s + seq_len].iter().map(|&i| i as f32));
            y.extend_from_slice(&ids[s + 1..s + seq_len + 1]);
        }
        Dataset {
            name: name.to_string(),
            task: Task::Text,
            sample_shape: vec![seq_len],
            features: Features::F32(x),
            targets: Targets::Classes {
                ids: y,
                classes: self.vocab.len(),
                per_sample: seq_len,
            },
            feature_names: Vec::new(),
            target_name: String::new(),
            class_names: Vec::new(),
        }
    }
}
