//! Alert rules from the host's configuration, evaluated on a timer over windows of the host's
//! own counters, firing `alert.fired` (and `alert.resolved` when the condition clears) on the
//! notification bus — so webhooks and SSE subscribers get them like any other event.
//!
//! ```toml
//! # aimass up --alerts alerts.toml
//! [[alert]]
//! name = "cleaner-errors"
//! kind = "error_rate"    # failed calls / calls of a plugin ("*": any plugin) over the window
//! plugin = "dedup"
//! threshold = 0.1
//! window_s = 300
//! min_calls = 10         # no verdict on fewer calls
//!
//! [[alert]]
//! name = "dead-letters"
//! kind = "dead_letters"  # new dead letters of a hook ("*": all hooks) within the window
//! hook = "*"
//! threshold = 1
//! window_s = 600
//! ```
//!
//! Like Prometheus alerting rules, a rule fires once when its condition becomes true and
//! resolves once when it becomes false; it does not repeat while it stays true.

use super::Notifier;
use crate::platform::clock::now_ms;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    ErrorRate,
    DeadLetters,
}

fn any() -> String {
    "*".into()
}
fn window() -> u64 {
    300
}
fn min_calls() -> u64 {
    10
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    pub kind: AlertKind,
    /// `error_rate`: the plugin, or `*`.
    #[serde(default = "any")]
    pub plugin: String,
    /// `dead_letters`: the hook, or `*`.
    #[serde(default = "any")]
    pub hook: String,
    /// Error fraction (`error_rate`) or dead-letter count (`dead_letters`) at which it fires.
    pub threshold: f64,
    #[serde(default = "window")]
    pub window_s: u64,
    #[serde(default = "min_calls")]
    pub min_calls: u64,
}

/// An alert file: `[[alert]]` tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertFile {
    #[serde(default)]
    pub alert: Vec<AlertRule>,
}

/// Parse and check an alert file.
pub fn parse(text: &str) -> Result<Vec<AlertRule>, String> {
    let file: AlertFile = toml::from_str(text).map_err(|e| format!("alert rules: {e}"))?;
    let mut seen = std::collections::BTreeSet::new();
    for (i, r) in file.alert.iter().enumerate() {
        let at = |m: &str| format!("alert[{i}] ({}): {m}", r.name);
        if r.name.is_empty() || !seen.insert(r.name.clone()) {
            return Err(at("`name` must be present and unique"));
        }
        if !(r.threshold.is_finite() && r.threshold > 0.0) {
            return Err(at("`threshold` must be a positive number"));
        }
        if r.kind == AlertKind::ErrorRate && r.threshold > 1.0 {
            return Err(at("an error_rate `threshold` is a fraction, at most 1"));
        }
        if r.window_s == 0 {
            return Err(at("`window_s` must be positive"));
        }
    }
    Ok(file.alert)
}

/// One sample of the counters rules look at, taken by whoever owns them (the server wires the
/// plugin registry's and the hooks' figures in), so alerts need not know either.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Per plugin: (calls, failed calls).
    pub plugins: BTreeMap<String, (u64, u64)>,
    /// Per hook: dead letters so far.
    pub hooks: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertState {
    #[serde(flatten)]
    pub rule: AlertRule,
    pub firing: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// The value at the last evaluation (`null` when there was no verdict).
    pub value: Option<f64>,
}

pub struct Alerts {
    states: Mutex<Vec<AlertState>>,
    samples: Mutex<VecDeque<(Instant, Sample)>>,
}

impl Alerts {
    pub fn new(rules: Vec<AlertRule>) -> Arc<Alerts> {
        let states = rules
            .into_iter()
            .map(|rule| AlertState {
                rule,
                firing: false,
                since_ms: None,
                value: None,
            })
            .collect();
        Arc::new(Alerts {
            states: Mutex::new(states),
            samples: Mutex::default(),
        })
    }

    pub fn list(&self) -> Vec<AlertState> {
        self.states.lock().unwrap().clone()
    }

    /// Evaluate a fresh `sample()` every `every` until the host stops.
    pub fn start(
        self: &Arc<Self>,
        every: Duration,
        sample: impl Fn() -> Sample + Send + 'static,
        bus: Arc<Notifier>,
    ) {
        if self.states.lock().unwrap().is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                this.evaluate(Instant::now(), sample(), &bus);
            }
        });
    }

    fn evaluate(&self, now: Instant, sample: Sample, bus: &Notifier) {
        let mut samples = self.samples.lock().unwrap();
        samples.push_back((now, sample));
        let mut states = self.states.lock().unwrap();
        let longest = states.iter().map(|s| s.rule.window_s).max().unwrap_or(0);
        // Keep one sample older than the longest window, as its baseline.
        while samples.len() > 2 && now.duration_since(samples[1].0) >= Duration::from_secs(longest)
        {
            samples.pop_front();
        }
        let (_, latest) = samples.back().expect("just pushed");
        for st in states.iter_mut() {
            let window = Duration::from_secs(st.rule.window_s);
            // The newest sample at least a window old, else the oldest kept.
            let base = samples
                .iter()
                .rev()
                .find(|(t, _)| now.duration_since(*t) >= window)
                .or(samples.front())
                .map(|(_, s)| s)
                .expect("non-empty");
            let value = value(&st.rule, base, latest);
            st.value = value;
            let firing = value.is_some_and(|v| v >= st.rule.threshold);
            if firing == st.firing {
                continue;
            }
            st.firing = firing;
            st.since_ms = firing.then(now_ms);
            let kind = if firing {
                "alert.fired"
            } else {
                "alert.resolved"
            };
            bus.emit(
                kind,
                serde_json::json!({"alert": st.rule.name, "kind": st.rule.kind,
                    "plugin": (st.rule.kind == AlertKind::ErrorRate).then_some(&st.rule.plugin),
                    "hook": (st.rule.kind == AlertKind::DeadLetters).then_some(&st.rule.hook),
                    "value": value, "threshold": st.rule.threshold, "window_s": st.rule.window_s}),
            );
        }
    }
}

/// The rule's value between two samples; `None` when there is no verdict (too few calls).
fn value(rule: &AlertRule, base: &Sample, now: &Sample) -> Option<f64> {
    let matches = |pattern: &str, name: &str| pattern == "*" || pattern == name;
    match rule.kind {
        AlertKind::ErrorRate => {
            let (mut calls, mut failed) = (0u64, 0u64);
            for (name, (c, f)) in &now.plugins {
                if matches(&rule.plugin, name) {
                    let (c0, f0) = base.plugins.get(name).copied().unwrap_or((0, 0));
                    calls += c.saturating_sub(c0);
                    failed += f.saturating_sub(f0);
                }
            }
            (calls >= rule.min_calls && calls > 0).then(|| failed as f64 / calls as f64)
        }
        AlertKind::DeadLetters => Some(
            now.hooks
                .iter()
                .filter(|(name, _)| matches(&rule.hook, name))
                .map(|(name, d)| d.saturating_sub(base.hooks.get(name).copied().unwrap_or(0)))
                .sum::<u64>() as f64,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<AlertRule> {
        parse(
            r#"
[[alert]]
name = "errors"
kind = "error_rate"
plugin = "dedup"
threshold = 0.5
window_s = 10
min_calls = 4

[[alert]]
name = "dead"
kind = "dead_letters"
threshold = 2
window_s = 10
"#,
        )
        .unwrap()
    }

    fn s(calls: u64, failed: u64, dead: u64) -> Sample {
        Sample {
            plugins: [("dedup".to_string(), (calls, failed))].into(),
            hooks: [("h".to_string(), dead)].into(),
        }
    }

    #[test]
    fn rules_fire_once_and_resolve_over_their_window() {
        let a = Alerts::new(rules());
        let bus = Notifier::default();
        let mut rx = bus.sink();
        let t0 = Instant::now();
        a.evaluate(t0, s(0, 0, 0), &bus);
        // 3 of 4 calls failed within the window: fires. Dead letters +1: not yet.
        a.evaluate(t0 + Duration::from_secs(5), s(4, 3, 1), &bus);
        let n = rx.try_recv().unwrap();
        assert_eq!(n.kind, "alert.fired");
        assert_eq!(n.data["alert"], "errors");
        assert_eq!(n.data["value"], 0.75);
        // Still true: no repeat. Dead letters +2 in the window: fires.
        a.evaluate(t0 + Duration::from_secs(8), s(6, 5, 2), &bus);
        let n = rx.try_recv().unwrap();
        assert_eq!(
            (n.kind.as_str(), &n.data["alert"]),
            ("alert.fired", &"dead".into())
        );
        assert!(rx.try_recv().is_err());
        // Later, only successes within the last 10 s: both resolve.
        a.evaluate(t0 + Duration::from_secs(20), s(16, 5, 2), &bus);
        let kinds: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|n| format!("{} {}", n.kind, n.data["alert"]))
            .collect();
        assert_eq!(
            kinds,
            ["alert.resolved \"errors\"", "alert.resolved \"dead\""]
        );
        let st = a.list();
        assert!(!st[0].firing && !st[1].firing);
    }

    #[test]
    fn too_few_calls_give_no_verdict() {
        let a = Alerts::new(rules());
        let bus = Notifier::default();
        let t0 = Instant::now();
        a.evaluate(t0, s(0, 0, 0), &bus);
        a.evaluate(t0 + Duration::from_secs(1), s(2, 2, 0), &bus);
        assert_eq!(a.list()[0].value, None);
        assert!(!a.list()[0].firing);
    }

    #[test]
    fn bad_rules_are_refused_with_their_name() {
        for (text, want) in [
            (
                "[[alert]]\nname='x'\nkind='error_rate'\nthreshold=2.0",
                "at most 1",
            ),
            (
                "[[alert]]\nname='x'\nkind='nope'\nthreshold=1.0",
                "unknown variant",
            ),
            (
                "[[alert]]\nname='x'\nkind='dead_letters'\nthreshold=0.0",
                "positive",
            ),
            (
                "[[alert]]\nname='x'\nkind='dead_letters'\nthreshold=1.0\n[[alert]]\nname='x'\nkind='dead_letters'\nthreshold=1.0",
                "unique",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
