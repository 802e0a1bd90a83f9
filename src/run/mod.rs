//! The library's verbs over any model: [`fit`](fit::fit) a model,
//! [`evaluate`](evaluate::evaluate) it on a split, [`predict`](predict::predict)
//! for new samples, save and load [`checkpoint`]s, and run a whole
//! [`Experiment`] from an [`ExperimentConfig`]. The command-line program is a
//! thin layer over these.

pub mod baselines;
pub mod checkpoint;
pub mod config;
pub mod evaluate;
pub mod experiment;
pub mod export;
pub mod fit;
pub mod held_out;
pub mod onnx;
pub mod predict;
pub mod rundir;

pub use baselines::{baselines, Baseline};
pub use checkpoint::{Checkpoint, ModelMeta};
pub use config::{output_for, ExperimentConfig};
pub use evaluate::{class_scores, evaluate, ClassScores, Evaluation};
pub use experiment::Experiment;
pub use fit::{
    fit, EpochEnd, EpochStats, FitEnd, Hooks, Silent, StepProgress, TrainConfig, TrainData,
    TrainState,
};
pub use held_out::{eval_dataset, Split};
pub use predict::{predict, Predictions};
pub use rundir::RunDir;
