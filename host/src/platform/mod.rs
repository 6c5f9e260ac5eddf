//! What every centre stands on: where state lives ([`storage`], laid out on local disk by
//! [`local_layout`]), who may do what ([`tokens`]), the tabular formats callers speak
//! ([`formats`], with the IPC framing guard [`ipc_guard`]), the names callers give things
//! ([`names`]) and the clock ([`clock`]).

pub mod clock;
pub mod formats;
pub mod ipc_guard;
pub mod local_layout;
pub mod names;
pub mod storage;
pub mod tokens;
