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
/// Regression predictions are unscaled with `scaler` before R² and RMSE.
pub fn evaluate<D: Device>(
    dev: &D,
    model: &mut Model<D>,
    data: &DeviceData<D>,
    batch_size: usize,
    scaler: Option<&TargetScaler>,
) -> Result<Evaluation> {
    let n = data.len();
    let batch_size = batch_size.max(1);
    let mut order = data.in_order(dev, batch_size)?;
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
        let (x, y) = data.batch(dev, &mut order, start, count)?;
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

/// Precision, recall and F1 of one class, from a confusion matrix.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ClassScores {
    /// Of the samples predicted as this class, the fraction that are.
    pub precision: f64,
    /// Of the samples of this class, the fraction predicted as it.
    pub recall: f64,
    /// The harmonic mean of the two (0 when both are 0).
    pub f1: f64,
    /// Samples of this class.
    pub support: u64,
}

/// Per-class scores of `confusion[true][predicted]`, and their macro F1
/// (the mean over classes that have samples or predictions). A class never
/// predicted has precision 0.
pub fn class_scores(confusion: &[Vec<u64>]) -> (Vec<ClassScores>, f64) {
    let k = confusion.len();
    let scores: Vec<ClassScores> = (0..k)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let predicted: u64 = (0..k).map(|t| confusion[t][c]).sum();
            let support: u64 = confusion[c].iter().sum();
            let ratio = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassScores {
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let seen: Vec<&ClassScores> = scores
        .iter()
        .enumerate()
        .filter(|(c, s)| s.support > 0 || (0..k).any(|t| confusion[t][*c] > 0))
        .map(|(_, s)| s)
        .collect();
    let macro_f1 = seen.iter().map(|s| s.f1).sum::<f64>() / seen.len().max(1) as f64;
    (scores, macro_f1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_scores_by_hand() {
        // true 0: 3 right, 1 as class 1; true 1: 2 right; class 2 unseen.
        let cm = vec![vec![3, 1, 0], vec![0, 2, 0], vec![0, 0, 0]];
        let (s, macro_f1) = class_scores(&cm);
        assert_eq!((s[0].precision, s[0].recall, s[0].support), (1.0, 0.75, 4));
        assert!((s[1].precision - 2.0 / 3.0).abs() < 1e-12 && s[1].recall == 1.0);
        assert!((s[0].f1 - 6.0 / 7.0).abs() < 1e-12 && (s[1].f1 - 0.8).abs() < 1e-12);
        assert!((macro_f1 - (6.0 / 7.0 + 0.8) / 2.0).abs() < 1e-12);
    }
}
