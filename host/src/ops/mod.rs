//! Operating the host: the Prometheus series ([`prometheus`], with the memory breakdown of
//! [`memory`]) and what the host tells its users ([`notify`]: the notification stream, webhooks
//! and alerts).

pub mod memory;
pub mod notify;
pub mod prometheus;
