//! The embedded event queue: deliveries persisted as small JSON objects in the host's own store,
//! scheduled in memory.
//!
//! `events/queue/{hook}/{delivery}.json` exists from the moment a delivery is accepted until it is
//! acked or dead-lettered (then it moves to `events/dead/{hook}/{delivery}.json`). On start,
//! [`StoreQueue::recover`] lists the queue prefix and schedules everything found, so a kill -9
//! anywhere loses nothing: at worst a delivery that had finished runs again, and the hooks'
//! outputs are keyed by delivery id so that changes nothing. One PUT and one DELETE per delivery
//! (~0.1 ms each on local disk) is the price; it needs no second process.

use super::queue::{Backlog, DeadLetter, Delivery, EventQueue};
use crate::platform::clock::now_ms;
use crate::platform::storage::Storage;
use anyhow::Result;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

const QUEUE: &str = "events/queue";
const DEAD: &str = "events/dead";

fn queue_key(d: &Delivery) -> String {
    format!("{QUEUE}/{}/{}.json", d.hook, d.id)
}

fn dead_key(hook: &str, id: &str) -> String {
    format!("{DEAD}/{hook}/{id}.json")
}

struct Pending {
    hook: String,
    since_ms: u64,
    retrying: bool,
}

#[derive(Default)]
struct State {
    ready: VecDeque<Delivery>,
    /// Keyed by (due time, id).
    delayed: BTreeMap<(u64, String), Delivery>,
    /// Every delivery the queue owns: ready, delayed, or handed out and not yet settled.
    pending: HashMap<String, Pending>,
}

pub struct StoreQueue {
    storage: Storage,
    state: Mutex<State>,
    wake: Notify,
}

impl StoreQueue {
    pub fn new(storage: Storage) -> StoreQueue {
        StoreQueue {
            storage,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        }
    }

    fn schedule(&self, d: Delivery) {
        let mut st = self.state.lock().unwrap();
        if d.not_before_ms > now_ms() {
            st.delayed.insert((d.not_before_ms, d.id.clone()), d);
        } else {
            st.ready.push_back(d);
        }
        drop(st);
        self.wake.notify_one();
    }

    fn forget(&self, id: &str) {
        self.state.lock().unwrap().pending.remove(id);
    }
}

#[async_trait::async_trait]
impl EventQueue for StoreQueue {
    async fn enqueue(&self, d: Delivery) -> Result<()> {
        {
            let mut st = self.state.lock().unwrap();
            if st.pending.contains_key(&d.id) {
                return Ok(());
            }
            st.pending.insert(
                d.id.clone(),
                Pending {
                    hook: d.hook.clone(),
                    since_ms: d.event.time_us / 1000,
                    retrying: false,
                },
            );
        }
        if let Err(e) = self.storage.put_json(&queue_key(&d), &d).await {
            self.forget(&d.id);
            return Err(e);
        }
        self.schedule(d);
        Ok(())
    }

    async fn next(&self) -> Delivery {
        loop {
            let wait = {
                let mut st = self.state.lock().unwrap();
                let now = now_ms();
                while let Some(entry) = st.delayed.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let d = entry.remove();
                    if let Some(p) = st.pending.get_mut(&d.id) {
                        p.retrying = false;
                    }
                    st.ready.push_back(d);
                }
                if let Some(d) = st.ready.pop_front() {
                    return d;
                }
                st.delayed
                    .first_key_value()
                    .map(|((due, _), _)| Duration::from_millis(due.saturating_sub(now)))
            };
            match wait {
                Some(w) => {
                    let _ = tokio::time::timeout(w, self.wake.notified()).await;
                }
                None => self.wake.notified().await,
            }
        }
    }

    async fn ack(&self, d: &Delivery) -> Result<()> {
        self.storage.delete(&queue_key(d)).await?;
        self.forget(&d.id);
        Ok(())
    }

    async fn retry(
        &self,
        mut d: Delivery,
        error: String,
        delay: Duration,
        counted: bool,
    ) -> Result<()> {
        d.attempts += counted as u32;
        d.last_error = Some(error);
        d.not_before_ms = now_ms() + delay.as_millis() as u64;
        self.storage.put_json(&queue_key(&d), &d).await?;
        if let Some(p) = self.state.lock().unwrap().pending.get_mut(&d.id) {
            p.retrying = true;
        }
        self.schedule(d);
        Ok(())
    }

    fn release(&self, d: Delivery) {
        self.schedule(d);
    }

    async fn dead_letter(&self, d: &Delivery, reason: &str) -> Result<()> {
        let letter = DeadLetter {
            delivery: d.clone(),
            reason: reason.to_string(),
            time_ms: now_ms(),
        };
        self.storage
            .put_json(&dead_key(&d.hook, &d.id), &letter)
            .await?;
        self.ack(d).await
    }

    async fn dead_letters(&self, hook: &str) -> Result<Vec<DeadLetter>> {
        let mut out = Vec::new();
        for key in self.storage.list(&format!("{DEAD}/{hook}/")).await? {
            if let Some(l) = self.storage.get_json::<DeadLetter>(&key).await? {
                out.push(l);
            }
        }
        out.sort_by_key(|l| l.time_ms);
        Ok(out)
    }

    async fn redrive(&self, hook: &str) -> Result<usize> {
        let letters = self.dead_letters(hook).await?;
        let n = letters.len();
        for l in letters {
            let mut d = l.delivery;
            let id = d.id.clone();
            d.attempts = 0;
            d.not_before_ms = 0;
            d.last_error = None;
            // Enqueued (durably) before the dead letter goes: a crash in between leaves both,
            // and the dead letter can be redriven again harmlessly.
            self.enqueue(d).await?;
            self.storage.delete(&dead_key(hook, &id)).await?;
        }
        Ok(n)
    }

    async fn purge(&self, hook: &str) -> Result<()> {
        {
            let mut st = self.state.lock().unwrap();
            st.ready.retain(|d| d.hook != hook);
            st.delayed.retain(|_, d| d.hook != hook);
            st.pending.retain(|_, p| p.hook != hook);
        }
        for prefix in [format!("{QUEUE}/{hook}/"), format!("{DEAD}/{hook}/")] {
            for key in self.storage.list(&prefix).await? {
                self.storage.delete(&key).await?;
            }
        }
        Ok(())
    }

    fn backlog(&self, hook: &str) -> Backlog {
        let st = self.state.lock().unwrap();
        let mut b = Backlog::default();
        for p in st.pending.values().filter(|p| p.hook == hook) {
            b.pending += 1;
            b.retrying += p.retrying as u64;
            b.oldest_ms = Some(b.oldest_ms.map_or(p.since_ms, |o| o.min(p.since_ms)));
        }
        b
    }

    async fn recover(&self) -> Result<usize> {
        let keys = self.storage.list(&format!("{QUEUE}/")).await?;
        let mut n = 0;
        for key in keys {
            let d = match self.storage.get_json::<Delivery>(&key).await {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                // Writes are atomic, so this is not a torn write but a foreign object: keep it
                // for inspection rather than refuse to start.
                Err(e) => {
                    tracing::warn!("skipping unreadable queue entry {key}: {e:#}");
                    continue;
                }
            };
            let fresh = {
                let mut st = self.state.lock().unwrap();
                let fresh = !st.pending.contains_key(&d.id);
                if fresh {
                    st.pending.insert(
                        d.id.clone(),
                        Pending {
                            hook: d.hook.clone(),
                            since_ms: d.event.time_us / 1000,
                            retrying: d.attempts > 0,
                        },
                    );
                }
                fresh
            };
            if fresh {
                self.schedule(d);
                n += 1;
            }
        }
        Ok(n)
    }
}
