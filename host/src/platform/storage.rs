//! The object store every piece of host state lives in, chosen by URL.
//!
//! - `file://PATH` (default `file://<data dir>/store`, see `local_layout`): local files. `object_store`'s
//!   `LocalFileSystem` writes each object to a temporary file and renames it into place, so a crash
//!   never leaves a torn object. Deleting a directory's last object removes the directory, so a
//!   deleted `a/b` never blocks a later object `a`; a write into that directory at the same moment
//!   can then find it gone, and is retried (see [`Storage::put`]).
//! - `memory://`: in process, gone at exit (tests, experiments).
//! - `s3://BUCKET`: any S3-compatible server. Endpoint, region and credentials come from flags or
//!   the usual `AWS_*` environment variables; requests are path-style, and `http://` endpoints are
//!   allowed for local servers. S3 PUTs are atomic.
//!
//! Key layout (everything the host writes):
//!
//! | prefix | content |
//! |---|---|
//! | `plugins/{name}/meta.json` | plugin record: versions, live version, limit overrides |
//! | `components/{sha256}.wasm` | uploaded component bytes, content-addressed, immutable |
//! | `compiled/{engine-hash}/{sha256}.cwasm` | compiled artifacts for this engine build |
//! | `auth/tokens.json` | API tokens (SHA-256 hashes only) and their roles |
//! | `hooks/{name}.json` | object-event hook specs |
//! | `events/queue/{hook}/{id}.json` | deliveries accepted but not yet finished (embedded queue) |
//! | `events/dead/{hook}/{id}.json` | dead letters: the event, the error, the attempts |
//! | `events/poller/{prefix-digest}/{meta,xx}.json` | keys and etags the poller has seen, in 256 shards |
//! | `datasets/{name}/dataset.json` | dataset schema |
//! | `datasets/{name}/parts/{id}.parquet` + `.json` | a part and its manifest (commit marker) |
//! | `models/{name}/model.json`, `models/{name}/v{n}/…` | model versions, aliases and their files |
//! | `models/.jobs/{id}.json` | training jobs |
//! | `pipelines/specs/{name}.json`, `pipelines/runs/{id}.json` | pipeline specs and run records |
//! | `notifications/webhooks/{name}.json` | webhook subscriptions |
//! | `cache/` | reserved for the host's local cache when data dir and store share a directory |
//!
//! Everything else is the user's: the object API (`/v1/objects/...`) and external S3 clients write
//! there, and hooks watch it. [`RESERVED_PREFIXES`] and
//! [`RESERVED_FILES`] list what the object API refuses to touch.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::TryStreamExt;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Top-level prefixes the host owns. The object API refuses keys under them, so users cannot
/// read token hashes or forge plugin records, dataset parts or queue entries.
pub const RESERVED_PREFIXES: &[&str] = &[
    "plugins/",
    "components/",
    "compiled/",
    "auth/",
    "hooks/",
    "events/",
    "datasets/",
    "models/",
    "cache/",
    "pipelines/",
    "notifications/",
];

/// Names of the host's local files (in the data dir: the generated admin token, the key that
/// seals compiled artifacts). The data dir is outside the store's root by default, but an
/// operator may still point both at one directory, so no key may name these either.
pub const RESERVED_FILES: &[&str] = &["admin-token", "artifact-key"];

/// True if a key lies in the host's own namespace (see [`RESERVED_PREFIXES`] and
/// [`RESERVED_FILES`]), in any letter case: a case-insensitive file system (macOS and Windows
/// defaults) maps `Auth/` onto `auth/`, and folds Unicode as well (`K`, the Kelvin sign, is `k`;
/// `ſ` is `s`). Every check of a caller-supplied key goes through here.
pub fn is_reserved(key: &str) -> bool {
    let key = fold(key);
    RESERVED_FILES.contains(&&*key)
        || RESERVED_PREFIXES
            .iter()
            .any(|p| key.starts_with(p) || key == p.trim_end_matches('/'))
}

/// Case-folds a key the way case-insensitive file systems compare names: upper-casing first
/// maps letters such as `ſ` and `ı` onto their ASCII capitals, lower-casing then folds those
/// and the Kelvin sign. ASCII keys (the common case) are only lower-cased.
fn fold(key: &str) -> std::borrow::Cow<'_, str> {
    if key.is_ascii() {
        if key.bytes().any(|b| b.is_ascii_uppercase()) {
            return key.to_ascii_lowercase().into();
        }
        return key.into();
    }
    key.to_uppercase().to_lowercase().into()
}

/// What the store reports about one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub version: Option<String>,
    /// Last modification, Unix milliseconds (0 when the store does not say).
    pub modified_ms: i64,
}

impl ObjectInfo {
    fn from_meta(m: object_store::ObjectMeta) -> Self {
        ObjectInfo {
            key: m.location.to_string(),
            size: m.size,
            etag: m.e_tag,
            version: m.version,
            modified_ms: m.last_modified.timestamp_millis(),
        }
    }
}

/// Longest key, in bytes: S3's limit.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest segment between slashes, in bytes: a file name on the local store's file systems. S3
/// has no such limit, but keys that work on one backend work on the other.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// A store key as `object_store` takes it. Keys are used verbatim (no percent-encoding), so a key
/// an external S3 client wrote names the same object here; keys `object_store` cannot represent
/// (empty, `.`/`..` or empty segments, control characters) are refused, and so are keys over
/// [`MAX_KEY_BYTES`] or with a segment over [`MAX_SEGMENT_BYTES`].
pub fn path(key: &str) -> Result<Path> {
    // `Path::parse` would drop a leading '/', making "/auth/x" name "auth/x" after any check on
    // the raw key had passed.
    if key.starts_with('/') {
        anyhow::bail!("invalid object key {key:?}: keys do not start with '/'");
    }
    if key.len() > MAX_KEY_BYTES {
        anyhow::bail!(
            "invalid object key: {} bytes, the limit is {MAX_KEY_BYTES}",
            key.len()
        );
    }
    if key.split('/').any(|s| s.len() > MAX_SEGMENT_BYTES) {
        anyhow::bail!(
            "invalid object key {key:?}: a segment between slashes is over {MAX_SEGMENT_BYTES} bytes"
        );
    }
    Path::parse(key).map_err(|e| anyhow::anyhow!("invalid object key {key:?}: {e}"))
}

/// Whether a store error means "no such object". Besides `NotFound`, the local file store reports
/// a key under another object's key (`a/b` when `a` is a file) as the I/O error "not a
/// directory": no object can be there either.
fn missing(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
        || io_kind(e).is_some_and(|k| k == std::io::ErrorKind::NotADirectory)
}

/// A write failed because a directory on its path was not there (removed by a concurrent
/// delete's cleanup).
///
/// Two errors say so: "not found" (the write's directory was removed under it), and "already
/// exists" from creating that directory: `create_dir_all`'s `mkdir` met the directory another
/// writer had just made, and a delete removed it again before `create_dir_all` checked it (the
/// unit test below met it in a CI run). A real key conflict (a file where the key needs a
/// directory) can give "already exists" too; retried, it still ends as a [`KeyConflict`].
fn dir_vanished(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
        || matches!(
            io_kind(e),
            Some(std::io::ErrorKind::NotFound | std::io::ErrorKind::AlreadyExists)
        )
}

/// The kind of the I/O error behind a store error, if there is one.
fn io_kind(e: &object_store::Error) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

/// A write the local file store cannot hold: a key under another object's key (`a/b` when `a`
/// is an object), or a key that is another object's prefix (`a` when `a/b` exists). S3 takes
/// both; a file system cannot.
#[derive(Debug, thiserror::Error)]
#[error(
    "object key {0:?} conflicts with an existing object: this store cannot hold an object under \
     another object's key, or at another object's prefix"
)]
pub struct KeyConflict(pub String);

/// A write the store had no room for: the local file system is out of space or inodes (or a
/// disk quota is reached). Nothing was written; the caller may retry once space is freed.
#[derive(Debug, thiserror::Error)]
#[error("no room in the store for {0:?}: the file system is full (space or inodes)")]
pub struct StorageFull(pub String);

/// The error of a failed write of `key`: [`KeyConflict`] or [`StorageFull`] where that is the
/// cause.
fn write_error(key: &str, e: object_store::Error) -> anyhow::Error {
    use std::io::ErrorKind::{
        AlreadyExists, IsADirectory, NotADirectory, QuotaExceeded, StorageFull as NoSpace,
    };
    match io_kind(&e) {
        Some(NotADirectory | IsADirectory | AlreadyExists) => KeyConflict(key.to_string()).into(),
        Some(NoSpace | QuotaExceeded) => StorageFull(key.to_string()).into(),
        _ => anyhow::Error::new(e).context(format!("writing {key}")),
    }
}

/// S3 settings that are not part of the URL. Unset fields fall back to `AWS_*` variables.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// A handle on the host's object store.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<dyn ObjectStore>,
    url: String,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({})", self.url)
    }
}

impl Storage {
    /// Open the store a URL names (see the module docs for the schemes).
    pub fn open(url: &str, s3: &S3Options) -> Result<Storage> {
        let inner: Arc<dyn ObjectStore> = if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                bail!("file:// store URL needs a path, e.g. file://./aimass-data");
            }
            std::fs::create_dir_all(path).with_context(|| format!("creating {path}"))?;
            Arc::new(
                LocalFileSystem::new_with_prefix(path)
                    .with_context(|| format!("opening {path}"))?
                    .with_automatic_cleanup(true),
            )
        } else if url == "memory://" || url == "memory:" {
            Arc::new(InMemory::new())
        } else if let Some(rest) = url.strip_prefix("s3://") {
            let bucket = rest.trim_end_matches('/');
            if bucket.is_empty() || bucket.contains('/') {
                bail!("s3:// store URL takes a bucket name only, e.g. s3://aimass");
            }
            let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(e) = &s3.endpoint {
                b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
            } else if let Ok(e) = std::env::var("AWS_ENDPOINT_URL") {
                b = b
                    .with_endpoint(&e)
                    .with_allow_http(e.starts_with("http://"));
            }
            if let Some(r) = &s3.region {
                b = b.with_region(r);
            }
            if let Some(k) = &s3.access_key_id {
                b = b.with_access_key_id(k);
            }
            if let Some(s) = &s3.secret_access_key {
                b = b.with_secret_access_key(s);
            }
            Arc::new(b.build().context("configuring the S3 store")?)
        } else {
            bail!("unsupported store URL {url:?}: use file://PATH, memory:// or s3://BUCKET");
        };
        Ok(Storage {
            inner,
            url: url.to_string(),
        })
    }

    /// A key as a store path: [`path`], and on the local file store no '#', which its path
    /// mapping reads as the start of a URL fragment (every operation on such a key failed).
    pub fn key_path(&self, key: &str) -> Result<Path> {
        if key.contains('#') && self.url.starts_with("file://") {
            bail!("invalid object key {key:?}: the local file store cannot hold '#' in a key");
        }
        path(key)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether listing runs in this process (local files, memory): its cost is this host's CPU
    /// (a `stat` per object), not round trips to a server.
    pub fn lists_locally(&self) -> bool {
        !self.url.starts_with("s3://")
    }

    /// The object's bytes, or `None` if there is no such object.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.inner.get(&self.key_path(key)?).await {
            Ok(r) => Ok(Some(
                r.bytes().await.with_context(|| format!("reading {key}"))?,
            )),
            Err(e) if missing(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {key}")),
        }
    }

    /// The object's bytes if it holds at most `max` of them, else `Err(size)`; `None` if there
    /// is no such object. The size is the one of the version being read, checked before its
    /// bytes are, so an object replaced meanwhile by a larger one is never read whole.
    pub async fn get_at_most(&self, key: &str, max: u64) -> Result<Option<Result<Bytes, u64>>> {
        match self.inner.get(&self.key_path(key)?).await {
            Ok(r) if r.meta.size > max => Ok(Some(Err(r.meta.size))),
            Ok(r) => Ok(Some(Ok(r
                .bytes()
                .await
                .with_context(|| format!("reading {key}"))?))),
            Err(e) if missing(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {key}")),
        }
    }

    /// Write an object whole (atomic: readers see the old or the new bytes, never a mix).
    pub async fn put(&self, key: &str, bytes: impl Into<Bytes>) -> Result<()> {
        self.put_raw(key, bytes.into()).await?;
        Ok(())
    }

    /// Write an object. On the local store, a delete that empties the object's directory
    /// removes it, and a write into it at that moment fails with "not found" (the soak met this
    /// when the event queue drained: a 500 on an object PUT). The directory is recreated on
    /// the next attempt, so such writes are retried a few times.
    async fn put_raw(&self, key: &str, bytes: Bytes) -> Result<object_store::PutResult> {
        const ATTEMPTS: usize = 5;
        let location = self.key_path(key)?;
        let mut attempt = 1;
        loop {
            let payload = PutPayload::from_bytes(bytes.clone());
            match self.inner.put(&location, payload).await {
                Err(e) if attempt < ATTEMPTS && dir_vanished(&e) => attempt += 1,
                r => return r.map_err(|e| write_error(key, e)),
            }
        }
    }

    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.inner.head(&self.key_path(key)?).await {
            Ok(_) => Ok(true),
            Err(e) if missing(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("checking {key}")),
        }
    }

    /// Delete an object; deleting a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.inner.delete(&self.key_path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if missing(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting {key}")),
        }
    }

    /// Keys under a prefix (recursive).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .list_info(prefix)
            .await?
            .into_iter()
            .map(|m| m.key)
            .collect())
    }

    /// Objects under a prefix (recursive) with size, etag and modification time, as the store
    /// lists them: a large prefix is never held whole (the poller's passes).
    pub fn list_info_stream(
        &self,
        prefix: &str,
    ) -> Result<impl futures::Stream<Item = Result<ObjectInfo>> + Send + use<>> {
        self.list_info_stream_after(prefix, None)
    }

    /// Whether listings come in lexicographic key order (S3 and memory; the local file store
    /// lists in directory order).
    pub fn lists_sorted(&self) -> bool {
        !self.url.starts_with("file://")
    }

    /// [`Storage::list_info_stream`] from the first key after `after`: on S3 the listing starts
    /// there (`start-after`) rather than being filtered.
    pub fn list_info_stream_after(
        &self,
        prefix: &str,
        after: Option<&str>,
    ) -> Result<impl futures::Stream<Item = Result<ObjectInfo>> + Send + use<>> {
        let prefix = self.key_path(prefix)?;
        let described = prefix.to_string();
        let listing = match after {
            Some(after) => self
                .inner
                .list_with_offset(Some(&prefix), &self.key_path(after)?),
            None => self.inner.list(Some(&prefix)),
        };
        Ok(futures::StreamExt::filter_map(listing, move |r| {
            futures::future::ready(match r {
                Ok(m) => Some(Ok(ObjectInfo::from_meta(m))),
                // Under another object's key (local store): nothing can be listed there.
                Err(e) if missing(&e) => None,
                Err(e) => Some(Err(
                    anyhow::Error::new(e).context(format!("listing {described}"))
                )),
            })
        }))
    }

    /// [`Storage::list_info_stream`], collected.
    pub async fn list_info(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.list_info_stream(prefix)?.try_collect().await
    }

    /// Write an object whole and report what the store made of it (etag, version).
    pub async fn put_info(&self, key: &str, bytes: impl Into<Bytes>) -> Result<ObjectInfo> {
        let bytes: Bytes = bytes.into();
        let size = bytes.len() as u64;
        let r = self.put_raw(key, bytes).await?;
        Ok(ObjectInfo {
            key: key.to_string(),
            size,
            etag: r.e_tag,
            version: r.version,
            modified_ms: time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000,
        })
    }

    /// The object's metadata, or `None` if there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        match self.inner.head(&self.key_path(key)?).await {
            Ok(m) => Ok(Some(ObjectInfo::from_meta(m))),
            Err(e) if missing(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("checking {key}")),
        }
    }

    /// The object's bytes and metadata (of the same version), or `None`.
    /// An object's metadata and its bytes as a stream (never whole in memory).
    pub async fn get_stream(
        &self,
        key: &str,
    ) -> Result<Option<(ObjectInfo, BoxStream<'static, Result<Bytes>>)>> {
        match self.inner.get(&self.key_path(key)?).await {
            Ok(r) => {
                let info = ObjectInfo::from_meta(r.meta.clone());
                let described = key.to_string();
                let stream = r.into_stream().map_err(move |e| {
                    anyhow::Error::new(e).context(format!("reading {described}"))
                });
                Ok(Some((info, Box::pin(stream))))
            }
            Err(e) if missing(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {key}")),
        }
    }

    pub async fn get_info(&self, key: &str) -> Result<Option<(Bytes, ObjectInfo)>> {
        match self.inner.get(&self.key_path(key)?).await {
            Ok(r) => {
                let info = ObjectInfo::from_meta(r.meta.clone());
                let bytes = r.bytes().await.with_context(|| format!("reading {key}"))?;
                Ok(Some((bytes, info)))
            }
            Err(e) if missing(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {key}")),
        }
    }

    /// Whether the store honours create-only PUTs (`If-None-Match: *`). Garage and the local
    /// filesystem store differ here, and nothing in the host relies on it for correctness; the
    /// answer is reported in `/healthz` so operators know what a second writer could race.
    pub async fn probe_conditional_create(&self) -> Result<bool> {
        use object_store::{PutMode, PutOptions};
        let key = path(&format!("events/.probe/{}", rand::random::<u64>()))?;
        let create = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let first = self
            .inner
            .put_opts(&key, PutPayload::from_static(b"1"), create())
            .await;
        let honoured = match first {
            Err(object_store::Error::NotImplemented { .. }) => false,
            Err(e) => return Err(e).context("probing conditional create"),
            Ok(_) => matches!(
                self.inner
                    .put_opts(&key, PutPayload::from_static(b"2"), create())
                    .await,
                Err(object_store::Error::AlreadyExists { .. })
            ),
        };
        let _ = self.inner.delete(&key).await;
        Ok(honoured)
    }

    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key).await? {
            Some(b) => Ok(Some(
                serde_json::from_slice(&b).with_context(|| format!("parsing {key}"))?,
            )),
            None => Ok(None),
        }
    }

    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        self.put(key, serde_json::to_vec_pretty(value)?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_namespace_is_reserved_in_any_case() {
        for key in [
            "auth/tokens.json",
            "Auth/tokens.json",
            "AUTH",
            "Cache/compiled/x/y.cwasm",
            "admin-token",
            "Admin-Token",
            "ARTIFACT-KEY",
            "models/x",
            // Unicode folds of case-insensitive file systems: the Kelvin sign, the long s.
            "hoo\u{212a}s/x.json",
            "plugin\u{17f}/a/meta.json",
        ] {
            assert!(is_reserved(key), "{key}");
        }
        for key in [
            "authx/a",
            "my/auth/tokens.json",
            "admin-token.txt",
            "raw/Auth",
            "caché/x",
        ] {
            assert!(!is_reserved(key), "{key}");
        }
    }

    /// ENOSPC and EDQUOT from the local store become [`StorageFull`] (a 507 at the API), other
    /// I/O failures stay generic: an operator must be told the disk is full, not "writing x".
    #[test]
    fn a_full_file_system_is_named_as_such() {
        let failed = |kind: std::io::ErrorKind| {
            let source = Box::new(std::io::Error::new(kind, "os error"));
            let e = object_store::Error::Generic {
                store: "LocalFileSystem",
                source,
            };
            write_error("soak/1.csv", e)
        };
        for kind in [
            std::io::ErrorKind::StorageFull,
            std::io::ErrorKind::QuotaExceeded,
        ] {
            let e = failed(kind);
            let full = e
                .downcast_ref::<StorageFull>()
                .expect("a StorageFull error");
            assert_eq!(full.0, "soak/1.csv");
            assert!(e.to_string().contains("file system is full"), "{e}");
        }
        let other = failed(std::io::ErrorKind::PermissionDenied);
        assert!(other.downcast_ref::<StorageFull>().is_none());
        assert!(other.to_string().contains("writing soak/1.csv"), "{other}");
    }

    /// Writes into a directory that concurrent deletes keep emptying (and so removing), like the
    /// event queue of a hook that keeps up: every write must land.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writes_survive_concurrent_directory_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(
            &format!("file://{}", dir.path().display()),
            &Default::default(),
        )
        .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0..1000 {
                        let key = format!("q/h/{t}-{i}.json");
                        s.put(&key, "{}").await.unwrap();
                        s.delete(&key).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(s.list("q/").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn file_store_round_trip_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let s = Storage::open(&url, &S3Options::default()).unwrap();
        assert_eq!(s.get("a/b.json").await.unwrap(), None);
        s.put_json("a/b.json", &serde_json::json!({"x": 1}))
            .await
            .unwrap();
        s.put("a/c.bin", vec![1u8, 2]).await.unwrap();
        let v: serde_json::Value = s.get_json("a/b.json").await.unwrap().unwrap();
        assert_eq!(v["x"], 1);
        let mut keys = s.list("a").await.unwrap();
        keys.sort();
        assert_eq!(keys, vec!["a/b.json", "a/c.bin"]);
        s.delete("a/c.bin").await.unwrap();
        s.delete("a/c.bin").await.unwrap();
        assert!(!s.exists("a/c.bin").await.unwrap());
        // No temporary files are left behind by the atomic writes.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["b.json"]);
    }

    #[test]
    fn rejects_unknown_schemes() {
        let e = Storage::open("ftp://x", &S3Options::default()).unwrap_err();
        assert!(e.to_string().contains("unsupported store URL"));
        assert!(Storage::open("s3://", &S3Options::default()).is_err());
        assert!(Storage::open("memory://", &S3Options::default()).is_ok());
    }
}
