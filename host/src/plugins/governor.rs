//! Per-plugin rate limits and quotas, on top of the runtime limits (deadline, memory,
//! concurrency): how often a plugin may be called, not how much one call may use.
//!
//! - **Rate limit**: a token bucket, `rate_per_sec` calls per second on average with bursts of
//!   `burst` (default: one second's worth), like API gateways and Cloudflare Workers' rate
//!   limiting. A call with no token is refused with 429 and `Retry-After` (the time until the
//!   next token).
//! - **Quota**: at most `quota_calls` calls per `quota_window_s` window (default a day), counted
//!   in fixed windows from the first call. A call past it is refused with 429 and `Retry-After`
//!   until the window ends.
//!
//! Both are checked before a call waits for an instance slot, so refused calls cost nothing.
//! Counters live in memory: a restart refills buckets and starts a new quota window.

use crate::runtime::{LimitOverrides, Limits};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a plugin may be called, and how many calls without a token may run at once: what
/// the governor admits by, beside the runtime's per-call [`Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Governance {
    /// Calls per second on average (token bucket); `None`: unlimited. Past it, 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<u32>,
    /// Calls allowed at once above the rate (bucket size); default one second's worth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Calls per quota window; `None`: unlimited. Past it, 429 until the window ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_calls: Option<u64>,
    /// Length of a quota window, seconds (default a day).
    #[serde(default = "default_quota_window")]
    pub quota_window_s: u64,
    /// Public HTTP functions: calls without a host token that may run at once, in slots of their
    /// own beside the `max_concurrency` slots of token holders; `None`: half of
    /// `max_concurrency` (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_concurrency: Option<u32>,
    /// Calls per second without a host token (a bucket of their own, bursts of one second's
    /// worth); `None`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_rate_per_sec: Option<u32>,
    /// Calls without a host token per quota window, counted apart from token holders' quota;
    /// `None`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_quota_calls: Option<u64>,
}

fn default_quota_window() -> u64 {
    86_400
}

impl Default for Governance {
    fn default() -> Self {
        Governance {
            rate_per_sec: None,
            burst: None,
            quota_calls: None,
            quota_window_s: default_quota_window(),
            public_concurrency: None,
            public_rate_per_sec: None,
            public_quota_calls: None,
        }
    }
}

/// Per-plugin overrides of [`Governance`], as stored in the plugin's metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernanceOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_calls: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_window_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_rate_per_sec: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_quota_calls: Option<u64>,
}

impl Governance {
    /// Apply the overrides that are set.
    pub fn with_overrides(mut self, o: &GovernanceOverrides) -> Governance {
        if o.rate_per_sec.is_some() {
            self.rate_per_sec = o.rate_per_sec;
        }
        if o.burst.is_some() {
            self.burst = o.burst;
        }
        if o.quota_calls.is_some() {
            self.quota_calls = o.quota_calls;
        }
        if let Some(v) = o.quota_window_s {
            self.quota_window_s = v;
        }
        if o.public_concurrency.is_some() {
            self.public_concurrency = o.public_concurrency;
        }
        if o.public_rate_per_sec.is_some() {
            self.public_rate_per_sec = o.public_rate_per_sec;
        }
        if o.public_quota_calls.is_some() {
            self.public_quota_calls = o.public_quota_calls;
        }
        self
    }
}

/// Everything a plugin version runs under: the runtime's limits of one call and the governor's
/// admission limits. Serialized flat, as one object of limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginLimits {
    #[serde(flatten)]
    pub call: Limits,
    #[serde(flatten)]
    pub governance: Governance,
}

/// Per-plugin overrides of [`PluginLimits`], stored flat in the plugin's metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    #[serde(flatten)]
    pub call: LimitOverrides,
    #[serde(flatten)]
    pub governance: GovernanceOverrides,
}

impl PluginLimits {
    pub fn with_overrides(self, o: &Overrides) -> PluginLimits {
        PluginLimits {
            call: self.call.with_overrides(&o.call),
            governance: self.governance.with_overrides(&o.governance),
        }
    }

    /// The limits anonymous calls of a public HTTP function run under: the same call limits, with
    /// the `public_*` concurrency, rate and quota in place of token holders' ones.
    pub fn anonymous(&self) -> PluginLimits {
        let g = self.governance;
        PluginLimits {
            call: Limits {
                max_concurrency: g
                    .public_concurrency
                    .unwrap_or(self.call.max_concurrency / 2)
                    .max(1),
                ..self.call
            },
            governance: Governance {
                rate_per_sec: g.public_rate_per_sec,
                burst: None,
                quota_calls: g.public_quota_calls,
                ..g
            },
        }
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("rate limit of {rate}/s (burst {burst}) reached; retry in {retry_after_ms} ms")]
    Rate {
        rate: u32,
        burst: u32,
        retry_after_ms: u64,
    },
    #[error("quota of {calls} calls per {window_s} s used up; resets in {retry_after_ms} ms")]
    Quota {
        calls: u64,
        window_s: u64,
        retry_after_ms: u64,
    },
}

impl Refusal {
    /// The call outcome this refusal is counted under in `aimass_calls_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Refusal::Rate { .. } => "rate_limited",
            Refusal::Quota { .. } => "quota_exceeded",
        }
    }

    pub fn retry_after(&self) -> Duration {
        match self {
            Refusal::Rate { retry_after_ms, .. } | Refusal::Quota { retry_after_ms, .. } => {
                Duration::from_millis(*retry_after_ms)
            }
        }
    }
}

#[derive(Debug)]
struct State {
    tokens: f64,
    refilled: Instant,
    window_start: Option<Instant>,
    used: u64,
    refused_rate: u64,
    refused_quota: u64,
}

/// The counters of one plugin.
#[derive(Debug)]
pub struct Governor {
    state: Mutex<State>,
}

impl Default for Governor {
    fn default() -> Self {
        Governor {
            state: Mutex::new(State {
                tokens: f64::INFINITY,
                refilled: Instant::now(),
                window_start: None,
                used: 0,
                refused_rate: 0,
                refused_quota: 0,
            }),
        }
    }
}

/// Current usage against the limits, for `GET /v1/plugins/{name}`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Usage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<serde_json::Value>,
    pub refused_rate: u64,
    pub refused_quota: u64,
}

fn burst(l: &Governance, rate: u32) -> u32 {
    l.burst.unwrap_or(rate).max(1)
}

impl Governor {
    /// Take one call from the bucket and the quota, or say why not.
    pub fn admit(&self, limits: &Governance) -> Result<(), Refusal> {
        // Most plugins have neither: no lock, no clock read on their calls.
        if limits.rate_per_sec.is_none() && limits.quota_calls.is_none() {
            return Ok(());
        }
        self.admit_at(limits, Instant::now())
    }

    fn admit_at(&self, l: &Governance, now: Instant) -> Result<(), Refusal> {
        let mut s = self.state.lock().unwrap();
        if let Some(rate) = l.rate_per_sec {
            let burst = burst(l, rate);
            let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
            s.tokens = (s.tokens.min(burst as f64) + elapsed * rate as f64).min(burst as f64);
            s.refilled = now;
            if s.tokens < 1.0 {
                s.refused_rate += 1;
                let wait = (1.0 - s.tokens) / rate as f64;
                return Err(Refusal::Rate {
                    rate,
                    burst,
                    retry_after_ms: (wait * 1e3).ceil() as u64,
                });
            }
        }
        if let Some(calls) = l.quota_calls {
            let window = Duration::from_secs(l.quota_window_s);
            let start = match s.window_start {
                Some(t) if now.saturating_duration_since(t) < window => t,
                _ => {
                    s.used = 0;
                    now
                }
            };
            s.window_start = Some(start);
            if s.used >= calls {
                s.refused_quota += 1;
                let left = window.saturating_sub(now.saturating_duration_since(start));
                return Err(Refusal::Quota {
                    calls,
                    window_s: l.quota_window_s,
                    retry_after_ms: left.as_millis() as u64,
                });
            }
            s.used += 1;
        }
        if l.rate_per_sec.is_some() {
            s.tokens -= 1.0;
        }
        Ok(())
    }

    pub fn usage(&self, l: &Governance) -> Usage {
        let s = self.state.lock().unwrap();
        let now = Instant::now();
        let rate_limit = l.rate_per_sec.map(|rate| {
            let burst = burst(l, rate);
            let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
            let available = (s.tokens.min(burst as f64) + elapsed * rate as f64).min(burst as f64);
            serde_json::json!({"per_sec": rate, "burst": burst,
                "available": available.floor() as u64})
        });
        let quota = l.quota_calls.map(|calls| {
            let window = Duration::from_secs(l.quota_window_s);
            let (used, resets_in_ms) = match s.window_start {
                Some(t) if now.saturating_duration_since(t) < window => (
                    s.used,
                    window
                        .saturating_sub(now.saturating_duration_since(t))
                        .as_millis() as u64,
                ),
                _ => (0, window.as_millis() as u64),
            };
            serde_json::json!({"calls": calls, "window_s": l.quota_window_s, "used": used,
                "remaining": calls.saturating_sub(used), "resets_in_ms": resets_in_ms})
        });
        Usage {
            rate_limit,
            quota,
            refused_rate: s.refused_rate,
            refused_quota: s.refused_quota,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_overrides_keep_their_flat_stored_form() {
        // As plugin records store them: one object of call limits and governance together.
        let stored = r#"{"timeout_ms":250,"max_concurrency":2,"rate_per_sec":5,"quota_calls":9,"public_concurrency":1}"#;
        let o: Overrides = serde_json::from_str(stored).unwrap();
        assert_eq!(o.call.timeout_ms, Some(250));
        assert_eq!(o.call.max_concurrency, Some(2));
        assert_eq!(o.governance.rate_per_sec, Some(5));
        assert_eq!(o.governance.quota_calls, Some(9));
        assert_eq!(o.governance.public_concurrency, Some(1));
        let back: serde_json::Value = serde_json::to_value(o).unwrap();
        let want: serde_json::Value = serde_json::from_str(stored).unwrap();
        assert_eq!(back, want);
        let l = PluginLimits::default().with_overrides(&o);
        let v = serde_json::to_value(l).unwrap();
        assert_eq!(v["timeout_ms"], 250);
        assert_eq!(v["rate_per_sec"], 5);
        assert_eq!(v["quota_window_s"], 86_400);
        assert_eq!(l.anonymous().call.max_concurrency, 1);
        assert_eq!(l.anonymous().governance.rate_per_sec, None);
        assert_eq!(l.anonymous().governance.quota_calls, None);
    }

    fn limits(rate: Option<u32>, burst: Option<u32>, quota: Option<u64>) -> Governance {
        Governance {
            rate_per_sec: rate,
            burst,
            quota_calls: quota,
            quota_window_s: 60,
            ..Governance::default()
        }
    }

    #[test]
    fn no_limits_admit_everything() {
        let g = Governor::default();
        let l = Governance::default();
        for _ in 0..10_000 {
            g.admit(&l).unwrap();
        }
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let g = Governor::default();
        let l = limits(Some(10), Some(3), None);
        let t0 = Instant::now();
        for _ in 0..3 {
            g.admit_at(&l, t0).unwrap();
        }
        let e = g.admit_at(&l, t0).unwrap_err();
        assert!(
            matches!(
                e,
                Refusal::Rate {
                    retry_after_ms: 100,
                    ..
                }
            ),
            "{e:?}"
        );
        // 100 ms later one token is back, not two.
        let t1 = t0 + Duration::from_millis(100);
        g.admit_at(&l, t1).unwrap();
        assert!(g.admit_at(&l, t1).is_err());
        // Idle time never banks more than the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            g.admit_at(&l, t2).unwrap();
        }
        assert!(g.admit_at(&l, t2).is_err());
        assert_eq!(g.usage(&l).refused_rate, 3);
    }

    #[test]
    fn the_quota_counts_per_window_and_resets() {
        let g = Governor::default();
        let l = limits(None, None, Some(2));
        let t0 = Instant::now();
        g.admit_at(&l, t0).unwrap();
        g.admit_at(&l, t0 + Duration::from_secs(1)).unwrap();
        let e = g.admit_at(&l, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(
            e,
            Refusal::Quota {
                calls: 2,
                window_s: 60,
                retry_after_ms: 50_000
            }
        );
        g.admit_at(&l, t0 + Duration::from_secs(61)).unwrap();
    }

    #[test]
    fn a_rate_refusal_does_not_spend_quota() {
        let g = Governor::default();
        let l = limits(Some(1), Some(1), Some(5));
        let t0 = Instant::now();
        g.admit_at(&l, t0).unwrap();
        assert!(g.admit_at(&l, t0).is_err());
        assert_eq!(g.usage(&l).quota.unwrap()["used"], 1);
    }
}
