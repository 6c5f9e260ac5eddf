//! API tokens and roles.
//!
//! Tokens are random 256-bit secrets shown once; the store keeps only their SHA-256
//! (`auth/tokens.json`). Roles are ordered: `admin` ⊃ `invoker` ⊃ `reader`, i.e. an invoker may
//! also read and an admin may do everything.
//!
//! Bootstrap: if `AIMASS_TOKEN` is set when the host starts it is accepted as an admin token (kept
//! in memory only). Otherwise, on the first start with an empty token file, an admin token is
//! generated, its hash stored, and the token written to `{data_dir}/admin-token` (mode 0600),
//! never printed (logs keep stdout); the CLI reads that file when no token is given.
//! `AIMASS_TOKEN` must be at least [`MIN_ENV_TOKEN_CHARS`] characters.

use super::storage::Storage;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::RwLock;
use tokio_util::sync::CancellationToken;

const TOKENS_KEY: &str = "auth/tokens.json";
/// Shortest `AIMASS_TOKEN` accepted: an admin secret someone chose must not be guessable.
pub const MIN_ENV_TOKEN_CHARS: usize = 32;
/// File, in the data dir, holding the generated admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Invoker,
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reader" => Ok(Role::Reader),
            "invoker" => Ok(Role::Invoker),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("unknown role {s:?}: use admin, invoker or reader")),
        }
    }
}

/// A stored token: never the secret itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public identifier (first 12 hex digits of the hash), used to list and revoke.
    pub id: String,
    pub name: String,
    pub role: Role,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub hash: String,
    pub created_at: u64,
}

pub struct Tokens {
    storage: Storage,
    records: RwLock<Vec<TokenRecord>>,
    /// Serialises read-modify-write of the token list so concurrent creates and revokes never
    /// lose one another (a lost revoke would bring a token back).
    writes: tokio::sync::Mutex<()>,
    /// Hash of `AIMASS_TOKEN`, if set.
    env_admin: Option<String>,
    /// Cancelled when the token with this id is revoked: what holds a connection open on a
    /// token's authority (an event stream) watches it.
    revoked: std::sync::Mutex<std::collections::HashMap<String, CancellationToken>>,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of two hex digests.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A fresh random token.
pub fn generate() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("aimass_{}", hex::encode(bytes))
}

/// What `Tokens::bootstrap` did about the admin token.
#[derive(Debug)]
pub enum Bootstrap {
    /// `AIMASS_TOKEN` is the admin token.
    FromEnv,
    /// Tokens already existed; the admin token is wherever it was put the first time.
    Existing,
    /// A new admin token was generated and written to this file.
    Generated {
        token: String,
        file: std::path::PathBuf,
    },
}

impl Tokens {
    pub async fn load(storage: Storage, env_admin: Option<&str>) -> Result<Tokens> {
        let env_admin = env_admin.filter(|t| !t.is_empty());
        if let Some(t) = env_admin
            && t.chars().count() < MIN_ENV_TOKEN_CHARS
        {
            anyhow::bail!(
                "AIMASS_TOKEN must be at least {MIN_ENV_TOKEN_CHARS} characters (it has {}): \
                 use a random one, e.g. `openssl rand -hex 32`",
                t.chars().count()
            );
        }
        let records = storage
            .get_json::<Vec<TokenRecord>>(TOKENS_KEY)
            .await?
            .unwrap_or_default();
        Ok(Tokens {
            storage,
            records: RwLock::new(records),
            writes: tokio::sync::Mutex::new(()),
            env_admin: env_admin.map(hash),
            revoked: Default::default(),
        })
    }

    /// Make sure someone can administer the host (see the module docs).
    pub async fn bootstrap(&self, data_dir: &Path) -> Result<Bootstrap> {
        if self.env_admin.is_some() {
            return Ok(Bootstrap::FromEnv);
        }
        let has_admin = self.list().iter().any(|r| r.role == Role::Admin);
        if has_admin {
            return Ok(Bootstrap::Existing);
        }
        // The file first: if it cannot be written, no admin exists yet and the next start tries
        // again, instead of finding an admin whose token nobody has.
        let token = generate();
        std::fs::create_dir_all(data_dir)?;
        let file = data_dir.join(ADMIN_TOKEN_FILE);
        write_private(&file, &token)?;
        if let Err(e) = self.insert("bootstrap-admin", Role::Admin, &token).await {
            let _ = std::fs::remove_file(&file);
            return Err(e);
        }
        Ok(Bootstrap::Generated { token, file })
    }

    /// The role a bearer token grants, if any.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        let h = hash(token);
        if let Some(env) = &self.env_admin
            && same(env, &h)
        {
            return Some(Role::Admin);
        }
        self.records
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|r| same(&r.hash, &h))
            .map(|r| r.role)
    }

    /// Create a token; returns the secret (shown once) and its record.
    pub async fn create(&self, name: &str, role: Role) -> Result<(String, TokenRecord)> {
        let token = generate();
        let record = self.insert(name, role, &token).await?;
        Ok((token, record))
    }

    async fn insert(&self, name: &str, role: Role, token: &str) -> Result<TokenRecord> {
        let _guard = self.writes.lock().await;
        let h = hash(token);
        let record = TokenRecord {
            id: h[..12].to_string(),
            name: name.to_string(),
            role,
            hash: h,
            created_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let mut all = self.list_with_hashes();
        all.push(record.clone());
        self.storage.put_json(TOKENS_KEY, &all).await?;
        *self.records.write().unwrap_or_else(|e| e.into_inner()) = all;
        Ok(record)
    }

    /// Revoke a token by id. Returns whether it existed.
    pub async fn revoke(&self, id: &str) -> Result<bool> {
        let _guard = self.writes.lock().await;
        let mut all = self.list_with_hashes();
        let before = all.len();
        all.retain(|r| r.id != id);
        if all.len() == before {
            return Ok(false);
        }
        self.storage.put_json(TOKENS_KEY, &all).await?;
        *self.records.write().unwrap_or_else(|e| e.into_inner()) = all;
        let watchers = self
            .revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(w) = watchers {
            w.cancel();
        }
        Ok(true)
    }

    /// The id of a stored token (`None` for `AIMASS_TOKEN`, which cannot be revoked, and for
    /// unknown tokens).
    pub fn id_of(&self, token: &str) -> Option<String> {
        let h = hash(token);
        self.records
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|r| same(&r.hash, &h))
            .map(|r| r.id.clone())
    }

    /// Cancelled when token `id` is revoked.
    pub fn on_revoke(&self, id: &str) -> CancellationToken {
        let mut watchers = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        // A token revoked between its check and this call has no record left: cancelled now.
        let known = self.list_with_hashes().iter().any(|r| r.id == id);
        let w = watchers.entry(id.to_string()).or_default().clone();
        if !known {
            watchers.remove(id);
            w.cancel();
        }
        w
    }

    fn list_with_hashes(&self) -> Vec<TokenRecord> {
        self.records
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Tokens without their hashes.
    pub fn list(&self) -> Vec<TokenRecord> {
        self.list_with_hashes()
            .into_iter()
            .map(|r| TokenRecord {
                hash: String::new(),
                ..r
            })
            .collect()
    }
}

/// Write a secret to a file only its owner can read.
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    // `mode` only applies to a new file; an existing one is tightened too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::storage::S3Options;

    #[test]
    fn local_files_are_reserved_store_keys() {
        use crate::platform::storage::is_reserved;
        assert!(is_reserved(ADMIN_TOKEN_FILE));
    }

    #[tokio::test]
    async fn bootstrap_create_check_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open("memory://", &S3Options::default()).unwrap();
        let tokens = Tokens::load(storage.clone(), None).await.unwrap();
        let Bootstrap::Generated { token, file } = tokens.bootstrap(dir.path()).await.unwrap()
        else {
            panic!("expected a generated token")
        };
        assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(tokens.role_of(&token), Some(Role::Admin));
        assert_eq!(tokens.role_of("aimass_wrong"), None);
        // A second start finds the admin and generates nothing.
        let again = Tokens::load(storage.clone(), None).await.unwrap();
        assert!(matches!(
            again.bootstrap(dir.path()).await.unwrap(),
            Bootstrap::Existing
        ));
        assert_eq!(again.role_of(&token), Some(Role::Admin));
        let (reader, rec) = again.create("r", Role::Reader).await.unwrap();
        assert_eq!(again.role_of(&reader), Some(Role::Reader));
        assert!(again.list().iter().all(|r| r.hash.is_empty()));
        assert!(again.revoke(&rec.id).await.unwrap());
        assert_eq!(again.role_of(&reader), None);
        assert!(!again.revoke(&rec.id).await.unwrap());
    }

    /// On a file store (writes go through the blocking pool and yield) and several threads, so
    /// read-modify-write cycles really interleave without the lock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_creates_and_revokes_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let storage = Storage::open(&url, &S3Options::default()).unwrap();
        let tokens = std::sync::Arc::new(Tokens::load(storage.clone(), None).await.unwrap());
        let (victim, victim_rec) = tokens.create("victim", Role::Reader).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..20 {
            let t = tokens.clone();
            tasks.push(tokio::spawn(async move {
                t.create(&format!("t{i}"), Role::Invoker).await.unwrap().0
            }));
        }
        let t = tokens.clone();
        let revoke = tokio::spawn(async move { t.revoke(&victim_rec.id).await.unwrap() });
        let created: Vec<String> = futures::future::join_all(tasks)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert!(revoke.await.unwrap());
        // In memory and in the store (a restart) alike.
        let reloaded = Tokens::load(storage, None).await.unwrap();
        for t in [&*tokens, &reloaded] {
            assert_eq!(t.role_of(&victim), None, "revoked token came back");
            for c in &created {
                assert_eq!(t.role_of(c), Some(Role::Invoker));
            }
        }
    }

    #[tokio::test]
    async fn an_existing_token_file_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(ADMIN_TOKEN_FILE);
        std::fs::write(&file, "old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let storage = Storage::open("memory://", &S3Options::default()).unwrap();
            let tokens = Tokens::load(storage, None).await.unwrap();
            tokens.bootstrap(dir.path()).await.unwrap();
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[tokio::test]
    async fn env_token_is_admin() {
        let storage = Storage::open("memory://", &S3Options::default()).unwrap();
        let chosen = "s3cret-chosen-by-an-admin-32-chars";
        let tokens = Tokens::load(storage.clone(), Some(chosen)).await.unwrap();
        assert_eq!(tokens.role_of(chosen), Some(Role::Admin));
        assert_eq!(tokens.role_of(&chosen[1..]), None);
        let short = Tokens::load(storage, Some("s3cret")).await.err().unwrap();
        assert!(
            short
                .to_string()
                .contains("at least 32 characters (it has 6)")
        );
    }
}
