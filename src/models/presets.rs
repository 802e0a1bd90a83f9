//! The five classic families and the gated recurrent cells, each a named
//! layer list. A preset is only a
//! starting point: `wgtrain train mlp` is `--layers flatten,dense:256,tanh,dense:128,tanh`
//! with the MLP's training defaults (see `run::ExperimentConfig::preset`).
//!
//! | preset | layers (before the output layer) | loss |
//! |---|---|---|
//! | linear | `flatten` | MSE |
//! | logistic | `flatten` | BCE (2 classes) or softmax CE |
//! | mlp | `flatten`, then `dense:H,tanh` per hidden size | softmax CE (MSE for regression) |
//! | cnn | `conv2d:C:3,tanh,maxpool:2` per stage, `flatten` | softmax CE |
//! | rnn | `one_hot,rnn:H` (one `rnn:H` per hidden size) | softmax CE per step |
//! | lstm | `one_hot,lstm:H` (likewise) | softmax CE per step |
//! | gru | `one_hot,gru:H` (likewise) | softmax CE per step |

use serde::{Deserialize, Serialize};

use super::spec::{Cell, LayerSpec};
use crate::device::Activation;
use crate::error::{Error, Result};

/// A named architecture family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Linear regression: the output layer alone, MSE.
    Linear,
    /// Logistic regression: the output layer alone, (binary) cross-entropy.
    Logistic,
    /// A multilayer perceptron with tanh hidden layers.
    Mlp,
    /// Convolution + tanh + max-pool stages, then the output layer.
    Cnn,
    /// A character-level Elman network predicting the next character.
    Rnn,
    /// The same with LSTM cells.
    Lstm,
    /// The same with GRU cells.
    Gru,
}

impl Preset {
    /// Every preset, in the order the README lists them.
    pub const ALL: [Preset; 7] = [
        Preset::Linear,
        Preset::Logistic,
        Preset::Mlp,
        Preset::Cnn,
        Preset::Rnn,
        Preset::Lstm,
        Preset::Gru,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Linear => "linear",
            Preset::Logistic => "logistic",
            Preset::Mlp => "mlp",
            Preset::Cnn => "cnn",
            Preset::Rnn => "rnn",
            Preset::Lstm => "lstm",
            Preset::Gru => "gru",
        }
    }

    /// The recurrence of a character-model preset (`rnn`, `lstm`, `gru`).
    pub fn cell(self) -> Option<Cell> {
        match self {
            Preset::Rnn => Some(Cell::Elman),
            Preset::Lstm => Some(Cell::Lstm),
            Preset::Gru => Some(Cell::Gru),
            _ => None,
        }
    }

    /// The preset's default hidden sizes (`--hidden`): MLP layer widths, or
    /// the recurrent layers' state sizes.
    pub fn default_hidden(self) -> Vec<usize> {
        match self {
            Preset::Mlp => vec![256, 128],
            Preset::Rnn => vec![128],
            Preset::Lstm | Preset::Gru => vec![256],
            _ => vec![],
        }
    }

    /// The preset's default conv channels per stage (`--channels`).
    pub fn default_channels(self) -> Vec<usize> {
        match self {
            Preset::Cnn => vec![8, 16],
            _ => vec![],
        }
    }

    /// The layer list for these sizes (`None`: the defaults). Fails when a
    /// size list does not apply to this preset.
    pub fn layers(
        self,
        hidden: Option<&[usize]>,
        channels: Option<&[usize]>,
    ) -> Result<Vec<LayerSpec>> {
        let misplaced = |flag: &str| {
            Err(Error::Config(format!(
                "--{flag} does not apply to the {} preset",
                self.name()
            )))
        };
        let default_hidden = self.default_hidden();
        let hidden = hidden.unwrap_or(&default_hidden);
        let default_channels = self.default_channels();
        let channels = channels.unwrap_or(&default_channels);
        if !channels.is_empty() && self != Preset::Cnn {
            return misplaced("channels");
        }
        if !hidden.is_empty() && self != Preset::Mlp && self.cell().is_none() {
            return misplaced("hidden");
        }
        let tanh = LayerSpec::Activation(Activation::Tanh);
        Ok(match self {
            // `flatten` alone: the output layer then fits tables and images.
            Preset::Linear | Preset::Logistic => vec![LayerSpec::Flatten],
            // `flatten` first, so images (digits, MNIST) and tables both fit.
            Preset::Mlp => std::iter::once(LayerSpec::Flatten)
                .chain(
                    hidden
                        .iter()
                        .flat_map(|&units| [LayerSpec::Dense { units }, tanh]),
                )
                .collect(),
            Preset::Cnn => {
                if channels.is_empty() {
                    return Err(Error::Config(
                        "the cnn preset needs at least one conv stage".into(),
                    ));
                }
                let mut l: Vec<LayerSpec> = channels
                    .iter()
                    .flat_map(|&channels| {
                        [
                            LayerSpec::Conv2d {
                                channels,
                                kernel: 3,
                                stride: 1,
                                padding: 1,
                            },
                            tanh,
                            LayerSpec::MaxPool { size: 2, stride: 2 },
                        ]
                    })
                    .collect();
                l.push(LayerSpec::Flatten);
                l
            }
            Preset::Rnn | Preset::Lstm | Preset::Gru => {
                let cell = self.cell().expect("a recurrent preset");
                if hidden.is_empty() {
                    return Err(Error::Config(format!(
                        "the {self} preset needs at least one hidden size"
                    )));
                }
                // One recurrent layer per size, stacked.
                std::iter::once(LayerSpec::OneHot { depth: None })
                    .chain(
                        hidden
                            .iter()
                            .map(|&hidden| LayerSpec::Recurrent { cell, hidden }),
                    )
                    .collect()
            }
        })
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Preset::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::Config(format!(
                "unknown model '{s}' (presets: linear, logistic, mlp, cnn, rnn, lstm, gru; or give --layers)"
            ))
            })
    }
}
