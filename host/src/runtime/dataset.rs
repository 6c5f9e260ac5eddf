//! The dataset a trainer reads, as the host holds it.

use super::progress::Progress;
use std::sync::{Arc, Mutex};

/// A cursor over a dataset held by the host, handed to trainers as `dataset.reader`.
///
/// Batches are kept as individual IPC streams so `next-batch` is a clone of bytes, not an
/// encode. The trainer world is executed by the model-building work; this type is the
/// foundation's half of that contract.
#[derive(Debug, Clone)]
pub struct DatasetReader {
    pub schema: Vec<u8>,
    pub batches: Arc<Vec<Vec<u8>>>,
    pub rows: u64,
    pub cursor: usize,
    /// Where the trainer's progress reports go while it runs, for a training job to show; the
    /// call's own progress cell when `None`.
    pub watch: Option<Arc<Mutex<Progress>>>,
}
