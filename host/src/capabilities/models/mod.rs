//! Models: evaluation metrics, ONNX loading and serving through tract, the versioned model
//! registry and training jobs.

pub mod batcher;
pub mod evaluate;
pub mod json_data;
pub mod metrics;
pub mod onnx;
pub mod plans;
pub mod registry;
pub mod runner;
pub mod search;
pub mod serve;
pub mod split;
pub mod tensor;
pub mod train;
pub mod transforms;
