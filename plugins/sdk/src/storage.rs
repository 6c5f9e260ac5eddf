//! Reading the host's object store from a plugin (the WIT `storage` import), e.g. a lookup table
//! a collector joins its input with. The plugin must be granted a prefix at upload
//! (`storage=lookups/`); every other key is refused by the host.
//!
//! ```no_run
//! use aimass_plugin_sdk::storage;
//! let table = storage::get("lookups/countries.csv").unwrap();
//! let all = storage::list("lookups/").unwrap();
//! # let _ = (table, all);
//! ```

use crate::error::{Error, Result};

#[cfg(target_arch = "wasm32")]
use crate::__private::wit::aimass::plugin::storage as host;

/// The object at `key`, or `None` if there is none. A key outside the plugin's grants is an
/// [`Error::Internal`] with the host's message.
pub fn get(key: &str) -> Result<Option<Vec<u8>>> {
    #[cfg(target_arch = "wasm32")]
    {
        host::get(key).map_err(Error::internal)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = key;
        Err(no_host())
    }
}

/// One page of keys under `prefix` after `start_after` (exclusive; `""` from the start), sorted,
/// at most 1000.
pub fn list_page(prefix: &str, start_after: &str) -> Result<Vec<String>> {
    #[cfg(target_arch = "wasm32")]
    {
        host::list_keys(prefix, start_after).map_err(Error::internal)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (prefix, start_after);
        Err(no_host())
    }
}

/// Outside WebAssembly (native unit tests) there is no store to read.
#[cfg(not(target_arch = "wasm32"))]
fn no_host() -> Error {
    Error::internal("no host: the store can only be read inside aimass")
}

/// Every key under `prefix`, sorted, page after page.
pub fn list(prefix: &str) -> Result<Vec<String>> {
    let mut all: Vec<String> = Vec::new();
    loop {
        let after = all.last().map_or("", String::as_str);
        let page = list_page(prefix, after)?;
        if page.is_empty() {
            return Ok(all);
        }
        all.extend(page);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn outside_the_host_reads_are_errors() {
        let e = super::get("a/b").unwrap_err();
        assert!(e.message().contains("no host"), "{}", e.message());
        assert!(super::list("a/").is_err());
    }
}
