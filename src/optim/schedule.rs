//! How the learning rate moves over a run.

use serde::{Deserialize, Serialize};

/// A learning-rate schedule over a run's steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Half a cosine from the base rate down to zero over all steps: large
    /// steps early, fine convergence at the end.
    Cosine,
}

impl Schedule {
    /// The rate at `step` of `total` (0-based) for base rate `lr`.
    pub fn lr(self, lr: f32, step: usize, total: usize) -> f32 {
        match self {
            Schedule::Constant => lr,
            Schedule::Cosine => {
                let t = step as f64 / total.max(1) as f64;
                (lr as f64 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
        }
    }
}
