//! The names callers give things (plugins, datasets, hooks, pipelines, models, webhooks) and the
//! ids the host derives from content.

use sha2::{Digest, Sha256};

/// A name that is safe as a path segment and a store key segment: 1–64 characters of lowercase
/// ASCII letters, digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(c))
}

/// Hex SHA-256 of the parts, NUL-separated; first 32 hex digits (128 bits) are plenty for ids.
pub fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("csv-collector"));
        assert!(valid_name("a.b_c-1"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("Upper"));
        assert!(!valid_name("../etc"));
        assert!(!valid_name(&"x".repeat(65)));
    }

    #[test]
    fn digests_are_128_bit_hex_and_separate_parts() {
        assert_eq!(digest(&["a", "b"]).len(), 32);
        assert_ne!(digest(&["ab", ""]), digest(&["a", "b"]));
    }
}
