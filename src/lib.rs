//! wgtrain: train classic neural models on any GPU through wgpu compute
//! shaders, with an ndarray CPU reference that every GPU result is checked
//! against.
//!
//! The layers: [`device`] (the `Device` trait, `CpuDevice`, `GpuDevice` and
//! its WGSL kernels), then models, data and training built on top of it.

pub mod bench;
pub mod check;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod error;
pub mod experiment;
pub mod loss;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod optim;
pub mod profile;
pub mod tensor;
pub mod train;

pub use device::{CpuDevice, Device, GpuDevice, Tensor};
pub use error::{Error, Result};
pub use tensor::Shape;
