//! What a user declares with `PUT /v1/hooks/{name}`, and its validation.

use crate::ingest::events::EventKind;
use crate::platform::names::valid_name;
use crate::platform::storage::is_reserved;
use serde::{Deserialize, Serialize};

/// Retries after the first failure, by default (AWS Lambda's async default is 2; one more here
/// because plugin deadlines are short).
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// First retry delay; doubled per attempt, capped at [`MAX_BACKOFF_MS`].
pub const DEFAULT_BACKOFF_MS: u64 = 500;
pub const MAX_BACKOFF_MS: u64 = 60_000;
/// Longest per-call deadline a hook may set (one hour).
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Most retries a hook may ask for.
pub const MAX_RETRIES: u32 = 100;

/// A hook: run `plugin` on objects landing under `prefix`, writing parts of dataset `output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSpec {
    pub plugin: String,
    /// Key prefix watched: a user prefix such as `raw/sales/`, or `datasets/{name}/` for a
    /// dataset's new parts.
    pub prefix: String,
    /// Only keys ending with this (e.g. `.csv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// Which events fire the hook. `created` runs the plugin; `deleted` retracts the parts this
    /// hook made from the deleted object.
    #[serde(default = "default_events")]
    pub events: Vec<EventKind>,
    /// Dataset the plugin's output is committed to.
    pub output: String,
    /// Plugin configuration (values may be strings, numbers or booleans).
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Deadline per call in ms, instead of the plugin's own.
    #[serde(default, alias = "timeout", skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// First retry delay in ms (doubles per attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
}

fn default_events() -> Vec<EventKind> {
    vec![EventKind::Created]
}

impl HookSpec {
    /// Check everything that does not need the registry. `Err` says which field is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_name(&self.plugin) {
            return Err(format!("plugin: {:?} is not a plugin name", self.plugin));
        }
        if !valid_name(&self.output) {
            return Err(format!(
                "output: {:?} is not a dataset name (letters, digits, '-', '_')",
                self.output
            ));
        }
        if self.prefix.is_empty() {
            return Err("prefix: must not be empty (hooks never watch the whole store)".into());
        }
        if self.prefix.starts_with('/') || self.prefix.contains("//") {
            return Err(format!("prefix: {:?} is not a key prefix", self.prefix));
        }
        let covers_reserved = crate::platform::storage::RESERVED_PREFIXES
            .iter()
            .chain(std::iter::once(&crate::platform::tokens::ADMIN_TOKEN_FILE))
            .any(|r| r.starts_with(self.prefix.as_str()));
        if (is_reserved(&self.prefix) || covers_reserved) && self.dataset_source().is_none() {
            return Err(format!(
                "prefix: {:?} is inside the host's own namespace; watch a user prefix or \
                 datasets/NAME/",
                self.prefix
            ));
        }
        if self.events.is_empty() {
            return Err("events: list at least one of \"created\", \"deleted\"".into());
        }
        for (k, v) in &self.config {
            if v.is_object() || v.is_array() || v.is_null() {
                return Err(format!(
                    "config.{k}: values must be strings, numbers or booleans"
                ));
            }
        }
        if self
            .timeout_ms
            .is_some_and(|t| t == 0 || t > MAX_TIMEOUT_MS)
        {
            return Err(format!("timeout_ms: 1 to {MAX_TIMEOUT_MS}"));
        }
        if self.max_retries.is_some_and(|r| r > MAX_RETRIES) {
            return Err(format!("max_retries: at most {MAX_RETRIES}"));
        }
        if self.backoff_ms.is_some_and(|b| b > MAX_BACKOFF_MS) {
            return Err(format!("backoff_ms: at most {MAX_BACKOFF_MS}"));
        }
        Ok(())
    }

    /// The dataset whose parts this hook consumes, if its prefix is `datasets/{name}/`.
    pub fn dataset_source(&self) -> Option<&str> {
        let name = self.prefix.strip_prefix("datasets/")?.strip_suffix('/')?;
        valid_name(name).then_some(name)
    }

    /// Whether an event fires this hook. A hook on a dataset always hears of retracted parts
    /// (whatever `events` says), so what it derived from them is retracted too and derived
    /// datasets never keep rows their sources no longer have.
    pub fn matches(&self, key: &str, kind: EventKind) -> bool {
        key.starts_with(&self.prefix)
            && self.suffix.as_deref().is_none_or(|s| key.ends_with(s))
            && (self.events.contains(&kind)
                || (kind == EventKind::Deleted && self.dataset_source().is_some()))
    }

    /// Config as the plugin call takes it.
    pub fn config_pairs(&self) -> Vec<(String, String)> {
        self.config
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect()
    }

    pub fn max_retries(&self) -> u32 {
        self.max_retries.unwrap_or(DEFAULT_MAX_RETRIES)
    }

    /// Delay before retry number `attempt` (1-based): exponential with ±25% jitter.
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        let base = self.backoff_ms.unwrap_or(DEFAULT_BACKOFF_MS) as f64;
        let ms =
            (base * 2f64.powi(attempt.saturating_sub(1).min(20) as i32)).min(MAX_BACKOFF_MS as f64);
        let jitter = 0.75 + rand::random::<f64>() * 0.5;
        std::time::Duration::from_millis((ms * jitter) as u64)
    }
}

/// A hook as stored at `hooks/{name}.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookRecord {
    pub name: String,
    #[serde(flatten)]
    pub spec: HookSpec,
    #[serde(default)]
    pub paused: bool,
    pub created_ms: u64,
    pub updated_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Result<HookSpec, String> {
        let s: HookSpec = serde_json::from_value(json).map_err(|e| e.to_string())?;
        s.validate().map(|_| s)
    }

    #[test]
    fn validation_names_the_field() {
        let ok = spec(
            serde_json::json!({"plugin":"csv-collector","prefix":"raw/sales/",
            "suffix":".csv","output":"sales-raw","config":{"delimiter":",","n":3}}),
        )
        .unwrap();
        assert!(ok.matches("raw/sales/a.csv", EventKind::Created));
        assert!(!ok.matches("raw/sales/a.txt", EventKind::Created));
        assert!(!ok.matches("raw/sales/a.csv", EventKind::Deleted));
        assert!(!ok.matches("raw/other/a.csv", EventKind::Created));
        assert_eq!(ok.config_pairs()[1], ("n".to_string(), "3".to_string()));
        let err = |j| spec(j).unwrap_err();
        assert!(
            err(serde_json::json!({"plugin":"p","prefix":"","output":"o"})).starts_with("prefix")
        );
        assert!(
            err(serde_json::json!({"plugin":"p","prefix":"auth/","output":"o"}))
                .starts_with("prefix")
        );
        assert!(
            err(serde_json::json!({"plugin":"p","prefix":"a/","output":"o/x"}))
                .starts_with("output")
        );
        assert!(
            err(serde_json::json!({"plugin":"p","prefix":"a/","output":"o","events":[]}))
                .starts_with("events")
        );
        assert!(
            err(serde_json::json!({"plugin":"p","prefix":"a/","output":"o","config":{"x":[1]}}))
                .starts_with("config.x")
        );
        assert!(
            err(serde_json::json!({"plugin":"p","prefix":"a/","output":"o","bogus":1}))
                .contains("bogus")
        );
        let ds =
            spec(serde_json::json!({"plugin":"p","prefix":"datasets/sales-raw/","output":"o"}))
                .unwrap();
        assert_eq!(ds.dataset_source(), Some("sales-raw"));
        assert!(ds.matches("datasets/sales-raw/parts/x.parquet", EventKind::Deleted));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let s = spec(serde_json::json!({"plugin":"p","prefix":"a/","output":"o","backoff_ms":100}))
            .unwrap();
        let d1 = s.backoff(1).as_millis();
        let d3 = s.backoff(3).as_millis();
        assert!((75..=125).contains(&d1), "{d1}");
        assert!((300..=500).contains(&d3), "{d3}");
        assert!(s.backoff(40).as_millis() <= MAX_BACKOFF_MS as u128 * 5 / 4);
    }

    #[test]
    fn prefixes_covering_host_keys_and_extreme_limits_are_refused() {
        for covering in ["d", "dataset", "e", "a", "admin", "/x", "x//y"] {
            let e = spec(serde_json::json!({"plugin":"p","prefix":covering,"output":"o"}));
            assert!(e.unwrap_err().starts_with("prefix"), "{covering}");
        }
        let e = spec(
            serde_json::json!({"plugin":"p","prefix":"a/","output":"o","timeout_ms":u64::MAX}),
        );
        assert!(e.unwrap_err().starts_with("timeout_ms"));
        let e =
            spec(serde_json::json!({"plugin":"p","prefix":"a/","output":"o","max_retries":1000}));
        assert!(e.unwrap_err().starts_with("max_retries"));
    }
}
