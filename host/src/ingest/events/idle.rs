//! A low-priority executor for listing passes.
//!
//! A pass over a large prefix is CPU work (a `stat` per object, ~9 µs each on local disk) that
//! nobody waits for. Run on the host's own threads, a 1.6 s pass over 218k objects took one of
//! this machine's two cores from a host at 80% load; requests queued behind it, and the few
//! hundred bodies then in flight at once were the steps in the soak's RSS (CHANGELOG.md, load
//! and soak). Here passes over local stores run on one thread of their own, and the blocking
//! threads their listings use, all at nice 19: the scheduler gives them the CPU the host leaves idle and only a
//! small share (~1.5%) of a busy one, so a pass slows down instead of the host. [`super::poller::Pace`]
//! measures passes in wall time, so slower passes are also spaced further apart.
//!
//! One executor per process (tests build many hosts in one process); it lives as long as the
//! process. What runs here must not hold what the request path waits on: `Poller::note` never
//! blocks on a pass, and S3 listings stay on the host's runtime, as an HTTP client's pooled
//! connections are driven by the runtime that opened them.

use std::future::Future;
use std::sync::OnceLock;

/// The nice value of the executor's threads (the lowest priority short of `SCHED_IDLE`, which
/// could starve a pass for as long as the host stays busy).
pub const NICE: i32 = 19;

fn lower_priority() {
    // On Linux the nice value is per thread: `who = 0` is the calling thread.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, NICE);
    }
}

fn handle() -> &'static tokio::runtime::Handle {
    static HANDLE: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(2)
            .thread_name("aimass-idle")
            .on_thread_start(lower_priority)
            .build()
            .expect("building the idle-priority runtime");
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("aimass-idle".into())
            .spawn(move || {
                lower_priority();
                rt.block_on(std::future::pending::<()>());
            })
            .expect("starting the idle-priority thread");
        handle
    })
}

/// Run `fut` on the idle-priority executor; await the handle for its output.
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(fut)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nice() -> i32 {
        // getpriority may legitimately return -1; errno is cleared first.
        unsafe {
            *libc::__errno_location() = 0;
            libc::getpriority(libc::PRIO_PROCESS, 0)
        }
    }

    #[tokio::test]
    async fn work_and_its_blocking_io_run_at_low_priority() {
        let caller = nice();
        let (task, blocking) = spawn(async {
            let blocking = tokio::task::spawn_blocking(nice).await.unwrap();
            (nice(), blocking)
        })
        .await
        .unwrap();
        assert_eq!((task, blocking), (NICE, NICE));
        assert_eq!(nice(), caller, "the caller's thread keeps its priority");
    }
}
