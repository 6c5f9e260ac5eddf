//! What a plugin version may reach beyond its own memory, fixed at upload.
//!
//! Everything is denied unless granted: no models, no outbound hosts, no store prefixes, no
//! environment. Sockets, files and the host's own environment are never reachable (the WASI
//! context grants none).

use serde::{Deserialize, Serialize};

/// Grants set at upload (`?models=a,b&outbound=api.example.com,*.internal:8080&storage=raw/`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// Models the plugin may call through `inference.infer`; `*` grants every model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Hosts the plugin may send HTTP requests to through `wasi:http/outgoing-handler`: `host`
    /// (ports 80 and 443), `host:port`, or `*.domain` (any subdomain; ports as for `host`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound: Vec<String>,
    /// Store prefixes the plugin may read through the `storage` import, each ending with `/`
    /// (checked at upload by [`valid_storage_prefix`], and kept out of the host's namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<String>,
}

/// Longest object key a plugin may name (the store's own limit).
const MAX_KEY_BYTES: usize = 1024;

/// Whether `key` is a plain store key: relative, no `.`, `..` or empty segments (a prefix may end
/// with `/`), no NUL or backslash, at most [`MAX_KEY_BYTES`]. Keys are compared as written, so
/// anything a store might normalise into another key is refused rather than interpreted.
fn plain_key(key: &str) -> bool {
    let body = key.strip_suffix('/').unwrap_or(key);
    !body.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && !key.contains(['\0', '\\'])
        && body.split('/').all(|s| !matches!(s, "" | "." | ".."))
}

impl Grants {
    /// Whether model `name` (without `@version`) may be called.
    pub fn allows_model(&self, name: &str) -> bool {
        self.models.iter().any(|m| m == "*" || m == name)
    }

    /// Whether the plugin may read `key` (or list under it): a plain key under a granted prefix.
    pub fn allows_key(&self, key: &str) -> bool {
        plain_key(key) && self.storage.iter().any(|p| key.starts_with(p.as_str()))
    }

    /// Whether a grant names `ip` itself (an IP literal, with or without a port): only such a
    /// grant lets a plugin reach a loopback, private or link-local address.
    pub fn names_ip(&self, ip: std::net::IpAddr) -> bool {
        self.outbound
            .iter()
            .any(|entry| split_port(entry).0.parse::<std::net::IpAddr>() == Ok(ip))
    }

    /// Whether an outbound request to `host` (without brackets for IPv6) on `port` is allowed
    /// (a grant without a port allows 80 and 443).
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.outbound.iter().any(|entry| {
            let (pattern, want_port) = split_port(entry);
            // A bare host grant means the web's ports only, not every service on the host.
            let port_ok = match want_port {
                Some(p) => p == port,
                None => port == 80 || port == 443,
            };
            let host_ok = match pattern.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                None => pattern == host,
            };
            port_ok && host_ok
        })
    }
}

/// Checks a storage grant at upload: a plain key prefix ending with `/`. Whether it overlaps the
/// host's own namespace is the storage capability's to say.
pub fn valid_storage_prefix(prefix: &str) -> bool {
    prefix.ends_with('/') && plain_key(prefix)
}

/// `host:port` → (`host`, Some(port)); a bare host or IPv6 address → (host, None).
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        // [v6]:port
        return match rest.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (entry, None),
        };
    }
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

/// Checks an outbound grant entry at upload, so a typo is an error rather than a silent deny.
pub fn valid_host_pattern(entry: &str) -> bool {
    let (host, _) = split_port(entry);
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        return true;
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(hosts: &[&str]) -> Grants {
        Grants {
            outbound: hosts.iter().map(|h| h.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn hosts_ports_and_wildcards() {
        let g = grants(&["api.example.com", "127.0.0.1:9000", "*.internal"]);
        assert!(g.allows_host("api.example.com", 443));
        assert!(g.allows_host("API.example.com", 80));
        assert!(!g.allows_host("example.com", 443));
        assert!(!g.allows_host("evil-api.example.com", 443));
        assert!(g.allows_host("127.0.0.1", 9000));
        assert!(!g.allows_host("127.0.0.1", 9001));
        assert!(g.allows_host("a.internal", 443));
        assert!(g.allows_host("a.b.internal", 80));
        assert!(!g.allows_host("internal", 443));
        assert!(!g.allows_host("xinternal", 443));
        // A bare host means the web's ports only.
        assert!(!g.allows_host("api.example.com", 22));
        assert!(!g.allows_host("a.internal", 6379));
        assert!(!Grants::default().allows_host("api.example.com", 443));
    }

    #[test]
    fn storage_keys_must_be_plain_and_under_a_grant() {
        let g = Grants {
            storage: vec!["team-a/".into(), "shared/ref/".into()],
            ..Default::default()
        };
        for ok in ["team-a/x.csv", "team-a/", "team-a/sub/x", "shared/ref/a"] {
            assert!(g.allows_key(ok), "{ok}");
        }
        for bad in [
            "team-b/x.csv",
            "team-a",
            "team-ab/x",
            "TEAM-A/x",
            "shared/x",
            "/team-a/x",
            "team-a/../team-b/x",
            "team-a/./x",
            "team-a//x",
            "team-a/..",
            "team-a/x\0",
            "team-a\\..\\team-b",
            "",
            "team-a/x//",
        ] {
            assert!(!g.allows_key(bad), "{bad:?}");
        }
        assert!(!g.allows_key(&format!("team-a/{}", "x".repeat(MAX_KEY_BYTES))));
        assert!(!Grants::default().allows_key("team-a/x"));
    }

    #[test]
    fn storage_prefixes_checked_at_upload() {
        for ok in ["raw/", "a/b/", "team-a/2024/"] {
            assert!(valid_storage_prefix(ok), "{ok}");
        }
        for bad in [
            "", "/", "raw", "/raw/", "../raw/", "a//", "a/../", "./", "*",
        ] {
            assert!(!valid_storage_prefix(bad), "{bad:?}");
        }
    }

    #[test]
    fn ipv6_entries() {
        let g = grants(&["[::1]:8080", "::1"]);
        assert!(g.allows_host("::1", 8080));
        assert!(g.allows_host("::1", 443));
        assert!(!g.allows_host("::1", 1));
        assert!(g.names_ip("::1".parse().unwrap()));
        assert!(!grants(&["localhost"]).names_ip("127.0.0.1".parse().unwrap()));
        assert_eq!(split_port("[::1]:8080"), ("::1", Some(8080)));
        assert_eq!(split_port("::1"), ("::1", None));
    }

    #[test]
    fn patterns_checked_at_upload() {
        for ok in [
            "api.example.com",
            "127.0.0.1:9000",
            "*.internal",
            "[::1]:80",
        ] {
            assert!(valid_host_pattern(ok), "{ok}");
        }
        for bad in ["", "http://x.com", "x.com/path", "x.com:port", "*.", "a b"] {
            assert!(!valid_host_pattern(bad), "{bad}");
        }
    }
}
