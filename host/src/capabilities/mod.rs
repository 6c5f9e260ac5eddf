//! Capabilities the host offers on top of the runtime core: where state lives ([`storage`]), the
//! plugins it serves ([`registry`]), who may do what ([`tokens`]) and the tabular formats callers
//! speak ([`formats`]). Events, the warehouse, models and HTTP functions join here.

pub mod formats;
pub mod registry;
pub mod storage;
pub mod tokens;
