//! `noop` — an aimass cleaner that returns its input bytes unchanged.
//!
//! It never decodes the Arrow IPC stream and ignores its config, so a call measures only the
//! host's invocation overhead (instantiation, copying the input in and the output out). It uses
//! wit-bindgen directly instead of the guest SDK to stay as small as possible.

#[allow(dead_code, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "cleaner",
        path: "../../wit",
    });
}

use bindings::aimass::plugin::types::PluginError;

/// The plugin type bound to the `cleaner` world.
pub struct Noop;

impl bindings::Guest for Noop {
    fn clean(input: Vec<u8>, _config: Vec<(String, String)>) -> Result<Vec<u8>, PluginError> {
        Ok(input)
    }
}

#[cfg(target_arch = "wasm32")]
bindings::export!(Noop with_types_in bindings);

#[cfg(test)]
mod tests {
    use super::bindings::Guest;
    use super::*;

    #[test]
    fn returns_input_unchanged() {
        let input = b"not even arrow: noop never looks".to_vec();
        let config = vec![("anything".to_string(), "goes".to_string())];
        assert_eq!(Noop::clean(input.clone(), config).unwrap(), input);
        assert!(Noop::clean(Vec::new(), Vec::new()).unwrap().is_empty());
    }
}
