//! Losses over logits, each fused with its gradient on the device.

use serde::{Deserialize, Serialize};

use crate::device::{Device, LossGrad, Tensor};
use crate::error::Result;

/// A training loss, computed from the model's logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Mean squared error against real-valued targets.
    Mse,
    /// Binary cross-entropy of one logit per sample against 0/1 labels.
    BinaryCrossEntropy,
    /// Softmax cross-entropy of one logit per class against class ids.
    SoftmaxCrossEntropy,
}

impl Loss {
    /// Mean loss (`[1]`) and its gradient with respect to `logits`.
    /// Targets: class ids `[N]` for softmax; values of any shape with as many
    /// elements as the logits otherwise.
    pub fn apply<D: Device>(
        self,
        dev: &D,
        logits: &D::Tensor,
        targets: &D::Tensor,
    ) -> Result<LossGrad<D::Tensor>> {
        match self {
            Loss::SoftmaxCrossEntropy => dev.softmax_cross_entropy(logits, targets),
            Loss::Mse => dev.mse(logits, &dev.reshape(targets, logits.shape())?),
            Loss::BinaryCrossEntropy => {
                dev.bce_with_logits(logits, &dev.reshape(targets, logits.shape())?)
            }
        }
    }
}
