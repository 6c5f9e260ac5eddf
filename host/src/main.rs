//! The `aimass` binary; everything lives in the library (see `aimass::cli`).
//!
//! The binary's allocator is jemalloc, with its background thread returning freed pages to the
//! OS after jemalloc's decay time (10 s). Under glibc malloc a host's RSS only went up: every
//! burst of in-flight requests (a few hundred ms of queueing leaves hundreds of bodies in
//! memory at once) raised a high-water mark spread over up to 8 arenas per core that glibc
//! rarely trims, and a soak at 80% load grew 29% in ten minutes from that alone (see
//! CHANGELOG.md, load and soak). Its statistics are installed as the allocator reader of
//! `/metrics` (`aimass_allocator_bytes`, see `aimass::ops::memory`).

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    #[cfg(not(target_env = "msvc"))]
    aimass::ops::memory::install_allocator_reader(jemalloc_stats);
    aimass::cli::main()
}

/// jemalloc's statistics, refreshed (they are cached until the epoch advances).
#[cfg(not(target_env = "msvc"))]
fn jemalloc_stats() -> Option<aimass::ops::memory::AllocatorStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    Some(aimass::ops::memory::AllocatorStats {
        allocated: stats::allocated::read().ok()? as u64,
        active: stats::active::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
        retained: stats::retained::read().ok()? as u64,
    })
}
