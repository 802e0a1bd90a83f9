//! One training run from a configuration: data prepared and uploaded, model
//! built, trained with early stopping, best parameters restored, evaluated.
//! The command-line program, the learning tests and library users with
//! in-memory data ([`Experiment::from_prepared`]) all go through here.

use super::config::ExperimentConfig;
use super::evaluate::{evaluate, Evaluation};
use super::fit::{
    fit, restore, snapshot, EpochEnd, EpochStats, FitEnd, Hooks, StepProgress, TrainData,
    TrainState,
};
use crate::data::{prepare, DeviceData, PrepareOptions, Prepared, Residency};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::models::Model;
use crate::optim::Optimizer;
use crate::tensor::HostTensor;

/// A run in progress: its data on the device, model and optimizer.
pub struct Experiment<D: Device> {
    /// The run's settings (the task resolved).
    pub config: ExperimentConfig,
    /// The splits on the host, with the normalisation fitted on `train`.
    pub prepared: Prepared,
    /// The model being trained.
    pub model: Model<D>,
    /// Its optimizer.
    pub optimizer: Box<dyn Optimizer<D>>,
    /// Where the run stands.
    pub state: TrainState,
    /// The parameters of the best epoch so far (restored when a run ends).
    pub best: Option<Vec<HostTensor>>,
    /// [`Prepared::checksum`] of the data as prepared, before
    /// `max_train_samples` cut the training split (checkpoints keep it).
    pub data_checksum: u32,
    train: DeviceData<D>,
    val: DeviceData<D>,
    test: DeviceData<D>,
}

/// A run's precision is its device's: a mismatch is refused, not ignored.
fn same_precision<D: Device>(dev: &D, config: &ExperimentConfig) -> Result<()> {
    if dev.precision() == config.precision {
        return Ok(());
    }
    Err(Error::Config(format!(
        "the run asks for precision {} but the device computes in {}: open it with Device::with_precision",
        config.precision,
        dev.precision()
    )))
}

impl<D: Device + 'static> Experiment<D> {
    /// Loads and splits `config.data`, uploads every split, and builds a
    /// fresh model and optimizer. The config's task is resolved from the
    /// data when it is not set.
    pub fn new(dev: &D, mut config: ExperimentConfig) -> Result<Self> {
        config.optim.validate()?;
        same_precision(dev, &config)?;
        let task = config.resolved_task()?;
        config.task = Some(task);
        let prepared = prepare(
            &config.data,
            &PrepareOptions {
                task,
                target: config.target.clone(),
                val_fraction: config.val_fraction,
                test_fraction: config.test_fraction,
                seq_len: config.seq_len,
                seed: config.seed,
                series: config.series_options()?,
            },
        )?;
        Self::from_prepared(dev, config, prepared)
    }

    /// A run over data prepared elsewhere (in memory, see
    /// [`Prepared::from_dataset`]); `config.data` is then only a name.
    pub fn from_prepared(
        dev: &D,
        mut config: ExperimentConfig,
        mut prepared: Prepared,
    ) -> Result<Self> {
        config.optim.validate()?;
        same_precision(dev, &config)?;
        for split in [&prepared.train, &prepared.val, &prepared.test] {
            split.validate()?;
        }
        // Resolved here, so config.toml and checkpoints record it.
        config.optim = config.optim.for_precision(config.precision);
        config.task = Some(prepared.train.task);
        let data_checksum = prepared.checksum();
        if let Some(max) = config.max_train_samples {
            if max == 0 {
                return Err(Error::Config(
                    "--max-train-samples must be at least 1".into(),
                ));
            }
            if max < prepared.train.len() {
                let keep: Vec<usize> = (0..max).collect();
                prepared.train = prepared.train.subset(&keep);
            }
        }
        // Resolved here, so the run's config (config.toml, checkpoints)
        // says how many epochs it made.
        config.epochs = Some(config.epochs_for(prepared.train.len()));
        config
            .train_config(prepared.train.len())
            .validate(prepared.train.len())?;
        let spec = config.model_spec(&prepared)?;
        let model = Model::new(dev, &spec, config.seed)?;
        let residency = if config.stream {
            Residency::streamed(dev)
        } else {
            Residency::Auto
        };
        let upload = |ds| {
            DeviceData::upload_with(
                dev,
                ds,
                &prepared.normalizer,
                prepared.target_scaler.as_ref(),
                residency,
            )
        };
        Ok(Experiment {
            train: upload(&prepared.train)?,
            val: upload(&prepared.val)?,
            test: upload(&prepared.test)?,
            optimizer: config.optim.build()?,
            state: TrainState::default(),
            best: None,
            data_checksum,
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
    ) -> Result<FitEnd> {
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
        cfg.stop_at_epoch = stop_after.map(|n| self.state.epoch.saturating_add(n));
        let end = fit(
            dev,
            &mut self.model,
            self.optimizer.as_mut(),
            &data,
            &cfg,
            &mut self.state,
            &mut keeper,
        );
        self.best = keeper.best;
        let end = end?;
        // The best parameters replace the latest only when the run is over:
        // a run stopped partway (stop_after, Ctrl-C) keeps its latest, to
        // save and continue.
        let finished = end == FitEnd::EarlyStopped
            || (end == FitEnd::Finished
                && (self.state.epoch >= self.config.epochs_for(self.prepared.train.len())
                    || stop_after.is_none()));
        if let (true, Some(best)) = (finished, &self.best) {
            restore(dev, &mut self.model, best)?;
        }
        Ok(end)
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
        let batch = self.config.batch_size.unwrap_or(data.len()).max(256);
        evaluate(
            dev,
            &mut self.model,
            data,
            batch,
            self.prepared.target_scaler.as_ref(),
        )
        .map(Some)
    }

    /// Whether any split stays on the host and is streamed to the device
    /// ([`crate::data::Residency`]).
    pub fn streams_data(&self) -> bool {
        [&self.train, &self.val, &self.test]
            .iter()
            .any(|d| d.is_streamed())
    }

    /// The latest epoch's figures.
    pub fn last_epoch(&self) -> Option<&EpochStats> {
        self.state.last.as_ref()
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
    fn on_step(&mut self, p: &StepProgress) {
        self.inner.on_step(p);
    }

    fn should_stop(&mut self) -> bool {
        self.inner.should_stop()
    }

    fn on_epoch(&mut self, end: &EpochEnd<'_, D>) -> Result<()> {
        if end.improved {
            self.best = Some(snapshot(self.dev, end.model)?);
        }
        self.inner.on_epoch(&EpochEnd {
            best: self.best.as_deref(),
            ..*end
        })
    }
}
