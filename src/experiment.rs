//! One training run from a configuration: data prepared and uploaded, model
//! built, trained with early stopping, best parameters restored, evaluated.
//! The command-line program and the learning tests both go through here.

use serde::{Deserialize, Serialize};

use crate::data::{prepare, DeviceData, PrepareOptions, Prepared};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::metrics::{evaluate, identity_order, Evaluation};
use crate::models::{Model, ModelConfig, ModelKind, Task};
use crate::optim::{OptimConfig, Optimizer, OptimizerKind};
use crate::train::{
    fit, restore, snapshot, EpochStats, Hooks, HostTensor, Schedule, TrainConfig, TrainData,
    TrainState,
};

/// Everything that defines a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentConfig {
    pub model: ModelKind,
    /// A `--data` spec (see `data::DataSource::parse`).
    pub data: String,
    pub task: Task,
    pub target: Option<String>,
    pub hidden: Vec<usize>,
    pub channels: Vec<usize>,
    pub seq_len: usize,
    pub val_fraction: f64,
    pub test_fraction: f64,
    /// Train on at most this many samples of the training split (quick runs,
    /// tests on slow adapters).
    pub max_train_samples: Option<usize>,
    pub epochs: usize,
    /// Samples per step; `None` is the whole training split (full-batch
    /// gradient descent).
    pub batch_size: Option<usize>,
    pub patience: Option<usize>,
    pub seed: u64,
    pub log_every: usize,
    pub schedule: Schedule,
    pub optim: OptimConfig,
}

impl ExperimentConfig {
    /// Defaults that reach the targets in README.md on each model's
    /// built-in dataset.
    pub fn defaults(model: ModelKind) -> Self {
        let mut optim = OptimConfig::new(OptimizerKind::Adam, 1e-3);
        let (data, task, epochs, batch, lr) = match model {
            // Full-batch descent: least squares is ill-conditioned on
            // correlated features (diabetes' serum measurements), and only
            // noise-free steps converge to the exact optimum.
            ModelKind::Linear => ("diabetes", Task::Regression, 2000, None, 0.3),
            ModelKind::Logistic => ("breast-cancer", Task::Classification, 200, Some(32), 0.05),
            ModelKind::Mlp => ("digits", Task::Classification, 40, Some(32), 2e-3),
            ModelKind::Cnn => ("digits", Task::Classification, 40, Some(32), 3e-3),
            ModelKind::Rnn => ("austen", Task::Text, 20, Some(64), 3e-3),
        };
        optim.lr = lr;
        if model == ModelKind::Linear {
            optim.kind = OptimizerKind::Momentum;
        }
        if model == ModelKind::Rnn {
            // Recurrent gradients occasionally spike; clipping keeps one bad
            // batch from undoing an epoch.
            optim.clip_norm = Some(5.0);
        }
        ExperimentConfig {
            model,
            data: data.into(),
            task,
            target: None,
            hidden: match model {
                ModelKind::Mlp => vec![256, 128],
                ModelKind::Rnn => vec![128],
                _ => vec![],
            },
            channels: if model == ModelKind::Cnn {
                vec![8, 16]
            } else {
                vec![]
            },
            seq_len: 32,
            // Least squares is convex and noise-free here: nothing to stop
            // early, so no validation split is held back.
            val_fraction: if model == ModelKind::Linear { 0.0 } else { 0.1 },
            test_fraction: if model == ModelKind::Rnn { 0.0 } else { 0.2 },
            max_train_samples: None,
            epochs,
            batch_size: batch,
            patience: None,
            seed: 42,
            log_every: 50,
            schedule: Schedule::Cosine,
            optim,
        }
    }

    /// The loop's settings for a training split of `train_len` samples.
    pub fn train_config(&self, train_len: usize) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size.unwrap_or(train_len),
            patience: self.patience,
            seed: self.seed,
            log_every: self.log_every,
            schedule: self.schedule,
            stop_at_epoch: None,
        }
    }

    /// The model architecture for data of this shape.
    pub fn model_config(&self, prepared: &Prepared) -> ModelConfig {
        ModelConfig {
            kind: self.model,
            task: self.task,
            input_shape: prepared.train.sample_shape.clone(),
            outputs: prepared.train.outputs(),
            hidden: self.hidden.clone(),
            channels: self.channels.clone(),
        }
    }
}

/// A run in progress: its data on the device, model and optimizer.
pub struct Experiment<D: Device> {
    pub config: ExperimentConfig,
    pub prepared: Prepared,
    pub model: Model<D>,
    pub optimizer: Optimizer<D>,
    pub state: TrainState,
    /// The parameters of the best epoch so far (restored when a run ends).
    pub best: Option<Vec<HostTensor>>,
    train: DeviceData<D>,
    val: DeviceData<D>,
    test: DeviceData<D>,
}

impl<D: Device + 'static> Experiment<D> {
    /// Prepares the data, uploads every split, and builds a fresh model.
    pub fn new(dev: &D, config: ExperimentConfig) -> Result<Self> {
        config.optim.validate()?;
        let mut prepared = prepare(
            &config.data,
            &PrepareOptions {
                task: config.task,
                target: config.target.clone(),
                val_fraction: config.val_fraction,
                test_fraction: config.test_fraction,
                seq_len: config.seq_len,
                seed: config.seed,
            },
        )?;
        if let Some(max) = config.max_train_samples {
            if max < prepared.train.len() {
                let keep: Vec<usize> = (0..max).collect();
                prepared.train = prepared.train.subset(&keep);
            }
        }
        config
            .train_config(prepared.train.len())
            .validate(prepared.train.len())?;
        let model = Model::new(dev, config.model_config(&prepared), config.seed)?;
        let upload = |ds| {
            DeviceData::upload(
                dev,
                ds,
                &prepared.normalizer,
                prepared.target_scaler.as_ref(),
            )
        };
        Ok(Experiment {
            train: upload(&prepared.train)?,
            val: upload(&prepared.val)?,
            test: upload(&prepared.test)?,
            optimizer: Optimizer::new(config.optim),
            state: TrainState::default(),
            best: None,
            model,
            prepared,
            config,
        })
    }

    /// Trains to the end (or early stop), then restores the parameters of
    /// the best validation epoch. With `stop_after`, returns after that many
    /// more epochs instead, leaving the latest parameters in place.
    pub fn run(
        &mut self,
        dev: &D,
        hooks: &mut dyn Hooks<D>,
        stop_after: Option<usize>,
    ) -> Result<()> {
        let mut keeper = KeepBest {
            dev,
            inner: hooks,
            best: self.best.take(),
        };
        let data = TrainData {
            train: &self.train,
            val: Some(&self.val),
            scaler: self.prepared.target_scaler.as_ref(),
        };
        let mut cfg = self.config.train_config(self.train.len());
        cfg.stop_at_epoch = stop_after.map(|n| self.state.epoch + n);
        let stopped_early = fit(
            dev,
            &mut self.model,
            &mut self.optimizer,
            &data,
            &cfg,
            &mut self.state,
            &mut keeper,
        );
        self.best = keeper.best;
        let finished =
            stopped_early? || self.state.epoch >= self.config.epochs || stop_after.is_none();
        if let (true, Some(best)) = (finished, &self.best) {
            restore(dev, &mut self.model, best)?;
        }
        Ok(())
    }

    /// The current model on a split: "train", "val" or "test".
    pub fn evaluate(&mut self, dev: &D, split: &str) -> Result<Option<Evaluation>> {
        let data = match split {
            "train" => &self.train,
            "val" => &self.val,
            "test" => &self.test,
            other => return Err(Error::Config(format!("unknown split '{other}'"))),
        };
        if data.is_empty() {
            return Ok(None);
        }
        let order = identity_order(dev, data.len())?;
        let batch = self.config.batch_size.unwrap_or(data.len()).max(256);
        evaluate(
            dev,
            &mut self.model,
            data,
            &order,
            batch,
            self.prepared.target_scaler.as_ref(),
        )
        .map(Some)
    }

    pub fn history(&self) -> &[EpochStats] {
        &self.state.history
    }
}

/// Snapshots the parameters whenever an epoch improves, then defers to the
/// caller's hooks.
struct KeepBest<'a, D: Device> {
    dev: &'a D,
    inner: &'a mut dyn Hooks<D>,
    best: Option<Vec<HostTensor>>,
}

impl<D: Device> Hooks<D> for KeepBest<'_, D> {
    fn on_step(&mut self, p: &crate::train::StepProgress) {
        self.inner.on_step(p);
    }

    fn on_epoch(
        &mut self,
        stats: &EpochStats,
        state: &TrainState,
        improved: bool,
        model: &Model<D>,
        optimizer: &Optimizer<D>,
    ) -> Result<()> {
        if improved {
            self.best = Some(snapshot(self.dev, model)?);
        }
        self.inner
            .on_epoch(stats, state, improved, model, optimizer)
    }
}
