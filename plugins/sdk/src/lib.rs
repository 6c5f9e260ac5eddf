//! Guest SDK for aimass plugins.
//!
//! An aimass plugin is a WebAssembly component implementing one world of the `aimass:plugin`
//! WIT package: `collector`, `cleaner`, `transform` or `trainer`. The SDK ships that WIT (through
//! its `aimass-plugin-sdk-macro` dependency), so a plugin crate needs nothing but this crate. The raw WIT interface is bytes and string pairs; this crate turns it into what a
//! plugin author wants to write against:
//!
//! * [`Table`] and [`ipc`] — tabular data crosses the boundary as one Arrow IPC *stream*; the SDK
//!   decodes it (zero-copy) into a schema plus `RecordBatch`es and encodes results back.
//! * [`Config`] — typed access to the `list<tuple<string, string>>` config, with invalid-config
//!   errors that name the key and value, and an unknown-key check.
//! * [`Error`] — the WIT `plugin-error` (`invalid-input` → HTTP 422, `invalid-config` → 400,
//!   `internal` → 500); Arrow errors convert to invalid-input.
//! * [`log`] and [`progress`] — the host's logging and progress imports, usable from anywhere in
//!   plugin code (stderr / no-op in native unit tests).
//! * [`inference`] — call the host's served models (the ones the plugin was granted).
//! * [`storage`] — read objects under the store prefixes the plugin was granted.
//! * [`numeric`] — numeric columns as `f64` for statistics, without linking all of arrow-cast.
//! * The traits [`Collector`], [`Cleaner`], [`RawCleaner`], [`Transform`], [`Trainer`] and the
//!   macros [`export_collector!`], [`export_cleaner!`], [`export_raw_cleaner!`],
//!   [`export_transform!`], [`export_trainer!`] that bind one of them to its world.
//!
//! A whole cleaner:
//!
//! ```
//! use aimass_plugin_sdk::{Cleaner, Config, Result, Table, export_cleaner};
//!
//! struct DropEmpty;
//!
//! impl Cleaner for DropEmpty {
//!     fn clean(input: Table, config: &Config) -> Result<Table> {
//!         config.check_keys(&[])?;
//!         let (schema, batches) = input.into_parts();
//!         let batches = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
//!         Ok(Table::new(schema, batches))
//!     }
//! }
//!
//! export_cleaner!(DropEmpty);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release`: for that target rustc links a
//! component directly (`crate-type = ["cdylib"]`), ready for the host.

// The export macros name the SDK as `::aimass_plugin_sdk` (wit-bindgen's `runtime_path` and
// `with` paths become strings, so `$crate` cannot be used there); this lets the SDK's own tests
// expand them.
#[cfg(test)]
extern crate self as aimass_plugin_sdk;

mod config;
mod error;
mod host;
pub mod inference;
pub mod learn;
mod macros;
pub mod numeric;
pub mod onnx;
mod plugin;
#[cfg(test)]
mod smoke;
pub mod storage;
mod table;

pub use config::Config;
pub use error::{Error, Result};
pub use host::{Level, log, progress};
pub use plugin::{
    Cleaner, Collector, Dataset, DatasetSource, MemoryDataset, Model, RawCleaner, Source, Trainer,
    Transform,
};
pub use table::{Table, ipc};

/// The wit-bindgen the export macros expand to (plugins need not depend on it).
pub use wit_bindgen;

/// The Arrow crates the SDK is built on, for plugins that want the exact same versions.
pub mod arrow {
    pub use arrow_array as array;
    pub use arrow_buffer as buffer;
    pub use arrow_ipc as ipc;
    pub use arrow_schema as schema;
    pub use arrow_select as select;
}

// Compiles the example in plugins/README.md as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// Support code for the export macros. Not public API.
#[doc(hidden)]
pub mod __private {
    use crate::{
        Cleaner, Collector, Config, Dataset, DatasetSource, Error, Model, RawCleaner, Result,
        Source, Table, Trainer, Transform,
    };

    /// `generate!(path::to::wit_bindgen, { options })`: wit-bindgen's `generate!` with the `path`
    /// of the WIT the SDK ships.
    pub use aimass_plugin_sdk_macro::generate;

    /// The bindings of the `imports` world, generated once: the shared `types` and the host
    /// imports every world has (`logging`, `progress`, `inference`, `storage`). The SDK calls
    /// them directly; the export macros map each plugin world's imports onto these modules.
    pub mod wit {
        aimass_plugin_sdk_macro::generate!(::wit_bindgen, {
            world: "imports",
            // `Level` and `Tensor` are the SDK's public types; these match what they derived.
            additional_derives: [PartialEq, Eq, Hash],
        });
    }

    pub use wit::aimass::plugin::types::{PluginError, Source as WitSource};

    pub type Pairs = Vec<(String, String)>;

    /// The WIT `plugin-error` of an SDK error.
    pub fn plugin_error(error: Error) -> PluginError {
        match error {
            Error::InvalidInput(m) => PluginError::InvalidInput(m),
            Error::InvalidConfig(m) => PluginError::InvalidConfig(m),
            Error::Internal(m) => PluginError::Internal(m),
        }
    }

    /// The SDK's [`Source`] of the WIT `source` record (the fields move, the bytes stay put).
    pub fn source(s: WitSource) -> Source {
        Source {
            content_type: s.content_type,
            name: s.name,
            data: s.data,
        }
    }

    /// Keeps every host import of the `imports` world in the component, whichever of them the
    /// plugin calls. `wasm-component-ld` drops the imports a module does not use, so without
    /// this a plugin's imports would depend on which SDK functions it happens to reach; with it,
    /// every SDK plugin imports `logging`, `progress`, `inference` and `storage`, as components
    /// built with earlier SDKs do. Each export calls it first; it costs a few stores.
    #[inline]
    pub fn link_imports() {
        #[cfg(target_arch = "wasm32")]
        {
            use wit::aimass::plugin::{inference, logging, progress, storage};
            core::hint::black_box([
                logging::log as *const (),
                progress::report as *const (),
                inference::infer as *const (),
                storage::get as *const (),
                storage::list_keys as *const (),
            ]);
        }
    }

    pub fn collect<T: Collector>(source: Source, config: Pairs) -> Result<Vec<u8>> {
        T::collect(source, &Config::new(config))?.to_ipc()
    }

    pub fn clean<T: Cleaner>(input: Vec<u8>, config: Pairs) -> Result<Vec<u8>> {
        let input = Table::from_ipc(input)?;
        T::clean(input, &Config::new(config))?.to_ipc()
    }

    pub fn clean_raw<T: RawCleaner>(input: Vec<u8>, config: Pairs) -> Result<Vec<u8>> {
        T::clean_raw(input, &Config::new(config))
    }

    pub fn fit<T: Transform>(data: Vec<u8>, config: Pairs) -> Result<Vec<u8>> {
        let data = Table::from_ipc(data)?;
        T::fit(data, &Config::new(config))
    }

    pub fn apply<T: Transform>(input: Vec<u8>, state: Vec<u8>, config: Pairs) -> Result<Vec<u8>> {
        let input = Table::from_ipc(input)?;
        T::apply(input, &state, &Config::new(config))?.to_ipc()
    }

    pub fn train<T: Trainer>(reader: &dyn DatasetSource, config: Pairs) -> Result<Model> {
        T::train(&Dataset::new(reader), &Config::new(config))
    }
}
