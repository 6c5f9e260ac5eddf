//! Uploads: a new version of a plugin is compiled, stored and swapped in; bundled plugins are
//! registered unless an admin replaced them; deletes.

use super::{
    LiveVersion, LoadedFrom, PluginEntry, PluginRecord, Registry, Settings, VersionRecord,
};

use super::records::{component_key, meta_key};
use crate::platform::clock::now_secs;
use crate::platform::names::valid_name;
use crate::runtime::{ValidationError, World};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// What an upload did.
#[derive(Debug, Clone, Serialize)]
pub struct UploadOutcome {
    pub name: String,
    pub version: u32,
    pub digest: String,
    pub world: World,
    pub size: u64,
    pub compile_ms: f64,
    /// False when the bytes and limits equal the live version's: nothing new was stored.
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(
        "invalid plugin name {0:?}: use 1-64 characters a-z, 0-9, '-', '_' or '.', starting with a letter or digit"
    )]
    BadName(String),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("storage error: {0:#}")]
    Storage(anyhow::Error),
}

impl Registry {
    /// Validate, store and compile a component, and make it the live version of `name`.
    ///
    /// Not cancellation-safe across its commit point: the API runs it in its own task so a
    /// client hanging up cannot leave the store and memory disagreeing.
    pub async fn upload(
        &self,
        name: &str,
        bytes: Vec<u8>,
        settings: Settings,
    ) -> Result<UploadOutcome, UploadError> {
        self.upload_as(name, bytes, settings, false).await
    }

    /// Register a plugin bundled in the binary, unless that would replace something an admin
    /// did: a missing plugin is registered; one whose live version is an older bundled one is
    /// upgraded; an uploaded version (or a stored record that failed to load) is left alone.
    pub async fn register_bundled(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<Option<UploadOutcome>, UploadError> {
        let live_is_bundled = match self.get(name) {
            Some(entry) => entry.record().live_version().is_some_and(|v| v.bundled),
            None => !self
                .storage
                .exists(&meta_key(name))
                .await
                .map_err(UploadError::Storage)?,
        };
        if !live_is_bundled {
            return Ok(None);
        }
        let o = self
            .upload_as(name, bytes.to_vec(), Settings::default(), true)
            .await?;
        Ok(o.created.then_some(o))
    }

    /// The record an upload adds a version to. A plugin not in memory may still have a stored
    /// record (it failed to load): continue its history rather than overwrite it.
    async fn record_to_extend(
        &self,
        name: &str,
        in_memory: bool,
    ) -> Result<PluginRecord, UploadError> {
        if in_memory && let Some(entry) = self.get(name) {
            return Ok(entry.record());
        }
        Ok(self
            .storage
            .get_json::<PluginRecord>(&meta_key(name))
            .await
            .map_err(UploadError::Storage)?
            .unwrap_or_else(|| PluginRecord::new(name)))
    }

    /// Store component bytes under their digest, unless already there (content-addressed).
    async fn store_component(&self, digest: &str, bytes: Vec<u8>) -> Result<(), UploadError> {
        let key = component_key(digest);
        if !self
            .storage
            .exists(&key)
            .await
            .map_err(UploadError::Storage)?
        {
            self.storage
                .put(&key, bytes)
                .await
                .map_err(UploadError::Storage)?;
        }
        Ok(())
    }

    /// Make `live` the version calls get: swapped into the plugin's entry, or a new entry.
    fn install(
        &self,
        name: &str,
        existing: Option<Arc<PluginEntry>>,
        record: PluginRecord,
        live: LiveVersion,
    ) {
        match existing {
            Some(entry) => entry.swap(record, live),
            None => {
                let entry = Arc::new(PluginEntry::new(record, live));
                self.plugins
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_string(), entry);
            }
        }
    }

    async fn upload_as(
        &self,
        name: &str,
        bytes: Vec<u8>,
        settings: Settings,
        bundled: bool,
    ) -> Result<UploadOutcome, UploadError> {
        if !valid_name(name) {
            return Err(UploadError::BadName(name.to_string()));
        }
        let digest = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        // Cheap checks first, so garbage never reaches the compiler.
        crate::runtime::check_header(&bytes)?;

        let _guard = self.writes.lock().await;
        let existing = self.get(name);
        let mut record = self.record_to_extend(name, existing.is_some()).await?;
        if existing.is_some()
            && let Some(live) = record.live_version()
            && live.digest == digest
            && live.settings() == settings
        {
            return Ok(UploadOutcome {
                name: name.to_string(),
                version: live.version,
                digest,
                world: live.world,
                size,
                compile_ms: 0.0,
                created: false,
            });
        }

        let (compiled, _) = self.compile_and_cache(bytes.clone(), &digest).await?;
        let world = compiled.prepared.world();
        let compile_ms = compiled.load_time.as_secs_f64() * 1e3;
        self.store_component(&digest, bytes).await?;
        let version = record.next_version();
        let v = VersionRecord {
            version,
            digest: digest.clone(),
            size,
            world,
            uploaded_at: now_secs(),
            compile_ms,
            overrides: settings.overrides,
            bundled,
            grants: settings.grants,
            env: settings.env,
            public: settings.public,
        };
        record.versions.push(v.clone());
        record.live = version;
        // Commit point.
        self.storage
            .put_json(&meta_key(name), &record)
            .await
            .map_err(UploadError::Storage)?;

        let live = self.live_version(&v, compiled, LoadedFrom::Compiled);
        self.install(name, existing, record, live);
        tracing::info!(plugin = name, version, %world, compile_ms, "plugin uploaded");
        Ok(UploadOutcome {
            name: name.to_string(),
            version,
            digest,
            world,
            size,
            compile_ms,
            created: true,
        })
    }

    /// Remove a plugin. Calls already running finish; its blobs stay (content-addressed, possibly
    /// shared) until a garbage collection.
    pub async fn delete(&self, name: &str) -> anyhow::Result<bool> {
        let _guard = self.writes.lock().await;
        if self.get(name).is_none() {
            return Ok(false);
        }
        self.storage.delete(&meta_key(name)).await?;
        self.plugins
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(true)
    }
}
