//! Object events: one envelope for every source, and the durable queue that carries them to hooks.
//!
//! Sources ([`Source`]) all produce the same [`Event`]: writes through the host's object API and
//! dataset commits, S3 notifications (`POST /v1/events/s3`, see [`s3`]), and the [`poller`] for
//! stores that cannot notify (its passes run at low priority, see [`idle`]). Each event carries
//! a **dedupe id** derived from what identifies the object version (key + etag/version/
//! sequencer), so the same version seen by two sources, or redelivered after a crash, is the
//! same event — the basis of effectively-once outcomes.
//!
//! The queue is behind the [`queue::EventQueue`] trait; [`embedded::StoreQueue`] keeps it in the
//! object store itself so a single host needs nothing else.

pub mod embedded;
pub mod idle;
pub mod queue;
pub mod s3;

use crate::platform::clock::now_us;
use crate::platform::names::digest;
use serde::{Deserialize, Serialize};

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Created,
    Deleted,
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `PUT`/`DELETE /v1/objects/...` on this host.
    Api,
    /// An S3 bucket notification (AWS or MinIO shape).
    S3,
    /// The prefix poller.
    Poller,
    /// A dataset part committed by a hook.
    Dataset,
}

/// Which hook wrote the object an event is about, and how many hook hops led to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// The hook whose output this object is (`None` for objects written by users).
    pub hook: Option<String>,
    /// Hook hops so far: 0 for a user's object, 1 for a hook's output, ...
    pub depth: u32,
    /// The user object at the root of the chain.
    pub root: Option<String>,
}

/// The one event envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Same object version ⇒ same id, whichever source reported it.
    pub id: String,
    /// Store URL (or, for S3 notifications, `s3://{bucket}`).
    pub store: String,
    /// Decoded object key.
    pub key: String,
    pub kind: EventKind,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub version: Option<String>,
    /// S3's per-key ordering token, when the source has one.
    pub sequencer: Option<String>,
    /// When the host accepted the event, Unix microseconds (event latency is measured from it).
    pub time_us: u64,
    pub source: Source,
    #[serde(default)]
    pub lineage: Lineage,
}

impl Event {
    /// An event about a user object (depth 0), with its dedupe id derived from the version fields.
    #[allow(clippy::too_many_arguments)]
    pub fn object(
        store: &str,
        key: &str,
        kind: EventKind,
        size: Option<u64>,
        etag: Option<String>,
        version: Option<String>,
        sequencer: Option<String>,
        source: Source,
    ) -> Event {
        let token = version_token(etag.as_deref(), version.as_deref())
            .or(sequencer.clone())
            .unwrap_or_default();
        let id = digest(&[key, kind_str(kind), &token]);
        Event {
            id,
            store: store.to_string(),
            key: key.to_string(),
            kind,
            size,
            etag,
            version,
            sequencer,
            time_us: now_us(),
            source,
            lineage: Lineage::default(),
        }
    }

    /// An event about a dataset part (`key` = `datasets/{name}/parts/{id}.parquet`). Parts are
    /// immutable, so the key alone identifies the version.
    pub fn part(
        store: &str,
        key: &str,
        kind: EventKind,
        size: Option<u64>,
        lineage: Lineage,
    ) -> Event {
        Event {
            id: digest(&["part", key, kind_str(kind)]),
            store: store.to_string(),
            key: key.to_string(),
            kind,
            size,
            etag: None,
            version: None,
            sequencer: None,
            time_us: now_us(),
            source: Source::Dataset,
            lineage,
        }
    }

    /// The lineage of an object a hook wrote while handling this event.
    pub fn child_lineage(&self, hook: &str) -> Lineage {
        Lineage {
            hook: Some(hook.to_string()),
            depth: self.lineage.depth + 1,
            root: self.lineage.root.clone().or_else(|| Some(self.key.clone())),
        }
    }

    /// True if this event's object was written by the given hook.
    pub fn written_by(&self, hook: &str) -> bool {
        self.lineage.hook.as_deref() == Some(hook)
    }
}

/// What identifies an object version across every source: the etag (unquoted) — the one field
/// that puts, heads, listings and S3 notifications all carry — else the version id. Listings do
/// not return version ids, so preferring them would make the poller and the API disagree.
pub fn version_token(etag: Option<&str>, version: Option<&str>) -> Option<String> {
    etag.map(|e| e.trim_matches('"'))
        .filter(|e| !e.is_empty())
        .or(version)
        .map(str::to_string)
}

fn kind_str(k: EventKind) -> &'static str {
    match k {
        EventKind::Created => "created",
        EventKind::Deleted => "deleted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_version_same_id_whatever_the_source() {
        let a = Event::object(
            "s",
            "raw/a.csv",
            EventKind::Created,
            Some(3),
            Some("\"e1\"".into()),
            None,
            None,
            Source::Api,
        );
        let b = Event::object(
            "s",
            "raw/a.csv",
            EventKind::Created,
            None,
            Some("e1".into()),
            None,
            Some("0055".into()),
            Source::Poller,
        );
        assert_eq!(a.id, b.id);
        let changed = Event::object(
            "s",
            "raw/a.csv",
            EventKind::Created,
            None,
            Some("e2".into()),
            None,
            None,
            Source::Poller,
        );
        assert_ne!(a.id, changed.id);
        let deleted = Event::object(
            "s",
            "raw/a.csv",
            EventKind::Deleted,
            None,
            Some("e1".into()),
            None,
            None,
            Source::Poller,
        );
        assert_ne!(a.id, deleted.id);
    }
}
