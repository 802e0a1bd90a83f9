//! Feature and target standardisation, fitted on the training split only and
//! saved with the model so evaluation and prediction see the same transform.

use serde::{Deserialize, Serialize};

use super::Task;
use super::{Dataset, Features, Targets};
use crate::error::{Error, Result};

/// Mean and standard deviation. Only an exactly constant column (a
/// deviation that is 0 in f32) is left unscaled, with deviation 1: a feature
/// on a 1e-7 scale is real signal and gets its real deviation.
fn mean_std(values: impl Iterator<Item = f64> + Clone) -> (f32, f32) {
    let (n, sum) = values
        .clone()
        .fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
    let mean = sum / n.max(1) as f64;
    let var = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n.max(1) as f64;
    let std = var.sqrt() as f32;
    (
        mean as f32,
        if std > 0.0 && std.is_normal() {
            std
        } else {
            1.0
        },
    )
}

/// The feature transform, fitted on the training split by [`Normalizer::fit`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalizer {
    /// Unchanged (token ids).
    Identity,
    /// `(x - mean[j]) / std[j]` for feature `j` (tables).
    PerFeature {
        /// Per-feature mean, one per sample value.
        mean: Vec<f32>,
        /// Per-feature standard deviation (1 where a feature is near constant).
        std: Vec<f32>,
    },
    /// One mean and deviation over every value (images).
    Global {
        /// Mean of all values, in raw units (0–255 for bytes).
        mean: f32,
        /// Standard deviation of all values (1 if they are near constant).
        std: f32,
    },
}

impl Normalizer {
    /// Statistics of `train`: per feature for tables, global for images,
    /// none for text.
    pub fn fit(train: &Dataset) -> Normalizer {
        let w = train.sample_len();
        match (&train.features, train.task) {
            (_, Task::Text) => Normalizer::Identity,
            (Features::U8(v), _) => {
                let (mean, std) = mean_std(v.iter().map(|&b| b as f64));
                Normalizer::Global { mean, std }
            }
            (Features::F32(v), _) => {
                let (mean, std) = (0..w)
                    .map(|j| mean_std(v.iter().skip(j).step_by(w).map(|&x| x as f64)))
                    .unzip();
                Normalizer::PerFeature { mean, std }
            }
        }
    }

    /// Checks statistics read from a file: finite means, positive finite
    /// deviations, one of each per feature of a `width`-value sample.
    pub fn validate(&self, width: usize) -> Result<()> {
        let (mean, std): (&[f32], &[f32]) = match self {
            Normalizer::Identity => return Ok(()),
            Normalizer::PerFeature { mean, std } => {
                if mean.len() != width || std.len() != width {
                    return Err(Error::Config(format!(
                        "feature statistics for {} / {} features, the model takes {width}",
                        mean.len(),
                        std.len()
                    )));
                }
                (mean, std)
            }
            Normalizer::Global { mean, std } => {
                (std::slice::from_ref(mean), std::slice::from_ref(std))
            }
        };
        check_stats(mean, std)
    }

    /// Checks that this transform fits samples of `width` values.
    pub fn check(&self, width: usize) -> Result<()> {
        match self {
            Normalizer::PerFeature { mean, .. } if mean.len() != width => {
                Err(Error::Config(format!(
                    "the model was trained on {} features, this data has {width}",
                    mean.len()
                )))
            }
            _ => Ok(()),
        }
    }

    /// Standardises f32 features in place.
    pub fn apply(&self, values: &mut [f32], width: usize) {
        match self {
            Normalizer::Identity => {}
            Normalizer::PerFeature { mean, std } => {
                for row in values.chunks_mut(width) {
                    for ((v, m), s) in row.iter_mut().zip(mean).zip(std) {
                        *v = (*v - m) / s;
                    }
                }
            }
            Normalizer::Global { mean, std } => {
                for v in values {
                    *v = (*v - mean) / std;
                }
            }
        }
    }

    /// `(scale, shift)` with `x·scale + shift` equal to the transform, for
    /// normalising bytes inside the device's gather.
    pub fn affine(&self) -> (f32, f32) {
        match self {
            Normalizer::Global { mean, std } => (1.0 / std, -mean / std),
            _ => (1.0, 0.0),
        }
    }
}

/// Standardisation of regression targets: the model learns `(y - mean)/std`
/// and predictions are mapped back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetScaler {
    /// Mean of each target dimension.
    pub mean: Vec<f32>,
    /// Standard deviation of each target dimension (1 where it is near constant).
    pub std: Vec<f32>,
}

impl TargetScaler {
    /// Fits regression targets; `None` for class targets.
    pub fn fit(train: &Dataset) -> Option<TargetScaler> {
        let Targets::Values { values, dims } = &train.targets else {
            return None;
        };
        let (mean, std) = (0..*dims)
            .map(|j| mean_std(values.iter().skip(j).step_by(*dims).map(|&x| x as f64)))
            .unzip();
        Some(TargetScaler { mean, std })
    }

    /// Checks statistics read from a file: `targets` finite means and
    /// positive finite deviations.
    pub fn validate(&self, targets: usize) -> Result<()> {
        if self.mean.len() != targets || self.std.len() != targets {
            return Err(Error::Config(format!(
                "target statistics for {} / {} values, the model predicts {targets}",
                self.mean.len(),
                self.std.len()
            )));
        }
        check_stats(&self.mean, &self.std)
    }

    /// Maps raw targets to the standardised ones the model learns, in place.
    pub fn scale(&self, values: &mut [f32]) {
        let d = self.mean.len();
        for (i, v) in values.iter_mut().enumerate() {
            *v = (*v - self.mean[i % d]) / self.std[i % d];
        }
    }

    /// Maps standardised outputs back to target units, in place.
    pub fn unscale(&self, values: &mut [f32]) {
        let d = self.mean.len();
        for (i, v) in values.iter_mut().enumerate() {
            *v = *v * self.std[i % d] + self.mean[i % d];
        }
    }
}

fn check_stats(mean: &[f32], std: &[f32]) -> Result<()> {
    if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(Error::Config(
            "standardisation statistics must be finite, with positive deviations".into(),
        ));
    }
    Ok(())
}
