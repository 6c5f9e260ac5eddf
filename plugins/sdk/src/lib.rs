//! Guest SDK for aimass plugins.
//!
//! An aimass plugin is a WebAssembly component implementing one world of the `aimass:plugin`
//! WIT package (`wit/` at the repository root): `collector`, `cleaner`, `transform` or
//! `trainer`. The raw WIT interface is bytes and string pairs; this crate turns it into what a
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

// The export macros name the SDK as `::aimass_plugin_sdk` (wit-bindgen's `runtime_path` is a
// string, so `$crate` cannot be used there); this lets the SDK's own tests expand them.
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
        Cleaner, Collector, Config, Dataset, DatasetSource, Model, RawCleaner, Result, Source,
        Table, Trainer, Transform,
    };

    pub use crate::host::HostImports;

    type Pairs = Vec<(String, String)>;

    pub fn install_host(imports: HostImports) {
        crate::host::install(imports);
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
