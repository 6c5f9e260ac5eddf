//! Building blocks the bundled trainers share, so each trainer is only its model and loss.
//!
//! * [`read_xy`] reads the `features` and `label` the host passes in the config out of the
//!   dataset reader into one dense row-major `f64` matrix (trainers of tabular models need every
//!   row for each optimiser step, as scikit-learn's solvers do).
//! * [`Scaling`] standardises the features for the optimiser; trainers fold it back into the
//!   exported weights, so models take raw features.
//! * [`Classes`] maps integer class labels to indices and back.
//! * [`lbfgs`] minimises a smooth loss (the solver scikit-learn uses by default for logistic
//!   regression).
//! * [`export`] writes the ONNX graphs of linear models.

mod data;
pub mod export;
mod lbfgs;

pub use data::{Classes, Scaling, Xy, read_xy};
pub use lbfgs::{Lbfgs, Minimum, lbfgs};

/// Config keys every trainer accepts: what the host passes for each training run.
pub const COMMON_KEYS: &[&str] = &["label", "features", "seed"];
