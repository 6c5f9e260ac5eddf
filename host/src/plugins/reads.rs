//! The store as plugins see it through the `storage` import: reads only, never the host's own
//! namespace.
//!
//! The runtime checks each key against the plugin's grants before it gets here; this side keeps
//! out of [`RESERVED_PREFIXES`](super::storage::RESERVED_PREFIXES) as well, so a grant that
//! slipped past upload validation still could not reach token hashes or plugin records. Listing
//! keeps the `limit` smallest keys it meets, so a page costs memory for the page only, whatever
//! the store holds and in whatever order it lists. S3 lists in order, so a page starts where the
//! last one ended and stops when full; the local file store lists unsorted, so each page walks
//! the directory.

use crate::platform::storage::{Storage, is_reserved};
use crate::runtime::{ObjectReader, Read};
use anyhow::{Result, bail};
use futures::StreamExt;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Refuses the host's namespace (in any case, see [`is_reserved`]).
fn outside(key: &str) -> Result<()> {
    if is_reserved(key) {
        bail!("{key:?} is in the host's own namespace");
    }
    Ok(())
}

impl ObjectReader for Storage {
    fn read<'a>(&'a self, key: &'a str, max: u64) -> Boxed<'a, Read> {
        Box::pin(async move {
            outside(key)?;
            Ok(match self.get_at_most(key, max).await? {
                None => Read::Missing,
                Some(Err(size)) => Read::TooLarge(size),
                Some(Ok(bytes)) => Read::Bytes(Vec::from(bytes)),
            })
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: &'a str,
        limit: usize,
    ) -> Boxed<'a, Vec<String>> {
        Box::pin(async move {
            outside(prefix)?;
            // The store lists whole segments: list the prefix's directory, then filter. A store
            // that lists in order starts after `start_after` and stops once the page is full.
            let dir = prefix.rfind('/').map_or("", |i| &prefix[..=i]);
            let sorted = self.lists_sorted();
            let after = (sorted && start_after > dir).then_some(start_after);
            let mut page = BTreeSet::new();
            let mut listing = std::pin::pin!(self.list_info_stream_after(dir, after)?);
            while let Some(o) = listing.next().await {
                let key = o?.key;
                if !key.starts_with(prefix) || key.as_str() <= start_after || is_reserved(&key) {
                    continue;
                }
                page.insert(key);
                if page.len() > limit {
                    page.pop_last();
                }
                if sorted && page.len() == limit {
                    break;
                }
            }
            Ok(page.into_iter().collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pages_are_sorted_bounded_and_stay_under_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let local = format!("file://{}", dir.path().display());
        for url in [local.as_str(), "memory://"] {
            pages_of(Storage::open(url, &Default::default()).unwrap()).await;
        }
    }

    async fn pages_of(s: Storage) {
        for k in ["a/3", "a/1", "a/2", "a/sub/x", "ab/1", "b/1"] {
            s.put(k, "x").await.unwrap();
        }
        let list = |p: &'static str, after: &'static str, n| {
            let s = s.clone();
            async move { ObjectReader::list(&s, p, after, n).await.unwrap() }
        };
        assert_eq!(list("a/", "", 10).await, ["a/1", "a/2", "a/3", "a/sub/x"]);
        assert_eq!(list("a/", "", 2).await, ["a/1", "a/2"]);
        assert_eq!(list("a/", "a/2", 2).await, ["a/3", "a/sub/x"]);
        assert_eq!(list("a/s", "", 10).await, ["a/sub/x"]);
        assert!(list("c/", "", 10).await.is_empty());
        assert!(matches!(s.read("a/1", 1).await.unwrap(), Read::Bytes(b) if b == b"x"));
        assert!(matches!(s.read("a/1", 0).await.unwrap(), Read::TooLarge(1)));
        assert!(matches!(s.read("nope/x", 9).await.unwrap(), Read::Missing));
        assert!(s.read("auth/tokens.json", 9).await.is_err());
        assert!(s.read("Plugins/x", 9).await.is_err());
        assert!(ObjectReader::list(&s, "plugins/", "", 10).await.is_err());
    }
}
