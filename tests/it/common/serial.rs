//! Turns for the tests of this binary, which share one process and run on `--test-threads`
//! threads at once.
//!
//! Every test takes a turn as its first statement:
//! - [`together`]: most tests. They run beside each other.
//! - [`heavy`]: tests with timing windows or heavy load (hostile plugins, the real binary killed
//!   or signalled, slow-drip connections). One at a time, beside `together` tests.
//! - [`alone`]: tests that measure this process (its resident memory) or need a quiet machine
//!   (deadline precision, the soak). Nothing else in the process runs meanwhile.
//!
//! The `_blocking` forms are for plain `#[test]`s, outside any async runtime.

use tokio::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Read: a test runs; write: a test runs alone. Tokio's lock is fair, so a waiting `alone` test
/// holds back the `together` tests that come after it instead of waiting for a gap.
static RUNNING: RwLock<()> = RwLock::const_new(());
/// Held by the `heavy` test that runs.
static HEAVY: Mutex<()> = Mutex::const_new(());

/// A test's turn, held until the end of the test.
#[must_use = "the turn ends when this is dropped"]
pub enum Turn {
    Together(RwLockReadGuard<'static, ()>),
    Heavy(MutexGuard<'static, ()>, RwLockReadGuard<'static, ()>),
    Alone(RwLockWriteGuard<'static, ()>),
}

pub async fn together() -> Turn {
    Turn::Together(RUNNING.read().await)
}

/// The heavy turn first, then the shared one: a heavy test waiting for its turn does not hold
/// back an `alone` test.
pub async fn heavy() -> Turn {
    let heavy = HEAVY.lock().await;
    Turn::Heavy(heavy, RUNNING.read().await)
}

pub async fn alone() -> Turn {
    Turn::Alone(RUNNING.write().await)
}

pub fn together_blocking() -> Turn {
    Turn::Together(RUNNING.blocking_read())
}

pub fn heavy_blocking() -> Turn {
    let heavy = HEAVY.blocking_lock();
    Turn::Heavy(heavy, RUNNING.blocking_read())
}

pub fn alone_blocking() -> Turn {
    Turn::Alone(RUNNING.blocking_write())
}
