//! Compiled components: loading what the store holds at start, the local artifact cache the
//! loads map, and compiling (and caching) a new upload.

use super::{
    LiveVersion, LoadedFrom, PluginEntry, PluginRecord, Registry, UploadError, VersionRecord,
    records,
};

use super::records::{component_key, write_atomic};
use crate::runtime::Compiled;
use crate::runtime::ValidationError;
use anyhow::Context;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;

impl Registry {
    pub(super) fn compiled_key(&self, digest: &str) -> String {
        format!("compiled/{}/{digest}.cwasm", self.engine_hash)
    }

    pub(super) fn local_artifact(&self, digest: &str) -> PathBuf {
        self.opts
            .local_cache
            .join(&self.engine_hash)
            .join(format!("{digest}.cwasm"))
    }

    /// Load every stored plugin's live version, from the compiled cache when possible. A record
    /// that cannot be read or loaded is logged and skipped: one bad plugin never stops the host.
    pub async fn load_all(&self) -> anyhow::Result<usize> {
        let keys = self.storage.list("plugins").await?;
        let mut n = 0;
        for key in keys.iter().filter(|k| k.ends_with("/meta.json")) {
            let record = match self.storage.get_json::<PluginRecord>(key).await {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(key, "skipping unreadable plugin record: {e:#}");
                    continue;
                }
            };
            match self.load_record(record).await {
                Ok(()) => n += 1,
                Err(e) => tracing::error!(key, "could not load plugin: {e:#}"),
            }
        }
        Ok(n)
    }

    pub(super) async fn load_record(&self, record: PluginRecord) -> anyhow::Result<()> {
        let v = record
            .live_version()
            .context("record names no live version")?
            .clone();
        let (compiled, from) = self.load_version(&v.digest).await?;
        tracing::info!(plugin = record.name, version = v.version, loaded_from = ?from,
            ms = compiled.load_time.as_secs_f64() * 1e3, "plugin loaded");
        let live = self.live_version(&v, compiled, from);
        let name = record.name.clone();
        let entry = Arc::new(PluginEntry::new(record, live));
        self.plugins
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, entry);
        Ok(())
    }

    /// The compiled component of `digest`: mapped from the cache if an artifact exists and loads,
    /// else compiled again from the stored component (and cached again).
    pub(super) async fn load_version(
        &self,
        digest: &str,
    ) -> anyhow::Result<(Compiled, LoadedFrom)> {
        // The digest names local files and store keys: only a sha256 in hex may.
        anyhow::ensure!(records::valid_digest(digest), "invalid digest {digest:?}");
        if let Some(path) = self.cached_artifact(digest).await? {
            let rt = self.runtime.clone();
            let p = path.clone();
            match tokio::task::spawn_blocking(move || rt.load_compiled_file(&p)).await? {
                Ok(c) => return Ok((c, LoadedFrom::Cache)),
                Err(e) => {
                    tracing::warn!(digest, "cached artifact unusable, recompiling: {e:#}");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let bytes = self
            .storage
            .get(&component_key(digest))
            .await?
            .context("component bytes missing from the store")?;
        if hex::encode(Sha256::digest(&bytes)) != digest {
            self.metrics.record_security("component_rejected");
            anyhow::bail!("stored component bytes do not match their digest {digest}");
        }
        let (c, _) = self.compile_and_cache(bytes.to_vec(), digest).await?;
        Ok((c, LoadedFrom::Compiled))
    }

    pub(super) fn live_version(
        &self,
        v: &VersionRecord,
        c: Compiled,
        from: LoadedFrom,
    ) -> LiveVersion {
        LiveVersion {
            version: v.version,
            digest: v.digest.clone(),
            limits: self.opts.defaults.with_overrides(&v.overrides),
            grants: Arc::new(v.grants.clone()),
            env: v.env.iter().cloned().collect(),
            public: v.public,
            prepared: c.prepared,
            loaded_from: from,
            load_time: c.load_time,
        }
    }

    /// A local file holding the compiled artifact of `digest`, fetched from the store into the
    /// local cache if only the store has it with a valid seal; `None` otherwise (an artifact
    /// whose seal fails is counted, and replaced when the caller recompiles).
    pub(super) async fn cached_artifact(&self, digest: &str) -> anyhow::Result<Option<PathBuf>> {
        let path = self.local_artifact(digest);
        if path.exists() {
            return Ok(Some(path));
        }
        let Some(stored) = self.storage.get(&self.compiled_key(digest)).await? else {
            return Ok(None);
        };
        match self.opts.seal.open(&self.engine_hash, digest, &stored) {
            Some(artifact) => {
                write_atomic(&path, artifact)?;
                Ok(Some(path))
            }
            None => {
                self.metrics.record_security("artifact_rejected");
                tracing::warn!(
                    digest,
                    "stored compiled artifact has no valid seal; recompiling"
                );
                Ok(None)
            }
        }
    }

    /// Compile off the async threads, then store the artifact (object store and local cache) for
    /// later restarts.
    pub(super) async fn compile_and_cache(
        &self,
        bytes: Vec<u8>,
        digest: &str,
    ) -> Result<(Compiled, Vec<u8>), UploadError> {
        let rt = self.runtime.clone();
        let (compiled, artifact) = tokio::task::spawn_blocking(move || {
            let c = rt.compile(&bytes)?;
            let artifact = c
                .component
                .serialize()
                .map_err(|e| ValidationError::Invalid(format!("{e:#}")))?;
            Ok::<_, ValidationError>((c, artifact))
        })
        .await
        .map_err(|e| UploadError::Storage(e.into()))??;
        let sealed = self.opts.seal.seal(&self.engine_hash, digest, &artifact);
        self.storage
            .put(&self.compiled_key(digest), sealed)
            .await
            .map_err(UploadError::Storage)?;
        write_atomic(&self.local_artifact(digest), &artifact).map_err(UploadError::Storage)?;
        Ok((compiled, artifact))
    }
}
