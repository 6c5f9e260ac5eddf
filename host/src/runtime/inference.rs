//! The host side of the `inference` import: plugins call served models by name.
//!
//! The runtime core does not know about models; it holds a [`ModelRunner`] (implemented by the
//! models capability) and the calling plugin's [`Grants`](super::grants::Grants), and refuses a model the plugin was not
//! granted before anything runs.

use super::bindings::inference::{self, Tensor};
use super::state::HostState;
use std::future::Future;
use std::pin::Pin;

/// Runs a served model for a plugin.
pub trait ModelRunner: Send + Sync {
    /// Run `model` (`name`, `name@version` or `name@alias`) on `inputs`.
    fn infer<'a>(
        &'a self,
        model: &'a str,
        inputs: Vec<Tensor>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Tensor>, String>> + Send + 'a>>;
}

impl inference::Host for HostState {
    async fn infer(&mut self, model: String, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, String> {
        let name = model.split('@').next().unwrap_or_default();
        if !self.caps.grants.allows_model(name) {
            return Err(format!(
                "plugin `{}` is not granted model `{name}` (grant it at upload with models={name})",
                self.plugin
            ));
        }
        let runner = self
            .caps
            .models
            .clone()
            .ok_or("this host serves no models")?;
        runner.infer(&model, inputs).await
    }
}
