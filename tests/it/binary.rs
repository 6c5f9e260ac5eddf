//! The real `aimass` binary: `up` on a fresh data dir (token bootstrap, bundled plugins), the CLI
//! against it, and a kill -9 + restart that reloads plugins from the compiled cache.

use crate::common;

use common::binary::{BIN, Up, admin_token, up, up_on, up_on_small_tmpfs, up_with};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn cli(up: &Up, data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--url")
        .arg(&up.url)
        .arg("--data-dir")
        .arg(data)
        .env_remove("AIMASS_TOKEN")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "CLI failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn wasm_file(name: &str) -> PathBuf {
    aimass::bundled::wasm_path(name)
}

/// Uploads the `http-echo` function (its `/sleep?ms=N` answers after N ms) as `name`.
async fn push_http_echo(http: &reqwest::Client, up: &Up, token: &str, name: &str) {
    let r = http
        .put(format!("{}/v1/plugins/{name}", up.url))
        .bearer_auth(token)
        .body(std::fs::read(wasm_file("http-echo")).unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// The host's `/metrics` text.
async fn scrape(up: &Up, token: &str) -> String {
    reqwest::Client::new()
        .get(format!("{}/metrics", up.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one series (name with its labels, as exposed) in a `/metrics` text.
fn series(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
}

#[test]
fn first_start_generates_a_token_the_cli_finds() {
    let _turn = crate::common::serial::together_blocking();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let host = up(dir.path());
    assert!(
        host.banner.contains("generated an admin token into"),
        "{}",
        host.banner
    );
    let token_file = data.join("admin-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    // Written to the file, never to stdout (CI and container logs keep stdout).
    assert!(token.starts_with("aimass_") && !host.banner.contains(&token));
    assert!(host.banner.contains(&token_file.display().to_string()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The binary allocates with jemalloc, whose background threads return freed memory to the
    // OS (glibc malloc kept a busy host's every high-water mark; see RELIABILITY.md).
    #[cfg(target_os = "linux")]
    {
        let tasks = format!("/proc/{}/task", host.child.id());
        let names: Vec<String> = std::fs::read_dir(&tasks)
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .collect();
        assert!(
            names.iter().any(|n| n.trim() == "jemalloc_bg_thd"),
            "no jemalloc background thread among {names:?}"
        );
    }

    // No --token anywhere: the CLI reads the file.
    let ls = ok(&cli(&host, &data, &["plugin", "ls"]));
    for p in [
        "csv-collector",
        "dedup",
        "drop-nulls",
        "outliers",
        "standard-scaler",
    ] {
        assert!(ls.contains(p), "{ls}");
    }
    let noop = wasm_file("noop");
    let push = ok(&cli(
        &host,
        &data,
        &[
            "plugin",
            "push",
            "echo",
            noop.to_str().unwrap(),
            "--timeout-ms",
            "2000",
        ],
    ));
    assert!(push.contains("pushed echo v1 (cleaner"), "{push}");
    let show = ok(&cli(&host, &data, &["plugin", "show", "echo"]));
    assert!(show.contains("\"timeout_ms\": 2000"), "{show}");

    let input = dir.path().join("in.csv");
    std::fs::write(&input, "k,v\n1,a\n1,a\n").unwrap();
    let out = ok(&cli(
        &host,
        &data,
        &["invoke", "dedup", "--in", input.to_str().unwrap()],
    ));
    assert_eq!(out, "k,v\n1,a\n");
    let out = ok(&cli(
        &host,
        &data,
        &[
            "invoke",
            "dedup",
            "--in",
            input.to_str().unwrap(),
            "--config",
            "keys=k",
            "--accept",
            "application/x-ndjson",
        ],
    ));
    assert_eq!(out, "{\"k\":1,\"v\":\"a\"}\n");

    let tok = ok(&cli(
        &host,
        &data,
        &["token", "create", "--role", "reader", "--name", "ci"],
    ));
    assert!(tok.trim().starts_with("aimass_"));
    let reader_push = Command::new(BIN)
        .args([
            "plugin",
            "push",
            "x",
            noop.to_str().unwrap(),
            "--url",
            &host.url,
            "--token",
            tok.trim(),
        ])
        .output()
        .unwrap();
    assert!(!reader_push.status.success());
    assert!(String::from_utf8_lossy(&reader_push.stderr).contains("403"));

    ok(&cli(&host, &data, &["plugin", "rm", "echo"]));
    let missing = cli(&host, &data, &["plugin", "rm", "echo"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));

    let wrong = Command::new(BIN)
        .args(["plugin", "ls", "--url", &host.url, "--token", "nope"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("401 Unauthorized: invalid token"));

    for args in [
        &["--help"][..],
        &["up", "--help"],
        &["plugin", "push", "--help"],
        &["invoke", "--help"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{args:?}");
    }
}

/// `/metrics` of the real binary breaks its memory down: the process as the kernel sees it and
/// jemalloc's own account of the heap, so RSS growth can be told apart from a leak (see
/// RELIABILITY.md, Load and soak).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn metrics_break_down_the_binarys_memory() {
    let _turn = crate::common::serial::together().await;
    let dir = tempfile::tempdir().unwrap();
    let host = up(dir.path());
    let token = admin_token(&dir.path().join("data"));
    let body = scrape(&host, &token).await;
    let value = |name: &str| series(&body, name);
    let kind = |k: &str| value(&format!("aimass_allocator_bytes{{kind=\"{k}\"}}"));
    let (allocated, active, resident) = (kind("allocated"), kind("active"), kind("resident"));
    let rss = value("process_resident_memory_bytes");
    assert!(
        allocated > 1e6,
        "a started host has live allocations: {allocated}"
    );
    assert!(
        allocated <= active && active <= resident && resident < rss,
        "allocated {allocated} <= active {active} <= resident {resident} < RSS {rss}"
    );
    // Present (a missing series fails the read); its value may well be 0.
    kind("retained");
    assert!(value("process_threads") >= 2.0);
    assert!(value("process_open_fds") >= 3.0);
}

/// The heap an open keep-alive connection holds, from jemalloc's own count: 26–28 KiB with the
/// router shared across connections, 76 KiB when axum rebuilt it for every connection (a load
/// generator's 1,000 connections were most of a soak's RSS growth; RELIABILITY.md).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn an_idle_connection_holds_under_48_kib_of_heap() {
    let _turn = crate::common::serial::heavy().await;
    use std::io::{Read, Write};
    const CONNECTIONS: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let host = up(dir.path());
    let token = admin_token(&dir.path().join("data"));
    let allocated = || async {
        let body = scrape(&host, &token).await;
        series(&body, "aimass_allocator_bytes{kind=\"allocated\"}")
    };
    allocated().await;
    let before = allocated().await;
    let addr = host.url.trim_start_matches("http://").to_string();
    let open = tokio::task::spawn_blocking(move || {
        (0..CONNECTIONS)
            .map(|_| {
                let mut c = std::net::TcpStream::connect(&addr).unwrap();
                c.write_all(b"GET /healthz HTTP/1.1\r\nhost: aimass\r\n\r\n")
                    .unwrap();
                let mut head = [0u8; 12];
                c.read_exact(&mut head).unwrap();
                assert_eq!(&head, b"HTTP/1.1 200");
                c
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_connection = (allocated().await - before) / CONNECTIONS as f64 / 1024.0;
    // Every connection was still open when measured: each answers a second request.
    let still_open =
        tokio::task::spawn_blocking(move || open.iter().filter(|c| answers_again(c)).count())
            .await
            .unwrap();
    assert_eq!(
        still_open, CONNECTIONS,
        "connections closed before the measure"
    );
    assert!(
        per_connection < 48.0,
        "{per_connection:.1} KiB of heap per idle connection"
    );
}

/// Does a keep-alive connection whose first `/healthz` answer was read up to its status line
/// answer a second request? (What is left of the first answer, then the second, whole.)
fn answers_again(mut c: &std::net::TcpStream) -> bool {
    use std::io::{Read, Write};
    const BODY: &str = "{\"status\":\"ok\"}";
    if c.write_all(b"GET /healthz HTTP/1.1\r\nhost: aimass\r\n\r\n")
        .is_err()
    {
        return false;
    }
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 1024];
    while got.matches(BODY).count() < 2 {
        match c.read(&mut buf) {
            Ok(n) if n > 0 => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => return false,
        }
    }
    got.contains("HTTP/1.1 200")
}

/// `--header-timeout-secs`: a connection that never completes its request head (slowloris) and
/// a keep-alive connection left idle are closed once it passes; a request in progress is not,
/// however long it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_heads_and_idle_connections_are_closed_after_the_header_timeout() {
    let _turn = crate::common::serial::heavy().await;
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let host = up_with(dir.path(), None, &["--header-timeout-secs", "1"]);
    let token = admin_token(&dir.path().join("data"));
    let addr = host.url.trim_start_matches("http://").to_string();

    // Reads until the host closes the connection: what it sent, and when it closed counted from
    // `t` (taken before connecting: the host's timer starts when it first polls the connection).
    let until_closed = |mut c: std::net::TcpStream, t: std::time::Instant| {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got)
            .expect("closed by the host, not timed out here");
        (String::from_utf8_lossy(&got).into_owned(), t.elapsed())
    };
    let (a, b) = (addr.clone(), addr.clone());
    let slowloris = tokio::task::spawn_blocking(move || {
        let t = std::time::Instant::now();
        let mut c = std::net::TcpStream::connect(&a).unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: aimass\r\n")
            .unwrap();
        until_closed(c, t)
    });
    let idle = tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(&b).unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: aimass\r\n\r\n")
            .unwrap();
        // The idle time starts once the answer is out; the lower bound allows for reading it.
        until_closed(c, std::time::Instant::now())
    });
    let (head, took) = slowloris.await.unwrap();
    assert!(head.is_empty(), "an unfinished head got {head:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
    let (answered, took) = idle.await.unwrap();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "idle for {took:?}"
    );

    // A call that runs 2.5 s, past the 1 s timeout, is answered in full.
    let http = reqwest::Client::new();
    push_http_echo(&http, &host, &token, "slow").await;
    let r = http
        .get(format!("{}/fn/slow/sleep?ms=2500", host.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "slept 2500 ms");
}

#[test]
fn kill_and_restart_reloads_from_the_compiled_cache() {
    let _turn = crate::common::serial::heavy_blocking();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut host = up(dir.path());
    let hostile = wasm_file("hostile");
    ok(&cli(
        &host,
        &data,
        &["plugin", "push", "persist", hostile.to_str().unwrap()],
    ));
    host.child.kill().unwrap(); // SIGKILL: no graceful shutdown.
    host.child.wait().unwrap();
    drop(host);

    let host = up(dir.path());
    assert!(
        host.banner.contains("use the admin token in"),
        "{}",
        host.banner
    );
    let show: serde_json::Value =
        serde_json::from_str(&ok(&cli(&host, &data, &["plugin", "show", "persist"]))).unwrap();
    assert_eq!(show["loaded_from"], "cache", "{show}");
    assert!(
        show["load_ms"].as_f64().unwrap() < 50.0,
        "mapped, not recompiled: {show}"
    );
    assert_eq!(show["live_version"], 1);
    // Bundled plugins were not re-registered as new versions.
    let dedup: serde_json::Value =
        serde_json::from_str(&ok(&cli(&host, &data, &["plugin", "show", "dedup"]))).unwrap();
    assert_eq!(dedup["live_version"], 1);
    assert_eq!(dedup["loaded_from"], "cache");
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "a\n1\n").unwrap();
    let out = ok(&cli(
        &host,
        &data,
        &[
            "invoke",
            "persist",
            "--in",
            input.to_str().unwrap(),
            "--config",
            "mode=ok",
        ],
    ));
    assert_eq!(out, "a\n1\n");
}

/// A full store: writes answer 507 with `Retry-After`, and hook deliveries that cannot write
/// their output retry instead of failing or dead-lettering; once space is freed, every queued
/// event is processed exactly once. The store is a real file system filled to ENOSPC (a small
/// tmpfs in the host's own mount namespace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_makes_hook_deliveries_wait_and_lose_nothing() {
    let _turn = crate::common::serial::heavy().await;
    const N: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let host = up_on_small_tmpfs(dir.path(), 128);
    let token = admin_token(&dir.path().join("data"));
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, body: Vec<u8>| {
        http.request(method, format!("{}{path}", host.url))
            .bearer_auth(&token)
            .body(body)
            .send()
    };
    let spec =
        serde_json::json!({"plugin": "csv-collector", "prefix": "full/", "output": "full-raw"});
    let r = send(
        reqwest::Method::PUT,
        "/v1/hooks/full",
        spec.to_string().into(),
    )
    .await
    .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = send(reqwest::Method::POST, "/v1/hooks/full/pause", vec![])
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for i in 0..N {
        let body = format!("n,v\n{i},{}\n", i * 2).into_bytes();
        let r = send(
            reqwest::Method::PUT,
            &format!("/v1/objects/full/{i:03}.csv"),
            body,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
    }
    // Fill the file system, in smaller and smaller objects, until not even 1 KiB fits.
    let mut fillers = 0;
    for size in [1 << 20, 64 << 10, 4 << 10, 1 << 10] {
        loop {
            let path = format!("/v1/objects/filler/{fillers:05}");
            let r = send(reqwest::Method::PUT, &path, vec![b'x'; size])
                .await
                .unwrap();
            if r.status() == 507 {
                assert!(r.headers().contains_key("retry-after"));
                let text = r.text().await.unwrap();
                assert!(text.contains("full"), "{text}");
                break;
            }
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
            fillers += 1;
        }
    }
    assert!(fillers > 0);
    // Let the hook go against the full store: its outputs cannot be written. Resuming writes
    // the hook's record, so it needs a page or two: free the smallest fillers until it fits.
    let mut freed = 0;
    loop {
        let r = send(reqwest::Method::POST, "/v1/hooks/full/resume", vec![])
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 507);
        assert!(freed < 8, "resuming still finds the store full");
        fillers -= 1;
        freed += 1;
        let path = format!("/v1/objects/filler/{fillers:05}");
        let r = send(reqwest::Method::DELETE, &path, vec![]).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = status_of(&http, &host, &token, "full").await;
    assert!(during["pending"].as_u64().unwrap() > 0, "{during}");
    assert_eq!(during["dead_lettered"], 0, "{during}");
    assert!(
        during["last_error"].to_string().contains("full"),
        "no failed write while the store was full: {during}"
    );
    // Free the space: the queue drains, every event processed exactly once.
    for i in 0..fillers {
        let r = send(
            reqwest::Method::DELETE,
            &format!("/v1/objects/filler/{i:05}"),
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let after = loop {
        let st = status_of(&http, &host, &token, "full").await;
        if st["pending"] == 0 && st["in_flight"] == 0 {
            break st;
        }
        assert!(std::time::Instant::now() < deadline, "{st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(after["dead_lettered"], 0, "{after}");
    let rows: Vec<serde_json::Value> = get_as(
        &http,
        &host,
        &token,
        "/v1/datasets/full-raw/rows?limit=1000",
    )
    .await;
    let mut ns: Vec<u64> = rows.iter().map(|r| r["n"].as_u64().unwrap()).collect();
    ns.sort();
    assert_eq!(
        ns,
        (0..N as u64).collect::<Vec<_>>(),
        "every object exactly once"
    );
    eprintln!(
        "store full ({fillers} fillers): {} of {N} events pending 3 s later, 0 dead-lettered \
         (last error: {}); after freeing space all {N} processed exactly once",
        during["pending"], during["last_error"]
    );
}

/// A hook's status.
async fn status_of(http: &reqwest::Client, up: &Up, token: &str, hook: &str) -> serde_json::Value {
    get_as(http, up, token, &format!("/v1/hooks/{hook}")).await
}

/// GET a JSON resource of a running binary with a token.
async fn get_as<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    up: &Up,
    token: &str,
    path: &str,
) -> T {
    http.get(format!("{}{path}", up.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_500_events_loses_and_duplicates_nothing() {
    let _turn = crate::common::serial::heavy().await;
    kill_9_during_500_events(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_500_events_on_garage() {
    let _turn = crate::common::serial::heavy().await;
    let g = std::thread::spawn(common::garage::Garage::start)
        .join()
        .unwrap();
    kill_9_during_500_events(Some(&g)).await;
}

/// kill -9 while 500 events are being processed by a two-hook chain; after the restart every
/// object's output exists exactly once in both datasets and nothing partial is visible.
async fn kill_9_during_500_events(garage: Option<&common::garage::Garage>) {
    const N: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut host = up_on(dir.path(), garage);
    let token = admin_token(&data);
    let http = reqwest::Client::new();
    for (name, spec) in [
        (
            "crash-collect",
            serde_json::json!({"plugin": "csv-collector", "prefix": "crash/", "output": "crash-raw"}),
        ),
        (
            "crash-dedup",
            serde_json::json!({"plugin": "dedup", "prefix": "datasets/crash-raw/", "output": "crash-clean"}),
        ),
    ] {
        let r = http
            .put(format!("{}/v1/hooks/{name}", host.url))
            .bearer_auth(&token)
            .body(spec.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    // Queue all 500 while the first hook is paused, then let it run and kill it mid-way.
    let r = http
        .post(format!("{}/v1/hooks/crash-collect/pause", host.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let puts = futures::stream::iter(0..N).map(|i| {
        let (http, url, token) = (http.clone(), host.url.clone(), token.clone());
        async move {
            let r = http
                .put(format!("{url}/v1/objects/crash/{i:04}.csv"))
                .bearer_auth(&token)
                .body(format!("n,v\n{i},{}\n{i},{}\n", i * 2, i * 2))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    });
    use futures::StreamExt;
    puts.buffer_unordered(16).collect::<Vec<_>>().await;
    assert_eq!(
        status_of(&http, &host, &token, "crash-collect").await["pending"],
        N
    );
    let r = http
        .post(format!("{}/v1/hooks/crash-collect/resume", host.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let killed_at = loop {
        let st = status_of(&http, &host, &token, "crash-collect").await;
        let done = st["processed"].as_u64().unwrap();
        if done >= 50 {
            break done;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hook never got going: {st}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    host.child.kill().unwrap(); // SIGKILL, mid-processing.
    host.child.wait().unwrap();
    drop(host);

    let host = up_on(dir.path(), garage);
    let start = std::time::Instant::now();
    loop {
        let a = status_of(&http, &host, &token, "crash-collect").await;
        let b = status_of(&http, &host, &token, "crash-dedup").await;
        if a["pending"] == 0 && b["pending"] == 0 {
            assert_eq!(a["dead_lettered"], 0, "{a}");
            assert_eq!(b["dead_lettered"], 0, "{b}");
            // Counters start at each start: events processed after the restart prove the kill
            // landed with events still queued. (Not duplicates: the restarted poller re-reports
            // objects whose events were all done, and those count as duplicates.)
            let processed = a["processed"].as_u64().unwrap();
            assert!(
                processed > 0,
                "the kill landed after the work was done (killed at {killed_at}): {a}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{a}\n{b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for ds in ["crash-raw", "crash-clean"] {
        let d: serde_json::Value =
            get_as(&http, &host, &token, &format!("/v1/datasets/{ds}")).await;
        let per_row = if ds == "crash-raw" { 2 } else { 1 };
        assert_eq!(d["parts"], N, "{ds}: every object exactly once");
        assert_eq!(d["rows"], N * per_row, "{ds}");
        let rows: Vec<serde_json::Value> = get_as(
            &http,
            &host,
            &token,
            &format!("/v1/datasets/{ds}/rows?limit=100000"),
        )
        .await;
        let mut ns: Vec<u64> = rows.iter().map(|r| r["n"].as_u64().unwrap()).collect();
        ns.sort();
        ns.dedup();
        assert_eq!(ns.len(), N, "{ds}: every object's rows, none twice");
        assert_eq!(rows.len(), N * per_row, "{ds}");
    }
    // Every visible part's Parquet file exists (manifests are written last).
    let store = match garage {
        Some(g) => g.storage(),
        None => aimass::platform::storage::Storage::open(
            &format!("file://{}", dir.path().join("store").display()),
            &Default::default(),
        )
        .unwrap(),
    };
    for ds in ["crash-raw", "crash-clean"] {
        let names = store.list(&format!("datasets/{ds}/parts/")).await.unwrap();
        for m in names.iter().filter(|n| n.ends_with(".json")) {
            let pq = m.replace(".json", ".parquet");
            assert!(names.contains(&pq), "{ds}: manifest {m} without its part");
        }
    }
}

/// The CLI's object, hook and dataset commands against the real binary.
#[test]
fn cli_hooks_objects_and_datasets() {
    let _turn = crate::common::serial::together_blocking();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let host = up(dir.path());
    let out = ok(&cli(
        &host,
        &data,
        &[
            "hook",
            "add",
            "cli-hook",
            "--plugin",
            "csv-collector",
            "--prefix",
            "in/",
            "--suffix",
            ".csv",
            "--events",
            "created,deleted",
            "--output",
            "cli-ds",
            "--max-retries",
            "1",
        ],
    ));
    assert!(
        out.contains("csv-collector on in/*.csv → dataset cli-ds"),
        "{out}"
    );
    let file = dir.path().join("a b.csv");
    std::fs::write(&file, "x,y\n1,2\n3,4\n").unwrap();
    let out = ok(&cli(
        &host,
        &data,
        &["put", "in/a b+c.csv", file.to_str().unwrap()],
    ));
    assert!(out.contains("1 hook(s) fired"), "{out}");
    assert!(ok(&cli(&host, &data, &["ls", "in/"])).contains("in/a b+c.csv"));
    assert_eq!(
        ok(&cli(&host, &data, &["get", "in/a b+c.csv"])),
        "x,y\n1,2\n3,4\n"
    );
    let start = std::time::Instant::now();
    loop {
        let st: serde_json::Value =
            serde_json::from_str(&ok(&cli(&host, &data, &["hook", "status", "cli-hook"]))).unwrap();
        if st["processed"] == 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{st}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rows = ok(&cli(
        &host,
        &data,
        &["dataset", "rows", "cli-ds", "--format", "csv"],
    ));
    assert_eq!(rows, "x,y\n1,2\n3,4\n");
    assert!(ok(&cli(&host, &data, &["dataset", "ls"])).contains("cli-ds"));
    let ls = ok(&cli(&host, &data, &["hook", "ls"]));
    assert!(ls.contains("cli-hook") && ls.contains("active"), "{ls}");
    assert!(ok(&cli(&host, &data, &["hook", "pause", "cli-hook"])).contains("paused"));
    assert!(ok(&cli(&host, &data, &["hook", "ls"])).contains("paused"));
    ok(&cli(&host, &data, &["hook", "resume", "cli-hook"]));
    assert!(ok(&cli(&host, &data, &["hook", "redrive", "cli-hook"])).contains("redriven 0"));
    ok(&cli(&host, &data, &["hook", "rm", "cli-hook"]));
    let missing = cli(&host, &data, &["hook", "status", "cli-hook"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    let bad = cli(
        &host,
        &data,
        &["put", "auth/tokens.json", file.to_str().unwrap()],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("403"));
}

#[test]
fn cli_trains_watches_and_serves_a_model() {
    let _turn = crate::common::serial::together_blocking();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let host = up(dir.path());
    // Raw CSV lands under a prefix; the collector hook turns it into the dataset.
    ok(&cli(
        &host,
        &data,
        &[
            "hook",
            "add",
            "bc",
            "--plugin",
            "csv-collector",
            "--prefix",
            "raw/bc/",
            "--output",
            "bc",
        ],
    ));
    let csv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/data/breast-cancer.csv"
    );
    ok(&cli(&host, &data, &["put", "raw/bc/all.csv", csv]));
    let start = std::time::Instant::now();
    while !ok(&cli(&host, &data, &["dataset", "ls"])).contains("569") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the dataset never filled"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = ok(&cli(
        &host,
        &data,
        &[
            "train",
            "--model",
            "bc",
            "--trainer",
            "logistic-regression",
            "--dataset",
            "bc",
            "--label",
            "label",
            "--param",
            "c=0.1,1",
            "--transform",
            "standard-scaler",
            "--gate",
            "min_auc=0.98",
            "--watch",
        ],
    ));
    assert!(out.contains("succeeded"), "{out}");
    assert!(out.contains("alias production → v1"), "{out}");
    assert!(out.contains("auc="), "{out}");
    // A gate no model can pass: a new version, but the alias stays.
    let out = ok(&cli(
        &host,
        &data,
        &[
            "train",
            "--model",
            "bc",
            "--trainer",
            "logistic-regression",
            "--dataset",
            "bc",
            "--label",
            "label",
            "--gate",
            "min_accuracy=1.01",
            "--watch",
        ],
    ));
    assert!(
        out.contains("model bc v2") && out.contains("alias production NOT moved: min_accuracy"),
        "{out}"
    );
    let ls = ok(&cli(&host, &data, &["model", "ls"]));
    assert!(ls.contains("bc") && ls.contains("production=v1"), "{ls}");

    let first_row: Vec<f64> = std::fs::read_to_string(csv)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .take(30)
        .map(|v| v.parse().unwrap())
        .collect();
    let req = dir.path().join("req.json");
    std::fs::write(&req, serde_json::json!({"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": first_row}]}).to_string()).unwrap();
    let out: serde_json::Value = serde_json::from_str(&ok(&cli(
        &host,
        &data,
        &["model", "infer", "bc", req.to_str().unwrap()],
    )))
    .unwrap();
    assert_eq!(out["model_version"], "1");
    assert_eq!(
        out["outputs"][0]["data"],
        serde_json::json!([0]),
        "row 1 is malignant (0): {out}"
    );

    let onnx = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/sklearn-iris-logreg.onnx"
    );
    assert!(
        ok(&cli(
            &host,
            &data,
            &["model", "push", "sk", onnx, "--alias", "staging"]
        ))
        .contains("sk v1")
    );
    let refused = cli(&host, &data, &["model", "rm", "sk", "1"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("409"),
        "{refused:?}"
    );
    ok(&cli(
        &host,
        &data,
        &["model", "alias", "bc", "production", "2"],
    ));
    ok(&cli(&host, &data, &["model", "rm", "bc", "1"]));
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&cli(&host, &data, &["model", "show", "bc"]))).unwrap();
    assert_eq!(shown["versions"].as_array().unwrap().len(), 1);
    assert_eq!(shown["aliases"]["production"], 2);

    // The registry and the jobs survive a restart.
    drop(host);
    let host = up(dir.path());
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&cli(&host, &data, &["model", "show", "bc"]))).unwrap();
    assert_eq!(shown["aliases"]["production"], 2);
    let out: serde_json::Value = serde_json::from_str(&ok(&cli(
        &host,
        &data,
        &["model", "infer", "bc", req.to_str().unwrap()],
    )))
    .unwrap();
    assert_eq!(out["model_version"], "2");
}

#[tokio::test]
async fn cli_pushes_an_http_function_that_serves_at_once_and_after_a_restart() {
    let _turn = crate::common::serial::together().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let host = up(dir.path());
    let hello = wasm_file("hello-fn");
    let out = ok(&cli(
        &host,
        &data,
        &[
            "plugin",
            "push",
            "hello",
            hello.to_str().unwrap(),
            "--env",
            "NAME=cli",
            "--public",
        ],
    ));
    assert!(out.contains("(http,"), "{out}");
    assert!(
        out.contains(&format!("serving at {}/fn/hello/", host.url)),
        "{out}"
    );
    let get = |url: String| async move {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let url = format!("{}/fn/hello/", host.url);
    assert_eq!(get(url.clone()).await, (200, "Hello, cli!\n".to_string()));

    // Settings are part of the stored version: after a kill and restart the function is public
    // and sees its environment, loaded from the compiled cache.
    let mut host = host;
    host.child.kill().unwrap();
    host.child.wait().unwrap();
    drop(host);
    let host = up(dir.path());
    let url = format!("{}/fn/hello/", host.url);
    assert_eq!(get(url).await, (200, "Hello, cli!\n".to_string()));
}

/// SIGTERM: the listener closes at once, the request in flight finishes, the host exits 0;
/// with a short grace period, a longer request is cut and the host exits on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_within_the_grace_period() {
    let _turn = crate::common::serial::heavy().await;
    for (grace, sleep_ms, finishes) in [("10", 1500, true), ("1", 8000, false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut host = up_with(dir.path(), None, &["--grace-secs", grace]);
        let token = admin_token(&dir.path().join("data"));
        let http = reqwest::Client::new();
        push_http_echo(&http, &host, &token, "slow").await;
        let call = http
            .get(format!("{}/fn/slow/sleep?ms={sleep_ms}", host.url))
            .bearer_auth(&token)
            .send();
        let in_flight = tokio::spawn(call);
        // An open event stream must not hold the shutdown for the whole grace period.
        let stream = http
            .get(format!("{}/v1/events/stream", host.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let signalled = std::time::Instant::now();
        // SAFETY: signals a child process this test started and still owns.
        assert_eq!(
            unsafe { libc::kill(host.child.id() as i32, libc::SIGTERM) },
            0
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let refused = reqwest::Client::new()
            .get(format!("{}/healthz", host.url))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        assert!(
            refused.is_err(),
            "new connections are refused while draining"
        );
        let answer = in_flight.await.unwrap();
        if finishes {
            let r = answer.expect("the in-flight request completes");
            assert_eq!(r.status(), 200);
            assert_eq!(r.text().await.unwrap(), format!("slept {sleep_ms} ms"));
        } else {
            let cut = match answer {
                Err(_) => true,
                Ok(r) => r.bytes().await.is_err(),
            };
            assert!(cut, "a request longer than the grace period is cut");
        }
        let status = loop {
            if let Some(s) = host.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                signalled.elapsed() < Duration::from_secs(grace.parse::<u64>().unwrap() + 5),
                "host still running"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "{status}");
        let took = signalled.elapsed();
        if finishes {
            // The request ends ~1.2 s after the signal; an event stream holding the shutdown
            // would keep the host up for the whole 10 s grace.
            assert!(
                took < Duration::from_secs(4),
                "the open event stream held the shutdown: exited {took:?} after SIGTERM"
            );
        } else {
            assert!(
                took >= Duration::from_secs(1) && took < Duration::from_secs(4),
                "{took:?}"
            );
        }
    }
}

/// `aimass pipeline apply` / `run --watch` against a running host.
#[test]
fn pipeline_cli_applies_runs_and_watches() {
    let _turn = crate::common::serial::together_blocking();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let host = up(dir.path());
    let file = dir.path().join("cancer.toml");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/pipelines/breast-cancer.toml"
    ))
    .unwrap()
    .replace("on_new_objects = true", "on_new_objects = false");
    std::fs::write(&file, text).unwrap();
    let out = ok(&cli(
        &host,
        &data,
        &["pipeline", "apply", file.to_str().unwrap()],
    ));
    assert!(out.contains("pipeline cancer applied"), "{out}");
    let csv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/data/breast-cancer.csv"
    );
    ok(&cli(&host, &data, &["put", "raw/cancer/all.csv", csv]));
    let out = ok(&cli(
        &host,
        &data,
        &["pipeline", "run", "cancer", "--watch"],
    ));
    assert!(out.contains("succeeded"), "{out}");
    let out = ok(&cli(&host, &data, &["pipeline", "runs", "cancer"]));
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(runs["runs"][0]["state"], "succeeded", "{runs}");
    // A bad file fails with the server's message.
    std::fs::write(&file, "[source]\nprefix = 1\n").unwrap();
    let bad = cli(&host, &data, &["pipeline", "apply", file.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("line 2"),
        "{bad:?}"
    );
}

/// `--log-format json`: one JSON object per line, and the lines about a plugin call carry its
/// `invoke` span (plugin, version, world, call id).
const JSON_LOG_TOKEN: &str = "json-log-token-of-at-least-32-characters";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_a_span_per_invocation() {
    let _turn = crate::common::serial::together().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--no-bundled",
        ])
        .arg("--store")
        .arg(format!("file://{}", dir.path().join("store").display()))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("AIMASS_TOKEN", JSON_LOG_TOKEN)
        .env("AIMASS_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = out.next().unwrap().unwrap();
    let url = first
        .strip_prefix("aimass listening on ")
        .unwrap()
        .to_string();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{url}/v1/plugins/hostile"))
        .bearer_auth(JSON_LOG_TOKEN)
        .body(std::fs::read(wasm_file("hostile")).unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let r = http
        .post(format!("{url}/v1/plugins/hostile/invoke?mode=trap"))
        .bearer_auth(JSON_LOG_TOKEN)
        .header("content-type", "text/csv")
        .body("a\n1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let found = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("a log line about the failed call");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
        if v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("call failed"))
        {
            break v;
        }
    };
    assert_eq!(found["level"], "WARN");
    assert_eq!(found["span"]["name"], "invoke", "{found}");
    assert_eq!(found["span"]["plugin"], "hostile");
    assert_eq!(found["span"]["version"], 1);
    assert_eq!(found["span"]["world"], "cleaner");
    assert!(found["span"]["call"].as_u64().is_some(), "{found}");
    let _ = child.kill();
    let _ = child.wait();
}
