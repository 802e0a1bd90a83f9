//! What `--json` prints (and `train` writes to summary.json), as types:
//! these structs are the schema (README "A tour", under `--json`). Optional fields
//! are left out when they do not apply, never written as placeholders,
//! except `adapter`, `train_loss` and `val_loss`, which are `null` when
//! there is none.

use serde::Serialize;
use wgtrain::device::gpu::AdapterSummary;
use wgtrain::run::{class_scores, Baseline, ClassScores, Evaluation};

/// What both summaries say first: the model and where it ran.
#[derive(Serialize)]
pub struct RunInfo {
    /// The preset, or `custom`.
    pub model: &'static str,
    /// The layer list, output layer included.
    pub layers: String,
    /// `cpu` or `gpu`.
    pub device: &'static str,
    /// The GPU adapter's name; `null` on the CPU.
    pub adapter: Option<String>,
    /// Trainable numbers.
    pub params: usize,
}

/// `wgtrain train --json`, and the run directory's summary.json.
#[derive(Serialize)]
pub struct TrainSummary {
    /// Always `"train"`.
    pub command: &'static str,
    /// The model and where it ran.
    #[serde(flatten)]
    pub run: RunInfo,
    /// Samples in each split.
    pub samples: SplitSizes,
    /// The epoch count the run was set up with (resolved from `auto`).
    pub max_epochs: usize,
    /// Early stopping's patience; absent when off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// Epochs trained.
    pub epochs: usize,
    /// The epoch whose weights model.safetensors holds.
    pub best_epoch: usize,
    /// `finished` (all epochs, or `--stop-after-epochs`) or `early_stopped`.
    pub ended: &'static str,
    /// Wall time of this invocation's training, checkpoints included.
    pub seconds: f64,
    /// Training samples per second of that wall time.
    pub samples_per_sec: f64,
    /// The last epoch's mean training loss.
    pub train_loss: Option<f64>,
    /// The last epoch's validation loss.
    pub val_loss: Option<f64>,
    /// The run directory.
    pub out: String,
    /// Which split `test` is on: `test`, or `val` when there is no test split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_split: Option<&'static str>,
    /// The kept model on that split, touched once, at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<EvaluationReport>,
    /// Predictors that need no learning, on the same split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baselines: Option<Vec<Baseline>>,
}

/// Samples per split.
#[derive(Serialize)]
pub struct SplitSizes {
    /// Trained on.
    pub train: usize,
    /// Picks the epoch and stops early.
    pub val: usize,
    /// Reported.
    pub test: usize,
}

/// `wgtrain eval --json`.
#[derive(Serialize)]
pub struct EvalSummary {
    /// Always `"eval"`.
    pub command: &'static str,
    /// The model and where it ran.
    #[serde(flatten)]
    pub run: RunInfo,
    /// The dataset, as given.
    pub data: String,
    /// Which samples of it, in words.
    pub split: String,
    /// The results.
    pub test: EvaluationReport,
}

/// An evaluation with the scores derived from its confusion matrix.
#[derive(Serialize)]
pub struct EvaluationReport {
    /// Loss, samples and the task's metrics.
    #[serde(flatten)]
    pub evaluation: Evaluation,
    /// `confusion[true][predicted]` (classifiers with at most 256 classes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Vec<Vec<u64>>>,
    /// Precision, recall, F1 and support of each class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_class: Option<Vec<ClassScores>>,
    /// The unweighted mean of the classes' F1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<f64>,
}

impl From<&Evaluation> for EvaluationReport {
    fn from(e: &Evaluation) -> Self {
        let scores = e.confusion.as_deref().map(class_scores);
        EvaluationReport {
            evaluation: e.clone(),
            confusion: e.confusion.clone(),
            macro_f1: scores.as_ref().map(|s| s.1),
            per_class: scores.map(|s| s.0),
        }
    }
}

/// `wgtrain devices --json`.
#[derive(Serialize)]
pub struct DevicesSummary<'a> {
    /// Every adapter wgpu finds.
    pub adapters: &'a [AdapterSummary],
    /// The name of the one `--device gpu` uses; `null` when none.
    pub chosen: Option<&'a str>,
    /// The CPU device's matrix products' vector instructions
    /// (`CpuDevice::instruction_set`).
    pub cpu_instruction_set: &'static str,
}

/// One row of `wgtrain check --json`.
#[derive(Serialize)]
pub struct CheckRow {
    /// The op and its variant.
    pub op: String,
    /// The case's shapes, in words.
    pub shape: String,
    /// Whether every output was within tolerance.
    pub pass: bool,
    /// Largest absolute difference from the CPU.
    pub max_abs: Option<f32>,
    /// Largest relative difference from the CPU.
    pub max_rel: Option<f32>,
    /// Why the GPU could not run the case, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `wgtrain check --json`.
#[derive(Serialize)]
pub struct CheckSummary {
    /// The GPU adapter checked.
    pub adapter: String,
    /// Checks within tolerance.
    pub passed: usize,
    /// Checks run.
    pub total: usize,
    /// f16 checks not run: the adapter has no SHADER_F16.
    pub skipped_f16: usize,
    /// Each check.
    pub checks: Vec<CheckRow>,
}
