//! Normal traffic to run next to hostile plugins (`hostile.rs`, `containment.rs`).

use super::{ADMIN, TestHost, client};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Well-behaved calls (the bundled `dedup`), `workers` loops of them with `pause` between calls,
/// until stopped: the traffic that must keep succeeding next to hostile plugins.
pub struct Normal {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Normal {
    pub fn start(host: &TestHost, workers: usize, pause: Duration) -> Normal {
        let (stop, ok, failed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let url = host.url("/v1/plugins/dedup/invoke");
        let tasks = (0..workers)
            .map(|_| {
                tokio::spawn({
                    let (stop, ok, failed, url) =
                        (stop.clone(), ok.clone(), failed.clone(), url.clone());
                    async move {
                        let c = client();
                        while !stop.load(Ordering::Relaxed) {
                            let r = c
                                .post(&url)
                                .bearer_auth(ADMIN)
                                .header("content-type", "text/csv")
                                .body("k,v\n1,a\n1,a\n2,b\n")
                                .send()
                                .await;
                            let good = match r {
                                Ok(r) => {
                                    r.status() == 200
                                        && r.text().await.unwrap() == "k,v\n1,a\n2,b\n"
                                }
                                Err(_) => false,
                            };
                            if good { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(pause).await;
                        }
                    }
                })
            })
            .collect();
        Normal {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    /// Stop and assert every call succeeded; returns how many there were.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let (ok, failed) = (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        );
        assert_eq!(
            failed,
            0,
            "normal traffic: {failed} of {} failed",
            ok + failed
        );
        assert!(ok > 0, "no normal traffic ran");
        ok
    }
}
