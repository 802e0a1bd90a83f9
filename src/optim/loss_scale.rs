//! Loss scaling for `--precision f16`: the setting ([`LossScale`]) and the
//! state an optimizer keeps for it ([`LossScaler`]).
//!
//! The loss gradient is multiplied by the scale before backpropagation
//! ([`Model::train_step`](crate::models::Model::train_step) does it), and
//! the optimizer's gradient factor divides it out again, skipping the update
//! where the scaled gradients overflowed; the rule, and why, are in
//! [`crate::device::loss_scale`]. Everything stays on the device: the scale
//! is a `[1]` tensor and a step never waits for a readback.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::device::loss_scale::{MAX_LOSS_SCALE, MIN_LOSS_SCALE};
use crate::device::{Device, LossScaleStep};
use crate::error::{Error, Result};
use crate::tensor::HostTensor;

/// The dynamic rule's first scale (2¹⁶, as PyTorch's `GradScaler`).
pub const DYNAMIC_INITIAL_SCALE: f32 = 65_536.0;
/// Finite steps in a row after which the dynamic rule doubles the scale
/// (PyTorch's default).
pub const DYNAMIC_GROWTH_INTERVAL: u32 = 2000;

/// The name loss-scaling state is saved under in checkpoints.
pub const STATE_NAME: &str = "optimizer.loss_scale";

/// How the loss is scaled before backpropagation.
///
/// Files and the command line spell it `off`, `dynamic` or a number (a
/// fixed scale), so both read through [`FromStr`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Spelled", into = "String")]
pub enum LossScale {
    /// No scaling.
    #[default]
    Off,
    /// A fixed scale; a step whose scaled gradients are not finite is
    /// skipped, and the scale stays.
    Fixed(f32),
    /// Starts at [`DYNAMIC_INITIAL_SCALE`], halves at every step whose scaled
    /// gradients are not finite (which is skipped) and doubles after
    /// [`DYNAMIC_GROWTH_INTERVAL`] finite steps in a row.
    Dynamic,
}

impl LossScale {
    /// Checks a fixed scale is a number the device can use.
    pub fn validate(self) -> Result<()> {
        match self {
            LossScale::Fixed(s) if !(MIN_LOSS_SCALE..=MAX_LOSS_SCALE).contains(&s) => {
                Err(Error::Config(format!(
                    "a fixed loss scale must lie in [2^-24, 2^24], got {s}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The first scale and the device's rule; `None` when off.
    fn start(self, max_norm: Option<f32>) -> Option<(f32, LossScaleStep)> {
        let (scale, growth_interval) = match self {
            LossScale::Off => return None,
            LossScale::Fixed(s) => (s, 0),
            LossScale::Dynamic => (DYNAMIC_INITIAL_SCALE, DYNAMIC_GROWTH_INTERVAL),
        };
        Some((
            scale,
            LossScaleStep {
                max_norm,
                growth_interval,
            },
        ))
    }
}

impl fmt::Display for LossScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossScale::Off => f.write_str("off"),
            LossScale::Fixed(s) => write!(f, "{s}"),
            LossScale::Dynamic => f.write_str("dynamic"),
        }
    }
}

impl FromStr for LossScale {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let scale = match s.to_ascii_lowercase().as_str() {
            "off" | "none" => LossScale::Off,
            "dynamic" => LossScale::Dynamic,
            other => match other.parse::<f32>() {
                Ok(v) => LossScale::Fixed(v),
                Err(_) => {
                    return Err(Error::Config(format!(
                        "unknown loss scale '{s}'; expected off, dynamic or a number"
                    )))
                }
            },
        };
        scale.validate()?;
        Ok(scale)
    }
}

/// A loss scale as a file spells it: `"dynamic"`, `"off"`, `"1024"`, or a
/// bare number (`loss_scale = 1024` in TOML).
#[derive(Deserialize)]
#[serde(untagged)]
enum Spelled {
    Text(String),
    Number(f64),
}

impl TryFrom<Spelled> for LossScale {
    type Error = Error;

    fn try_from(s: Spelled) -> Result<Self> {
        match s {
            Spelled::Text(t) => t.parse(),
            Spelled::Number(v) => {
                let scale = LossScale::Fixed(v as f32);
                scale.validate()?;
                Ok(scale)
            }
        }
    }
}

impl From<LossScale> for String {
    fn from(s: LossScale) -> String {
        s.to_string()
    }
}

/// An optimizer's loss-scaling state: the scale and the count of finite
/// steps since it last changed, `[1]` tensors on the device, made at first
/// use.
pub struct LossScaler<D: Device> {
    first: f32,
    step: LossScaleStep,
    state: Option<(D::Tensor, D::Tensor)>,
    /// Whether the scale was handed out since the last factor: gradients
    /// computed without it would be unscaled by it all the same.
    handed_out: bool,
}

impl<D: Device> LossScaler<D> {
    /// The state for `setting` with clipping to `max_norm`; `None` when off.
    pub fn new(setting: LossScale, max_norm: Option<f32>) -> Option<Self> {
        let (first, step) = setting.start(max_norm)?;
        Some(LossScaler {
            first,
            step,
            state: None,
            handed_out: false,
        })
    }

    fn state(&mut self, dev: &D) -> Result<&mut (D::Tensor, D::Tensor)> {
        if self.state.is_none() {
            self.state = Some((dev.full([1], self.first)?, dev.zeros([1])?));
        }
        Ok(self.state.as_mut().expect("set above"))
    }

    /// The scale (`[1]`) this step's loss gradient is multiplied by.
    pub fn scale(&mut self, dev: &D) -> Result<D::Tensor> {
        self.handed_out = true;
        Ok(self.state(dev)?.0.clone())
    }

    /// The factor for gradients of summed squares `sum_squares` (scaled by
    /// [`LossScaler::scale`]); moves the scale on to the next step's. Fails
    /// if the scale was not asked for since the last step: the gradients
    /// cannot have been scaled, and dividing them by it would be wrong.
    pub fn factor(&mut self, dev: &D, sum_squares: &D::Tensor) -> Result<D::Tensor> {
        if !std::mem::take(&mut self.handed_out) {
            return Err(Error::Config(
                "loss scaling is on, but nothing asked for this step's loss scale: compute the gradients with Model::train_step (or Model::loss_and_scaled_grads with Optimizer::loss_scale)".into(),
            ));
        }
        let rule = self.step;
        let (scale, good) = self.state(dev)?;
        dev.loss_scale_step(sum_squares, scale, good, &rule)
    }

    /// The scale and good-step count as one named host tensor, for
    /// checkpoints; `None` before the first step.
    pub fn save(&self, dev: &D) -> Result<Option<HostTensor>> {
        let Some((scale, good)) = &self.state else {
            return Ok(None);
        };
        let mut values = dev.download(scale)?;
        values.extend(dev.download(good)?);
        Ok(Some(HostTensor {
            name: STATE_NAME.into(),
            shape: vec![2],
            values,
        }))
    }

    /// Restores what [`LossScaler::save`] wrote, if `saved` has it (a
    /// checkpoint from before the run's first step has not); the values are
    /// checked, as anything read from a file.
    pub fn load(&mut self, dev: &D, saved: &[HostTensor]) -> Result<()> {
        let Some(t) = saved.iter().find(|t| t.name == STATE_NAME) else {
            self.state = None;
            return Ok(());
        };
        let [scale, good] = t.values[..] else {
            return Err(Error::Config(format!(
                "checkpoint tensor '{STATE_NAME}' must hold 2 values, has {}",
                t.values.len()
            )));
        };
        let good_ok = good.is_finite() && good >= 0.0 && good.fract() == 0.0;
        if !(MIN_LOSS_SCALE..=MAX_LOSS_SCALE).contains(&scale) || !good_ok {
            return Err(Error::Config(format!(
                "checkpoint tensor '{STATE_NAME}' holds an impossible state (scale {scale}, {good} good steps)"
            )));
        }
        self.state = Some((dev.full([1], scale)?, dev.full([1], good)?));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_and_write_as_the_command_line_spells_them() {
        for (text, want) in [
            ("off", LossScale::Off),
            ("Dynamic", LossScale::Dynamic),
            ("1024", LossScale::Fixed(1024.0)),
            ("0.5", LossScale::Fixed(0.5)),
        ] {
            let got: LossScale = text.parse().unwrap();
            assert_eq!(got, want);
            assert_eq!(got.to_string().parse::<LossScale>().unwrap(), want);
        }
        for bad in ["0", "-8", "nan", "inf", "1e30", "big"] {
            assert!(bad.parse::<LossScale>().is_err(), "{bad}");
        }
    }

    #[derive(Deserialize)]
    struct File {
        loss_scale: LossScale,
    }

    #[test]
    fn files_may_give_a_fixed_scale_as_a_number() {
        let read = |text: &str| toml::from_str::<File>(text).map(|f| f.loss_scale);
        assert_eq!(read("loss_scale = 1024").unwrap(), LossScale::Fixed(1024.0));
        assert_eq!(read("loss_scale = 0.5").unwrap(), LossScale::Fixed(0.5));
        assert_eq!(
            read("loss_scale = \"dynamic\"").unwrap(),
            LossScale::Dynamic
        );
        for bad in [
            "loss_scale = 0",
            "loss_scale = 1e30",
            "loss_scale = \"x\"",
            "loss_scale = true",
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
