//! Every route × every credential (no token, a wrong token, a revoked token, reader, invoker,
//! admin) against a real host: routes below the caller's role answer 401 (no valid token) or 403
//! (role too low), and never anything else; callers at or above it get one of the statuses the
//! row expects (never 401/403, never 5xx). The table mirrors the router in
//! `host/src/api/mod.rs`: `every_route_is_in_the_matrix` asks the router which methods each of
//! its paths takes (anything but 405) and fails on a (method, path) without a row here. The
//! counts RELIABILITY.md states are checked against this table.

use crate::common;

use common::{ADMIN, TestHost, client};
use reqwest::Method;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Need {
    Nobody,
    Reader,
    Invoker,
    Admin,
}

/// (method, path, who may call it, what it answers those who may). Names are ones that do not
/// exist, so allowed calls answer 404/400/422 without changing anything that matters.
type Row = (&'static str, &'static str, Need, &'static [u16]);

const ROUTES: &[Row] = &[
    ("GET", "/", Need::Nobody, &[200]),
    ("GET", "/docs", Need::Nobody, &[200]),
    ("GET", "/healthz", Need::Nobody, &[200]),
    ("GET", "/v1/info", Need::Reader, &[200]),
    ("GET", "/metrics", Need::Reader, &[200]),
    ("GET", "/v1/plugins", Need::Reader, &[200]),
    ("PUT", "/v1/plugins/m-nope", Need::Admin, &[400]),
    ("GET", "/v1/plugins/m-nope", Need::Reader, &[404]),
    ("DELETE", "/v1/plugins/m-nope", Need::Admin, &[404]),
    ("POST", "/v1/plugins/m-nope/invoke", Need::Invoker, &[404]),
    ("GET", "/fn/m-nope", Need::Invoker, &[404]),
    ("POST", "/fn/m-nope", Need::Invoker, &[404]),
    ("PUT", "/fn/m-nope", Need::Invoker, &[404]),
    ("DELETE", "/fn/m-nope", Need::Invoker, &[404]),
    ("PATCH", "/fn/m-nope", Need::Invoker, &[404]),
    ("GET", "/fn/m-nope/", Need::Invoker, &[404]),
    ("POST", "/fn/m-nope/", Need::Invoker, &[404]),
    ("PUT", "/fn/m-nope/", Need::Invoker, &[404]),
    ("DELETE", "/fn/m-nope/", Need::Invoker, &[404]),
    ("PATCH", "/fn/m-nope/", Need::Invoker, &[404]),
    ("GET", "/fn/m-nope/a/b", Need::Invoker, &[404]),
    ("POST", "/fn/m-nope/a/b", Need::Invoker, &[404]),
    ("PUT", "/fn/m-nope/a/b", Need::Invoker, &[404]),
    ("DELETE", "/fn/m-nope/a/b", Need::Invoker, &[404]),
    ("PATCH", "/fn/m-nope/a/b", Need::Invoker, &[404]),
    ("POST", "/v1/tokens", Need::Admin, &[400]),
    ("GET", "/v1/tokens", Need::Admin, &[200]),
    ("DELETE", "/v1/tokens/m-nope", Need::Admin, &[404]),
    ("GET", "/v1/objects", Need::Reader, &[200]),
    ("PUT", "/v1/objects/m-matrix/x.txt", Need::Invoker, &[201]),
    ("GET", "/v1/objects/m-matrix/none.txt", Need::Reader, &[404]),
    (
        "DELETE",
        "/v1/objects/m-matrix/none.txt",
        Need::Invoker,
        &[404],
    ),
    ("POST", "/v1/events/s3", Need::Invoker, &[400]),
    ("GET", "/v1/hooks", Need::Reader, &[200]),
    ("PUT", "/v1/hooks/m-nope", Need::Admin, &[400]),
    ("GET", "/v1/hooks/m-nope", Need::Reader, &[404]),
    ("DELETE", "/v1/hooks/m-nope", Need::Admin, &[404]),
    ("POST", "/v1/hooks/m-nope/pause", Need::Admin, &[404]),
    ("POST", "/v1/hooks/m-nope/resume", Need::Admin, &[404]),
    ("POST", "/v1/hooks/m-nope/redrive", Need::Admin, &[404]),
    ("GET", "/v1/hooks/m-nope/dead-letters", Need::Reader, &[404]),
    ("GET", "/v1/datasets", Need::Reader, &[200]),
    ("GET", "/v1/datasets/m-nope", Need::Reader, &[404]),
    ("DELETE", "/v1/datasets/m-nope", Need::Admin, &[404]),
    ("GET", "/v1/datasets/m-nope/rows", Need::Reader, &[404]),
    ("POST", "/v1/datasets/m-nope/parts", Need::Invoker, &[415]),
    ("POST", "/v1/train", Need::Admin, &[400]),
    ("GET", "/v1/train", Need::Reader, &[200]),
    ("GET", "/v1/train/m-nope", Need::Reader, &[404]),
    ("GET", "/v1/pipelines", Need::Reader, &[200]),
    ("PUT", "/v1/pipelines/m-nope", Need::Admin, &[400]),
    ("GET", "/v1/pipelines/m-nope", Need::Reader, &[404]),
    ("DELETE", "/v1/pipelines/m-nope", Need::Admin, &[404]),
    ("POST", "/v1/pipelines/m-nope/runs", Need::Invoker, &[404]),
    ("GET", "/v1/pipelines/m-nope/runs", Need::Reader, &[404]),
    ("GET", "/v1/runs/m-nope", Need::Reader, &[404]),
    ("GET", "/v1/runs/m-nope/events", Need::Reader, &[404]),
    ("POST", "/v1/runs/m-nope/cancel", Need::Invoker, &[404]),
    ("GET", "/v1/notifications/webhooks", Need::Admin, &[200]),
    (
        "PUT",
        "/v1/notifications/webhooks/m-nope",
        Need::Admin,
        &[400],
    ),
    (
        "GET",
        "/v1/notifications/webhooks/m-nope",
        Need::Admin,
        &[404],
    ),
    (
        "DELETE",
        "/v1/notifications/webhooks/m-nope",
        Need::Admin,
        &[404],
    ),
    (
        "GET",
        "/v1/events/stream?types=run.boom",
        Need::Reader,
        &[400],
    ),
    ("GET", "/v1/alerts", Need::Reader, &[200]),
    ("GET", "/v1/models", Need::Reader, &[200]),
    ("PUT", "/v1/models/m-nope", Need::Admin, &[400]),
    ("GET", "/v1/models/m-nope", Need::Reader, &[404]),
    ("GET", "/v1/models/m-nope/versions/1", Need::Reader, &[404]),
    (
        "DELETE",
        "/v1/models/m-nope/versions/1",
        Need::Admin,
        &[404],
    ),
    ("PUT", "/v1/models/m-nope/aliases/prod", Need::Admin, &[400]),
    (
        "DELETE",
        "/v1/models/m-nope/aliases/prod",
        Need::Admin,
        &[404],
    ),
    ("PUT", "/v1/models/m-nope/gate", Need::Admin, &[400]),
    ("PUT", "/v1/models/m-nope/batching", Need::Admin, &[400]),
    ("GET", "/v2", Need::Nobody, &[200]),
    ("GET", "/v2/health/live", Need::Nobody, &[200]),
    ("GET", "/v2/health/ready", Need::Nobody, &[200]),
    ("GET", "/v2/models/m-nope", Need::Reader, &[404]),
    ("GET", "/v2/models/m-nope/ready", Need::Reader, &[404]),
    ("POST", "/v2/models/m-nope/infer", Need::Invoker, &[404]),
    ("GET", "/v2/models/m-nope/versions/1", Need::Reader, &[404]),
    (
        "GET",
        "/v2/models/m-nope/versions/1/ready",
        Need::Reader,
        &[404],
    ),
    (
        "POST",
        "/v2/models/m-nope/versions/1/infer",
        Need::Invoker,
        &[404],
    ),
];

async fn status(host: &TestHost, method: &str, path: &str, token: Option<&str>) -> u16 {
    let mut rb = client()
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            host.url(path),
        )
        .body("");
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    rb.send().await.unwrap().status().as_u16()
}

async fn new_token(host: &TestHost, role: &str) -> (String, String) {
    let v: serde_json::Value = client()
        .post(host.url("/v1/tokens"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"name": format!("matrix-{role}"), "role": role}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        v["token"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_enforces_its_role_for_every_credential() {
    let _turn = crate::common::serial::together().await;
    // The matrix tries ~140 bad tokens from one address: above the default failure limit,
    // which security.rs covers.
    let host = TestHost::start(aimass::config::HostConfig {
        auth_limit: aimass::api::auth_limit::AuthLimit {
            burst: 10_000,
            per_minute: 10_000,
        },
        ..Default::default()
    });
    let (reader, _) = new_token(&host, "reader").await;
    let (invoker, _) = new_token(&host, "invoker").await;
    // A token that worked, then was revoked: it must be refused like any unknown token.
    let (revoked, id) = new_token(&host, "admin").await;
    assert_eq!(
        status(&host, "GET", "/v1/tokens", Some(&revoked)).await,
        200
    );
    let r = client()
        .delete(host.url(&format!("/v1/tokens/{id}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let callers: [(&str, Option<&str>, Option<Need>); 6] = [
        ("no token", None, None),
        ("wrong token", Some("not-a-token"), None),
        ("revoked token", Some(&revoked), None),
        ("reader", Some(&reader), Some(Need::Reader)),
        ("invoker", Some(&invoker), Some(Need::Invoker)),
        ("admin", Some(ADMIN), Some(Need::Admin)),
    ];
    let mut checked = 0;
    let mut failures = vec![];
    for (method, path, need, expected) in ROUTES {
        for (who, token, role) in &callers {
            let got = status(&host, method, path, *token).await;
            let allowed = *need == Need::Nobody || role.is_some_and(|r| r >= *need);
            let ok = if allowed {
                expected.contains(&got) && !matches!(got, 401 | 403 | 500..)
            } else if role.is_none() {
                got == 401
            } else {
                got == 403
            };
            if !ok {
                failures.push(format!(
                    "{method} {path} as {who}: {got} (needs {need:?}, expected {expected:?})"
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let (routes, checks) = stated_counts();
    assert_eq!(
        (routes, checks),
        (ROUTES.len(), checked),
        "RELIABILITY.md states {routes} routes and {checks} checks"
    );
}

/// The "N routes × 6 callers = M checks" RELIABILITY.md states, and that its revocation row
/// names the same N.
fn stated_counts() -> (usize, usize) {
    let doc = include_str!("../../RELIABILITY.md");
    let number_before = |marker: &str| -> usize {
        let at = doc
            .find(marker)
            .unwrap_or_else(|| panic!("{marker:?} not in RELIABILITY.md"));
        let digits: String = doc[..at]
            .chars()
            .rev()
            .skip_while(|c| *c == ' ')
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .filter(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    let routes = number_before("routes × 6 callers");
    let checks = number_before("checks, 0 failures");
    assert_eq!(
        number_before("routes |"),
        routes,
        "the revocation row names another route count"
    );
    (routes, checks)
}

/// Does a concrete path match an axum route pattern (`{param}`, `{*rest}`)?
fn matches(pattern: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap();
    let (p, q): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    for (i, seg) in p.iter().enumerate() {
        if seg.starts_with("{*") {
            return q.len() > i && !q[i].is_empty();
        }
        match q.get(i) {
            Some(x) if seg.starts_with('{') && !x.is_empty() => {}
            Some(x) if x == seg => {}
            _ => return false,
        }
    }
    p.len() == q.len()
}

/// A concrete path for a router pattern.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| match seg {
            s if s.starts_with("{*") => "m-matrix/none.txt",
            s if s.starts_with('{') => "m-nope",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every (method, path) the router takes has a row above: the paths are the router's
/// `.route(...)` patterns, and the methods each takes are the ones it does not answer 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_in_the_matrix() {
    let _turn = crate::common::serial::together().await;
    let source = include_str!("../../host/src/api/mod.rs");
    let patterns: Vec<&str> = source
        .split(".route(")
        .skip(1)
        .filter_map(|rest| rest.split('"').nth(1))
        .collect();
    assert!(patterns.len() >= 50, "{patterns:?}");
    let host = TestHost::start(aimass::config::HostConfig {
        register_bundled: false,
        ..Default::default()
    });
    let mut routed = Vec::new();
    for pattern in &patterns {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if status(&host, method, &concrete(pattern), Some(ADMIN)).await != 405 {
                routed.push((method, *pattern));
            }
        }
    }
    // The probe itself can tell: every pattern takes at least one method.
    for pattern in &patterns {
        assert!(
            routed.iter().any(|(_, p)| p == pattern),
            "{pattern} answers 405 to every method"
        );
    }
    let missing: Vec<_> = routed
        .iter()
        .filter(|(m, p)| {
            !ROUTES
                .iter()
                .any(|(method, path, ..)| method == m && matches(p, path))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "routes without a row in the matrix: {missing:?}"
    );
    let stale: Vec<_> = ROUTES
        .iter()
        .filter(|(method, path, ..)| !routed.iter().any(|(m, p)| m == method && matches(p, path)))
        .collect();
    assert!(stale.is_empty(), "rows the router does not take: {stale:?}");
    assert!(matches("/fn/{name}/{*rest}", "/fn/a/b/c"));
    assert!(!matches("/fn/{name}", "/fn/a/b"));
    assert!(matches("/fn/{name}/", "/fn/a/"));
}
