#![warn(missing_docs)]
// A library does not print: it returns what it has to say (the command
// prints it, through src/cli/console.rs), and `println!` would panic on a
// closed stdout in the user's program.
#![warn(clippy::print_stdout, clippy::print_stderr)]
//! wgtrain: train classic neural models on a GPU through wgpu compute
//! shaders, with an ndarray CPU reference that every GPU result is checked
//! against.
//!
//! The layers, each using only those below it:
//!
//! - [`run`]: the verbs: fit, evaluate, predict, checkpoints, experiments;
//! - [`models`]: architectures as data ([`models::ModelSpec`]) built into
//!   [`models::Model`]s, and the five classic presets;
//! - [`nn`], [`loss`], [`optim`]: layers, losses and optimizers;
//! - [`data`]: loaders, splits and normalisation (beside the models, below
//!   `run`);
//! - [`device`]: the `Device` trait, `CpuDevice` (the reference) and
//!   `GpuDevice` with its WGSL kernels.
//!
//! [`prelude`] has what a training script needs. A complete example:
//!
//! ```no_run
//! use wgtrain::prelude::*;
//!
//! # fn main() -> wgtrain::Result<()> {
//! let dev = CpuDevice::new();
//! let mut config = ExperimentConfig::custom(parse_layers("dense:64,relu")?, "iris");
//! config.epochs = Some(50);
//! let mut run = Experiment::new(&dev, config)?;
//! run.run(&dev, &mut Silent, None)?;
//! let test = run.evaluate(&dev, "test")?.expect("iris has a test split");
//! println!("test {}", test.headline());
//! # Ok(())
//! # }
//! ```

pub mod bench;
pub mod check;
pub mod data;
pub mod device;
pub mod error;
pub mod loss;
pub mod models;
pub mod nn;
pub mod optim;
pub mod profile;
pub mod run;
pub mod tensor;

/// What a training script needs, in one import.
pub mod prelude {
    pub use crate::data::{Dataset, DeviceData, Prepared, Task};
    pub use crate::device::{Activation, CpuDevice, Device, GpuDevice, Tensor};
    pub use crate::error::{Error, Result};
    pub use crate::models::{
        parse_layers, FeatureShape, LayerSpec, Model, ModelSpec, Output, Preset,
    };
    pub use crate::optim::{OptimConfig, Optimizer, OptimizerKind, Schedule};
    pub use crate::run::{
        evaluate, fit, predict, Checkpoint, EpochEnd, Evaluation, Experiment, ExperimentConfig,
        Hooks, Silent, TrainConfig, TrainData, TrainState,
    };
}

pub use device::{CpuDevice, Device, GpuDevice, Tensor};
pub use error::{Error, Result};
pub use tensor::Shape;
