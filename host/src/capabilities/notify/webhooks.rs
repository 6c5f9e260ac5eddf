//! Webhook subscriptions: `PUT /v1/notifications/webhooks/{name}` with a URL, the event types it
//! wants and a secret. Each matching event is POSTed as JSON, signed the way GitHub signs its
//! webhooks so existing verifiers work: `X-Aimass-Signature-256: sha256=<hex HMAC-SHA256 of the
//! body with the secret>`. The body carries the event's `id` and `time_ms`, so a receiver can
//! drop replays and stale deliveries.
//!
//! Delivery is at-least-once while the host runs: network errors, 5xx, 408 and 429 are retried
//! with exponential backoff (`backoff_ms`, doubling, capped at a minute) up to `max_attempts`;
//! other 4xx are the receiver refusing the payload and are not retried. Deliveries still pending
//! when the host stops are lost (the bus is in memory); the subscription records are kept in the
//! store.

use super::{Notification, Notifier, valid_filter};
use crate::capabilities::events::now_ms;
use crate::capabilities::registry::records::valid_name;
use crate::capabilities::storage::Storage;
use anyhow::Result;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "x-aimass-signature-256";
const MAX_BACKOFF: Duration = Duration::from_secs(60);

fn default_events() -> Vec<String> {
    vec!["*".into()]
}
fn default_attempts() -> u32 {
    6
}
fn default_backoff() -> u64 {
    1000
}
fn default_timeout() -> u64 {
    5000
}

/// What a user declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// `http://` or `https://` URL the events are POSTed to.
    pub url: String,
    /// Event filters (`run.failed`, `run.*`, `*`); default `["*"]`.
    #[serde(default = "default_events")]
    pub events: Vec<String>,
    /// HMAC-SHA256 key for the signature header; unsigned when absent. Never shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Attempts per event, the first included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Delay before the first retry; doubles per attempt.
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
    /// Per-attempt timeout.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

impl WebhookSpec {
    pub fn validate(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.url).map_err(|e| format!("url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!("url: {:?} is not an http(s) URL", self.url));
        }
        if self.events.is_empty() {
            return Err("events: must name at least one event type (or `*`)".into());
        }
        for (i, f) in self.events.iter().enumerate() {
            valid_filter(f).map_err(|e| format!("events[{i}]: {e}"))?;
        }
        if self.secret.as_deref().is_some_and(str::is_empty) {
            return Err("secret: must not be empty (omit it for unsigned deliveries)".into());
        }
        if !(1..=100).contains(&self.max_attempts) {
            return Err("max_attempts: must be 1 to 100".into());
        }
        if !(1..=60_000).contains(&self.backoff_ms) {
            return Err("backoff_ms: must be 1 to 60000".into());
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            return Err("timeout_ms: must be 1 to 60000".into());
        }
        Ok(())
    }

    fn wants(&self, n: &Notification) -> bool {
        self.events.iter().any(|f| n.matches(f))
    }
}

/// Delivery counters of one subscription.
#[derive(Debug, Default)]
struct Stats {
    delivered: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
    last: Mutex<Option<serde_json::Value>>,
}

struct Hook {
    spec: WebhookSpec,
    created_ms: u64,
    stats: Arc<Stats>,
}

#[derive(Serialize, Deserialize)]
struct Record {
    name: String,
    spec: WebhookSpec,
    created_ms: u64,
}

/// A subscription as the API shows it (the secret only as whether there is one).
#[derive(Debug, Serialize)]
pub struct WebhookView {
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub signed: bool,
    pub max_attempts: u32,
    pub backoff_ms: u64,
    pub timeout_ms: u64,
    pub created_ms: u64,
    pub delivered: u64,
    pub retries: u64,
    pub failed: u64,
    /// The last attempt: time, status or error.
    pub last_attempt: Option<serde_json::Value>,
}

pub struct Webhooks {
    storage: Storage,
    hooks: RwLock<BTreeMap<String, Hook>>,
    client: reqwest::Client,
}

fn key(name: &str) -> String {
    format!("notifications/webhooks/{name}.json")
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Webhooks {
    pub async fn open(storage: Storage) -> Result<Arc<Webhooks>> {
        let mut hooks = BTreeMap::new();
        for k in storage.list("notifications/webhooks/").await? {
            if let Some(r) = storage.get_json::<Record>(&k).await? {
                hooks.insert(
                    r.name,
                    Hook {
                        spec: r.spec,
                        created_ms: r.created_ms,
                        stats: Arc::default(),
                    },
                );
            }
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("aimass/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Arc::new(Webhooks {
            storage,
            hooks: RwLock::new(hooks),
            client,
        }))
    }

    /// Deliver every event of `bus` from now on.
    pub fn start(self: &Arc<Self>, bus: &Notifier) {
        let mut rx = bus.sink();
        let this = self.clone();
        tokio::spawn(async move {
            while let Some(n) = rx.recv().await {
                this.fan_out(n);
            }
        });
    }

    /// Create or replace; true if created.
    pub async fn put(&self, name: &str, spec: WebhookSpec) -> Result<bool, String> {
        if !valid_name(name) {
            return Err(format!(
                "{name:?} is not a webhook name (letters, digits, '-', '_')"
            ));
        }
        spec.validate()?;
        let created_ms = self
            .hooks
            .read()
            .unwrap()
            .get(name)
            .map_or_else(now_ms, |h| h.created_ms);
        let record = Record {
            name: name.into(),
            spec: spec.clone(),
            created_ms,
        };
        self.storage
            .put_json(&key(name), &record)
            .await
            .map_err(|e| format!("storing the webhook: {e:#}"))?;
        let old = self.hooks.write().unwrap().insert(
            name.into(),
            Hook {
                spec,
                created_ms,
                stats: Arc::default(),
            },
        );
        Ok(old.is_none())
    }

    pub async fn delete(&self, name: &str) -> Result<bool> {
        if self.hooks.write().unwrap().remove(name).is_none() {
            return Ok(false);
        }
        self.storage.delete(&key(name)).await?;
        Ok(true)
    }

    pub fn get(&self, name: &str) -> Option<WebhookView> {
        self.hooks.read().unwrap().get(name).map(|h| view(name, h))
    }

    pub fn list(&self) -> Vec<WebhookView> {
        let hooks = self.hooks.read().unwrap();
        hooks.iter().map(|(n, h)| view(n, h)).collect()
    }

    fn fan_out(&self, n: Arc<Notification>) {
        let hooks = self.hooks.read().unwrap();
        for (name, h) in hooks.iter().filter(|(_, h)| h.spec.wants(&n)) {
            let (client, spec, stats) = (self.client.clone(), h.spec.clone(), h.stats.clone());
            let (name, n) = (name.clone(), n.clone());
            tokio::spawn(async move { deliver(client, &name, spec, stats, n).await });
        }
    }
}

fn view(name: &str, h: &Hook) -> WebhookView {
    WebhookView {
        name: name.into(),
        url: h.spec.url.clone(),
        events: h.spec.events.clone(),
        signed: h.spec.secret.is_some(),
        max_attempts: h.spec.max_attempts,
        backoff_ms: h.spec.backoff_ms,
        timeout_ms: h.spec.timeout_ms,
        created_ms: h.created_ms,
        delivered: h.stats.delivered.load(Ordering::Relaxed),
        retries: h.stats.retries.load(Ordering::Relaxed),
        failed: h.stats.failed.load(Ordering::Relaxed),
        last_attempt: h.stats.last.lock().unwrap().clone(),
    }
}

/// POST one event until it is accepted, refused, or out of attempts.
async fn deliver(
    client: reqwest::Client,
    name: &str,
    spec: WebhookSpec,
    stats: Arc<Stats>,
    n: Arc<Notification>,
) {
    let body = serde_json::to_vec(&*n).expect("events serialise");
    let mut backoff = Duration::from_millis(spec.backoff_ms);
    for attempt in 1..=spec.max_attempts {
        let mut req = client
            .post(&spec.url)
            .timeout(Duration::from_millis(spec.timeout_ms))
            .header("content-type", "application/json")
            .header("x-aimass-event", &n.kind)
            .header("x-aimass-delivery", &n.id)
            .header("x-aimass-attempt", attempt.to_string())
            .body(body.clone());
        if let Some(secret) = &spec.secret {
            req = req.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        let (retry, outcome) = match req.send().await {
            Ok(r) if r.status().is_success() => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                *stats.last.lock().unwrap() = Some(serde_json::json!({
                    "time_ms": now_ms(), "event": n.id, "attempt": attempt,
                    "status": r.status().as_u16()}));
                return;
            }
            Ok(r) => {
                let s = r.status();
                let retry = s.is_server_error() || s.as_u16() == 408 || s.as_u16() == 429;
                (retry, serde_json::json!({"status": s.as_u16()}))
            }
            Err(e) => (true, serde_json::json!({"error": e.to_string()})),
        };
        let mut last = outcome;
        last["time_ms"] = now_ms().into();
        last["event"] = n.id.clone().into();
        last["attempt"] = attempt.into();
        *stats.last.lock().unwrap() = Some(last.clone());
        if !retry || attempt == spec.max_attempts {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                webhook = name,
                event = n.id,
                "webhook delivery gave up: {last}"
            );
            return;
        }
        stats.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn specs_are_validated_field_by_field() {
        let ok: WebhookSpec =
            serde_json::from_value(serde_json::json!({"url": "http://127.0.0.1:9/x"})).unwrap();
        assert!(ok.validate().is_ok());
        assert_eq!(ok.events, vec!["*"]);
        for (spec, want) in [
            (serde_json::json!({"url": "ftp://x/"}), "url:"),
            (
                serde_json::json!({"url": "http://x/", "events": ["run.boom"]}),
                "events[0]:",
            ),
            (
                serde_json::json!({"url": "http://x/", "events": []}),
                "events:",
            ),
            (
                serde_json::json!({"url": "http://x/", "secret": ""}),
                "secret:",
            ),
            (
                serde_json::json!({"url": "http://x/", "max_attempts": 0}),
                "max_attempts:",
            ),
        ] {
            let s: WebhookSpec = serde_json::from_value(spec).unwrap();
            let e = s.validate().unwrap_err();
            assert!(e.starts_with(want), "{e}");
        }
    }
}
