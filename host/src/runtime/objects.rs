//! The host side of the `storage` import: plugins read objects under the prefixes they were
//! granted.
//!
//! The runtime core does not know about the store; it holds an [`ObjectReader`](super::caps::ObjectReader)
//! (implemented by the plugins centre) and checks every key against the plugin's
//! [`Grants`](super::grants::Grants) before the reader sees it. A refused key gets one error
//! whatever the store holds, so a plugin cannot probe for objects outside its grants.

use super::bindings::storage;
use super::caps::{ObjectReader, Read};
use super::state::HostState;

/// Most keys one `list` call returns.
pub const LIST_PAGE: usize = 1000;

/// A key as error messages show it: quoted, and cut short if it is long.
fn shown(key: &str) -> String {
    match key.char_indices().nth(96) {
        Some((end, _)) => format!("{:?}... ({} bytes)", &key[..end], key.len()),
        None => format!("{key:?}"),
    }
}

impl HostState {
    /// The refusal for `key`, if the plugin may not read it.
    fn refuse(&self, what: &str, key: &str) -> Option<String> {
        let granted = &self.caps.grants.storage;
        (!self.caps.grants.allows_key(key)).then(|| {
            let grants = if granted.is_empty() {
                "none".to_string()
            } else {
                granted.join(", ")
            };
            format!(
                "plugin `{}` may not {what} {}: it is outside the storage prefixes it was \
                 granted ({grants}; grant one at upload with storage=PREFIX/)",
                self.plugin,
                shown(key)
            )
        })
    }

    /// A store failure as the plugin sees it: what failed, not the store's own words (which may
    /// name host paths); those go to the host's log.
    fn store_failed(&self, doing: &str, key: &str, e: anyhow::Error) -> String {
        tracing::warn!(plugin = %self.plugin, key, "storage import: {doing} failed: {e:#}");
        format!("{doing} {} failed in the store", shown(key))
    }

    fn reader(&self) -> Result<std::sync::Arc<dyn ObjectReader>, String> {
        self.caps
            .objects
            .clone()
            .ok_or_else(|| "this host gives plugins no store".to_string())
    }
}

impl storage::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
        if let Some(refusal) = self.refuse("read", &key) {
            return Err(refusal);
        }
        if key.ends_with('/') {
            // A store would read `a/` as the object `a`, which is outside the grant `a/`.
            return Err(format!("{key:?} is a prefix, not an object key"));
        }
        let reader = self.reader()?;
        match reader.read(&key, self.max_read_bytes).await {
            Ok(Read::Missing) => Ok(None),
            Ok(Read::Bytes(b)) => Ok(Some(b)),
            Ok(Read::TooLarge(size)) => Err(format!(
                "object {} is {size} bytes, over the plugin's limit of {} bytes",
                shown(&key),
                self.max_read_bytes
            )),
            Err(e) => Err(self.store_failed("reading", &key, e)),
        }
    }

    async fn list_keys(
        &mut self,
        prefix: String,
        start_after: String,
    ) -> Result<Vec<String>, String> {
        if let Some(refusal) = self.refuse("list", &prefix) {
            return Err(refusal);
        }
        let reader = self.reader()?;
        reader
            .list(&prefix, &start_after, LIST_PAGE)
            .await
            .map_err(|e| self.store_failed("listing", &prefix, e))
    }
}
