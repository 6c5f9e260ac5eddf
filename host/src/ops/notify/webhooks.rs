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
//!
//! Each subscription has a bounded queue ([`QUEUE`] events) drained by at most [`IN_FLIGHT`]
//! deliveries at once: a receiver that is slow or down holds that much, and events past a full
//! queue are dropped and counted (`dropped`), instead of a task per event retried for minutes.
//! A URL can be a credential, so it is never logged: error texts are taken without it.
//! With `deny_private` (`--webhooks-deny-private`), deliveries to loopback, private and
//! link-local addresses are refused, checked on the addresses actually connected to.

use super::{Notification, Notifier, valid_filter};
use crate::platform::clock::now_ms;
use crate::platform::names::valid_name;
use crate::platform::storage::Storage;
use crate::runtime::restricted;
use anyhow::Result;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "x-aimass-signature-256";
/// Events waiting per subscription; more are dropped (counted).
pub const QUEUE: usize = 1024;
/// Deliveries (each with its retries) in flight per subscription.
pub const IN_FLIGHT: usize = 8;
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
    dropped: AtomicU64,
    last: Mutex<Option<serde_json::Value>>,
}

struct Hook {
    spec: WebhookSpec,
    created_ms: u64,
    stats: Arc<Stats>,
    /// Its queue; the worker draining it ends when the hook is replaced or removed.
    queue: tokio::sync::mpsc::Sender<Arc<Notification>>,
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
    /// Events dropped because the queue was full.
    pub dropped: u64,
    /// The last attempt: time, status or error.
    pub last_attempt: Option<serde_json::Value>,
}

pub struct Webhooks {
    storage: Storage,
    hooks: RwLock<BTreeMap<String, Hook>>,
    client: reqwest::Client,
    deny_private: bool,
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
    /// Load the subscriptions; with `deny_private`, deliveries never reach loopback, private or
    /// link-local addresses.
    pub async fn open(storage: Storage, deny_private: bool) -> Result<Arc<Webhooks>> {
        let mut client = reqwest::Client::builder()
            .user_agent(concat!("aimass/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if deny_private {
            client = client.dns_resolver(PublicOnly);
        }
        let this = Webhooks {
            storage,
            hooks: RwLock::default(),
            client: client.build()?,
            deny_private,
        };
        for k in this.storage.list("notifications/webhooks/").await? {
            if let Some(r) = this.storage.get_json::<Record>(&k).await? {
                let hook = this.hook(&r.name, r.spec, r.created_ms);
                this.hooks.write().unwrap().insert(r.name, hook);
            }
        }
        Ok(Arc::new(this))
    }

    /// A subscription with its queue and the worker draining it.
    fn hook(&self, name: &str, spec: WebhookSpec, created_ms: u64) -> Hook {
        let (queue, rx) = tokio::sync::mpsc::channel(QUEUE);
        let stats = Arc::<Stats>::default();
        let target = Target {
            client: self.client.clone(),
            name: name.to_string(),
            spec: spec.clone(),
            stats: stats.clone(),
            deny_private: self.deny_private,
        };
        tokio::spawn(drain(Arc::new(target), rx));
        Hook {
            spec,
            created_ms,
            stats,
            queue,
        }
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
        let hook = self.hook(name, spec, created_ms);
        let old = self.hooks.write().unwrap().insert(name.into(), hook);
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
            if h.queue.try_send(n.clone()).is_err() {
                let dropped = h.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        webhook = name,
                        dropped,
                        "webhook queue full: events dropped"
                    );
                }
            }
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
        dropped: h.stats.dropped.load(Ordering::Relaxed),
        last_attempt: h.stats.last.lock().unwrap().clone(),
    }
}

/// Where one subscription delivers.
struct Target {
    client: reqwest::Client,
    name: String,
    spec: WebhookSpec,
    stats: Arc<Stats>,
    deny_private: bool,
}

/// Delivers a subscription's queue, [`IN_FLIGHT`] events at a time, until the queue closes.
async fn drain(target: Arc<Target>, mut rx: tokio::sync::mpsc::Receiver<Arc<Notification>>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    while let Some(n) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let target = target.clone();
        tokio::spawn(async move {
            deliver(&target, n).await;
            drop(slot);
        });
    }
}

/// A resolver that leaves out loopback, private and link-local addresses (and fails when
/// nothing else is left), so a webhook name cannot lead deliveries into the host's network.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !restricted(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves only to addresses webhooks may not reach \
                    (loopback, private, link-local)"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An error's text with its causes, without the URL (which can hold a credential).
fn error_text(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Whether `url` names a restricted IP literal (names are checked by [`PublicOnly`]).
fn restricted_literal(url: &str) -> bool {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()));
    match host {
        Some(url::Host::Ipv4(ip)) => restricted(ip.into()),
        Some(url::Host::Ipv6(ip)) => restricted(ip.into()),
        _ => false,
    }
}

/// POST one event until it is accepted, refused, or out of attempts.
async fn deliver(target: &Target, n: Arc<Notification>) {
    let Target {
        client,
        name,
        spec,
        stats,
        deny_private,
    } = target;
    if *deny_private && restricted_literal(&spec.url) {
        stats.failed.fetch_add(1, Ordering::Relaxed);
        *stats.last.lock().unwrap() = Some(serde_json::json!({
            "time_ms": now_ms(), "event": n.id, "attempt": 0,
            "error": "the URL is a loopback, private or link-local address, which webhooks may not reach"}));
        return;
    }
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
            // Without the URL: it can hold a credential, and this text is logged.
            Err(e) => (true, serde_json::json!({"error": error_text(e)})),
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

    /// A receiver that takes connections and never answers holds [`IN_FLIGHT`] deliveries and
    /// a full queue; every event past that is dropped and counted, not spawned.
    #[tokio::test]
    async fn a_stuck_receiver_holds_a_bounded_queue() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let held: Vec<_> = listener.incoming().collect();
            drop(held);
        });
        let storage = Storage::open("memory://", &Default::default()).unwrap();
        let hooks = Webhooks::open(storage, false).await.unwrap();
        let spec = serde_json::json!({"url": format!("http://{addr}/x"), "max_attempts": 1,
            "timeout_ms": 60000});
        hooks
            .put("stuck", serde_json::from_value(spec).unwrap())
            .await
            .unwrap();
        let bus = Notifier::default();
        let sent = QUEUE + IN_FLIGHT + 100;
        for _ in 0..sent {
            hooks.fan_out(bus.emit("run.failed", serde_json::json!({})));
        }
        let dropped = hooks.get("stuck").unwrap().dropped as usize;
        assert!(
            (99..=IN_FLIGHT + 100).contains(&dropped),
            "{dropped} of {sent}"
        );
    }

    #[test]
    fn deny_private_refuses_ip_literals_of_the_hosts_network() {
        assert!(restricted_literal("http://127.0.0.1:8080/hook"));
        assert!(restricted_literal(
            "http://169.254.169.254/latest/meta-data"
        ));
        assert!(restricted_literal("https://[::1]/"));
        assert!(!restricted_literal("https://93.184.216.34/"));
        assert!(!restricted_literal("https://hooks.example.com/"));
    }

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
