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
//! * [`cholesky_solve`] solves the normal equations of ridge regression.
//! * [`Rng`] is a small seeded generator for weight initialisation and shuffling, so a seed
//!   gives the same model everywhere.
//! * [`export`] writes the ONNX graphs of linear models and MLPs.

mod data;
pub mod export;
mod lbfgs;
mod linalg;
mod rng;

pub use data::{Classes, Scaling, Xy, read_xy};
pub use lbfgs::{Lbfgs, Minimum, lbfgs};
pub use linalg::cholesky_solve;
pub use rng::Rng;

use crate::config::Config;
use crate::error::{Error, Result};

/// Config keys every trainer accepts: what the host passes for each training run (`task` is
/// `classification` or `regression`, decided by the job).
pub const COMMON_KEYS: &[&str] = &["label", "features", "seed", "task"];

/// The task the host asked for; `default` when the key is absent (a trainer run by hand).
pub fn task<'a>(config: &Config, default: &'a str) -> Result<&'a str> {
    config.choice("task", &["classification", "regression"], default)
}

/// Fail unless the task is `want` (a trainer that only does one kind).
pub fn require_task(config: &Config, want: &str) -> Result<()> {
    let got = task(config, want)?;
    if got != want {
        return Err(Error::invalid_config(format!(
            "this trainer does {want}, not {got}"
        )));
    }
    Ok(())
}
