//! Models: evaluation metrics, ONNX loading and serving through tract, the versioned model
//! registry and training jobs.

pub mod batcher;
pub mod evaluate;
pub mod inference;
pub mod json_data;
pub mod onnx;
pub mod plans;
pub mod runner;
pub mod scores;
pub mod search;
pub mod split;
pub mod tensor;
pub mod train;
pub mod transforms;
pub mod versions;
