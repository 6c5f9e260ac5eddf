//! What a plugin last reported of its progress.

/// Last progress report of a call, shared with whoever watches the call.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub message: String,
}
