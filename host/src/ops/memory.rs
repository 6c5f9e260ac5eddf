//! What the host's memory is made of, for `GET /metrics`.
//!
//! RSS alone cannot tell a leak from an allocator that keeps freed pages, or from memory that is
//! not the heap at all (thread stacks, the binary, pooled linear memories). So the scrape reports
//! the process as the kernel sees it (the standard `process_*` series of every Prometheus client)
//! next to the allocator's own view, `aimass_allocator_bytes{kind}`:
//!
//! - `allocated`: bytes in live allocations; a leak grows this.
//! - `active`: pages holding live allocations (allocated plus fragmentation inside them).
//! - `resident`: allocator pages in RAM, freed ones not yet returned included; `resident -
//!   active` is what the allocator holds back and returns after its decay time.
//! - `retained`: address space kept mapped for reuse but returned to the OS (not in RSS).
//!
//! The library does not choose the allocator, the binary does (`src/main.rs` uses jemalloc), so
//! the binary installs a reader here at start-up. Without one (tests, embedders) the series is
//! absent rather than zero.

use std::sync::OnceLock;

/// One reading of the allocator's statistics, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocatorStats {
    pub allocated: u64,
    pub active: u64,
    pub resident: u64,
    pub retained: u64,
}

impl AllocatorStats {
    /// The `kind` label values with their readings.
    pub fn kinds(&self) -> [(&'static str, u64); 4] {
        [
            ("allocated", self.allocated),
            ("active", self.active),
            ("resident", self.resident),
            ("retained", self.retained),
        ]
    }
}

/// Reads the process allocator's statistics; `None` if they are unavailable right now.
pub type AllocatorReader = fn() -> Option<AllocatorStats>;

static READER: OnceLock<AllocatorReader> = OnceLock::new();

/// Installs the process-wide allocator reader. The first call wins: there is one allocator per
/// process.
pub fn install_allocator_reader(read: AllocatorReader) {
    let _ = READER.set(read);
}

/// The allocator's statistics now, if a reader is installed and it answers.
pub fn allocator_stats() -> Option<AllocatorStats> {
    READER.get().and_then(|read| read())
}
