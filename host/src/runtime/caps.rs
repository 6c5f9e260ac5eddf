//! What one call may reach beyond its own memory: served models and the object store, through
//! traits the centres implement, and the plugin's grants and environment.
//!
//! The runtime core knows neither models nor storage: it calls these traits, after checking the
//! plugin's [`Grants`] (see `inference` and `objects`).

use super::bindings::inference::Tensor;
use super::grants::Grants;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Runs a served model for a plugin.
pub trait ModelRunner: Send + Sync {
    /// Run `model` (`name`, `name@version` or `name@alias`) on `inputs`.
    fn infer<'a>(
        &'a self,
        model: &'a str,
        inputs: Vec<Tensor>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Tensor>, String>> + Send + 'a>>;
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send + 'a>>;

/// What reading one object found.
pub enum Read {
    Missing,
    /// Its size, over the limit: nothing of it was read.
    TooLarge(u64),
    Bytes(Vec<u8>),
}

/// Reads the host's object store for plugins. Keys are checked before they get here.
pub trait ObjectReader: Send + Sync {
    /// The object, if it holds at most `max` bytes.
    fn read<'a>(&'a self, key: &'a str, max: u64) -> Boxed<'a, Read>;
    /// Up to `limit` keys under `prefix` after `start_after`, in lexicographic order, without
    /// keys in the host's own namespace.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: &'a str,
        limit: usize,
    ) -> Boxed<'a, Vec<String>>;
}

/// The capabilities handed to one call: served models, the store, the plugin's grants and its
/// environment.
#[derive(Clone, Default)]
pub struct Capabilities {
    pub models: Option<Arc<dyn ModelRunner>>,
    /// The store, for the `storage` import (reads are checked against `grants` first).
    pub objects: Option<Arc<dyn ObjectReader>>,
    pub grants: Arc<Grants>,
    /// Environment variables set at upload, visible through `wasi:cli/environment`.
    pub env: Arc<[(String, String)]>,
}
