//! The training loop: seeded shuffles, minibatches gathered on the device,
//! the loss read back only every `log_every` steps, validation after each
//! epoch, early stopping, and the best parameters kept.
//!
//! A step records its whole forward, backward and update without waiting on
//! the device; the only host reads inside an epoch are the periodic loss
//! readbacks, through one small staging buffer.

use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::evaluate::{evaluate, Evaluation};
use crate::data::{DeviceData, TargetScaler};
use crate::device::{Device, Tensor};
use crate::error::{Error, Result};
use crate::models::Model;
use crate::optim::{Optimizer, Schedule};
use crate::tensor::HostTensor;

/// Most epochs a run may ask for (a bound that keeps every step count far
/// from overflowing).
pub const MAX_EPOCHS: usize = 100_000_000;

/// The training loop's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// The epoch to train up to (counting from the run's start).
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Stop after this many epochs without a better validation metric or loss.
    pub patience: Option<usize>,
    /// Seeds the shuffles (with the epoch number).
    pub seed: u64,
    /// Read the running loss back every this many steps.
    pub log_every: usize,
    /// The learning rate over all steps of the run.
    pub schedule: Schedule,
    /// Return after this epoch even though `epochs` is not reached (a run in
    /// chunks; `--resume` continues it exactly).
    pub stop_at_epoch: Option<usize>,
}

impl TrainConfig {
    /// Checks the settings for a training split of `train_len` samples.
    pub fn validate(&self, train_len: usize) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::Config("--batch-size must be at least 1".into()));
        }
        if self.batch_size > train_len {
            return Err(Error::Config(format!(
                "--batch-size {} is larger than the training split ({train_len} samples)",
                self.batch_size
            )));
        }
        if self.epochs == 0 || self.epochs > MAX_EPOCHS {
            return Err(Error::Config(format!(
                "--epochs must be from 1 to {MAX_EPOCHS}, got {}",
                self.epochs
            )));
        }
        if self.log_every == 0 {
            return Err(Error::Config(
                "the loss read-back interval must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// One finished epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// The validation split's figures, when there is one.
    pub val: Option<Evaluation>,
    /// The learning rate of the epoch's last step.
    pub lr: f32,
    /// Wall time of the epoch's steps (validation excluded).
    pub seconds: f64,
    /// Training samples per second over the epoch.
    pub samples_per_sec: f64,
}

/// Where a run stands; saved with each checkpoint so `--resume` continues
/// exactly where the run left off. Its size does not grow with the run:
/// per-epoch history belongs in a log (the CLI's metrics.csv), not here.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// The best epoch's [`Evaluation::score`].
    pub best_score: Option<[f64; 2]>,
    /// The epoch whose parameters are the best so far (0: none yet).
    pub best_epoch: usize,
    /// The latest epoch's figures.
    pub last: Option<EpochStats>,
    /// Steps already taken in epoch `epoch + 1` when the run was
    /// interrupted inside it (0 at an epoch boundary); a resumed run
    /// continues from the next step with the same batches.
    #[serde(default)]
    pub step: usize,
    /// The interrupted epoch's summed loss read-backs and samples so far.
    #[serde(default)]
    pub partial: (f64, usize),
    /// The lowest validation loss so far.
    #[serde(default)]
    pub best_val_loss: Option<f64>,
    /// The last epoch that beat the best score or the lowest validation
    /// loss: early stopping counts its patience from here.
    #[serde(default)]
    pub last_progress: usize,
}

/// How a call of [`fit`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FitEnd {
    /// Every epoch asked for (or up to `stop_at_epoch`) ran.
    Finished,
    /// Early stopping: `patience` epochs without a better validation metric or loss.
    EarlyStopped,
    /// [`Hooks::should_stop`] asked to stop; the state says where, and
    /// continuing from it is exact.
    Interrupted,
}

impl TrainState {
    /// Epochs in which neither the validation metric nor the validation
    /// loss improved. Both count: a small validation split's accuracy is
    /// coarse and noisy (an underfit epoch can match or beat later ones by
    /// one sample), while a falling loss says the model is still learning.
    fn epochs_without_progress(&self) -> usize {
        self.epoch
            .saturating_sub(self.best_epoch.max(self.last_progress))
    }

    /// Checks a state read from a checkpoint.
    pub fn validate(&self) -> Result<()> {
        let last = self.last.as_ref().map_or(0, |l| l.epoch);
        if self.best_epoch > self.epoch
            || self.last_progress > self.epoch
            || last != self.epoch
            || self.epoch > MAX_EPOCHS
        {
            return Err(Error::Config(format!(
                "inconsistent training state: epoch {}, best epoch {}, last recorded epoch {last}",
                self.epoch, self.best_epoch
            )));
        }
        Ok(())
    }
}

/// Progress within an epoch, for progress bars.
#[derive(Clone, Copy, Debug)]
pub struct StepProgress {
    /// The epoch, 1-based.
    pub epoch: usize,
    /// Steps done in this epoch.
    pub step: usize,
    /// Steps in the epoch.
    pub steps: usize,
    /// Samples trained on in this epoch so far.
    pub samples: usize,
    /// Mean loss of the steps since the last read-back, when one happened.
    pub loss: Option<f64>,
    /// Seconds since the epoch began.
    pub elapsed: f64,
}

/// The end of an epoch, as [`Hooks::on_epoch`] sees it: after the state is
/// updated, so a hook can checkpoint.
pub struct EpochEnd<'a, D: Device> {
    /// The epoch's figures.
    pub stats: &'a EpochStats,
    /// Where the run stands now.
    pub state: &'a TrainState,
    /// This epoch is the best so far.
    pub improved: bool,
    /// No epoch follows in this call of [`fit`] (the last epoch, early
    /// stopping, or `stop_at_epoch`): the time for final saves.
    pub ending: bool,
    /// The model, with this epoch's parameters.
    pub model: &'a Model<D>,
    /// The optimizer, with its state after this epoch.
    pub optimizer: &'a dyn Optimizer<D>,
    /// The best epoch's parameters, when the caller keeps them
    /// ([`crate::run::Experiment`] does).
    pub best: Option<&'a [HostTensor]>,
}

/// Callbacks from [`fit`].
pub trait Hooks<D: Device> {
    /// After every step (progress bars).
    fn on_step(&mut self, _p: &StepProgress) {}
    /// After every epoch (logs, checkpoints).
    fn on_epoch(&mut self, _end: &EpochEnd<'_, D>) -> Result<()> {
        Ok(())
    }
    /// Asked after every step: `true` stops the run there (Ctrl-C), with
    /// [`FitEnd::Interrupted`].
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// Hooks that do nothing.
pub struct Silent;
impl<D: Device> Hooks<D> for Silent {}

/// The splits a run trains and validates on, on the device.
pub struct TrainData<'a, D: Device> {
    /// What the steps train on.
    pub train: &'a DeviceData<D>,
    /// Evaluated after every epoch (model selection, early stopping).
    pub val: Option<&'a DeviceData<D>>,
    /// Unscales regression predictions for R² and RMSE.
    pub scaler: Option<&'a TargetScaler>,
}

/// The shuffled sample order of one epoch: a function of the seed and the
/// epoch only, so a resumed run sees the same batches.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<u32> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    idx.shuffle(&mut rng);
    // At most u32::MAX samples per split (DeviceData::upload_with).
    idx.into_iter().map(|i| i as u32).collect()
}

/// Trains from `state` (fresh, resumed, or interrupted inside an epoch)
/// until `cfg.epochs`, early stopping or an interruption; returns which. Stops with an error if the loss
/// becomes NaN or infinite; the last checkpoint written by `hooks` is then
/// the last good one.
pub fn fit<D: Device>(
    dev: &D,
    model: &mut Model<D>,
    optimizer: &mut dyn Optimizer<D>,
    data: &TrainData<'_, D>,
    cfg: &TrainConfig,
    state: &mut TrainState,
    hooks: &mut dyn Hooks<D>,
) -> Result<FitEnd> {
    let base_lr = optimizer.learning_rate();
    let result = fit_epochs(dev, model, optimizer, data, cfg, state, hooks);
    optimizer.set_learning_rate(base_lr);
    result
}

fn fit_epochs<D: Device>(
    dev: &D,
    model: &mut Model<D>,
    optimizer: &mut dyn Optimizer<D>,
    data: &TrainData<'_, D>,
    cfg: &TrainConfig,
    state: &mut TrainState,
    hooks: &mut dyn Hooks<D>,
) -> Result<FitEnd> {
    cfg.validate(data.train.len())?;
    let n = data.train.len();
    let steps = n.div_ceil(cfg.batch_size);
    let eval_batch = cfg.batch_size.max(256);
    // The schedule sets the rate before every step, from the base rate the
    // optimizer came with; `fit` puts it back however the loop ends.
    let base_lr = optimizer.learning_rate();
    let total_steps = steps.checked_mul(cfg.epochs).ok_or_else(|| {
        Error::Config(format!(
            "{} epochs of {steps} steps are more steps than can be counted",
            cfg.epochs
        ))
    })?;
    // A resumed state's place inside an epoch must fit this data and batch.
    let (loss_sum, seen) = state.partial;
    let inside = state.step > 0 || state.partial != (0.0, 0);
    if inside
        && (state.step >= steps || seen > state.step * cfg.batch_size || !loss_sum.is_finite())
    {
        return Err(Error::Config(format!(
            "inconsistent training state: step {} of an epoch of {steps} steps, \
             with a loss sum of {loss_sum} over {seen} samples",
            state.step
        )));
    }
    let last = cfg.stop_at_epoch.map_or(cfg.epochs, |s| s.min(cfg.epochs));
    while state.epoch < last {
        if patience_exhausted(cfg, state) {
            return Ok(FitEnd::EarlyStopped);
        }
        if state.step == 0 && hooks.should_stop() {
            return Ok(FitEnd::Interrupted);
        }
        let epoch = state.epoch + 1;
        let started = Instant::now();
        let mut order = data
            .train
            .order(dev, epoch_order(n, cfg.seed, epoch), cfg.batch_size)?;
        let mut running: Option<D::Tensor> = None;
        // An interrupted epoch continues where it stopped.
        let first = state.step.min(steps);
        let (mut pending, mut loss_total, mut samples) = (0usize, state.partial.0, state.partial.1);
        for step in first..steps {
            let start = step * cfg.batch_size;
            let count = cfg.batch_size.min(n - start);
            let (x, y) = data.train.batch(dev, &mut order, start, count)?;
            // The optimizer's step count is saved with the run, so a resumed
            // run's dropout masks are the uninterrupted run's.
            model.set_step(optimizer.steps());
            optimizer.set_learning_rate(cfg.schedule.lr(
                base_lr,
                (epoch - 1) * steps + step,
                total_steps,
            ));
            let loss = model.train_step(dev, &x, &y, optimizer)?;
            running = Some(match running {
                Some(r) => dev.add(&r, &loss)?,
                None => loss,
            });
            pending += 1;
            samples += count;
            let interrupt = step + 1 < steps && hooks.should_stop();
            let read_now = pending == cfg.log_every || step + 1 == steps || interrupt;
            let mut mean = None;
            if read_now {
                let sum = dev.download(running.as_ref().expect("set above"))?[0] as f64;
                if diverged(sum / pending as f64) {
                    return Err(Error::Config(format!(
                        "the loss became {:.3e} at epoch {epoch}, step {}: training diverged and stopped (try a lower --lr)",
                        sum / pending as f64,
                        step + 1
                    )));
                }
                loss_total += sum;
                mean = Some(sum / pending as f64);
                running = None;
                pending = 0;
            }
            hooks.on_step(&StepProgress {
                epoch,
                step: step + 1,
                steps,
                samples,
                loss: mean,
                elapsed: started.elapsed().as_secs_f64(),
            });
            if interrupt {
                state.step = step + 1;
                state.partial = (loss_total, samples);
                return Ok(FitEnd::Interrupted);
            }
        }
        // A streamed split's chunks go before validation streams its own.
        drop(order);
        state.step = 0;
        state.partial = (0.0, 0);
        let seconds = started.elapsed().as_secs_f64();
        let val = match data.val {
            Some(v) if !v.is_empty() => Some(evaluate(dev, model, v, eval_batch, data.scaler)?),
            _ => None,
        };
        let stats = EpochStats {
            epoch,
            train_loss: loss_total / steps as f64,
            val,
            lr: optimizer.learning_rate(),
            seconds,
            // Finite always: these figures are saved as JSON, which has no
            // infinity.
            samples_per_sec: if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            },
        };
        if let Some(v) = stats.val.as_ref().filter(|v| diverged(v.loss)) {
            return Err(Error::Config(format!(
                "the validation loss became {:.3e} at epoch {epoch}: training diverged and stopped (try a lower --lr)",
                v.loss
            )));
        }
        // Without validation data every epoch counts as the best (the last
        // model is kept).
        let score = stats
            .val
            .as_ref()
            .map_or([epoch as f64, 0.0], Evaluation::score);
        let improved = state
            .best_score
            .is_none_or(|b| score.partial_cmp(&b) == Some(std::cmp::Ordering::Greater));
        if improved {
            state.best_score = Some(score);
            state.best_epoch = epoch;
        }
        let val_loss = stats.val.as_ref().map(|v| v.loss).filter(|l| !l.is_nan());
        if let Some(l) = val_loss {
            if state.best_val_loss.is_none_or(|b| l < b) {
                state.best_val_loss = Some(l);
                state.last_progress = epoch;
            }
        }
        if improved {
            state.last_progress = epoch;
        }
        state.epoch = epoch;
        state.last = Some(stats.clone());
        optimizer.set_learning_rate(base_lr);
        let ending = epoch == last || patience_exhausted(cfg, state);
        hooks.on_epoch(&EpochEnd {
            stats: &stats,
            state,
            improved,
            ending,
            model,
            optimizer,
            best: None,
        })?;
    }
    Ok(if patience_exhausted(cfg, state) {
        FitEnd::EarlyStopped
    } else {
        FitEnd::Finished
    })
}

/// Losses are of standardised targets (regression) or of probabilities
/// (classification, text), so a working model's is of order 1 to 10; one
/// this large means the weights have run away, even before they overflow.
pub const DIVERGED_LOSS: f64 = 1e10;

/// A mean loss that says training has diverged: not finite, or above
/// [`DIVERGED_LOSS`].
fn diverged(mean_loss: f64) -> bool {
    !(mean_loss.is_finite() && mean_loss <= DIVERGED_LOSS)
}

/// Whether early stopping ends the run at this point.
fn patience_exhausted(cfg: &TrainConfig, state: &TrainState) -> bool {
    cfg.patience
        .is_some_and(|p| state.epoch > 0 && state.epochs_without_progress() >= p)
}

/// Parameter and buffer values copied to the host, by name (a snapshot of
/// the best model, independent of later in-place updates).
pub fn snapshot<D: Device>(dev: &D, model: &Model<D>) -> Result<Vec<HostTensor>> {
    let params = model.params().into_iter().map(|p| (&p.name, &p.value));
    let buffers = model.buffers().into_iter().map(|b| (&b.name, &b.value));
    params
        .chain(buffers)
        .map(|(name, value)| {
            Ok(HostTensor {
                name: name.clone(),
                shape: value.shape().dims().to_vec(),
                values: dev.download(value)?,
            })
        })
        .collect()
}

/// Puts a snapshot back into `model`.
pub fn restore<D: Device>(dev: &D, model: &mut Model<D>, snap: &[HostTensor]) -> Result<()> {
    let values = snap
        .iter()
        .map(|t| Ok((t.name.clone(), dev.upload(&t.values, t.shape.clone())?)))
        .collect::<Result<Vec<_>>>()?;
    model.set_params(values)
}
