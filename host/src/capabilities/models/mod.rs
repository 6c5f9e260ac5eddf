//! Models: evaluation metrics for now; the registry, training jobs and tract serving join here
//! (the 'Model building' issue).

pub mod metrics;
