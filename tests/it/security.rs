//! Security hardening, each defence attacked the way an attacker would: through the store, the
//! object API or the network, against the real binary or a real host.

use crate::common;

use aimass::api::auth_limit::AuthLimit;
use aimass::config::HostConfig;
use common::binary::{Up, admin_token, up, up_args};
use common::{ADMIN, TestHost, client, push, put_sklearn_iris, token, wasm};
use std::path::Path;

/// GET a JSON resource of a running binary.
async fn get_json(up: &Up, token: &str, path: &str) -> serde_json::Value {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", up.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.unwrap()
}

/// Invoke `plugin` on a CSV body; (status, body).
async fn invoke_csv(up: &Up, token: &str, plugin: &str, csv: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/plugins/{plugin}/invoke", up.url))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The value of one `/metrics` series (name with labels, as exposed; it must be there) of the
/// host at `base`.
async fn metric(base: &str, token: &str, series: &str) -> f64 {
    let body = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{series} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

/// The value of `aimass_security_events_total{kind=...}`.
async fn security_events(up: &Up, token: &str, kind: &str) -> f64 {
    metric(
        &up.url,
        token,
        &format!("aimass_security_events_total{{kind=\"{kind}\"}}"),
    )
    .await
}

fn stop(mut host: Up) {
    host.child.kill().unwrap();
    host.child.wait().unwrap();
}

/// The stored compiled artifact of a bundled plugin: (digest, path in the file store).
async fn artifact_of(
    up: &Up,
    token: &str,
    store: &Path,
    plugin: &str,
) -> (String, std::path::PathBuf) {
    let engine = get_json(up, token, "/v1/info").await["engine_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let digest = get_json(up, token, &format!("/v1/plugins/{plugin}")).await["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = store
        .join("compiled")
        .join(engine)
        .join(format!("{digest}.cwasm"));
    assert!(path.exists(), "{}", path.display());
    (digest, path)
}

const DUPLICATES: &str = "k,v\n1,a\n1,a\n2,\n";

/// Anyone who can write the bucket can replace `compiled/…` objects, which the host maps as
/// native code. Swapping two plugins' artifacts (each validly compiled, so only a seal bound to
/// the digest can tell) and wiping the local cache must leave each plugin itself: both
/// artifacts are rejected, counted and recompiled, while untouched ones still load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_artifacts_in_the_store_are_recompiled_not_mapped() {
    let _turn = crate::common::serial::together().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, data) = (dir.path().join("store"), dir.path().join("data"));
    let host = up(dir.path());
    let token = admin_token(&data);
    assert_eq!(
        invoke_csv(&host, &token, "dedup", DUPLICATES).await,
        (200, "k,v\n1,a\n2,\n".into())
    );
    assert_eq!(
        invoke_csv(&host, &token, "drop-nulls", DUPLICATES).await,
        (200, "k,v\n1,a\n1,a\n".into())
    );
    let (_, dedup) = artifact_of(&host, &token, &store, "dedup").await;
    let (_, drop_nulls) = artifact_of(&host, &token, &store, "drop-nulls").await;
    stop(host);

    let swap = dir.path().join("swap");
    std::fs::rename(&dedup, &swap).unwrap();
    std::fs::rename(&drop_nulls, &dedup).unwrap();
    std::fs::rename(&swap, &drop_nulls).unwrap();
    std::fs::remove_dir_all(data.join("cache")).unwrap();

    let host = up(dir.path());
    assert_eq!(
        invoke_csv(&host, &token, "dedup", DUPLICATES).await,
        (200, "k,v\n1,a\n2,\n".into())
    );
    assert_eq!(
        invoke_csv(&host, &token, "drop-nulls", DUPLICATES).await,
        (200, "k,v\n1,a\n1,a\n".into())
    );
    assert_eq!(
        security_events(&host, &token, "artifact_rejected").await,
        2.0
    );
    for (plugin, from) in [
        ("dedup", "compiled"),
        ("drop-nulls", "compiled"),
        ("outliers", "cache"),
    ] {
        let show = get_json(&host, &token, &format!("/v1/plugins/{plugin}")).await;
        assert_eq!(show["loaded_from"], from, "{plugin}: {show}");
    }
}

/// A plugin record in the store names its component by digest; the digest becomes a local path
/// and a store key. A record whose digest is a path (`../..`) is refused before any file is
/// touched, and component bytes that do not hash to their digest are never compiled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_plugin_records_load_nothing() {
    let _turn = crate::common::serial::together().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, data) = (dir.path().join("store"), dir.path().join("data"));
    let host = up(dir.path());
    let token = admin_token(&data);
    let engine = get_json(&host, &token, "/v1/info").await["engine_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let (digest, _) = artifact_of(&host, &token, &store, "dedup").await;
    let (victim, _) = artifact_of(&host, &token, &store, "drop-nulls").await;
    stop(host);

    let record = std::fs::read_to_string(store.join("plugins/dedup/meta.json")).unwrap();
    let forge = |name: &str, digest: &str| {
        let text = record
            .replace("\"dedup\"", &format!("\"{name}\""))
            .replace(&digest_of_dedup(&record), digest);
        let dir = store.join("plugins").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("meta.json"), text).unwrap();
    };
    // A traversal: the digest walks out of the cache to a valid artifact planted there.
    let local = data
        .join("cache/compiled")
        .join(&engine)
        .join(format!("{digest}.cwasm"));
    std::fs::copy(&local, data.join("cache/planted.cwasm")).unwrap();
    forge("traversal", "../../planted");
    // Tampered bytes: drop-nulls' digest, with dedup's component under that key and no artifact.
    let components = store.join("components");
    std::fs::copy(
        components.join(format!("{digest}.wasm")),
        components.join(format!("{victim}.wasm")),
    )
    .unwrap();
    std::fs::remove_file(
        store
            .join("compiled")
            .join(&engine)
            .join(format!("{victim}.cwasm")),
    )
    .unwrap();
    std::fs::remove_file(local.with_file_name(format!("{victim}.cwasm"))).unwrap();

    let host = up(dir.path());
    let (status, _) = invoke_csv(&host, &token, "traversal", DUPLICATES).await;
    assert_eq!(
        status, 404,
        "a record with a path for a digest is not loaded"
    );
    // drop-nulls' record now points at bytes that are not drop-nulls: refused, counted, and the
    // bundled registration leaves a stored record that failed to load alone.
    let (status, body) = invoke_csv(&host, &token, "drop-nulls", DUPLICATES).await;
    assert_ne!(
        body, "k,v\n1,a\n2,\n",
        "dedup's code must never run as drop-nulls"
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        security_events(&host, &token, "component_rejected").await,
        1.0
    );
    assert_eq!(
        invoke_csv(&host, &token, "dedup", DUPLICATES).await,
        (200, "k,v\n1,a\n2,\n".into())
    );
}

/// The digest field's value in a plugin record.
fn digest_of_dedup(record: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(record).unwrap();
    v["versions"][0]["digest"].as_str().unwrap().to_string()
}

/// Status of an object request with a token.
async fn object(up: &Up, token: &str, method: reqwest::Method, key: &str) -> u16 {
    reqwest::Client::new()
        .request(method, format!("{}/v1/objects/{key}", up.url))
        .bearer_auth(token)
        .body("forged")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// An older host kept its store's objects and its local files (admin token, compiled cache) in
/// one directory, where object keys could name the local files. The host's namespace is refused
/// in any letter case there, and a start without `--store` moves the objects into `store/` under
/// the data dir, after which no key names a local file at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_files_are_out_of_reach_of_object_keys() {
    let _turn = crate::common::serial::together().await;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("aimass-data");
    let d = shared.to_str().unwrap();
    let old = up_args(&["--store", &format!("file://{d}"), "--data-dir", d]);
    let token = admin_token(&shared);
    let reader = reqwest::Client::new()
        .post(format!("{}/v1/tokens", old.url))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "r", "role": "invoker"}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    use reqwest::Method;
    for key in [
        "Admin-Token",
        "ARTIFACT-KEY",
        "admin-token",
        "Auth/tokens.json",
        "aUTH/tokens.json",
    ] {
        assert_eq!(
            object(&old, &reader, Method::GET, key).await,
            403,
            "GET {key}"
        );
    }
    for key in [
        "Cache/compiled/x/y.cwasm",
        "Auth/tokens.json",
        "Plugins/dedup/meta.json",
    ] {
        assert_eq!(
            object(&old, &reader, Method::PUT, key).await,
            403,
            "PUT {key}"
        );
    }
    assert_eq!(object(&old, &reader, Method::PUT, "raw/a.csv").await, 201);
    stop(old);

    // The default store: the objects move under the data dir; tokens, plugins and user objects
    // come along, local files stay.
    let new = up_args(&["--data-dir", d]);
    assert!(shared.join("store/auth/tokens.json").exists());
    assert!(shared.join("store/raw/a.csv").exists());
    assert!(shared.join("admin-token").exists() && !shared.join("store/admin-token").exists());
    assert_eq!(object(&new, &reader, Method::GET, "raw/a.csv").await, 200);
    let (status, body) = invoke_csv(&new, &token, "dedup", DUPLICATES).await;
    assert_eq!((status, body.as_str()), (200, "k,v\n1,a\n2,\n"));
    for key in ["admin-token", "artifact-key", "cache/compiled"] {
        assert!(
            shared.join(key).exists() && !shared.join("store").join(key).exists(),
            "{key}"
        );
    }
}

/// A public HTTP function gets the caller's own credentials, never a token of this host: not in
/// any letter case of the scheme, not as the second of several `Authorization` values.
#[tokio::test]
async fn no_host_token_reaches_a_public_function() {
    let _turn = crate::common::serial::together().await;
    let host = common::shared();
    push(host, "open-echo", wasm("http-echo"), "?public=true").await;
    let reader = token(host, "reader").await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        for host_token in [ADMIN, reader.as_str()] {
            let r = client()
                .get(host.url("/fn/open-echo/"))
                .header("authorization", "Basic b3duOnNlY3JldA==")
                .header("authorization", format!("{scheme} {host_token}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let seen: Vec<_> = r
                .headers()
                .get_all("echo-authorization")
                .iter()
                .cloned()
                .collect();
            assert_eq!(seen, ["Basic b3duOnNlY3JldA=="], "{scheme}");
            let all = format!("{:?}{}", r.headers().clone(), r.text().await.unwrap());
            assert!(!all.contains(host_token), "{scheme}: {all}");
        }
    }
}

/// Guessing tokens from one address: after the burst every request from it gets 429 with
/// `Retry-After`, a right token included (so guesses learn nothing), while the host keeps
/// answering others. The bucket refills.
#[tokio::test]
async fn failed_authentications_are_limited_per_address() {
    let _turn = crate::common::serial::together().await;
    let host = TestHost::start(HostConfig {
        register_bundled: false,
        auth_limit: AuthLimit {
            burst: 5,
            per_minute: 600,
        },
        ..HostConfig::default()
    });
    let get = |token: &str| {
        client()
            .get(host.url("/v1/plugins"))
            .bearer_auth(token.to_string())
            .send()
    };
    for i in 0..5 {
        assert_eq!(get(&format!("guess-{i}")).await.unwrap().status(), 401);
    }
    let limited = get("guess-5").await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(
        get(ADMIN).await.unwrap().status(),
        429,
        "no answer to a right guess either"
    );
    // Routes that need no token still answer.
    let health = client().get(host.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // 600 a minute: one failure back every 100 ms.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    assert_eq!(get(ADMIN).await.unwrap().status(), 200);
}

/// `/healthz` answers anyone, so it says nothing about the deployment (it named the store).
#[tokio::test]
async fn health_says_only_ok() {
    let _turn = crate::common::serial::together().await;
    let host = common::shared();
    let body = client()
        .get(host.url("/healthz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, r#"{"status":"ok"}"#);
}

/// An admin-chosen `AIMASS_TOKEN` shorter than 32 characters is refused at start.
#[test]
fn a_short_admin_token_is_refused() {
    let _turn = crate::common::serial::together_blocking();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::binary::BIN)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("AIMASS_TOKEN", "short-but-31-characters-long-xx")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AIMASS_TOKEN must be at least 32 characters (it has 31)"),
        "{err}"
    );
}

/// Readers see hook and pipeline configs with secret-looking values redacted (and not the
/// pipeline file, which holds them verbatim); admins see them as written.
#[tokio::test]
async fn readers_do_not_see_secrets_in_configs() {
    let _turn = crate::common::serial::together().await;
    let host = common::shared();
    let hook = serde_json::json!({"plugin": "dedup", "prefix": "secret-hook/", "output": "sh",
        "config": {"api_token": "hook-token-value", "keys": "k"}});
    let r = client()
        .put(host.url("/v1/hooks/with-secret"))
        .bearer_auth(ADMIN)
        .json(&hook)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let pipeline = r#"
[source]
prefix = "secret-pipe/"
collector = "csv-collector"

[[clean]]
plugin = "drop-nulls"
config = { db_password = "pipe-password-value", columns = "a" }

[train]
model = "secret-pipe"
trainer = "logistic-regression"
label = "y"
"#;
    let r = client()
        .put(host.url("/v1/pipelines/with-secret"))
        .bearer_auth(ADMIN)
        .body(pipeline)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{} {}",
        r.status(),
        r.text().await.unwrap()
    );
    let reader = token(host, "reader").await;
    for path in [
        "/v1/hooks",
        "/v1/hooks/with-secret",
        "/v1/pipelines",
        "/v1/pipelines/with-secret",
    ] {
        let as_reader = client()
            .get(host.url(path))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
        let text = as_reader.text().await.unwrap();
        assert!(
            !text.contains("hook-token-value") && !text.contains("pipe-password-value"),
            "{path}: {text}"
        );
        assert!(text.contains("<redacted>"), "{path}: {text}");
        let as_admin = client()
            .get(host.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        let text = as_admin.text().await.unwrap();
        assert!(
            text.contains("hook-token-value") || text.contains("pipe-password-value"),
            "{path}: {text}"
        );
    }
}

/// A raw HTTP/1.1 request head on a new connection to `host`.
async fn raw_request(host: &TestHost, head: String) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(host.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// The same from 127.0.0.2: an attacker's failed authentications count against its address,
/// not the legitimate traffic's.
async fn raw_request_from_elsewhere(host: &TestHost, head: String) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = socket.connect(host.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// Drips one byte every 100 ms into `s` until the host answers; (status line, seconds).
async fn drip_until_answered(s: tokio::net::TcpStream) -> (String, f64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = std::time::Instant::now();
    let (mut r, mut w) = s.into_split();
    let dripper = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if w.write_all(b"x").await.is_err() {
                break;
            }
        }
    });
    let mut head = [0u8; 12];
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(30), r.read_exact(&mut head)).await;
    dripper.abort();
    let line = match read {
        Ok(Ok(_)) => String::from_utf8_lossy(&head).to_string(),
        Ok(Err(e)) => format!("read error: {e}"),
        Err(_) => "no answer in 30 s".to_string(),
    };
    (line, started.elapsed().as_secs_f64())
}

/// 500 connections with bad tokens drip their bodies a byte at a time: each is answered
/// within the drain timeout (2 s) instead of holding a task and a socket for as long as it
/// drips, and normal traffic is answered meanwhile. An authenticated drip gets 408 at the body
/// deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_drip_bodies_are_cut_off() {
    // Alone: 500 connections whose answers must be read within the host's linger time.
    let _turn = crate::common::serial::alone().await;
    let host = std::sync::Arc::new(TestHost::start(HostConfig {
        body: aimass::api::body::BodyOptions {
            timeout: std::time::Duration::from_secs(3),
            ..Default::default()
        },
        ..HostConfig::default()
    }));
    let drips: Vec<_> = (0..500)
        .map(|i| {
            let host = host.clone();
            tokio::spawn(async move {
                let head = format!(
                    "PUT /v1/objects/drip-{i} HTTP/1.1\r\nhost: aimass\r\n\
                     authorization: Bearer bad-{i}\r\ncontent-length: 1000000\r\n\r\n"
                );
                drip_until_answered(raw_request_from_elsewhere(&host, head).await).await
            })
        })
        .collect();
    // Normal traffic while the drips are open.
    for _ in 0..20 {
        let r = client()
            .post(host.url("/v1/plugins/dedup/invoke"))
            .bearer_auth(ADMIN)
            .header("content-type", "text/csv")
            .body(DUPLICATES)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let mut slowest = 0f64;
    for d in drips {
        let (line, secs) = d.await.unwrap();
        assert!(line == "HTTP/1.1 401" || line == "HTTP/1.1 429", "{line}");
        slowest = slowest.max(secs);
    }
    assert!(slowest < 8.0, "slowest drip answered after {slowest:.1} s");
    println!("500 drips with bad tokens: slowest answered after {slowest:.2} s");

    let head = format!(
        "PUT /v1/objects/drip HTTP/1.1\r\nhost: aimass\r\nauthorization: Bearer {ADMIN}\r\n\
         content-length: 1000000\r\n\r\n"
    );
    let (line, secs) = drip_until_answered(raw_request(&host, head).await).await;
    assert_eq!(line, "HTTP/1.1 408");
    assert!((2.9..8.0).contains(&secs), "{secs}");
}

/// Uploads share a budget of body bytes: two stalled 16 MiB uploads hold a 32 MiB budget, so a
/// third waits 2 s and gets 503 with `Retry-After`; once the two finish, uploads go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_share_a_byte_budget() {
    let _turn = crate::common::serial::heavy().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const MIB: usize = 1 << 20;
    let host = TestHost::start(HostConfig {
        register_bundled: false,
        max_body_bytes: 16 * MIB,
        body: aimass::api::body::BodyOptions {
            budget_bytes: 32 * MIB,
            ..Default::default()
        },
        ..HostConfig::default()
    });
    let mut stalled = Vec::new();
    for i in 0..2 {
        let head = format!(
            "PUT /v1/objects/big-{i} HTTP/1.1\r\nhost: aimass\r\nauthorization: Bearer {ADMIN}\r\n\
             content-length: {}\r\n\r\n",
            16 * MIB
        );
        let mut s = raw_request(&host, head).await;
        s.write_all(&vec![b'a'; 16 * MIB - 1]).await.unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let third = client()
        .put(host.url("/v1/objects/third"))
        .bearer_auth(ADMIN)
        .body(vec![b'b'; MIB])
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 503);
    assert_eq!(third.headers()["retry-after"], "1");
    assert!(started.elapsed().as_secs_f64() >= 1.9);
    // Reads without a body are not held up.
    let health = client().get(host.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    for mut s in stalled {
        s.write_all(b"a").await.unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 201");
    }
    let again = client()
        .put(host.url("/v1/objects/third"))
        .bearer_auth(ADMIN)
        .body(vec![b'b'; MIB])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
}

/// Past `max_connections`, a new connection is told 503 and closed; the ones open still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_refused_with_503() {
    let _turn = crate::common::serial::together().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = TestHost::start(HostConfig {
        register_bundled: false,
        max_connections: 20,
        ..HostConfig::default()
    });
    let mut open = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(host.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: aimass\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        open.push(s);
    }
    let mut extra = tokio::net::TcpStream::connect(host.addr).await.unwrap();
    let mut answer = String::new();
    extra.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1") && answer.contains("too many open connections"));
    drop(open.pop());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = client().get(host.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// An event stream lives on its token's authority: revoking the token ends its open streams
/// within a second. Streams are capped per token (429 past 16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_ends_its_event_streams() {
    let _turn = crate::common::serial::together().await;
    use futures::StreamExt;
    let host = TestHost::start(HostConfig {
        register_bundled: false,
        ..HostConfig::default()
    });
    let created: serde_json::Value = client()
        .post(host.url("/v1/tokens"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"name": "watcher", "role": "reader"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (reader, id) = (
        created["token"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    let open = || async {
        client()
            .get(host.url("/v1/events/stream"))
            .bearer_auth(reader)
            .send()
            .await
            .unwrap()
    };
    let mut streams = Vec::new();
    for _ in 0..16 {
        let r = open().await;
        assert_eq!(r.status(), 200);
        streams.push(r.bytes_stream());
    }
    assert_eq!(open().await.status(), 429, "a 17th stream on one token");
    for s in &mut streams {
        let first = s.next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&first).contains("subscribed"));
    }
    let revoked_at = std::time::Instant::now();
    let r = client()
        .delete(host.url(&format!("/v1/tokens/{id}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    for mut s in streams {
        let end = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            while let Some(chunk) = s.next().await {
                if chunk.is_err() {
                    break;
                }
            }
        })
        .await;
        assert!(end.is_ok(), "a stream outlived its token by 1 s");
    }
    println!(
        "16 streams ended {:?} after the revocation",
        revoked_at.elapsed()
    );
    assert_eq!(open().await.status(), 401);
}

/// A store failure reaches the caller as its top-level message; the chain below it (which
/// names host paths) stays in the log.
#[tokio::test]
async fn store_errors_do_not_name_host_paths() {
    let _turn = crate::common::serial::together().await;
    let host = TestHost::start(HostConfig::default());
    let store = host.store_dir();
    // A file where the hooks' directory should be: every hook write fails.
    std::fs::write(store.join("hooks"), "in the way").unwrap();
    let r = client()
        .put(host.url("/v1/hooks/blocked"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"plugin": "dedup", "prefix": "b/", "output": "b"}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_server_error() || r.status() == 409,
        "{}",
        r.status()
    );
    let body = r.text().await.unwrap();
    let root = store.parent().unwrap().to_str().unwrap().to_string();
    assert!(!body.contains(&root), "{body}");
    assert!(body.contains("hooks/blocked.json"), "{body}");
}

/// Plugin environment values (often secrets) travel in `x-aimass-env` headers, which stay out
/// of access logs, percent-encoded so any UTF-8 value fits.
#[tokio::test]
async fn plugin_env_values_travel_in_headers() {
    let _turn = crate::common::serial::together().await;
    let host = common::shared();
    let r = client()
        .put(host.url("/v1/plugins/env-by-header"))
        .bearer_auth(ADMIN)
        .header("x-aimass-env", "NAME=caf%C3%A9%20s3cret")
        .body(wasm("hello-fn"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let hello = client()
        .get(host.url("/fn/env-by-header/"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(hello, "Hello, café s3cret!\n");
    let bad = client()
        .put(host.url("/v1/plugins/env-by-header"))
        .bearer_auth(ADMIN)
        .header("x-aimass-env", "1X=a")
        .body(wasm("hello-fn"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// The series `aimass_model_plan_cache{kind=...}` of a host.
async fn plan_cache(host: &TestHost, kind: &str) -> f64 {
    metric(
        &host.url,
        ADMIN,
        &format!("aimass_model_plan_cache{{kind=\"{kind}\"}}"),
    )
    .await
}

async fn infer_iris(host: &TestHost, version: u32) -> u16 {
    let body = serde_json::json!({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32",
        "data": [5.1, 3.5, 1.4, 0.2]}]});
    client()
        .post(host.url(&format!("/v2/models/iris/versions/{version}/infer")))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Readiness checks (reader role) do not load models, and loaded plans are bounded: past
/// `max_plans` the least recently used version is unloaded, and loaded again when asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_plans_are_bounded_and_readiness_does_not_load() {
    let _turn = crate::common::serial::together().await;
    use aimass::models::plans::PlanLimits;
    let dir = tempfile::tempdir().unwrap();
    let config = || HostConfig {
        store_url: format!("file://{}", dir.path().join("store").display()),
        register_bundled: false,
        model_plans: PlanLimits {
            max_plans: 2,
            max_bytes: 1 << 30,
        },
        ..HostConfig::default()
    };
    let onnx = include_bytes!("../data/sklearn-iris-logreg.onnx");
    let host = TestHost::start(config());
    for _ in 0..3 {
        let r = client()
            .put(host.url("/v1/models/iris"))
            .bearer_auth(ADMIN)
            .body(onnx.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    assert_eq!(plan_cache(&host, "loaded").await, 2.0);
    assert_eq!(plan_cache(&host, "evictions").await, 1.0);
    // Version 1 was unloaded; a request loads it again (and unloads the least recent).
    assert_eq!(infer_iris(&host, 1).await, 200);
    assert_eq!(plan_cache(&host, "loads").await, 4.0);
    assert_eq!(plan_cache(&host, "evictions").await, 2.0);
    drop(host);

    // A fresh start has nothing loaded; readiness of every version leaves it so.
    let host = TestHost::start(config());
    let reader = token(&host, "reader").await;
    for v in 1..=3 {
        let r: serde_json::Value = client()
            .get(host.url(&format!("/v2/models/iris/versions/{v}/ready")))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (r["ready"].as_bool(), r["loaded"].as_bool()),
            (Some(true), Some(false)),
            "{r}"
        );
    }
    assert_eq!(plan_cache(&host, "loads").await, 0.0);
    assert_eq!(plan_cache(&host, "loaded").await, 0.0);
    assert_eq!(infer_iris(&host, 3).await, 200);
    assert_eq!(plan_cache(&host, "loads").await, 1.0);
}

/// A host with the iris model (one FP32 input `X`, shape `[-1, 4]`) as version 1.
async fn iris_host() -> TestHost {
    let host = TestHost::start(HostConfig {
        register_bundled: false,
        ..HostConfig::default()
    });
    put_sklearn_iris(&host, "iris").await;
    host
}

/// POST an inference request body; (status, body).
async fn infer_raw(host: &TestHost, body: impl Into<reqwest::Body>) -> (u16, String) {
    let r = client()
        .post(host.url("/v2/models/iris/infer"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The parts of an OIP request that would be parsed into trees many times their size are
/// bounded before they are: `parameters` objects, the number of tensors and dimensions, and the
/// elements of a BYTES tensor (each its own `String`).
#[tokio::test]
async fn oip_requests_cannot_amplify_memory() {
    let _turn = crate::common::serial::together().await;
    let host = iris_host().await;
    let row = serde_json::json!([5.1, 3.5, 1.4, 0.2]);
    let big = serde_json::Value::Object(
        (0..2_000)
            .map(|i| (format!("key{i}"), serde_json::json!("vvvvvv")))
            .collect(),
    );
    let x = |parameters: &serde_json::Value| {
        serde_json::json!({"name": "X", "shape": [1, 4], "datatype": "FP32", "data": row,
            "parameters": parameters})
    };
    let small = serde_json::json!({"binary_data": false});
    let ok = serde_json::json!({"parameters": small, "inputs": [x(&small)],
        "outputs": [{"name": "label", "parameters": small}]});
    assert_eq!(infer_raw(&host, ok.to_string()).await.0, 200);
    let too_big = [
        serde_json::json!({"parameters": big, "inputs": [x(&small)]}),
        serde_json::json!({"inputs": [x(&big)]}),
        serde_json::json!({"inputs": [x(&small)], "outputs": [{"name": "label", "parameters": big}]}),
    ];
    for body in too_big {
        let (status, text) = infer_raw(&host, body.to_string()).await;
        assert_eq!(status, 400, "{text}");
        assert!(
            text.contains("`parameters` is") && text.contains("16384"),
            "{text}"
        );
    }
    let many: Vec<_> = (0..1_025).map(|_| x(&small)).collect();
    let (status, text) = infer_raw(&host, serde_json::json!({"inputs": many}).to_string()).await;
    assert_eq!(
        (status, text.contains("more than 1024 items")),
        (400, true),
        "{text}"
    );
    let dims = serde_json::json!({"inputs": [{"name": "X", "shape": vec![1; 65],
        "datatype": "FP32", "data": [1]}]});
    let (status, text) = infer_raw(&host, dims.to_string()).await;
    assert_eq!(
        (status, text.contains("more than 64 items")),
        (400, true),
        "{text}"
    );
    // Two million one-letter strings: 8 MB of JSON, 100+ MB as strings.
    let words = vec!["a"; 2_000_000];
    let bytes = serde_json::json!({"inputs": [{"name": "X", "shape": [2_000_000],
        "datatype": "BYTES", "data": words}]});
    let (status, text) = infer_raw(&host, bytes.to_string()).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("at most 1048576 elements"), "{text}");
}

/// Parsing a large JSON tensor happens on the blocking pool: while requests of ~100 MB of JSON
/// (with one bad value at the very end, so all of it is parsed and then refused) occupy more
/// parsers than the host has async workers, its health endpoint keeps answering at once.
/// Parsed on the async workers, each health check would wait for a parse to finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_inference_bodies_are_parsed_off_the_async_workers() {
    let _turn = crate::common::serial::heavy().await;
    let host = iris_host().await;
    let rows = 6_000_000;
    let mut data = String::with_capacity(rows * 16 + 16);
    data.push('[');
    for i in 0..rows * 4 - 1 {
        data.push_str(if i % 2 == 0 { "5.1," } else { "3.25," });
    }
    data.push_str("\"x\"]");
    let body = bytes::Bytes::from(format!(
        r#"{{"inputs": [{{"name": "X", "shape": [{rows}, 4], "datatype": "FP32", "data": {data}}}]}}"#
    ));
    drop(data);
    let started = std::time::Instant::now();
    let parses: Vec<_> = (0..4)
        .map(|_| {
            let (url, body) = (host.url("/v2/models/iris/infer"), body.clone());
            tokio::spawn(async move {
                let t = std::time::Instant::now();
                let r = client()
                    .post(url)
                    .bearer_auth(ADMIN)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let text = r.text().await.unwrap();
                (status, text, t.elapsed())
            })
        })
        .collect();
    // Health checks while the parses run.
    let mut worst = std::time::Duration::ZERO;
    let mut checks = 0;
    while !parses.iter().all(|p| p.is_finished()) {
        let t = std::time::Instant::now();
        let r = client()
            .get(host.url("/v2/health/live"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        worst = worst.max(t.elapsed());
        checks += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut fastest = std::time::Duration::MAX;
    for p in parses {
        let (status, text, took) = p.await.unwrap();
        assert_eq!(status, 400, "{}", &text[..text.len().min(300)]);
        assert!(text.contains("is not a valid FP32"), "{text}");
        fastest = fastest.min(took);
    }
    eprintln!(
        "4 parses in {:?} (fastest {fastest:?}); {checks} health checks, worst {worst:?}",
        started.elapsed()
    );
    assert!(checks >= 3, "{checks} health checks");
    assert!(
        worst * 4 < fastest,
        "a health check waited {worst:?} while parses took {fastest:?}"
    );
}

/// Anonymous callers of a public HTTP function take slots of their own and count against a
/// quota of their own: they cannot hold the slots token holders use, nor spend their quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_callers_have_their_own_slots_and_quota() {
    let _turn = crate::common::serial::together().await;
    let host = common::shared();
    let invoker = token(host, "invoker").await;
    let call = |path: &str, token: Option<&str>| {
        let mut r = client().get(host.url(&format!("/fn/{path}")));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    push(
        host,
        "open-slots",
        wasm("http-echo"),
        "?public=true&concurrency=1&public_concurrency=1",
    )
    .await;
    // An anonymous call holds the one anonymous slot for 3 s.
    let held = tokio::spawn(call("open-slots/sleep?ms=3000", None));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(call("open-slots/sleep?ms=1", None).await, 503, "anonymous");
    assert_eq!(
        call("open-slots/sleep?ms=1", Some(&invoker)).await,
        200,
        "token"
    );
    assert_eq!(held.await.unwrap(), 200);

    push(
        host,
        "open-quota",
        wasm("http-echo"),
        "?public=true&quota=4&public_quota=2",
    )
    .await;
    for expected in [200, 200, 429] {
        assert_eq!(call("open-quota/", None).await, expected, "anonymous");
    }
    for expected in [200, 200, 200, 200, 429] {
        assert_eq!(call("open-quota/", Some(&invoker)).await, expected, "token");
    }
    let detail = client()
        .get(host.url("/v1/plugins/open-quota"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(detail["public_governance"]["refused_quota"], 1, "{detail}");
    assert_eq!(detail["governance"]["refused_quota"], 1, "{detail}");
}

/// `GET /v1/objects` returns a page at a time (default 1,000, at most 10,000) with the key to
/// continue after, instead of the whole store in one response.
#[tokio::test]
async fn object_listings_are_paged() {
    let _turn = crate::common::serial::together().await;
    let host = common::shared();
    for i in 0..25 {
        let r = client()
            .put(host.url(&format!("/v1/objects/paged/{i:02}")))
            .bearer_auth(ADMIN)
            .body(format!("object {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = host.url("/v1/objects?prefix=paged/&limit=10");
        if let Some(a) = &after {
            url.push_str(&format!("&start_after={a}"));
        }
        let v: serde_json::Value = client()
            .get(url)
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pages += 1;
        let keys: Vec<String> = v["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key"].as_str().unwrap().to_string())
            .collect();
        assert!(keys.len() <= 10);
        seen.extend(keys);
        match v["next_start_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("paged/{i:02}")).collect();
    assert_eq!((seen, pages), (expected, 3));
    for bad in ["limit=0", "limit=10001"] {
        let r = client()
            .get(host.url(&format!("/v1/objects?{bad}")))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    // Reads stream, with the object's length.
    let r = client()
        .get(host.url("/v1/objects/paged/07"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-length"], "8");
    assert_eq!(r.text().await.unwrap(), "object 7");
}

/// A Parquet part that decodes to far more than its size (one long string, repeated) is refused
/// instead of decoded whole; rows stream out a part at a time, only the rows asked for decoded.
#[tokio::test]
async fn parquet_decoding_is_capped_and_rows_stream() {
    let _turn = crate::common::serial::together().await;
    use arrow_array::{RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    let host = common::shared();
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
    let long = "x".repeat(1000);
    let column = StringArray::from_iter_values(std::iter::repeat_n(&long, 600_000));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(column)]).unwrap();
    let bomb = aimass::warehouse::parquet::encode(&schema, &[batch]).unwrap();
    assert!(bomb.len() < 8 << 20, "{} bytes", bomb.len());
    let r = client()
        .post(host.url("/v1/datasets/bomb/parts"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/vnd.apache.parquet")
        .body(bomb)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("decodes to more than 512 MiB"), "{text}");

    for part in 0..3 {
        let csv: String = std::iter::once("id,v\n".to_string())
            .chain((part * 1000..(part + 1) * 1000).map(|i| format!("{i},{}\n", i * 2)))
            .collect();
        let r = client()
            .post(host.url("/v1/datasets/streamed/parts"))
            .bearer_auth(ADMIN)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    for accept in ["text/csv", "application/json"] {
        let r = client()
            .get(host.url("/v1/datasets/streamed/rows?offset=900&limit=1200"))
            .bearer_auth(ADMIN)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // Streamed: chunked, with no length known up front.
        assert!(
            r.headers().get("content-length").is_none(),
            "{:?}",
            r.headers()
        );
        let body = r.text().await.unwrap();
        let ids: Vec<i64> = if accept == "text/csv" {
            body.lines()
                .skip(1)
                .map(|l| l.split(',').next().unwrap().parse().unwrap())
                .collect()
        } else {
            let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
            rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
        };
        assert_eq!(ids, (900..2100).collect::<Vec<_>>(), "{accept}");
    }
}

/// A loopback server standing in for the host's own API or a metadata endpoint; counts requests
/// of any method.
async fn counting_upstream() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let hits = std::sync::Arc::new(AtomicU64::new(0));
    let seen = hits.clone();
    let app = axum::Router::new().route(
        "/ping",
        axum::routing::any(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            async { "pong" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

/// An outbound grant by name does not reach loopback: `localhost` (a name resolving to
/// 127.0.0.1 through /etc/hosts, as an attacker's DNS name could) is refused after resolution,
/// and the server never sees a request; a grant naming the IP literal reaches it. A bare host
/// grant means ports 80 and 443 only.
#[tokio::test]
async fn outbound_grants_by_name_do_not_reach_loopback() {
    let _turn = crate::common::serial::together().await;
    let host = common::shared();
    let (up, hits) = counting_upstream().await;
    let port = up.port();
    let fetch = |f: &'static str, url: String| async move {
        let path = format!(
            "/fn/{f}/fetch?url={}&times=1",
            url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()
        );
        let r = client()
            .get(host.url(&path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    push(
        host,
        "by-name",
        wasm("http-echo"),
        &format!("?outbound=localhost:{port}"),
    )
    .await;
    push(host, "bare-name", wasm("http-echo"), "?outbound=localhost").await;
    push(
        host,
        "by-ip",
        wasm("http-echo"),
        &format!("?outbound=127.0.0.1:{port}"),
    )
    .await;
    let (status, body) = fetch("by-name", format!("http://localhost:{port}/ping")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("DestinationIpProhibited"), "{body}");
    let (status, body) = fetch("bare-name", format!("http://localhost:{port}/ping")).await;
    assert!(
        status == 502 && body.contains("HttpRequestDenied"),
        "{status} {body}"
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(
        fetch("by-ip", format!("http://127.0.0.1:{port}/ping")).await,
        (200, "200 pong".into())
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// With `webhooks_deny_private`, a webhook pointing at the host's network (an IP literal, or a
/// name resolving there) is never delivered to, and what the host records of the failure never
/// carries the URL (which can hold a credential).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_can_be_kept_out_of_private_networks() {
    let _turn = crate::common::serial::together().await;
    let host = TestHost::start(HostConfig {
        webhooks_deny_private: true,
        register_bundled: false,
        ..HostConfig::default()
    });
    let (up, hits) = counting_upstream().await;
    let port = up.port();
    for (name, url) in [
        (
            "literal",
            format!("http://127.0.0.1:{port}/ping?token=url-secret-1"),
        ),
        (
            "by-name",
            format!("http://localhost:{port}/ping?token=url-secret-2"),
        ),
    ] {
        let r = client()
            .put(host.url(&format!("/v1/notifications/webhooks/{name}")))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"url": url, "max_attempts": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = client()
        .put(host.url("/v1/models/iris?alias=production"))
        .bearer_auth(ADMIN)
        .body(include_bytes!("../data/sklearn-iris-logreg.onnx").to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for name in ["literal", "by-name"] {
        let mut last = serde_json::Value::Null;
        for _ in 0..100 {
            let v: serde_json::Value = client()
                .get(host.url(&format!("/v1/notifications/webhooks/{name}")))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            last = v["last_attempt"].clone();
            if v["failed"].as_u64() > Some(0) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let text = last.to_string();
        assert!(text.contains("error"), "{name}: {text}");
        assert!(!text.contains("url-secret"), "{name}: {text}");
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}
