//! Where `aimass up` keeps things on local disk by default: the data dir (`./aimass-data`: the
//! admin token, the artifact key, the local cache of compiled artifacts) and, inside it, the file
//! store (`./aimass-data/store`). The store's root holds only objects, so no object key can name
//! a data-dir file.
//!
//! Hosts from before this layout used one directory for both. [`default_store`] moves such a
//! store's objects into `store/` on first start, crash-safely: objects go into `store.migrating/`
//! one top-level entry at a time (each a rename), and the directory is renamed to `store/` last,
//! so an interrupted migration resumes at the next start.

use anyhow::{Context, Result, bail};
use std::path::Path;

/// Entries of a shared directory that belong to the data dir and stay where they are.
const LOCAL_ENTRIES: &[&str] = &[
    "admin-token",
    "artifact-key",
    "cache",
    "store",
    "store.migrating",
];

/// The default store URL for `data_dir` (`file://<data_dir>/store`), after moving the objects of
/// an old shared layout there. Returns the URL and how many top-level entries were moved.
pub fn default_store(data_dir: &Path) -> Result<(String, usize)> {
    let store = data_dir.join("store");
    let moved = if store.exists() {
        if data_dir.join("auth").join("tokens.json").exists() {
            bail!(
                "{} holds both a store/ directory and an older host's store in the same \
                 directory; pass --store file://{} to keep using the older layout, or move its \
                 objects into store/ yourself",
                data_dir.display(),
                data_dir.display()
            );
        }
        0
    } else if is_shared_layout(data_dir) {
        migrate(data_dir, &store)?
    } else {
        0
    };
    Ok((format!("file://{}", store.display()), moved))
}

/// An older host's store in the data dir itself: its token list, or a migration under way.
fn is_shared_layout(data_dir: &Path) -> bool {
    data_dir.join("auth").join("tokens.json").exists() || data_dir.join("store.migrating").exists()
}

fn migrate(data_dir: &Path, store: &Path) -> Result<usize> {
    let staging = data_dir.join("store.migrating");
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let mut moved = 0;
    for entry in
        std::fs::read_dir(data_dir).with_context(|| format!("listing {}", data_dir.display()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| LOCAL_ENTRIES.contains(&n)) {
            continue;
        }
        std::fs::rename(entry.path(), staging.join(&name)).with_context(|| {
            format!(
                "moving {} into {}",
                entry.path().display(),
                staging.display()
            )
        })?;
        moved += 1;
    }
    std::fs::rename(&staging, store)
        .with_context(|| format!("renaming {} to {}", staging.display(), store.display()))?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_shared_directory_is_split_and_local_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(&d.join("auth/tokens.json"), "[]");
        write(&d.join("plugins/dedup/meta.json"), "{}");
        write(&d.join("raw/a.csv"), "a\n1\n");
        write(&d.join("admin-token"), "secret");
        write(&d.join("cache/compiled/e/x.cwasm"), "native");
        let (url, moved) = default_store(d).unwrap();
        assert_eq!(url, format!("file://{}", d.join("store").display()));
        assert_eq!(moved, 3);
        for key in ["auth/tokens.json", "plugins/dedup/meta.json", "raw/a.csv"] {
            assert!(d.join("store").join(key).exists(), "{key}");
            assert!(!d.join(key).exists(), "{key}");
        }
        for local in ["admin-token", "cache/compiled/e/x.cwasm"] {
            assert!(d.join(local).exists(), "{local}");
        }
        // Idempotent: the next start finds the new layout and moves nothing.
        assert_eq!(default_store(d).unwrap().1, 0);
        assert!(d.join("store/raw/a.csv").exists());
    }

    #[test]
    fn an_interrupted_migration_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Crashed after moving auth/ but before raw/.
        write(&d.join("store.migrating/auth/tokens.json"), "[]");
        write(&d.join("raw/a.csv"), "a\n1\n");
        assert_eq!(default_store(d).unwrap().1, 1);
        assert!(d.join("store/auth/tokens.json").exists());
        assert!(d.join("store/raw/a.csv").exists());
        assert!(!d.join("store.migrating").exists());
    }

    #[test]
    fn a_new_or_ambiguous_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Nothing there yet: nothing to move.
        assert_eq!(default_store(d).unwrap().1, 0);
        assert!(!d.join("store").exists());
        // An old store that also holds a user's `store/` prefix cannot be told apart: refuse.
        write(&d.join("auth/tokens.json"), "[]");
        write(&d.join("store/user.csv"), "x");
        let err = default_store(d).unwrap_err().to_string();
        assert!(err.contains("--store file://"), "{err}");
    }
}
