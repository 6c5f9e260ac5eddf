//! The store as plugins see it through the `storage` import: reads only, never the host's own
//! namespace.
//!
//! The runtime checks each key against the plugin's grants before it gets here; this side keeps
//! out of [`RESERVED_PREFIXES`](super::storage::RESERVED_PREFIXES) as well, so a grant that
//! slipped past upload validation still could not reach token hashes or plugin records. Listing
//! keeps the `limit` smallest keys it meets, so a page costs memory for the page only, whatever
//! the store holds and in whatever order it lists (the local file store lists unsorted).

use super::storage::{Storage, is_reserved};
use crate::runtime::objects::ObjectReader;
use anyhow::{Result, bail};
use futures::StreamExt;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

fn outside(key: &str) -> Result<()> {
    if is_reserved(key) {
        bail!("{key:?} is in the host's own namespace");
    }
    Ok(())
}

impl ObjectReader for Storage {
    fn size<'a>(&'a self, key: &'a str) -> Boxed<'a, Option<u64>> {
        Box::pin(async move {
            outside(key)?;
            Ok(self.head(key).await?.map(|o| o.size))
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> Boxed<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            outside(key)?;
            Ok(Storage::get(self, key).await?.map(|b| b.to_vec()))
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
            // The store lists whole segments: list the prefix's directory, then filter.
            let dir = prefix.rfind('/').map_or("", |i| &prefix[..=i]);
            let mut page = BTreeSet::new();
            let mut listing = std::pin::pin!(self.list_info_stream(dir)?);
            while let Some(o) = listing.next().await {
                let key = o?.key;
                if !key.starts_with(prefix) || key.as_str() <= start_after || is_reserved(&key) {
                    continue;
                }
                page.insert(key);
                if page.len() > limit {
                    page.pop_last();
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
        let s = Storage::open(
            &format!("file://{}", dir.path().display()),
            &Default::default(),
        )
        .unwrap();
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
        assert_eq!(ObjectReader::size(&s, "a/1").await.unwrap(), Some(1));
        assert_eq!(ObjectReader::get(&s, "nope/x").await.unwrap(), None);
        assert!(ObjectReader::get(&s, "auth/tokens.json").await.is_err());
        assert!(ObjectReader::list(&s, "plugins/", "", 10).await.is_err());
    }
}
