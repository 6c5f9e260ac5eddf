//! The event-queue abstraction hooks are driven by.
//!
//! A [`Delivery`] is one event for one hook. The queue's contract is the usual one of work queues
//! (SQS, JetStream work-queue streams): `enqueue` returns only once the delivery would survive a
//! crash; a delivery handed out by `next` stays owned by the queue until `ack`ed, dead-lettered or
//! `retry`-ed, so a crash in between redelivers it on restart. Delivery ids are deterministic
//! (hook + event dedupe id), and enqueueing an id that is already pending is a no-op — the
//! at-least-once sources may report the same object version many times.
//!
//! The embedded implementation is [`super::embedded::StoreQueue`]; a NATS JetStream one for
//! several replicas fits the same trait (enqueue = publish with `Nats-Msg-Id` dedupe, next = pull
//! consumer, ack/nak with delay, a dead-letter stream).

use super::Event;
use crate::platform::names::digest;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One event on its way to one hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// `digest(hook, event.id)`: also the id of the output it produces.
    pub id: String,
    pub hook: String,
    pub event: Event,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not to be run before this time (Unix ms): retry backoff.
    pub not_before_ms: u64,
    /// The last failure, for status and the dead letter.
    pub last_error: Option<String>,
}

impl Delivery {
    pub fn new(hook: &str, event: Event) -> Delivery {
        Delivery {
            id: digest(&[hook, &event.id]),
            hook: hook.to_string(),
            event,
            attempts: 0,
            not_before_ms: 0,
            last_error: None,
        }
    }
}

/// A delivery that exhausted its retries or failed for good.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub delivery: Delivery,
    pub reason: String,
    pub time_ms: u64,
}

/// Pending work for one hook.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Backlog {
    /// Deliveries accepted and not yet finished (queued, waiting to retry, or running).
    pub pending: u64,
    /// Of those, waiting for a retry.
    pub retrying: u64,
    /// Enqueue time of the oldest pending delivery, Unix ms.
    pub oldest_ms: Option<u64>,
}

#[async_trait::async_trait]
pub trait EventQueue: Send + Sync + 'static {
    /// Accept a delivery durably. Idempotent per delivery id while it is pending.
    async fn enqueue(&self, d: Delivery) -> Result<()>;
    /// The next delivery that is due; waits until there is one.
    async fn next(&self) -> Delivery;
    /// Finished (successfully, or skipped on purpose): forget it.
    async fn ack(&self, d: &Delivery) -> Result<()>;
    /// Failed; run it again after `delay` with the error recorded. `counted` failures add to
    /// `attempts` (plugin failures); uncounted ones do not (the store was unreachable).
    async fn retry(&self, d: Delivery, error: String, delay: Duration, counted: bool)
    -> Result<()>;
    /// Hand a delivery back unchanged, to be delivered again (a paused hook's work on resume).
    fn release(&self, d: Delivery);
    /// Give up on a delivery: record it under the hook's dead letters, then forget it.
    async fn dead_letter(&self, d: &Delivery, reason: &str) -> Result<()>;
    /// A hook's dead letters.
    async fn dead_letters(&self, hook: &str) -> Result<Vec<DeadLetter>>;
    /// Re-enqueue a hook's dead letters with their attempts reset; returns how many.
    async fn redrive(&self, hook: &str) -> Result<usize>;
    /// Drop everything pending or dead for a hook (the hook was deleted).
    async fn purge(&self, hook: &str) -> Result<()>;
    /// Pending work of a hook.
    fn backlog(&self, hook: &str) -> Backlog;
    /// Recover pending deliveries after a restart; returns how many.
    async fn recover(&self) -> Result<usize>;
}
