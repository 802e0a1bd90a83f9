//! Predictions of a trained model for samples on the host, in the units of
//! the data it was trained on.

use super::checkpoint::Checkpoint;
use crate::data::{Features, Normalizer, TargetScaler};
use crate::device::{sigmoid, Device};
use crate::error::{Error, Result};
use crate::models::{Model, Output};

/// What a model predicts for each sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Predictions {
    /// Classifiers: the most likely class of each sample and the
    /// probability of every class (`classes` per sample, row-major).
    Classes {
        /// The most likely class of each sample.
        labels: Vec<u32>,
        /// `classes` probabilities per sample.
        probabilities: Vec<f32>,
        /// Number of classes.
        classes: usize,
    },
    /// Regression: `targets` values per sample, in target units.
    Values {
        /// `targets` values per sample.
        values: Vec<f32>,
        /// Values per sample.
        targets: usize,
    },
}

impl Predictions {
    /// Samples predicted.
    pub fn len(&self) -> usize {
        match self {
            Predictions::Classes { labels, .. } => labels.len(),
            Predictions::Values { values, targets } => values.len() / (*targets).max(1),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs `model` over `n` samples of `features` (raw, as loaded: the model's
/// `normalizer` is applied here), `batch_size` at a time. Regression values
/// are unscaled with `scaler`.
pub fn predict<D: Device>(
    dev: &D,
    model: &mut Model<D>,
    features: &Features,
    n: usize,
    normalizer: &Normalizer,
    scaler: Option<&TargetScaler>,
    batch_size: usize,
) -> Result<Predictions> {
    let output = model.spec.output;
    if let Output::NextToken { .. } = output {
        return Err(Error::Config(
            "a text model generates text: use sample_text (`wgtrain sample`)".into(),
        ));
    }
    if batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    let sample = model.spec.input.dims();
    let width: usize = sample.iter().product();
    let available = match features {
        Features::F32(v) => v.len(),
        Features::U8(v) => v.len(),
    };
    if n.checked_mul(width) != Some(available) {
        return Err(Error::Config(format!(
            "{available} input values are not {n} samples of {width}"
        )));
    }
    let mut logits = Vec::with_capacity(n.saturating_mul(output.width()));
    for start in (0..n).step_by(batch_size) {
        let count = batch_size.min(n - start);
        let mut shape = vec![count];
        shape.extend_from_slice(&sample);
        let rows = start * width..(start + count) * width;
        let rows = match features {
            Features::F32(v) => {
                let mut rows = v[rows].to_vec();
                normalizer.apply(&mut rows, width);
                rows
            }
            Features::U8(b) => {
                let (scale, shift) = normalizer.affine();
                b[rows].iter().map(|&v| v as f32 * scale + shift).collect()
            }
        };
        let x = dev.upload(&rows, shape)?;
        logits.extend(dev.download(&model.forward(dev, &x, false)?)?);
    }
    Ok(match output {
        Output::Regression { targets } => {
            if let Some(s) = scaler {
                s.unscale(&mut logits);
            }
            Predictions::Values {
                values: logits,
                targets,
            }
        }
        Output::Classes { classes: 2 } => Predictions::Classes {
            labels: logits.iter().map(|&z| u32::from(z > 0.0)).collect(),
            probabilities: logits
                .iter()
                .flat_map(|&z| {
                    let p = sigmoid(z);
                    [1.0 - p, p]
                })
                .collect(),
            classes: 2,
        },
        Output::Classes { classes } => {
            let mut labels = Vec::with_capacity(n);
            let mut probabilities = Vec::with_capacity(logits.len());
            for row in logits.chunks(classes) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exp: Vec<f64> = row.iter().map(|&z| ((z - max) as f64).exp()).collect();
                let total: f64 = exp.iter().sum();
                labels.push(
                    (0..classes)
                        .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
                        .unwrap_or(0) as u32,
                );
                probabilities.extend(exp.iter().map(|e| (e / total) as f32));
            }
            Predictions::Classes {
                labels,
                probabilities,
                classes,
            }
        }
        Output::NextToken { .. } => unreachable!("rejected above"),
    })
}

impl Checkpoint {
    /// [`predict`] with this checkpoint's model and normalisation.
    pub fn predict<D: Device + 'static>(
        &self,
        dev: &D,
        features: &Features,
        n: usize,
        batch_size: usize,
    ) -> Result<Predictions> {
        let mut model = self.model(dev)?;
        predict(
            dev,
            &mut model,
            features,
            n,
            &self.meta.normalizer,
            self.meta.target_scaler.as_ref(),
            batch_size,
        )
    }
}
