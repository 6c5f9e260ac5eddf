//! What the registry persists, where, and how a local file is written safely.

use crate::runtime::Grants;
use crate::runtime::World;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// One immutable version of a plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: u32,
    pub digest: String,
    pub size: u64,
    pub world: World,
    /// Seconds since the Unix epoch.
    pub uploaded_at: u64,
    pub compile_ms: f64,
    /// Limits set at upload for this version (the rest come from the host defaults).
    #[serde(default)]
    pub overrides: super::governor::Overrides,
    /// Registered from the plugins bundled in the binary: a newer binary may replace it with its
    /// own bundled version, but never replaces a version someone uploaded.
    #[serde(default)]
    pub bundled: bool,
    /// What the plugin may reach (models it may call, outbound hosts), set at upload.
    #[serde(default, skip_serializing_if = "is_default")]
    pub grants: Grants,
    /// Environment variables the plugin sees through WASI, set at upload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    /// HTTP functions only: served at `/fn/{name}` without a token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
}

impl VersionRecord {
    /// The settings this version was uploaded with.
    pub fn settings(&self) -> Settings {
        Settings {
            overrides: self.overrides,
            grants: self.grants.clone(),
            env: self.env.clone(),
            public: self.public,
        }
    }
}

/// Everything an upload sets besides the component bytes. Uploading the same bytes with the same
/// settings is a no-op; changing either makes a new version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub overrides: super::governor::Overrides,
    pub grants: Grants,
    pub env: Vec<(String, String)>,
    pub public: bool,
}

fn is_default(g: &Grants) -> bool {
    *g == Grants::default()
}

/// What is stored per plugin, at `plugins/{name}/meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginRecord {
    pub name: String,
    pub live: u32,
    pub versions: Vec<VersionRecord>,
}

impl PluginRecord {
    pub fn new(name: &str) -> Self {
        PluginRecord {
            name: name.to_string(),
            live: 0,
            versions: Vec::new(),
        }
    }

    pub fn live_version(&self) -> Option<&VersionRecord> {
        self.versions.iter().find(|v| v.version == self.live)
    }

    pub fn next_version(&self) -> u32 {
        self.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1
    }
}

pub fn meta_key(name: &str) -> String {
    format!("plugins/{name}/meta.json")
}

pub fn component_key(digest: &str) -> String {
    format!("components/{digest}.wasm")
}

/// A component digest as the registry writes it: a sha256 in 64 lowercase hex characters.
/// Records come from the store, which others may write; a digest names files and keys.
pub fn valid_digest(d: &str) -> bool {
    d.len() == 64 && d.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Write a file so readers see all of it or nothing, also after a power cut: a temp file in the
/// same directory, synced, then renamed over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("cache path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", rand::random::<u64>()));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        assert!(valid_digest(&"ab01".repeat(16)));
        assert!(!valid_digest(&"AB01".repeat(16)));
        assert!(!valid_digest(&"ab01".repeat(15)));
        assert!(!valid_digest(&format!("../../{}", "a".repeat(58))));
        assert!(!valid_digest(""));
    }

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.cwasm");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two!").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two!");
        assert_eq!(std::fs::read_dir(dir.path().join("a")).unwrap().count(), 1);
    }
}
