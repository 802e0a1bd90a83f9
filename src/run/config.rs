//! Everything that defines a run, as one serialisable [`ExperimentConfig`]:
//! written to every run directory as `config.toml`, read back by
//! `--config`, stored in checkpoints.
//!
//! Precedence: a preset's defaults, then the config file, then flags.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::data::{DataSource, Layout, Missing, Prepared, SeriesOptions, Task};
use crate::device::Precision;
use crate::error::{Error, Result};
use crate::models::spec::layer_list;
use crate::models::{FeatureShape, LayerSpec, ModelSpec, Output, Preset};
use crate::optim::{OptimConfig, OptimizerKind, Schedule};

use super::fit::TrainConfig;

/// Early stopping's default patience: epochs in which neither the
/// validation metric nor the validation loss improved before a run stops
/// (the best epoch is the one kept). Ten, as small validation splits are
/// noisy.
pub const DEFAULT_PATIENCE: usize = 10;

/// Fewest epochs an `auto` epoch count gives (unless the reference count
/// itself is smaller).
pub const MIN_AUTO_EPOCHS: usize = 5;

/// Everything that defines a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// The preset the run started from, if any (it names the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// The layers before the output layer, in the grammar of
    /// [`crate::models::spec`]; the output layer comes from the data.
    #[serde(with = "layer_list")]
    pub layers: Vec<LayerSpec>,
    /// A `--data` spec (see [`DataSource::parse`]).
    pub data: String,
    /// What the targets are; `None`: what the data implies
    /// ([`DataSource::default_task`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    /// CSV target column (default: the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Text: characters per training sequence.
    pub seq_len: usize,
    /// A CSV time series: each sample is this many consecutive rows, its
    /// target the target column in the next row; split in time order
    /// ([`crate::data::series`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// A CSV whose feature columns, in order, are one sequence per row.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sequence: bool,
    /// Time series: the columns read at each step (default: the target
    /// column alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// Time series: what to do with empty cells.
    #[serde(default, skip_serializing_if = "Missing::is_default")]
    pub missing: Missing,
    /// Time series: forecast the change from each window's last value
    /// ([`SeriesOptions::relative`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relative: bool,
    /// Fraction held out for validation (model selection, early stopping).
    pub val_fraction: f64,
    /// Fraction held out for the final test (unless the data has its own).
    pub test_fraction: f64,
    /// Train on at most this many samples of the training split (quick runs,
    /// tests on slow adapters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_train_samples: Option<usize>,
    /// Keep every split on the host and stream it to the device in chunks,
    /// even where it would fit ([`crate::data::Residency`]); a split too
    /// large for one device buffer streams regardless. Results are the
    /// same, bit for bit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// What matrix-product operands are rounded to
    /// ([`crate::device::Precision`]); the device must be opened at it.
    #[serde(default, skip_serializing_if = "is_f32")]
    pub precision: Precision,
    /// Passes over the training split; `None` (`"auto"` in files) scales
    /// the defaults' count to the data ([`ExperimentConfig::epochs_for`]).
    /// A run resolves it, so its `config.toml` holds the number it used.
    #[serde(with = "epochs")]
    pub epochs: Option<usize>,
    /// Samples per step; `None` (`"full"` in files) is the whole training
    /// split (full-batch gradient descent).
    #[serde(with = "batch_size")]
    pub batch_size: Option<usize>,
    /// Stop after this many epochs in which neither the validation metric
    /// nor the validation loss improved;
    /// `None` (`"off"` in files) trains every epoch. On by default
    /// ([`DEFAULT_PATIENCE`]); without a validation split it has nothing to
    /// watch and does nothing.
    /// A checkpoint's metadata from before early stopping was on by default
    /// has no key here, and meant off.
    #[serde(default, with = "patience")]
    pub patience: Option<usize>,
    /// Seeds the weights, the splits and the shuffles.
    pub seed: u64,
    /// Read the loss back from the device every this many steps.
    pub log_every: usize,
    /// The learning rate over the run.
    pub schedule: Schedule,
    /// The optimizer and its settings (`[optimizer]` in files).
    #[serde(rename = "optimizer")]
    pub optim: OptimConfig,
}

/// serde: `precision` is written only where it is not the default.
fn is_f32(p: &Precision) -> bool {
    *p == Precision::F32
}

impl ExperimentConfig {
    /// A custom architecture's defaults: Adam at 1e-3, batches of 32, 20
    /// epochs for 10,000 training samples (scaled to the data, see
    /// [`ExperimentConfig::epochs_for`]) with a cosine schedule, early
    /// stopping after [`DEFAULT_PATIENCE`] epochs, 10 % validation and 20 %
    /// test.
    pub fn custom(layers: Vec<LayerSpec>, data: &str) -> Self {
        ExperimentConfig {
            preset: None,
            layers,
            data: data.into(),
            task: None,
            target: None,
            seq_len: 32,
            window: None,
            sequence: false,
            features: None,
            missing: Missing::Error,
            relative: false,
            val_fraction: 0.1,
            test_fraction: 0.2,
            max_train_samples: None,
            stream: false,
            precision: Precision::F32,
            epochs: None,
            batch_size: Some(32),
            patience: Some(DEFAULT_PATIENCE),
            seed: 42,
            log_every: 50,
            schedule: Schedule::Cosine,
            optim: OptimConfig::new(OptimizerKind::Adam, 1e-3),
        }
    }

    /// A preset with the defaults that reach the targets in README.md on its
    /// built-in dataset.
    pub fn preset(preset: Preset) -> Self {
        let layers = preset
            .layers(None, None)
            .expect("a preset's default sizes fit it");
        let (data, task, batch, lr) = match preset {
            // Full-batch descent: least squares is ill-conditioned on
            // correlated features (diabetes' serum measurements), and only
            // noise-free steps converge to the exact optimum.
            Preset::Linear => ("diabetes", Task::Regression, None, 0.3),
            Preset::Logistic => ("breast-cancer", Task::Classification, Some(32), 0.05),
            Preset::Mlp => ("digits", Task::Classification, Some(32), 2e-3),
            Preset::Cnn => ("digits", Task::Classification, Some(32), 3e-3),
            Preset::Rnn => ("austen", Task::Text, Some(64), 3e-3),
            Preset::Lstm | Preset::Gru => ("austen", Task::Text, Some(32), 3e-3),
        };
        let mut c = ExperimentConfig::custom(layers, data);
        c.preset = Some(preset);
        c.task = Some(task);
        c.batch_size = batch;
        c.optim.lr = lr;
        if preset == Preset::Linear {
            c.optim.kind = OptimizerKind::Momentum;
            // Least squares is convex and noise-free here: nothing to stop
            // early, so no validation split is held back.
            c.val_fraction = 0.0;
            c.patience = None;
        }
        if preset.cell().is_some() {
            // Recurrent gradients occasionally spike; clipping keeps one bad
            // batch from undoing an epoch.
            c.optim.clip_norm = Some(5.0);
            // Chronological parts: the first 80 % trains, the next 10 %
            // selects the epoch, the last 10 % is the test reported.
            c.test_fraction = 0.1;
        }
        if matches!(preset, Preset::Lstm | Preset::Gru) {
            // The gated cells use a longer context well: windows of 64
            // (scored from a zero state, so longer windows also lose less
            // to their first characters), in batches of 32 for twice the
            // updates per epoch.
            c.seq_len = 64;
        }
        c
    }

    /// The epochs the defaults were chosen for, and the training-split
    /// size they were chosen at: a preset's on its built-in data (where its
    /// README target is met), a custom model's for 10,000 samples.
    pub fn epoch_reference(&self) -> (usize, usize) {
        match self.preset {
            Some(Preset::Linear) => (2000, 354),
            Some(Preset::Logistic) => (200, 399),
            Some(Preset::Mlp) | Some(Preset::Cnn) => (40, 1259),
            Some(Preset::Rnn) => (20, 17_119),
            Some(Preset::Lstm | Preset::Gru) => (20, 8_559),
            None => (20, 10_000),
        }
    }

    /// The epochs a run over `train_len` training samples makes: as set,
    /// or, when `auto`, the reference count ([`Self::epoch_reference`])
    /// scaled by √(reference size / `train_len`), between 5 (or the
    /// reference count, if smaller) and 4× the reference count. Data 40×
    /// larger than the reference gets about ⅙ of the epochs, so each run sees
    /// about 6× more samples in all: more data needs fewer passes, but not
    /// proportionally fewer steps. Early stopping ends a run sooner when the
    /// validation metric stops improving.
    pub fn epochs_for(&self, train_len: usize) -> usize {
        if let Some(e) = self.epochs {
            return e;
        }
        let (base, reference) = self.epoch_reference();
        let scaled = base as f64 * (reference as f64 / train_len.max(1) as f64).sqrt();
        (scaled.round() as usize).clamp(base.min(MIN_AUTO_EPOCHS), base * 4)
    }

    /// The run's name: its preset, or `custom`.
    pub fn name(&self) -> &'static str {
        self.preset.map_or("custom", Preset::name)
    }

    /// Reads a config file's text (TOML). `preset` (a command-line preset)
    /// wins over the file's own `preset` key; that preset's defaults fill
    /// every key the file leaves out. Unknown keys are errors.
    ///
    /// ```
    /// use wgtrain::run::ExperimentConfig;
    ///
    /// let c = ExperimentConfig::from_toml("layers = \"dense:32,relu\"\ndata = \"iris\"\nepochs = 5", None)?;
    /// assert_eq!((c.epochs, c.batch_size), (Some(5), Some(32)));
    /// assert_eq!(ExperimentConfig::from_toml(&c.to_toml()?, None)?, c);
    /// assert!(ExperimentConfig::from_toml("data = \"iris\"\nepoch = 5", None).is_err());
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn from_toml(text: &str, preset: Option<Preset>) -> Result<Self> {
        // One line: toml's messages quote the source over several.
        let bad = |e: &dyn std::fmt::Display| {
            let words: Vec<String> = e.to_string().split_whitespace().map(String::from).collect();
            Error::Config(format!("config: {}", words.join(" ")))
        };
        let file: toml::Table = toml::from_str(text).map_err(|e| match e.span() {
            Some(s) => {
                let before = text.get(..s.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                bad(&format!("line {line}: {}", e.message()))
            }
            None => bad(&e.message()),
        })?;
        let preset = match (preset, file.get("preset")) {
            (Some(p), _) => Some(p),
            (None, Some(v)) => Some(
                v.as_str()
                    .ok_or_else(|| bad(&"preset must be a string"))?
                    .parse()?,
            ),
            (None, None) => None,
        };
        let base = match preset {
            Some(p) => ExperimentConfig::preset(p),
            None => ExperimentConfig::custom(Vec::new(), ""),
        };
        let mut merged = toml::Table::try_from(&base).map_err(|e| bad(&e))?;
        // A preset's layer list stays unless the file replaces it.
        merge(&mut merged, file);
        if let Some(p) = preset {
            merged.insert("preset".into(), toml::Value::String(p.name().into()));
        }
        let c: ExperimentConfig = merged.try_into().map_err(|e| bad(&e))?;
        if c.data.is_empty() {
            return Err(bad(&"no data: set `data` (or give --data)"));
        }
        Ok(c)
    }

    /// The config as a TOML file that [`ExperimentConfig::from_toml`] reads
    /// back to exactly this config.
    pub fn to_toml(&self) -> Result<String> {
        let body =
            toml::to_string(self).map_err(|e| Error::Config(format!("writing the config: {e}")))?;
        Ok(format!(
            "# wgtrain run configuration: `wgtrain train --config FILE` repeats the run.\n\
             # layers: before the output layer, which the data adds (see `wgtrain train --help`).\n{body}"
        ))
    }

    /// The task: as set, or as the data implies (a time series forecasts
    /// values: regression).
    pub fn resolved_task(&self) -> Result<Task> {
        match self.task {
            Some(t) => Ok(t),
            None if self.window.is_some() => Ok(Task::Regression),
            None => Ok(DataSource::parse(&self.data)?.default_task()),
        }
    }

    /// How the data's rows become samples: `window`, `sequence`,
    /// `features` and `missing` checked together.
    pub fn series_options(&self) -> Result<SeriesOptions> {
        let layout = match (self.window, self.sequence) {
            (Some(_), true) => {
                return Err(Error::Config(
                    "--window and --sequence are two ways to read a CSV file: choose one".into(),
                ))
            }
            (Some(w), false) => Layout::Window(w),
            (None, true) => Layout::Sequence,
            (None, false) => Layout::Rows,
        };
        if !matches!(layout, Layout::Window(_))
            && (self.features.is_some() || self.missing != Missing::Error || self.relative)
        {
            return Err(Error::Config(
                "--features, --missing and --relative apply to a time series (--window)".into(),
            ));
        }
        Ok(SeriesOptions {
            layout,
            features: self.features.clone(),
            missing: self.missing,
            relative: self.relative,
        })
    }

    /// The loop's settings for a training split of `train_len` samples.
    pub fn train_config(&self, train_len: usize) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs_for(train_len),
            batch_size: self.batch_size.unwrap_or(train_len),
            patience: self.patience,
            seed: self.seed,
            log_every: self.log_every,
            schedule: self.schedule,
            stop_at_epoch: None,
        }
    }

    /// The complete, checked architecture for prepared data.
    pub fn model_spec(&self, prepared: &Prepared) -> Result<ModelSpec> {
        let train = &prepared.train;
        let input = FeatureShape::from_sample(&train.sample_shape, train.task == Task::Text)?;
        ModelSpec::new(&self.layers, input, output_for(train.task, train.outputs()))
    }
}

/// The output a model needs for `outputs` classes, targets or tokens.
pub fn output_for(task: Task, outputs: usize) -> Output {
    match task {
        Task::Regression => Output::Regression { targets: outputs },
        Task::Classification => Output::Classes { classes: outputs },
        Task::Text => Output::NextToken { vocab: outputs },
    }
}

/// Puts `over`'s keys into `base`, merging tables key by key.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Serde for an optional count written as a number, or as `word` for
/// `None` (`batch_size = "full"`, `epochs = "auto"`, `patience = "off"`).
macro_rules! number_or_word {
    ($module:ident, $word:literal, $min:literal) => {
        mod $module {
            use super::*;

            pub fn serialize<S: Serializer>(
                v: &Option<usize>,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                match v {
                    Some(n) => s.serialize_u64(*n as u64),
                    None => s.serialize_str($word),
                }
            }

            pub fn deserialize<'de, De: Deserializer<'de>>(
                d: De,
            ) -> std::result::Result<Option<usize>, De::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Form {
                    Number(u64),
                    // What a user may write instead, for a clear message.
                    Negative(i64),
                    Fraction(f64),
                    Word(String),
                }
                let name = stringify!($module);
                match Form::deserialize(d)? {
                    Form::Number(n) if n < $min => Err(serde::de::Error::custom(format!(
                        "{name} must be at least {}",
                        $min
                    ))),
                    Form::Negative(n) => Err(serde::de::Error::custom(format!(
                        "{name} must be at least {}, got {n}",
                        $min
                    ))),
                    Form::Fraction(f) => Err(serde::de::Error::custom(format!(
                        "{name} must be an integer (no decimal point), got {f:?}"
                    ))),
                    Form::Number(n) => usize::try_from(n)
                        .map(Some)
                        .map_err(|_| serde::de::Error::custom(format!("{name} is too large"))),
                    Form::Word(w) if w == $word => Ok(None),
                    Form::Word(w) => Err(serde::de::Error::custom(format!(
                        "{name} must be a number or \"{}\", got \"{w}\"",
                        $word
                    ))),
                }
            }
        }
    };
}

number_or_word!(batch_size, "full", 1);
number_or_word!(epochs, "auto", 1);
number_or_word!(patience, "off", 1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trips_every_preset() {
        for p in Preset::ALL {
            let mut c = ExperimentConfig::preset(p);
            c.patience = Some(3);
            let text = c.to_toml().unwrap();
            assert_eq!(
                ExperimentConfig::from_toml(&text, None).unwrap(),
                c,
                "{text}"
            );
        }
    }

    #[test]
    fn a_file_turns_off_a_presets_clipping_and_says_so_when_saved() {
        let rnn = ExperimentConfig::preset(Preset::Rnn);
        assert_eq!(rnn.optim.clip_norm, Some(5.0));
        let off = ExperimentConfig::from_toml(
            "preset = \"rnn\"\n[optimizer]\nclip_norm = \"off\"\n",
            None,
        )
        .unwrap();
        assert_eq!(off.optim.clip_norm, None);
        let text = off.to_toml().unwrap();
        assert!(text.contains("clip_norm = \"off\""), "{text}");
        assert_eq!(ExperimentConfig::from_toml(&text, None).unwrap(), off);
        // A file without the key keeps the preset's.
        let kept = ExperimentConfig::from_toml("preset = \"rnn\"\n", None).unwrap();
        assert_eq!(kept.optim.clip_norm, Some(5.0));
    }

    #[test]
    fn file_overrides_preset_and_rejects_unknown_keys() {
        let c = ExperimentConfig::from_toml(
            "preset = \"mlp\"\nepochs = 3\nbatch_size = \"full\"\n[optimizer]\nlr = 0.5\n",
            None,
        )
        .unwrap();
        assert_eq!((c.epochs, c.batch_size, c.optim.lr), (Some(3), None, 0.5));
        assert_eq!(
            c.optim.kind,
            OptimizerKind::Adam,
            "the preset's optimizer stays"
        );
        assert_eq!(c.layers, Preset::Mlp.layers(None, None).unwrap());
        for (text, says) in [
            ("epochz = 3\ndata = \"iris\"", "epochz"),
            ("data = \"iris\"\n[optimizer]\nlr2 = 1", "lr2"),
            ("layers = \"dense:4,bogus\"\ndata = \"iris\"", "bogus"),
            ("layers = \"dense:4\"", "no data"),
            ("data = \"iris\"\nbatch_size = 0", "at least 1"),
            (
                "data = \"iris\"\n[optimizer]\nclip_norm = \"of\"",
                "clip_norm",
            ),
        ] {
            let e = ExperimentConfig::from_toml(text, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
