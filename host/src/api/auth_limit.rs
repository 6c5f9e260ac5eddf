//! Failed authentications, rate-limited per peer address: a token bucket per IP of `burst`
//! failures, refilled at `per_minute`. While an address's bucket is empty every request from it
//! that needs a token gets 429 with `Retry-After`, before its token is looked at, so guessing
//! gets no answer at all, right or wrong. Requests with a valid token cost nothing.
//!
//! The table is bounded: past [`MAX_PEERS`] addresses, those whose buckets have refilled are
//! dropped (they are indistinguishable from new ones), and if none have, the table is cleared
//! rather than grown.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at most.
pub const MAX_PEERS: usize = 65_536;

/// Failed authentications allowed per peer address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimit {
    /// Failures in a burst.
    pub burst: u32,
    /// Failures per minute on average after the burst.
    pub per_minute: u32,
}

impl Default for AuthLimit {
    fn default() -> Self {
        AuthLimit {
            burst: 60,
            per_minute: 60,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct AuthFailures {
    limit: AuthLimit,
    peers: Mutex<HashMap<IpAddr, Bucket>>,
}

impl AuthFailures {
    pub fn new(limit: AuthLimit) -> Self {
        AuthFailures {
            limit,
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn per_sec(&self) -> f64 {
        f64::from(self.limit.per_minute.max(1)) / 60.0
    }

    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * self.per_sec()).min(f64::from(self.limit.burst))
    }

    /// `Err(retry after)` while `ip` has used up its failures.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(b) = peers.get(&ip) else {
            return Ok(());
        };
        let tokens = self.refilled(*b, Instant::now());
        if tokens >= 1.0 {
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - tokens) / self.per_sec()))
    }

    /// Counts a failed authentication from `ip`.
    pub fn fail(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if peers.len() >= MAX_PEERS && !peers.contains_key(&ip) {
            let burst = f64::from(self.limit.burst);
            peers.retain(|_, b| self.refilled(*b, now) < burst);
            if peers.len() >= MAX_PEERS {
                peers.clear();
            }
        }
        let full = Bucket {
            tokens: f64::from(self.limit.burst),
            at: now,
        };
        let b = peers.entry(ip).or_insert(full);
        b.tokens = (self.refilled(*b, now) - 1.0).max(0.0);
        b.at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_refused_after_its_burst_and_others_are_not() {
        let f = AuthFailures::new(AuthLimit {
            burst: 3,
            per_minute: 60,
        });
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert!(f.check(a).is_ok());
            f.fail(a);
        }
        let wait = f.check(a).unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(f.check(b).is_ok());
    }

    #[test]
    fn the_table_stays_bounded() {
        let f = AuthFailures::new(AuthLimit::default());
        for i in 0..(MAX_PEERS as u32 + 10) {
            f.fail(IpAddr::from(i.to_be_bytes()));
        }
        assert!(f.peers.lock().unwrap().len() <= MAX_PEERS);
    }
}
