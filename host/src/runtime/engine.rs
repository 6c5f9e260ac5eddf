//! The one wasmtime `Engine` of the host and the knobs that make instantiation cheap and calls
//! interruptible.
//!
//! - **Pooling allocator** when the machine has the address space for it: instances, memories,
//!   tables and fiber stacks come from pre-reserved slots, so instantiation is a few µs of
//!   bookkeeping instead of mmap/munmap. Like `wasmtime serve` and Spin we probe for the virtual
//!   address space first (pooling reserves `total_memories x memory_reservation`) and fall back to
//!   on-demand allocation where the probe fails (39-bit VMs, tight `ulimit -v`).
//! - **Copy-on-write memory images** (wasmtime's default): a fresh instance maps its initial heap
//!   from the compiled artifact instead of copying data segments.
//! - **Epoch interruption** with a ticker thread: the cheapest way to enforce wall-clock deadlines
//!   (2-3x cheaper than fuel). Each store checks its deadline on every tick and yields to tokio in
//!   between, so a long-running plugin never starves the async runtime.
//! - **Fuel** is enabled as a metric only: every store gets `u64::MAX` and we record what was used.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of deadlines and of cooperative yields.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Use the pooling allocator if the address-space probe succeeds.
    pub pooling: bool,
    /// Pool capacity: component instances alive at once across all plugins. Past it,
    /// instantiation fails and callers get 503.
    pub max_instances: u32,
    /// Record fuel consumed per call (a small cost per call).
    pub consume_fuel: bool,
    /// Bytes of each pooled linear memory kept resident between calls (reset with memset
    /// instead of being returned to the kernel). Larger values spare big-data plugins the page
    /// faults and kernel zeroing of their memory on every call, at the price of that much RSS
    /// per pool slot that ever used it. Only honoured with PAGEMAP_SCAN (Linux 6.7+), where
    /// wasmtime resets just the pages a call dirtied. Default 256 MiB: a 1M-row cleaner call
    /// touches ~150 MB, and faulting that in afresh cost it 30–46 ms (see BENCHMARKS.md);
    /// memory-tight hosts running only small plugins can lower it.
    pub keep_resident_bytes: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            pooling: true,
            max_instances: 256,
            consume_fuel: true,
            keep_resident_bytes: 256 << 20,
        }
    }
}

/// The engine plus what was decided while building it.
pub struct HostEngine {
    pub engine: Engine,
    /// Whether the pooling allocator is in use.
    pub pooling: bool,
    pub consume_fuel: bool,
    ticker: Arc<AtomicBool>,
}

impl HostEngine {
    pub fn new(opts: &EngineOptions) -> anyhow::Result<Self> {
        let pooling = opts.pooling && pooling_available();
        let mut config = base_config(opts.consume_fuel);
        if pooling {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(
                opts.max_instances,
                opts.keep_resident_bytes,
            )));
        }
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let ticker = Arc::new(AtomicBool::new(true));
        spawn_ticker(engine.clone(), ticker.clone());
        Ok(HostEngine {
            engine,
            pooling,
            consume_fuel: opts.consume_fuel,
            ticker,
        })
    }

    /// A hash of everything that makes compiled artifacts compatible with this engine (wasmtime
    /// version, target, settings). Part of the compiled-cache key.
    pub fn compatibility_hash(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:016x}", h.finish())
    }
}

impl Drop for HostEngine {
    fn drop(&mut self) {
        self.ticker.store(false, Ordering::Relaxed);
    }
}

fn base_config(consume_fuel: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.consume_fuel(consume_fuel);
    // Deep recursion traps cleanly at 1 MiB of wasm stack; fibers get room for host frames too.
    config.max_wasm_stack(1 << 20);
    config.async_stack_size(2 << 20);
    config.parallel_compilation(true);
    config
}

fn pooling_config(max_instances: u32, keep_resident: u64) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(max_instances);
    // A Rust wasm32-wasip2 component is a handful of core instances (the program plus shims), one
    // memory and a few tables; leave headroom so the component count is the binding limit.
    pool.total_core_instances(max_instances * 8);
    pool.total_memories(max_instances * 2);
    pool.total_tables(max_instances * 8);
    pool.total_stacks(max_instances);
    pool.max_memories_per_component(4);
    pool.max_tables_per_component(8);
    pool.table_elements(100_000);
    pool.max_core_instance_size(1 << 20);
    pool.max_component_instance_size(1 << 20);
    // Reuse slots without giving their pages back: with PAGEMAP_SCAN (Linux 6.7+) wasmtime finds
    // the pages a call dirtied and resets just those with memset, instead of madvise(DONTNEED)
    // (a syscall plus TLB shootdowns) followed by a page fault per page on the next call. Where
    // the ioctl is missing, only the first `keep_resident` bytes are memset, so keep those small.
    let scan = pagemap_scan_available();
    pool.pagemap_scan(Enabled::Auto);
    pool.linear_memory_keep_resident(if scan {
        keep_resident as usize
    } else {
        64 << 10
    });
    pool.table_keep_resident(if scan { 256 << 10 } else { 16 << 10 });
    pool.async_stack_keep_resident(128 << 10);
    pool
}

/// Whether `max_instances x 2` memories of 4 GiB reservation each fit in the address space. Like
/// Spin and `wasmtime serve`, try to reserve 2^42 bytes (PROT_NONE, nothing committed) and release
/// it at once.
fn pooling_available() -> bool {
    if std::env::var_os("AIMASS_NO_POOLING").is_some() {
        return false;
    }
    #[cfg(unix)]
    unsafe {
        let size = 1usize << 42;
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if ptr == libc::MAP_FAILED {
            return false;
        }
        libc::munmap(ptr, size);
        true
    }
    #[cfg(not(unix))]
    false
}

/// Whether the kernel has the `PAGEMAP_SCAN` ioctl (Linux 6.7+), which wasmtime's `Auto` setting
/// uses if present. We need to know too, to size `keep_resident` (see `pooling_config`).
fn pagemap_scan_available() -> bool {
    #[cfg(target_os = "linux")]
    {
        let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
            return false;
        };
        let mut parts = release.trim().split(['.', '-']);
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        (major, minor) >= (6, 7)
    }
    #[cfg(not(target_os = "linux"))]
    false
}

fn spawn_ticker(engine: Engine, running: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("aimass-epoch".into())
        .spawn(move || {
            while running.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawn epoch ticker thread");
}
