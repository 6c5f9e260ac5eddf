//! Sealed compiled artifacts: a compiled component is native code the host maps and runs, so an
//! artifact fetched from the store is mapped only if it carries a valid seal.
//!
//! The seal is an HMAC-SHA256 over (engine hash, component digest, artifact bytes) under a key
//! that never enters the store: `artifact-key` in the data dir (mode 0600), generated on first
//! start. Anyone who can write the bucket can replace `compiled/…` objects, but cannot seal them,
//! and binding the digest means a valid artifact of one plugin cannot stand in for another's.
//! Hosts sharing a store share artifacts only if they share the key (same file); any other host
//! recompiles from the component bytes, whose sha256 is checked against the digest.
//!
//! Stored form: `SEAL_MAGIC`, the 32-byte tag, then the artifact. The local cache (in the data dir,
//! beside the key) holds bare artifacts: whoever can write there can read the key too.

use anyhow::{Context, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;

/// Start of a sealed artifact object ("aimass sealed artifact, format 1").
const SEAL_MAGIC: &[u8; 8] = b"AIMSEAL1";
const TAG_LEN: usize = 32;

/// Name of the key file in the data dir.
pub const KEY_FILE: &str = "artifact-key";

pub struct Seal {
    key: [u8; 32],
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seal(..)")
    }
}

impl Seal {
    /// The key in `path`, created (random, mode 0600) if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Seal> {
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let key: [u8; 32] = rand::random();
            crate::platform::tokens::write_private(path, &hex::encode(key))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let key = hex::decode(text.trim())
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .with_context(|| format!("{} must hold 64 hex characters", path.display()))?;
        Ok(Seal { key })
    }

    fn mac(&self, engine_hash: &str, digest: &str, artifact: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        // Length-prefixed, so no two (engine, digest) pairs feed the same bytes.
        for part in [engine_hash.as_bytes(), digest.as_bytes()] {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac.update(artifact);
        mac
    }

    /// The stored form of `artifact`: magic, tag, artifact.
    pub fn seal(&self, engine_hash: &str, digest: &str, artifact: &[u8]) -> Vec<u8> {
        let tag = self
            .mac(engine_hash, digest, artifact)
            .finalize()
            .into_bytes();
        let mut out = Vec::with_capacity(SEAL_MAGIC.len() + TAG_LEN + artifact.len());
        out.extend_from_slice(SEAL_MAGIC);
        out.extend_from_slice(&tag);
        out.extend_from_slice(artifact);
        out
    }

    /// The artifact inside a stored object, if its seal is valid for this engine and digest
    /// (checked in constant time); `None` for anything else.
    pub fn open<'a>(&self, engine_hash: &str, digest: &str, stored: &'a [u8]) -> Option<&'a [u8]> {
        let rest = stored.strip_prefix(SEAL_MAGIC)?;
        if rest.len() < TAG_LEN {
            return None;
        }
        let (tag, artifact) = rest.split_at(TAG_LEN);
        self.mac(engine_hash, digest, artifact)
            .verify_slice(tag)
            .ok()
            .map(|()| artifact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_a_reserved_store_key() {
        assert!(crate::platform::storage::is_reserved(KEY_FILE));
    }

    #[test]
    fn a_seal_opens_only_for_its_key_engine_digest_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join(KEY_FILE);
        let seal = Seal::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = seal.seal("e1", "d1", b"native code");
        assert_eq!(seal.open("e1", "d1", &sealed), Some(&b"native code"[..]));
        // The same file gives the same key.
        let again = Seal::load_or_create(&path).unwrap();
        assert_eq!(again.open("e1", "d1", &sealed), Some(&b"native code"[..]));

        assert_eq!(seal.open("e1", "d2", &sealed), None, "another digest");
        assert_eq!(seal.open("e2", "d1", &sealed), None, "another engine");
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(seal.open("e1", "d1", &flipped), None, "changed bytes");
        assert_eq!(seal.open("e1", "d1", b"native code"), None, "unsealed");
        assert_eq!(seal.open("e1", "d1", &sealed[..20]), None, "truncated");
        let other = Seal::load_or_create(&dir.path().join("other")).unwrap();
        assert_eq!(other.open("e1", "d1", &sealed), None, "another key");
    }

    #[test]
    fn a_malformed_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, "short").unwrap();
        let err = Seal::load_or_create(&path).err().unwrap().to_string();
        assert!(err.contains("64 hex characters"), "{err}");
    }
}
