//! The plugin API end to end over HTTP: upload validation, versions and hot swap, listing,
//! deletion, auth and tokens, body limits.

use crate::common;

use aimass::config::HostConfig;
use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

async fn put_raw(host: &TestHost, name: &str, body: Vec<u8>) -> (u16, String) {
    let resp = client()
        .put(host.url(&format!("/v1/plugins/{name}")))
        .bearer_auth(ADMIN)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, error_of(&resp.bytes().await.unwrap()))
}

#[tokio::test]
async fn bad_uploads_are_refused_with_a_precise_message() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty", vec![], 400, "body is empty"),
        (
            "garbage",
            b"definitely not wasm".to_vec(),
            422,
            "not a WebAssembly binary",
        ),
        (
            "core-module",
            wat::parse_str("(module (func (export \"clean\")))").unwrap(),
            422,
            "core WebAssembly module, not a component",
        ),
        (
            "truncated",
            wasm("noop")[..200].to_vec(),
            422,
            "invalid component",
        ),
        (
            "no-world",
            wat::parse_str("(component)").unwrap(),
            422,
            "implements no aimass world",
        ),
        (
            "unknown-imports",
            wat::parse_str(
                r#"(component
                    (import "evil:net/socket@1.0.0" (instance (export "open" (func))))
                    (import "acme:files/read" (instance)))"#,
            )
            .unwrap(),
            422,
            "evil:net/socket@1.0.0, acme:files/read",
        ),
        (
            "wrong-signature",
            wat::parse_str(
                r#"(component
                    (core module $m (func (export "f")))
                    (core instance $i (instantiate $m))
                    (func $f (canon lift (core func $i "f")))
                    (export "clean" (func $f)))"#,
            )
            .unwrap(),
            422,
            "do not match the cleaner world",
        ),
        ("Bad/Name", wasm("noop"), 400, "invalid plugin name"),
    ];
    for (name, body, status, needle) in cases {
        let path_name = if name == "Bad/Name" {
            "Bad%2FName"
        } else {
            name
        };
        let (got, msg) = put_raw(host, path_name, body).await;
        assert_eq!(got, status, "{name}: {msg}");
        assert!(
            msg.contains(needle),
            "{name}: {msg:?} should contain {needle:?}"
        );
        // Nothing was registered.
        let r = client()
            .get(host.url(&format!("/v1/plugins/{path_name}")))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{name} must not be registered");
    }
}

#[tokio::test]
async fn upload_versions_show_list_delete() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    let v1 = push(host, "lifecycle", wasm("noop"), "").await;
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["world"], "cleaner");
    assert_eq!(v1["created"], true);
    assert_eq!(v1["digest"].as_str().unwrap().len(), 64);
    // Same bytes again: nothing new.
    let again = push(host, "lifecycle", wasm("noop"), "").await;
    assert_eq!(again["version"], 1);
    assert_eq!(again["created"], false);
    // New bytes (or new limits): a new version.
    let v2 = push(
        host,
        "lifecycle",
        wasm("hostile"),
        "?timeout_ms=1234&concurrency=3",
    )
    .await;
    assert_eq!(v2["version"], 2);

    let detail: serde_json::Value = get_json(host, "/v1/plugins/lifecycle").await;
    assert_eq!(detail["live_version"], 2);
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2);
    assert_eq!(detail["limits"]["timeout_ms"], 1234);
    assert_eq!(detail["limits"]["max_concurrency"], 3);
    assert_eq!(detail["loaded_from"], "compiled");

    let list: serde_json::Value = get_json(host, "/v1/plugins").await;
    let names: Vec<&str> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for bundled in [
        "csv-collector",
        "dedup",
        "drop-nulls",
        "outliers",
        "standard-scaler",
        "lifecycle",
    ] {
        assert!(names.contains(&bundled), "{bundled} missing from {names:?}");
    }

    let bad_limit = client()
        .put(host.url("/v1/plugins/lifecycle?timeout_ms=0"))
        .bearer_auth(ADMIN)
        .body(wasm("noop"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_limit.status().as_u16(), 400);
    let huge = client()
        .put(host.url("/v1/plugins/lifecycle?memory_mb=17592186044416"))
        .bearer_auth(ADMIN)
        .body(wasm("noop"))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status().as_u16(), 400);
    let wrong_method = client()
        .post(host.url("/v1/plugins/lifecycle"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    error_of(&wrong_method.bytes().await.unwrap());
    let not_utf8 = client()
        .get(host.url("/v1/plugins/%FF"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(not_utf8.status().as_u16(), 400);
    error_of(&not_utf8.bytes().await.unwrap());
    let unknown_param = client()
        .put(host.url("/v1/plugins/lifecycle?timeout=5"))
        .bearer_auth(ADMIN)
        .body(wasm("noop"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_param.status().as_u16(), 400);

    let del = client()
        .delete(host.url("/v1/plugins/lifecycle"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 204);
    let (status, _, body) = invoke(host, "lifecycle", "", "text/csv", None, "a\n1\n").await;
    assert_eq!(status, 404, "{}", text(&body));
    let del = client()
        .delete(host.url("/v1/plugins/lifecycle"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 404);
}

#[tokio::test]
async fn hot_swap_under_load_fails_no_call() {
    // Heavy: the swap's upload must land while a call started before it still runs.
    let _turn = crate::common::serial::heavy().await;
    let host = shared();
    push(host, "swap", wasm("hostile"), "?concurrency=16").await;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..6 {
        let (stop, ok) = (stop.clone(), ok.clone());
        let url = host.url("/v1/plugins/swap/invoke?mode=ok");
        workers.push(tokio::spawn(async move {
            let c = client();
            let mut versions = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let resp = c
                    .post(&url)
                    .bearer_auth(ADMIN)
                    .header("content-type", "text/csv")
                    .body("x,y\n1,2\n")
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let version = resp.headers()["x-aimass-plugin-version"]
                    .to_str()
                    .unwrap()
                    .parse::<u32>()
                    .unwrap_or(0);
                let body = resp.text().await.unwrap();
                assert_eq!(status, 200, "call failed during swap: {body}");
                assert_eq!(body, "x,y\n1,2\n");
                versions.push(version);
                ok.fetch_add(1, Ordering::Relaxed);
            }
            versions
        }));
    }
    // A long call that starts on v1 and is still running when v2 goes live.
    let long = tokio::spawn(async move {
        let resp = post_csv(
            shared(),
            "/v1/plugins/swap/invoke?mode=sleep&ms=4000",
            "x\n1\n",
        )
        .await;
        let version = resp.headers()["x-aimass-plugin-version"].clone();
        let out = (resp.status().as_u16(), version, resp.text().await.unwrap());
        (out, std::time::Instant::now())
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let v2 = push(host, "swap", wasm("noop"), "?concurrency=16").await;
    let swapped_at = std::time::Instant::now();
    assert_eq!(v2["version"], 2);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let ((status, version, body), long_done) = long.await.unwrap();
    assert!(
        swapped_at < long_done,
        "v2 went live while the v1 call was running"
    );
    assert_eq!((status, body.as_str()), (200, "x\n1\n"));
    assert_eq!(
        version, "1",
        "the long call finished on the version it started on"
    );
    let mut seen = Vec::new();
    for w in workers {
        seen.extend(w.await.unwrap());
    }
    assert!(
        ok.load(Ordering::Relaxed) > 20,
        "too little load to mean anything"
    );
    assert!(
        seen.contains(&1) && seen.contains(&2),
        "both versions served: {seen:?}"
    );
    // Once swapped, new calls never go back to the old version.
    let resp = post_csv(host, "/v1/plugins/swap/invoke", "a\n1\n").await;
    assert_eq!(resp.headers()["x-aimass-plugin-version"], "2");
}

#[derive(Clone, Copy, Debug)]
enum Who {
    Nobody,
    Wrong,
    Reader,
    Invoker,
    Admin,
}

#[tokio::test]
async fn auth_matrix_and_tokens() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    push(host, "auth-target", wasm("noop"), "").await;
    let c = client();
    let reader = common::token(host, "reader").await;
    let invoker = common::token(host, "invoker").await;
    let token = |w: Who| -> Option<String> {
        match w {
            Who::Nobody => None,
            Who::Wrong => Some("aimass_not_a_token".into()),
            Who::Reader => Some(reader.clone()),
            Who::Invoker => Some(invoker.clone()),
            Who::Admin => Some(ADMIN.into()),
        }
    };
    // (method, path, body?, expected status per Nobody, Wrong, Reader, Invoker, Admin)
    let routes: Vec<(&str, &str, [u16; 5])> = vec![
        ("GET", "/healthz", [200, 200, 200, 200, 200]),
        ("GET", "/v1/info", [401, 401, 200, 200, 200]),
        ("GET", "/v1/plugins", [401, 401, 200, 200, 200]),
        ("GET", "/v1/plugins/auth-target", [401, 401, 200, 200, 200]),
        (
            "POST",
            "/v1/plugins/auth-target/invoke",
            [401, 401, 403, 200, 200],
        ),
        ("PUT", "/v1/plugins/auth-target", [401, 401, 403, 403, 200]),
        ("GET", "/v1/tokens", [401, 401, 403, 403, 200]),
        ("POST", "/v1/tokens", [401, 401, 403, 403, 201]),
        (
            "DELETE",
            "/v1/plugins/auth-target-missing",
            [401, 401, 403, 403, 404],
        ),
        (
            "DELETE",
            "/v1/tokens/nonexistent",
            [401, 401, 403, 403, 404],
        ),
    ];
    for (method, path, expected) in routes {
        for (i, who) in [
            Who::Nobody,
            Who::Wrong,
            Who::Reader,
            Who::Invoker,
            Who::Admin,
        ]
        .into_iter()
        .enumerate()
        {
            let mut rb = c.request(method.parse().unwrap(), host.url(path));
            if let Some(t) = token(who) {
                rb = rb.bearer_auth(t);
            }
            rb = match method {
                "POST" if path == "/v1/tokens" => {
                    rb.json(&serde_json::json!({"name": "matrix", "role": "reader"}))
                }
                "POST" => rb.header("content-type", "text/csv").body("a\n1\n"),
                "PUT" => rb.body(wasm("noop")),
                _ => rb,
            };
            let resp = rb.send().await.unwrap();
            let status = resp.status().as_u16();
            if status == 401 {
                assert_eq!(resp.headers()["www-authenticate"], "Bearer");
            }
            let body = resp.bytes().await.unwrap();
            assert_eq!(
                status,
                expected[i],
                "{method} {path} as {who:?}: {}",
                text(&body)
            );
            if status >= 400 {
                error_of(&body);
            }
        }
    }
    // Revocation takes effect at once.
    let list: serde_json::Value = c
        .get(host.url("/v1/tokens"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tokens = list["tokens"].as_array().unwrap();
    assert!(
        tokens.iter().all(|t| t.get("hash").is_none()),
        "hashes never leave the host"
    );
    let id = tokens.iter().find(|t| t["role"] == "reader").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let del = c
        .delete(host.url(&format!("/v1/tokens/{id}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 204);
    let after = c
        .get(host.url("/v1/plugins"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status().as_u16(), 401);
    let bad_role = c
        .post(host.url("/v1/tokens"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"name": "x", "role": "root"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_role.status().as_u16(), 400);
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let _turn = crate::common::serial::together().await;
    let host = TestHost::start(HostConfig {
        max_body_bytes: 64 << 10,
        register_bundled: false,
        ..HostConfig::default()
    });
    let (status, msg) = put_raw(&host, "big", vec![0u8; 200 << 10]).await;
    assert_eq!(status, 413, "{msg}");
    assert!(msg.contains("body size limit"));
    // Invoke bodies too.
    let (status, _, body) = invoke(&host, "big", "", "text/csv", None, vec![b'1'; 200 << 10]).await;
    assert_eq!(status, 413, "{}", text(&body));
    // Without a token the answer is 401, and the host never buffered the body.
    let r = client()
        .put(host.url("/v1/plugins/big"))
        .body(vec![0u8; 200 << 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Nothing was stored, and the host keeps serving.
    let r = client()
        .get(host.url("/v1/plugins/big"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

/// `/` tells a person (HTML) or a script (JSON) what this is and where to go, with no token;
/// `/docs` is the README the binary was built with.
#[tokio::test]
async fn the_root_is_a_landing_page_not_a_404() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    let version = env!("CARGO_PKG_VERSION");
    let resp = client().get(host.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = resp.text().await.unwrap();
    assert!(
        html.contains(&format!("<h1>aimass {version}</h1>")),
        "{html}"
    );
    for link in ["/healthz", "/v1/info", "/docs"] {
        assert!(
            html.contains(&format!("href=\"{link}\"")),
            "{link} in {html}"
        );
    }
    assert!(html.contains("admin-token"), "{html}");

    let json: serde_json::Value = client()
        .get(host.url("/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["name"], "aimass");
    assert_eq!(json["version"], version);
    assert!(json["links"]["/v1/info"].is_string(), "{json}");
    assert!(json["token"].as_str().unwrap().contains("admin-token"));

    // Every link on the page answers; the ones that need a token say so with 401, not 404.
    for link in json["links"].as_object().unwrap().keys() {
        let status = client().get(host.url(link)).send().await.unwrap().status();
        assert!(status == 200 || status == 401, "{link}: {status}");
    }
    let docs = client().get(host.url("/docs")).send().await.unwrap();
    assert_eq!(
        docs.headers()["content-type"],
        "text/markdown; charset=utf-8"
    );
    assert!(docs.text().await.unwrap().contains("## Quick start"));
}
