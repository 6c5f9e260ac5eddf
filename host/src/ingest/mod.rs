//! Data collection: object events from every source ([`events`]), the poller for stores that
//! cannot notify ([`poller`]), and the hooks that run plugins on them ([`hooks`]).

pub mod events;
pub mod hooks;
pub mod poller;
