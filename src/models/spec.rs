//! Architectures as data: a model is a list of [`LayerSpec`]s, checked by
//! shape inference before anything is allocated.
//!
//! The layer-list grammar (`--layers`, config files, checkpoints) is a
//! comma-separated list, each layer a name and colon-separated numbers:
//!
//! | layer | meaning |
//! |---|---|
//! | `dense:UNITS` | fully connected, on the last dimension |
//! | `conv2d:CHANNELS:KERNEL[:STRIDE[:PADDING]]` | 2-d convolution; stride 1 and padding `KERNEL/2` ("same") for odd kernels, 0 for even ones, by default |
//! | `maxpool:SIZE[:STRIDE]` | max over `SIZE×SIZE` windows `STRIDE` apart (default `SIZE`; smaller overlaps) |
//! | `avgpool:SIZE[:STRIDE]` | mean over `SIZE×SIZE` windows `STRIDE` apart (default `SIZE`) |
//! | `global_avgpool` | `[C, H, W]` → `[C]`: each channel's mean |
//! | `flatten` | `[C, H, W]` → `[C·H·W]` (features stay as they are) |
//! | `rnn:HIDDEN` | Elman recurrent layer over a sequence |
//! | `one_hot[:DEPTH]` | token ids → one-hot vectors (depth: the vocabulary) |
//! | `embedding:DIM[:VOCAB]` | token ids → learned vectors of `DIM` (vocab: the data's) |
//! | `layernorm` | each sample's (each step's) features to mean 0, variance 1, then a learned scale and shift |
//! | `dropout:RATE` | in training, zero each value with probability `RATE` (in `[0, 1)`) and scale the rest by `1/(1 − RATE)`; nothing in evaluation |
//! | `tanh`, `relu`, `sigmoid`, `leaky_relu` (slope 0.01), `softplus`, `gelu` (tanh approximation), `identity` | elementwise activation |
//!
//! The output layer is never written: [`ModelSpec::new`] appends a dense
//! layer as wide as the data needs (classes, targets, vocabulary), and puts
//! `one_hot` first when the input is token ids and the list does not start
//! with it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::device::Activation;
use crate::error::{Error, Result};
use crate::loss::Loss;

/// Largest number of elements any one parameter tensor may have (2²⁸ f32 =
/// 1 GiB). Checked before anything is allocated, so a mistyped size or a
/// crafted checkpoint fails with a message instead of exhausting memory.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 28;

/// Most layers a model may have: a list, or a checkpoint, asking for more
/// is a mistake, not an architecture.
pub const MAX_LAYERS: usize = 1024;

/// Most parameters a whole model may have (2³⁰ f32 = 4 GiB): many tensors
/// each under [`MAX_TENSOR_ELEMENTS`] must not add up to more.
pub const MAX_MODEL_PARAMS: usize = 1 << 30;

/// The shape of one sample as it flows between layers (the batch is not
/// part of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureShape {
    /// A vector of features.
    Flat {
        /// Numbers per sample.
        features: usize,
    },
    /// An image: channels × height × width.
    Image {
        /// Channels (planes).
        channels: usize,
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
    /// A sequence of token ids (integers below the vocabulary size).
    Tokens {
        /// Steps.
        len: usize,
    },
    /// A sequence of feature vectors, one per step.
    Sequence {
        /// Steps.
        len: usize,
        /// Numbers per step.
        features: usize,
    },
}

impl FeatureShape {
    /// A dataset's sample shape: `[features]`, `[channels, height, width]`,
    /// or, when `tokens`, `[sequence length]` token ids.
    pub fn from_sample(dims: &[usize], tokens: bool) -> Result<Self> {
        let shape = match (dims, tokens) {
            (&[len], true) => FeatureShape::Tokens { len },
            (&[features], false) => FeatureShape::Flat { features },
            (&[len, features], false) => FeatureShape::Sequence { len, features },
            (&[channels, height, width], false) => FeatureShape::Image {
                channels,
                height,
                width,
            },
            _ => {
                return Err(Error::Config(format!(
                    "samples of shape {dims:?} are neither features, images nor token sequences"
                )))
            }
        };
        if dims.contains(&0) {
            return Err(Error::Config(format!(
                "samples of shape {dims:?} are empty"
            )));
        }
        Ok(shape)
    }

    /// The per-sample dimensions, as a dataset stores them.
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            FeatureShape::Flat { features } => vec![features],
            FeatureShape::Image {
                channels,
                height,
                width,
            } => vec![channels, height, width],
            FeatureShape::Tokens { len } => vec![len],
            FeatureShape::Sequence { len, features } => vec![len, features],
        }
    }

    /// Numbers per sample.
    pub fn numel(&self) -> usize {
        // Saturating: dimensions read from a file may multiply past usize,
        // and a wrapped count could pass for a small (or empty) input.
        self.dims()
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX)
    }
}

impl fmt::Display for FeatureShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FeatureShape::Flat { features } => write!(f, "[{features}]"),
            FeatureShape::Image {
                channels,
                height,
                width,
            } => write!(f, "[{channels}, {height}, {width}]"),
            FeatureShape::Tokens { len } => write!(f, "[{len}] token ids"),
            FeatureShape::Sequence { len, features } => {
                write!(f, "[{len} steps, {features}]")
            }
        }
    }
}

/// One layer of an architecture. Serialised as its grammar form
/// (`conv2d:16:3:1:1`), so config files and checkpoint metadata read like
/// the command line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerSpec {
    /// `y = x·W + b` on the last dimension.
    Dense {
        /// Outputs.
        units: usize,
    },
    /// 2-d convolution with bias and zero padding.
    Conv2d {
        /// Output channels.
        channels: usize,
        /// Side of the square kernel.
        kernel: usize,
        /// Step between output positions.
        stride: usize,
        /// Zeros added on each border.
        padding: usize,
    },
    /// Max over `size×size` windows, `stride` apart.
    MaxPool {
        /// Side of the window.
        size: usize,
        /// Step between windows.
        stride: usize,
    },
    /// Mean over `size×size` windows, `stride` apart.
    AvgPool {
        /// Side of the window.
        size: usize,
        /// Step between windows.
        stride: usize,
    },
    /// An elementwise activation.
    Activation(Activation),
    /// Images to feature vectors.
    Flatten,
    /// Each channel of an image to its mean: `[C, H, W]` → `[C]`.
    GlobalAvgPool,
    /// Token ids to one-hot vectors.
    OneHot {
        /// Length of the vectors; `None` until the vocabulary is known.
        depth: Option<usize>,
    },
    /// A recurrent layer over a sequence, returning every state.
    Recurrent {
        /// Which recurrence.
        cell: Cell,
        /// State size.
        hidden: usize,
    },
    /// Token ids to learned vectors (rows of a `[vocab, dim]` table).
    Embedding {
        /// Length of the vectors.
        dim: usize,
        /// Rows of the table; `None` until the vocabulary is known.
        vocab: Option<usize>,
    },
    /// Layer normalisation over the last dimension, with a learned scale
    /// and shift.
    LayerNorm,
    /// Batch normalisation per channel (features, or image planes), with
    /// running statistics for evaluation.
    BatchNorm,
    /// The last step of a sequence, `[T, F]` → `[F]`: a recurrent model that
    /// predicts one value per sample reads its final state. Added before the
    /// output layer when a sequence model's data has one target per sample.
    Last,
    /// Inverted dropout (training only).
    Dropout {
        /// Fraction of values zeroed, in `[0, 1)`.
        rate: f32,
    },
}

/// The recurrences a [`LayerSpec::Recurrent`] layer can run (equations in
/// `src/nn/rnn.rs` and `src/nn/gated.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    /// Elman: `h_t = tanh(x_t·W + h_{t−1}·U + b)` (`rnn:H`).
    Elman,
    /// Long short-term memory, PyTorch's gates `i, f, g, o` (`lstm:H`).
    Lstm,
    /// Gated recurrent unit, PyTorch's gates `r, z, n` (`gru:H`).
    Gru,
}

impl Cell {
    /// The layer's name in the grammar.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Elman => "rnn",
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
        }
    }

    /// Gate blocks side by side in the weight matrices (`W [I, gates·H]`).
    pub fn gates(self) -> usize {
        match self {
            Cell::Elman => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }

    fn from_name(name: &str) -> Option<Cell> {
        [Cell::Elman, Cell::Lstm, Cell::Gru]
            .into_iter()
            .find(|c| c.name() == name)
    }
}

// A rate is finite (checked where one is made: parsing and
// `ModelSpec::validate`), so equality is an equivalence.
impl Eq for LayerSpec {}

/// The layer names the grammar knows, for messages.
const KNOWN: &str = "dense, conv2d, maxpool, avgpool, global_avgpool, flatten, rnn, lstm, gru, last, one_hot, batchnorm, embedding, layernorm, dropout, tanh, relu, sigmoid, leaky_relu, softplus, gelu, identity";

impl LayerSpec {
    /// The layer's name in the grammar (`conv2d`, `relu`).
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Dense { .. } => "dense",
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::MaxPool { .. } => "maxpool",
            LayerSpec::AvgPool { .. } => "avgpool",
            LayerSpec::Activation(a) => a.name(),
            LayerSpec::Flatten => "flatten",
            LayerSpec::Last => "last",
            LayerSpec::OneHot { .. } => "one_hot",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::Embedding { .. } => "embedding",
            LayerSpec::LayerNorm => "layernorm",
            LayerSpec::BatchNorm => "batchnorm",
            LayerSpec::GlobalAvgPool => "global_avgpool",
            LayerSpec::Recurrent { cell, .. } => cell.name(),
        }
    }

    /// The shape this layer produces from `input`, or why it cannot take it.
    pub fn output_shape(&self, input: FeatureShape) -> std::result::Result<FeatureShape, String> {
        use FeatureShape::*;
        let needs = |what: &str| Err(format!("takes {what}, got {input}"));
        match (*self, input) {
            (LayerSpec::Dense { units }, Flat { .. }) => Ok(Flat { features: units }),
            (LayerSpec::Dense { units }, Sequence { len, .. }) => Ok(Sequence {
                len,
                features: units,
            }),
            (LayerSpec::Dense { .. }, Image { .. }) => {
                needs("features or a sequence (add `flatten` before it)")
            }
            (LayerSpec::Dense { .. }, Tokens { .. }) => {
                needs("features (token ids need `one_hot` first)")
            }
            (
                LayerSpec::Conv2d {
                    channels,
                    kernel,
                    stride,
                    padding,
                },
                Image { height, width, .. },
            ) => {
                if stride == 0 {
                    return Err("has stride 0".into());
                }
                let out = |size: usize| {
                    padding
                        .checked_mul(2)
                        .and_then(|p| size.checked_add(p))
                        .and_then(|s| s.checked_sub(kernel))
                        .map(|d| d / stride + 1)
                };
                match (out(height), out(width)) {
                    (Some(h), Some(w)) => Ok(Image {
                        channels,
                        height: h,
                        width: w,
                    }),
                    _ => needs(&format!(
                        "an image of at least {kernel}×{kernel} with padding {padding}"
                    )),
                }
            }
            (LayerSpec::Conv2d { .. }, _) => needs("an image [channels, height, width]"),
            (
                LayerSpec::MaxPool { size, stride } | LayerSpec::AvgPool { size, stride },
                Image {
                    channels,
                    height,
                    width,
                },
            ) => {
                if stride == 0 {
                    return Err("has stride 0".into());
                }
                if height < size || width < size {
                    return needs(&format!("an image of at least {size}×{size}"));
                }
                Ok(Image {
                    channels,
                    height: (height - size) / stride + 1,
                    width: (width - size) / stride + 1,
                })
            }
            (LayerSpec::MaxPool { .. } | LayerSpec::AvgPool { .. }, _) => {
                needs("an image [channels, height, width]")
            }
            (LayerSpec::Activation(_), Tokens { .. }) => {
                needs("numbers (token ids need `one_hot` first)")
            }
            (LayerSpec::Activation(_), shape) => Ok(shape),
            (LayerSpec::Dropout { .. }, Tokens { .. }) => {
                needs("numbers (token ids need `one_hot` first)")
            }
            (LayerSpec::Dropout { .. }, shape) => Ok(shape),
            (LayerSpec::LayerNorm, Flat { features }) => Ok(Flat { features }),
            (LayerSpec::LayerNorm, shape @ Sequence { .. }) => Ok(shape),
            (LayerSpec::LayerNorm, _) => needs("features or a sequence"),
            (LayerSpec::BatchNorm, shape @ (Flat { .. } | Image { .. })) => Ok(shape),
            (LayerSpec::BatchNorm, _) => needs("features or an image"),
            (
                LayerSpec::Flatten,
                Image {
                    channels,
                    height,
                    width,
                },
            ) => Ok(Flat {
                features: channels * height * width,
            }),
            (LayerSpec::Flatten, Flat { features }) => Ok(Flat { features }),
            (LayerSpec::GlobalAvgPool, Image { channels, .. }) => Ok(Flat { features: channels }),
            (LayerSpec::GlobalAvgPool, _) => needs("an image [channels, height, width]"),
            (LayerSpec::Flatten, _) => needs("an image or features"),
            (LayerSpec::Last, Sequence { features, .. }) => Ok(Flat { features }),
            (LayerSpec::Last, _) => needs("a sequence"),
            (LayerSpec::OneHot { depth }, Tokens { len }) => Ok(Sequence {
                len,
                features: depth.ok_or("has no depth yet")?,
            }),
            (LayerSpec::OneHot { .. }, _) => needs("token ids"),
            (LayerSpec::Embedding { dim, .. }, Tokens { len }) => {
                Ok(Sequence { len, features: dim })
            }
            (LayerSpec::Embedding { .. }, _) => needs("token ids"),
            (LayerSpec::Recurrent { hidden, .. }, Sequence { len, .. }) => Ok(Sequence {
                len,
                features: hidden,
            }),
            (LayerSpec::Recurrent { .. }, Tokens { .. }) => {
                needs("a sequence of vectors (token ids need `one_hot` or `embedding` first)")
            }
            (LayerSpec::Recurrent { .. }, _) => needs("a sequence"),
        }
    }

    /// Sizes that must be positive, and the parameter tensors' element
    /// counts for an input of `input`, checked against
    /// [`MAX_TENSOR_ELEMENTS`].
    fn check_sizes(&self, input: FeatureShape) -> std::result::Result<(), String> {
        let positive = |what: &str, v: usize| {
            if v == 0 {
                Err(format!("{what} must be at least 1"))
            } else {
                Ok(())
            }
        };
        let tensor = |dims: &[usize]| {
            let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            match n {
                Some(n) if n <= MAX_TENSOR_ELEMENTS => Ok(()),
                _ => Err(format!(
                    "a weight tensor of {dims:?} is over the limit of {MAX_TENSOR_ELEMENTS} elements"
                )),
            }
        };
        let last = *input.dims().last().unwrap_or(&0);
        match *self {
            LayerSpec::Dense { units } => {
                positive("units", units)?;
                tensor(&[last, units])
            }
            LayerSpec::Conv2d {
                channels,
                kernel,
                stride,
                padding,
            } => {
                positive("channels", channels)?;
                positive("kernel", kernel)?;
                positive("stride", stride)?;
                // A window wholly in the padding sees nothing; wider
                // padding only grows the output with bias-only pixels.
                if padding >= kernel {
                    return Err(format!(
                        "padding {padding} must be below the kernel size {kernel}"
                    ));
                }
                let ci = input.dims()[0];
                tensor(&[channels, ci, kernel, kernel])
            }
            LayerSpec::MaxPool { size, stride } | LayerSpec::AvgPool { size, stride } => {
                positive("size", size)?;
                positive("stride", stride)
            }
            LayerSpec::OneHot { depth } => positive("depth", depth.unwrap_or(1)),
            LayerSpec::Embedding { dim, vocab } => {
                positive("dim", dim)?;
                positive("vocab", vocab.unwrap_or(1))?;
                tensor(&[vocab.unwrap_or(1), dim])
            }
            LayerSpec::Recurrent { cell, hidden } => {
                positive("hidden", hidden)?;
                tensor(&[last, cell.gates(), hidden])?;
                tensor(&[hidden, cell.gates(), hidden])
            }
            LayerSpec::Dropout { rate } => {
                if (0.0..1.0).contains(&rate) {
                    Ok(())
                } else {
                    Err(format!("rate {rate} is not in [0, 1)"))
                }
            }
            LayerSpec::Activation(_)
            | LayerSpec::Flatten
            | LayerSpec::Last
            | LayerSpec::BatchNorm
            | LayerSpec::LayerNorm
            | LayerSpec::GlobalAvgPool => Ok(()),
        }
    }

    /// Trainable numbers this layer has for an input of `input` (what its
    /// weight and bias tensors hold).
    pub fn param_count(&self, input: FeatureShape) -> usize {
        let last = *input.dims().last().unwrap_or(&0);
        match *self {
            LayerSpec::Dense { units } => last * units + units,
            LayerSpec::Conv2d {
                channels, kernel, ..
            } => channels * input.dims()[0] * kernel * kernel + channels,
            LayerSpec::Recurrent { cell, hidden } => {
                // W, U and b per gate block; the GRU's recurrent bias too.
                let biases = if cell == Cell::Gru { 2 } else { 1 };
                cell.gates() * (last * hidden + hidden * hidden + biases * hidden)
            }
            LayerSpec::Embedding { dim, vocab } => vocab.unwrap_or(0) * dim,
            LayerSpec::LayerNorm => 2 * last,
            // Scale and shift per channel.
            LayerSpec::BatchNorm => 2 * input.dims()[0],
            _ => 0,
        }
    }

    /// Numbers of saved but untrained state this layer has for an input of
    /// `input` (batch normalisation's running mean and variance).
    pub fn buffer_count(&self, input: FeatureShape) -> usize {
        match *self {
            LayerSpec::BatchNorm => 2 * input.dims()[0],
            _ => 0,
        }
    }

    /// Parses one layer of the grammar.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let mut parts = text.split(':');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let args: Vec<&str> = parts.map(str::trim).collect();
        let bad = |usage: &str| Err(Error::Config(format!("layer '{text}': expected {usage}")));
        if name == "dropout" {
            // The one layer whose number is a fraction.
            let rate = match &args[..] {
                [r] => r.parse::<f32>().ok().filter(|r| r.is_finite()),
                _ => None,
            };
            let Some(rate) = rate else {
                return bad("dropout:RATE with RATE a number in [0, 1)");
            };
            let spec = LayerSpec::Dropout { rate };
            spec.check_sizes(FeatureShape::Flat { features: 1 })
                .map_err(|m| Error::Config(format!("layer '{text}': {m}")))?;
            return Ok(spec);
        }
        let mut nums = Vec::with_capacity(args.len());
        for a in &args {
            match a.parse::<usize>() {
                Ok(v) => nums.push(v),
                Err(_) => {
                    return Err(Error::Config(format!(
                        "layer '{text}': '{a}' is not a whole number"
                    )))
                }
            }
        }
        let spec = match (name.as_str(), &nums[..]) {
            ("dense", &[units]) => LayerSpec::Dense { units },
            ("dense", _) => return bad("dense:UNITS"),
            ("conv2d", &[channels, kernel, ref rest @ ..]) if rest.len() <= 2 => {
                let stride = rest.first().copied().unwrap_or(1);
                let padding = match rest.get(1) {
                    Some(&p) => p,
                    None if kernel % 2 == 1 => kernel / 2,
                    None => 0,
                };
                LayerSpec::Conv2d {
                    channels,
                    kernel,
                    stride,
                    padding,
                }
            }
            ("conv2d", _) => return bad("conv2d:CHANNELS:KERNEL[:STRIDE[:PADDING]]"),
            ("maxpool", &[size]) => LayerSpec::MaxPool { size, stride: size },
            ("maxpool", &[size, stride]) => LayerSpec::MaxPool { size, stride },
            ("maxpool", _) => return bad("maxpool:SIZE[:STRIDE]"),
            ("avgpool", &[size]) => LayerSpec::AvgPool { size, stride: size },
            ("avgpool", &[size, stride]) => LayerSpec::AvgPool { size, stride },
            ("avgpool", _) => return bad("avgpool:SIZE[:STRIDE]"),
            ("flatten", &[]) => LayerSpec::Flatten,
            ("last", &[]) => LayerSpec::Last,
            ("layernorm", &[]) => LayerSpec::LayerNorm,
            ("batchnorm", &[]) => LayerSpec::BatchNorm,
            // The issue's spelling too, as an alias.
            ("global_avgpool" | "globalavgpool", &[]) => LayerSpec::GlobalAvgPool,
            (name, &[hidden]) if Cell::from_name(name).is_some() => LayerSpec::Recurrent {
                cell: Cell::from_name(name).expect("matched by the guard"),
                hidden,
            },
            (name, _) if Cell::from_name(name).is_some() => return bad(&format!("{name}:HIDDEN")),
            ("one_hot", &[]) => LayerSpec::OneHot { depth: None },
            ("one_hot", &[depth]) => LayerSpec::OneHot { depth: Some(depth) },
            ("one_hot", _) => return bad("one_hot[:DEPTH]"),
            ("embedding", &[dim]) => LayerSpec::Embedding { dim, vocab: None },
            ("embedding", &[dim, vocab]) => LayerSpec::Embedding {
                dim,
                vocab: Some(vocab),
            },
            ("embedding", _) => return bad("embedding:DIM[:VOCAB]"),
            (other, &[]) => match Activation::from_name(other) {
                Some(a) => LayerSpec::Activation(a),
                None if other.is_empty() => {
                    return Err(Error::Config(
                        "empty layer in the list (two commas in a row?)".into(),
                    ))
                }
                None => {
                    return Err(Error::Config(format!(
                        "unknown layer '{other}' (known: {KNOWN})"
                    )))
                }
            },
            (other, _)
                if [
                    "flatten",
                    "last",
                    "layernorm",
                    "batchnorm",
                    "global_avgpool",
                    "globalavgpool",
                ]
                .contains(&other)
                    || Activation::from_name(other).is_some() =>
            {
                return bad(&format!("`{other}` without numbers"))
            }
            (other, _) => {
                return Err(Error::Config(format!(
                    "unknown layer '{other}' (known: {KNOWN})"
                )))
            }
        };
        spec.check_sizes(FeatureShape::Flat { features: 1 })
            .map_err(|m| Error::Config(format!("layer '{text}': {m}")))?;
        Ok(spec)
    }
}

impl fmt::Display for LayerSpec {
    /// The canonical grammar form: every number written out, so the text
    /// reads back to the same layer whatever the defaults become.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LayerSpec::Dense { units } => write!(f, "dense:{units}"),
            LayerSpec::Conv2d {
                channels,
                kernel,
                stride,
                padding,
            } => write!(f, "conv2d:{channels}:{kernel}:{stride}:{padding}"),
            LayerSpec::MaxPool { size, stride } => write!(f, "maxpool:{size}:{stride}"),
            LayerSpec::AvgPool { size, stride } => write!(f, "avgpool:{size}:{stride}"),
            LayerSpec::Activation(a) => f.write_str(a.name()),
            LayerSpec::Flatten => f.write_str("flatten"),
            LayerSpec::Last => f.write_str("last"),
            LayerSpec::LayerNorm => f.write_str("layernorm"),
            LayerSpec::BatchNorm => f.write_str("batchnorm"),
            LayerSpec::GlobalAvgPool => f.write_str("global_avgpool"),
            LayerSpec::OneHot { depth: None } => f.write_str("one_hot"),
            LayerSpec::OneHot { depth: Some(d) } => write!(f, "one_hot:{d}"),
            LayerSpec::Recurrent { cell, hidden } => write!(f, "{}:{hidden}", cell.name()),
            LayerSpec::Dropout { rate } => write!(f, "dropout:{rate}"),
            LayerSpec::Embedding { dim, vocab: None } => write!(f, "embedding:{dim}"),
            LayerSpec::Embedding {
                dim,
                vocab: Some(v),
            } => write!(f, "embedding:{dim}:{v}"),
        }
    }
}

impl FromStr for LayerSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        LayerSpec::parse(s)
    }
}

impl Serialize for LayerSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LayerSpec {
    fn deserialize<De: Deserializer<'de>>(d: De) -> std::result::Result<Self, De::Error> {
        let text = String::deserialize(d)?;
        LayerSpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses a whole layer list (`conv2d:16:3,relu,maxpool:2,flatten`). An
/// empty or blank list is no hidden layers (a linear model).
///
/// ```
/// use wgtrain::models::{format_layers, parse_layers, LayerSpec};
///
/// let layers = parse_layers("conv2d:16:3,relu,maxpool:2,flatten,dense:64")?;
/// assert_eq!(layers[0], LayerSpec::Conv2d { channels: 16, kernel: 3, stride: 1, padding: 1 });
/// assert_eq!(format_layers(&layers), "conv2d:16:3:1:1,relu,maxpool:2:2,flatten,dense:64");
/// assert!(parse_layers("dense:64,swish").is_err());
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn parse_layers(text: &str) -> Result<Vec<LayerSpec>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .enumerate()
        .map(|(i, part)| {
            LayerSpec::parse(part).map_err(|e| Error::Config(format!("layer {i}: {e}")))
        })
        .collect()
}

/// A layer list in the grammar, as [`parse_layers`] reads it.
pub fn format_layers(layers: &[LayerSpec]) -> String {
    layers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Serde helper: a layer list as one grammar string (what config files
/// hold), or as a list of layer strings.
pub mod layer_list {
    use super::*;

    /// Writes the list as one string.
    pub fn serialize<S: Serializer>(
        layers: &[LayerSpec],
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&format_layers(layers))
    }

    /// Reads one string or a list of layer strings.
    pub fn deserialize<'de, De: Deserializer<'de>>(
        d: De,
    ) -> std::result::Result<Vec<LayerSpec>, De::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(String),
            Many(Vec<String>),
        }
        let list = match Form::deserialize(d)? {
            Form::One(s) => parse_layers(&s),
            Form::Many(v) => parse_layers(&v.join(",")),
        };
        list.map_err(serde::de::Error::custom)
    }
}

/// What the model's output layer predicts; fixes its width and its loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// `targets` real values per sample (mean squared error).
    Regression {
        /// Values per sample.
        targets: usize,
    },
    /// One of `classes` per sample: softmax cross-entropy, or one logit and
    /// binary cross-entropy for two classes.
    Classes {
        /// Number of classes.
        classes: usize,
    },
    /// The next token at every step of a sequence (softmax cross-entropy
    /// per step).
    NextToken {
        /// Vocabulary size.
        vocab: usize,
    },
}

impl Output {
    /// The loss this output trains with.
    pub fn loss(self) -> Loss {
        match self {
            Output::Regression { .. } => Loss::Mse,
            Output::Classes { classes: 2 } => Loss::BinaryCrossEntropy,
            Output::Classes { .. } | Output::NextToken { .. } => Loss::SoftmaxCrossEntropy,
        }
    }

    /// Logits per sample (per step for sequences).
    pub fn width(self) -> usize {
        match self {
            Output::Regression { targets } => targets,
            Output::Classes { classes: 2 } => 1,
            Output::Classes { classes } => classes,
            Output::NextToken { vocab } => vocab,
        }
    }

    /// Classes, target values or vocabulary size.
    pub fn size(self) -> usize {
        match self {
            Output::Regression { targets } => targets,
            Output::Classes { classes } => classes,
            Output::NextToken { vocab } => vocab,
        }
    }

    fn check(self) -> Result<()> {
        let ok = match self {
            Output::Regression { targets } => targets >= 1,
            Output::Classes { classes } => classes >= 2,
            Output::NextToken { vocab } => vocab >= 1,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "the data gives an output of {self:?}: classification needs at least 2 classes, regression and text at least 1 output"
            )))
        }
    }
}

/// A complete, checked architecture: the input it takes, every layer
/// (output layer included) and what it predicts. Saved in checkpoint
/// metadata; [`crate::models::Model::new`] builds it on a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// One sample's shape.
    pub input: FeatureShape,
    /// Every layer, the output layer last.
    #[serde(with = "layer_list")]
    pub layers: Vec<LayerSpec>,
    /// What the model predicts.
    pub output: Output,
}

impl ModelSpec {
    /// Completes `hidden` (the layers a user writes) for data with samples
    /// of shape `input` and targets `output`: `one_hot` goes first for token
    /// input unless the list starts with it, a one-hot depth defaults to the
    /// vocabulary, and the output layer is appended. Then checks every
    /// shape.
    ///
    /// ```
    /// use wgtrain::models::{parse_layers, FeatureShape, ModelSpec, Output};
    ///
    /// let image = FeatureShape::Image { channels: 1, height: 28, width: 28 };
    /// let layers = parse_layers("conv2d:8:3,relu,maxpool:2,flatten")?;
    /// let spec = ModelSpec::new(&layers, image, Output::Classes { classes: 10 })?;
    /// assert_eq!(spec.shapes()?.last(), Some(&FeatureShape::Flat { features: 10 }));
    ///
    /// // A dense layer cannot take an image: the error names layer and shapes.
    /// let err = ModelSpec::new(&parse_layers("dense:8")?, image, Output::Classes { classes: 10 });
    /// assert!(err.unwrap_err().to_string().contains("layer 0 (dense:8)"));
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn new(hidden: &[LayerSpec], input: FeatureShape, output: Output) -> Result<Self> {
        let mut layers = Vec::with_capacity(hidden.len() + 2);
        let tokens = matches!(input, FeatureShape::Tokens { .. });
        let encodes_tokens = matches!(
            hidden.first(),
            Some(LayerSpec::OneHot { .. } | LayerSpec::Embedding { .. })
        );
        if tokens && !encodes_tokens {
            layers.push(LayerSpec::OneHot { depth: None });
        }
        layers.extend_from_slice(hidden);
        // Many-to-one: a sequence model with one target per sample reads
        // its last step.
        let mut shape = Ok(input);
        for l in &layers {
            shape = shape.and_then(|s| l.check_sizes(s).and_then(|()| l.output_shape(s)));
        }
        if matches!(shape, Ok(FeatureShape::Sequence { .. }))
            && !matches!(output, Output::NextToken { .. })
        {
            layers.push(LayerSpec::Last);
        }
        for l in &mut layers {
            match (&mut *l, output) {
                (LayerSpec::OneHot { depth: d @ None }, Output::NextToken { vocab })
                | (
                    LayerSpec::Embedding {
                        vocab: d @ None, ..
                    },
                    Output::NextToken { vocab },
                ) => *d = Some(vocab),
                _ => {}
            }
        }
        layers.push(LayerSpec::Dense {
            units: output.width(),
        });
        let spec = ModelSpec {
            input,
            layers,
            output,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The shape after each layer. Fails on the first layer that cannot
    /// take its input, naming the layer's index, kind and both shapes.
    pub fn shapes(&self) -> Result<Vec<FeatureShape>> {
        let mut shape = self.input;
        let mut out = Vec::with_capacity(self.layers.len());
        let last = self.layers.len().saturating_sub(1);
        for (i, l) in self.layers.iter().enumerate() {
            let role = if i == last { "output layer " } else { "" };
            let fail = |m: String| Error::Config(format!("layer {i} ({role}{l}) {m}"));
            l.check_sizes(shape)
                .map_err(|m| fail(format!("is invalid: {m}")))?;
            shape = l.output_shape(shape).map_err(fail)?;
            // Activations are allocated per sample from these shapes.
            if shape.numel() > MAX_TENSOR_ELEMENTS {
                return Err(fail(format!(
                    "outputs {shape} per sample, over the limit of {MAX_TENSOR_ELEMENTS} elements"
                )));
            }
            out.push(shape);
        }
        Ok(out)
    }

    /// Checks the whole architecture: every shape, and that the last layer
    /// produces what the output needs. Run on every spec read from a file
    /// before anything is built.
    pub fn validate(&self) -> Result<()> {
        self.output.check()?;
        if self.input.numel() == 0 {
            return Err(Error::Config(format!("the input {} is empty", self.input)));
        }
        if self.input.numel() > MAX_TENSOR_ELEMENTS {
            return Err(Error::Config(format!(
                "the input {} is over the limit of {MAX_TENSOR_ELEMENTS} elements per sample",
                self.input
            )));
        }
        if self.layers.len() > MAX_LAYERS {
            return Err(Error::Config(format!(
                "{} layers are over the limit of {MAX_LAYERS}",
                self.layers.len()
            )));
        }
        // Token ids index the one-hot depth or the embedding table: one
        // smaller than the vocabulary would be indexed out of range.
        if let Output::NextToken { vocab } = self.output {
            for (i, l) in self.layers.iter().enumerate() {
                let rows = match *l {
                    LayerSpec::OneHot { depth } => depth,
                    LayerSpec::Embedding { vocab, .. } => vocab,
                    _ => None,
                };
                if let Some(rows) = rows.filter(|&r| r < vocab) {
                    return Err(Error::Config(format!(
                        "layer {i} ({l}) has room for {rows} token ids, but the vocabulary has {vocab}"
                    )));
                }
            }
        }
        let shapes = self.shapes()?;
        let params = self.param_count()?;
        if params > MAX_MODEL_PARAMS {
            return Err(Error::Config(format!(
                "the model would have {params} parameters, over the limit of {MAX_MODEL_PARAMS}"
            )));
        }
        let last = shapes.last().copied().unwrap_or(self.input);
        let width = self.output.width();
        let ok = match (self.output, last) {
            (Output::NextToken { .. }, FeatureShape::Sequence { features, .. }) => {
                features == width
            }
            (Output::NextToken { .. }, _) => false,
            (_, FeatureShape::Flat { features }) => features == width,
            _ => false,
        };
        if !ok {
            let wanted = match self.output {
                Output::NextToken { .. } => format!("a sequence of {width} logits per step"),
                _ => format!("[{width}] logits per sample"),
            };
            let hint = match (self.output, last) {
                (Output::NextToken { .. }, _) => String::new(),
                (_, FeatureShape::Sequence { .. }) => {
                    " (a sequence output needs text data: next-token prediction)".into()
                }
                _ => String::new(),
            };
            return Err(Error::Config(format!(
                "the model ends in {last}, but the data needs {wanted}{hint}"
            )));
        }
        Ok(())
    }

    /// Trainable numbers of the whole model, computed from the spec alone
    /// (with the buffers, [`ModelSpec::state_count`], what a checkpoint's
    /// tensors must hold exactly before a model is built from it).
    pub fn param_count(&self) -> Result<usize> {
        let shapes = self.shapes()?;
        Ok(self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| l.param_count(if i == 0 { self.input } else { shapes[i - 1] }))
            .fold(0usize, usize::saturating_add))
    }

    /// Every number a checkpoint of this model holds: the parameters and
    /// the buffers ([`LayerSpec::buffer_count`]).
    pub fn state_count(&self) -> Result<usize> {
        let shapes = self.shapes()?;
        let buffers = (self.layers.iter().enumerate())
            .map(|(i, l)| l.buffer_count(if i == 0 { self.input } else { shapes[i - 1] }))
            .fold(0usize, usize::saturating_add);
        Ok(self.param_count()?.saturating_add(buffers))
    }

    /// Whether the model predicts every step (next-token models) rather
    /// than one output per sample.
    pub fn predicts_every_step(&self) -> bool {
        matches!(self.output, Output::NextToken { .. })
    }

    /// The loss this model trains with.
    pub fn loss(&self) -> Loss {
        self.output.loss()
    }

    /// One line per layer: index, layer and output shape.
    pub fn summary(&self) -> Result<String> {
        let mut s = format!("input {}\n", self.input);
        for (i, (l, shape)) in self.layers.iter().zip(self.shapes()?).enumerate() {
            s += &format!("  {i:>2} {:<22} -> {shape}\n", l.to_string());
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_round_trips_in_canonical_form() {
        let l = parse_layers("conv2d:16:3, relu,maxpool:2,conv2d:8:4:2,flatten,dense:10,one_hot")
            .unwrap();
        assert_eq!(
            format_layers(&l),
            "conv2d:16:3:1:1,relu,maxpool:2:2,conv2d:8:4:2:0,flatten,dense:10,one_hot"
        );
        assert_eq!(parse_layers(&format_layers(&l)).unwrap(), l);
        assert_eq!(parse_layers(" ").unwrap(), vec![]);
        // Overlapping pools keep their stride; `globalavgpool` is an alias.
        let l = parse_layers("maxpool:3:2,avgpool:2:1,globalavgpool").unwrap();
        assert_eq!(format_layers(&l), "maxpool:3:2,avgpool:2:1,global_avgpool");
    }

    #[test]
    fn bad_layers_name_what_is_wrong() {
        for (text, says) in [
            ("dense", "dense:UNITS"),
            ("dense:0", "units must be at least 1"),
            ("dense:x", "not a whole number"),
            ("conv:3", "unknown layer 'conv'"),
            ("relu:2", "without numbers"),
            ("dense:4,,relu", "layer 1"),
            ("dense:99999999999", "over the limit"),
        ] {
            let e = parse_layers(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn token_tables_must_hold_the_vocabulary() {
        let tokens = FeatureShape::Tokens { len: 4 };
        let out = Output::NextToken { vocab: 58 };
        for list in ["embedding:8:10,rnn:4", "one_hot:10,rnn:4"] {
            let e = ModelSpec::new(&parse_layers(list).unwrap(), tokens, out)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("room for 10 token ids") && e.contains("58"),
                "{e}"
            );
        }
        // Larger is fine (unused rows), and the default is the vocabulary.
        ModelSpec::new(&parse_layers("embedding:8:60,rnn:4").unwrap(), tokens, out).unwrap();
        let spec =
            ModelSpec::new(&parse_layers("embedding:8,rnn:4").unwrap(), tokens, out).unwrap();
        assert_eq!(
            spec.layers[0],
            LayerSpec::Embedding {
                dim: 8,
                vocab: Some(58)
            }
        );
    }

    #[test]
    fn shape_inference_names_layer_and_shapes() {
        let image = FeatureShape::Image {
            channels: 1,
            height: 28,
            width: 28,
        };
        let classes = Output::Classes { classes: 10 };
        let ok = parse_layers(
            "conv2d:16:3,relu,maxpool:2,conv2d:32:3,relu,maxpool:2,flatten,dense:128,relu",
        )
        .unwrap();
        let spec = ModelSpec::new(&ok, image, classes).unwrap();
        assert_eq!(
            spec.shapes().unwrap()[6],
            FeatureShape::Flat {
                features: 32 * 7 * 7
            }
        );
        let e = ModelSpec::new(&parse_layers("conv2d:4:3,dense:8").unwrap(), image, classes)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("layer 1 (dense:8)") && e.contains("[4, 28, 28]"),
            "{e}"
        );
        let flat = FeatureShape::Flat { features: 64 };
        let e = ModelSpec::new(&parse_layers("conv2d:4:3").unwrap(), flat, classes)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("layer 0 (conv2d:4:3:1:1)") && e.contains("[64]"),
            "{e}"
        );
        let e = ModelSpec::new(&parse_layers("maxpool:2").unwrap(), image, classes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("output layer") && e.contains("flatten"), "{e}");
    }

    #[test]
    fn whole_models_are_capped_too() {
        let flat = FeatureShape::Flat { features: 16_000 };
        let out = Output::Classes { classes: 3 };
        // Each 16,000×16,000 weight is under the per-tensor cap; five are not.
        let wide = parse_layers(&["dense:16000"; 5].join(",")).unwrap();
        let e = ModelSpec::new(&wide, flat, out).unwrap_err().to_string();
        assert!(e.contains("over the limit of 1073741824"), "{e}");
        let deep = parse_layers(&vec!["relu"; 2000].join(",")).unwrap();
        let e = ModelSpec::new(&deep, flat, out).unwrap_err().to_string();
        assert!(e.contains("2001 layers are over the limit"), "{e}");
    }

    #[test]
    fn sizes_that_would_wrap_or_divide_by_zero_are_errors() {
        let image = FeatureShape::Image {
            channels: 1,
            height: 8,
            width: 8,
        };
        let out = Output::Classes { classes: 3 };
        let build =
            |layers: &[LayerSpec]| ModelSpec::new(layers, image, out).unwrap_err().to_string();
        // Padding that would wrap the output size, or only grow it.
        let says = "padding 9223372036854775807 must be below the kernel size 3";
        let e = parse_layers("conv2d:4:3:1:9223372036854775807").unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
        let huge = LayerSpec::Conv2d {
            channels: 4,
            kernel: 3,
            stride: 1,
            padding: 1 << 63,
        };
        assert!(build(&[huge, LayerSpec::Flatten]).contains("must be below the kernel size 3"));
        // A stride of 0, built by hand past the grammar.
        for l in [
            LayerSpec::MaxPool { size: 2, stride: 0 },
            LayerSpec::Conv2d {
                channels: 2,
                kernel: 3,
                stride: 0,
                padding: 1,
            },
        ] {
            let e = build(&[l]);
            assert!(e.contains("stride must be at least 1"), "{e}");
            assert!(l.output_shape(image).unwrap_err().contains("stride 0"));
        }
        // Activations of more elements per sample than a tensor may hold,
        // from a layer with a small weight.
        let e = ModelSpec::new(
            &parse_layers("one_hot:268435456,dense:1").unwrap(),
            FeatureShape::Tokens { len: 32 },
            Output::NextToken { vocab: 268435456 },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("per sample, over the limit"), "{e}");
        let wrapped = FeatureShape::Image {
            channels: 1,
            height: (1 << 62) + 1,
            width: 4,
        };
        assert_eq!(wrapped.numel(), usize::MAX);
    }

    #[test]
    fn text_models_get_one_hot_and_a_per_step_head() {
        let spec = ModelSpec::new(
            &parse_layers("rnn:8").unwrap(),
            FeatureShape::Tokens { len: 5 },
            Output::NextToken { vocab: 7 },
        )
        .unwrap();
        assert_eq!(format_layers(&spec.layers), "one_hot:7,rnn:8,dense:7");
        let e = ModelSpec::new(
            &parse_layers("rnn:8").unwrap(),
            FeatureShape::Flat { features: 4 },
            Output::Classes { classes: 3 },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("layer 0 (rnn:8)"), "{e}");
    }
}
