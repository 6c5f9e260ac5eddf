//! The host side of the `inference` import: plugins call served models by name.
//!
//! The runtime core does not know about models; it holds a
//! [`ModelRunner`](super::caps::ModelRunner) (implemented by the models centre) and the calling
//! plugin's [`Grants`](super::grants::Grants), and refuses a model the plugin was not granted
//! before anything runs.

use super::bindings::inference::{self, Tensor};
use super::state::HostState;

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
