//! Evaluation of a model on a split: loss and the task's metric (accuracy
//! and confusion matrix, R² and RMSE, or bits per character).

use serde::{Deserialize, Serialize};

use crate::data::{DeviceData, TargetScaler};
use crate::device::{Device, Reduce};
use crate::error::Result;
use crate::models::{Model, Output};

/// Most classes for which a confusion matrix is kept (its size is the
/// square of the classes).
pub const CONFUSION_MAX_CLASSES: usize = 256;

/// Results on one split. Fields that do not apply to the task are `None`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Samples evaluated (sequences, for text).
    pub samples: usize,
    /// Mean loss per sample (per character for text), in nats.
    pub loss: f64,
    /// Classification: the fraction predicted right.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Regression: the coefficient of determination, in target units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r2: Option<f64>,
    /// Regression: root-mean-square error, in target units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    /// Text: the mean loss in bits per character.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits_per_char: Option<f64>,
    /// `confusion[true][predicted]` counts, for classification with at most
    /// [`CONFUSION_MAX_CLASSES`] classes.
    #[serde(skip)]
    pub confusion: Option<Vec<Vec<u64>>>,
}

impl Evaluation {
    /// What model selection maximises: the task's metric (accuracy, R², or
    /// −bits/char), then −loss to break ties. Accuracy on a small validation
    /// split saturates early; without the tie-break an underfit early epoch
    /// would be kept.
    pub fn score(&self) -> [f64; 2] {
        let metric = self
            .accuracy
            .or(self.r2)
            .or(self.bits_per_char.map(|b| -b))
            .unwrap_or(-self.loss);
        // A NaN metric or loss ranks below everything, so later epochs can
        // still improve on it.
        let rank = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
        [rank(metric), rank(-self.loss)]
    }

    /// The task's headline metric, named, for messages.
    pub fn headline(&self) -> String {
        if let Some(a) = self.accuracy {
            format!("accuracy {:.2}%", 100.0 * a)
        } else if let (Some(r2), Some(rmse)) = (self.r2, self.rmse) {
            format!("R² {r2:.4}, RMSE {rmse:.4}")
        } else if let Some(b) = self.bits_per_char {
            format!("{b:.3} bits/char")
        } else {
            format!("loss {:.4}", self.loss)
        }
    }
}

/// Runs `model` over all of `data` in order, `batch_size` samples at a time.
/// `order` is the identity index tensor `0..data.len()`. Regression
/// predictions are unscaled with `scaler` before R² and RMSE.
pub fn evaluate<D: Device>(
    dev: &D,
    model: &mut Model<D>,
    data: &DeviceData<D>,
    order: &D::Tensor,
    batch_size: usize,
    scaler: Option<&TargetScaler>,
) -> Result<Evaluation> {
    let n = data.len();
    let output = model.spec.output;
    let loss_kind = model.loss();
    let classes = match output {
        Output::Classes { classes } => classes,
        _ => 0,
    };
    let mut loss_sum: Option<D::Tensor> = None;
    // Quadratic in the classes: kept only while it stays small.
    let mut confusion =
        (classes <= CONFUSION_MAX_CLASSES).then(|| vec![vec![0u64; classes]; classes]);
    let mut correct = 0u64;
    let mut tally = |t: f32, p: usize| {
        let t = t as usize;
        correct += u64::from(t == p);
        if let Some(row) = confusion.as_mut().and_then(|c| c.get_mut(t)) {
            if let Some(cell) = row.get_mut(p) {
                *cell += 1;
            }
        }
    };
    let (mut preds, mut truth) = (Vec::new(), Vec::new());
    let mut start = 0;
    while start < n {
        let count = batch_size.min(n - start);
        let (x, y) = data.batch(dev, order, start, count)?;
        let logits = model.forward(dev, &x, false)?;
        let targets = model.arrange_targets(dev, &y)?;
        let lg = loss_kind.apply(dev, &logits, &targets)?;
        // Mean over the batch times its size: a sum that batches add up.
        let weighted = dev.scale(&lg.loss, count as f32)?;
        loss_sum = Some(match loss_sum {
            Some(s) => dev.add(&s, &weighted)?,
            None => weighted,
        });
        match output {
            // Two classes are one logit: class 1 where it is positive.
            Output::Classes { classes: 2 } => {
                let z = dev.download(&logits)?;
                let t = dev.download(&targets)?;
                for (&z, &t) in z.iter().zip(&t) {
                    tally(t, usize::from(z > 0.0));
                }
            }
            Output::Classes { .. } => {
                let p = dev.download(&dev.argmax_rows(&logits)?)?;
                let t = dev.download(&targets)?;
                for (&p, &t) in p.iter().zip(&t) {
                    tally(t, p as usize);
                }
            }
            Output::Regression { .. } => {
                preds.extend(dev.download(&logits)?);
                truth.extend(dev.download(&targets)?);
            }
            Output::NextToken { .. } => {}
        }
        start += count;
    }
    let loss = match &loss_sum {
        Some(s) => dev.download(&dev.reduce(s, Reduce::Sum)?)?[0] as f64 / n.max(1) as f64,
        None => f64::NAN,
    };
    let mut e = Evaluation {
        samples: n,
        loss,
        ..Default::default()
    };
    match output {
        Output::Classes { .. } => {
            e.accuracy = Some(correct as f64 / n.max(1) as f64);
            e.confusion = confusion;
        }
        Output::Regression { .. } => {
            if let Some(s) = scaler {
                s.unscale(&mut preds);
                s.unscale(&mut truth);
            }
            let (r2, rmse) = r2_rmse(&preds, &truth);
            e.r2 = Some(r2);
            e.rmse = Some(rmse);
        }
        Output::NextToken { .. } => e.bits_per_char = Some(loss / std::f64::consts::LN_2),
    }
    Ok(e)
}

/// Coefficient of determination and root-mean-square error.
pub fn r2_rmse(pred: &[f32], truth: &[f32]) -> (f64, f64) {
    let n = truth.len().max(1) as f64;
    let mean = truth.iter().map(|&t| t as f64).sum::<f64>() / n;
    let ss_res: f64 = pred
        .iter()
        .zip(truth)
        .map(|(&p, &t)| (p as f64 - t as f64).powi(2))
        .sum();
    let ss_tot: f64 = truth.iter().map(|&t| (t as f64 - mean).powi(2)).sum();
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        f64::NAN
    };
    (r2, (ss_res / n).sqrt())
}

/// The identity order `0..n` as an index tensor.
pub fn identity_order<D: Device>(dev: &D, n: usize) -> Result<D::Tensor> {
    let idx: Vec<f32> = (0..n).map(|i| i as f32).collect();
    dev.upload(&idx, [n])
}
