//! Every route × every credential (no token, a wrong token, a revoked token, reader, invoker,
//! admin) against a real host: routes below the caller's role answer 401 (no valid token) or 403
//! (role too low), and never anything else; routes at or above it never answer 401/403. The
//! table mirrors the one in `host/src/api/mod.rs`: a route added there without a row here is
//! caught by `every_route_is_in_the_matrix`.

mod common;

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

/// (method, path, who may call it). Names are ones that do not exist, so allowed calls answer
/// 404/400/422 without changing anything that matters.
const ROUTES: &[(&str, &str, Need)] = &[
    ("GET", "/", Need::Nobody),
    ("GET", "/docs", Need::Nobody),
    ("GET", "/healthz", Need::Nobody),
    ("GET", "/v1/info", Need::Reader),
    ("GET", "/metrics", Need::Reader),
    ("GET", "/v1/plugins", Need::Reader),
    ("PUT", "/v1/plugins/m-nope", Need::Admin),
    ("GET", "/v1/plugins/m-nope", Need::Reader),
    ("DELETE", "/v1/plugins/m-nope", Need::Admin),
    ("POST", "/v1/plugins/m-nope/invoke", Need::Invoker),
    ("GET", "/fn/m-nope", Need::Invoker),
    ("POST", "/fn/m-nope/", Need::Invoker),
    ("PUT", "/fn/m-nope/a/b", Need::Invoker),
    ("POST", "/v1/tokens", Need::Admin),
    ("GET", "/v1/tokens", Need::Admin),
    ("DELETE", "/v1/tokens/m-nope", Need::Admin),
    ("GET", "/v1/objects", Need::Reader),
    ("PUT", "/v1/objects/m-matrix/x.txt", Need::Invoker),
    ("GET", "/v1/objects/m-matrix/none.txt", Need::Reader),
    ("DELETE", "/v1/objects/m-matrix/none.txt", Need::Invoker),
    ("POST", "/v1/events/s3", Need::Invoker),
    ("GET", "/v1/hooks", Need::Reader),
    ("PUT", "/v1/hooks/m-nope", Need::Admin),
    ("GET", "/v1/hooks/m-nope", Need::Reader),
    ("DELETE", "/v1/hooks/m-nope", Need::Admin),
    ("POST", "/v1/hooks/m-nope/pause", Need::Admin),
    ("POST", "/v1/hooks/m-nope/resume", Need::Admin),
    ("POST", "/v1/hooks/m-nope/redrive", Need::Admin),
    ("GET", "/v1/hooks/m-nope/dead-letters", Need::Reader),
    ("GET", "/v1/datasets", Need::Reader),
    ("GET", "/v1/datasets/m-nope", Need::Reader),
    ("DELETE", "/v1/datasets/m-nope", Need::Admin),
    ("GET", "/v1/datasets/m-nope/rows", Need::Reader),
    ("POST", "/v1/datasets/m-nope/parts", Need::Invoker),
    ("POST", "/v1/train", Need::Admin),
    ("GET", "/v1/train", Need::Reader),
    ("GET", "/v1/train/m-nope", Need::Reader),
    ("GET", "/v1/pipelines", Need::Reader),
    ("PUT", "/v1/pipelines/m-nope", Need::Admin),
    ("GET", "/v1/pipelines/m-nope", Need::Reader),
    ("DELETE", "/v1/pipelines/m-nope", Need::Admin),
    ("POST", "/v1/pipelines/m-nope/runs", Need::Invoker),
    ("GET", "/v1/pipelines/m-nope/runs", Need::Reader),
    ("GET", "/v1/runs/m-nope", Need::Reader),
    ("GET", "/v1/runs/m-nope/events", Need::Reader),
    ("POST", "/v1/runs/m-nope/cancel", Need::Invoker),
    ("GET", "/v1/notifications/webhooks", Need::Admin),
    ("PUT", "/v1/notifications/webhooks/m-nope", Need::Admin),
    ("GET", "/v1/notifications/webhooks/m-nope", Need::Admin),
    ("DELETE", "/v1/notifications/webhooks/m-nope", Need::Admin),
    ("GET", "/v1/events/stream?types=run.boom", Need::Reader),
    ("GET", "/v1/alerts", Need::Reader),
    ("GET", "/v1/models", Need::Reader),
    ("PUT", "/v1/models/m-nope", Need::Admin),
    ("GET", "/v1/models/m-nope", Need::Reader),
    ("GET", "/v1/models/m-nope/versions/1", Need::Reader),
    ("DELETE", "/v1/models/m-nope/versions/1", Need::Admin),
    ("PUT", "/v1/models/m-nope/aliases/prod", Need::Admin),
    ("DELETE", "/v1/models/m-nope/aliases/prod", Need::Admin),
    ("PUT", "/v1/models/m-nope/gate", Need::Admin),
    ("PUT", "/v1/models/m-nope/batching", Need::Admin),
    ("GET", "/v2", Need::Nobody),
    ("GET", "/v2/health/live", Need::Nobody),
    ("GET", "/v2/health/ready", Need::Nobody),
    ("GET", "/v2/models/m-nope", Need::Reader),
    ("GET", "/v2/models/m-nope/ready", Need::Reader),
    ("POST", "/v2/models/m-nope/infer", Need::Invoker),
    ("GET", "/v2/models/m-nope/versions/1", Need::Reader),
    ("GET", "/v2/models/m-nope/versions/1/ready", Need::Reader),
    ("POST", "/v2/models/m-nope/versions/1/infer", Need::Invoker),
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
    // The matrix tries ~140 bad tokens from one address: above the default failure limit,
    // which tests/security.rs covers.
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
    for (method, path, need) in ROUTES {
        for (who, token, role) in &callers {
            let got = status(&host, method, path, *token).await;
            let allowed = *need == Need::Nobody || role.is_some_and(|r| r >= *need);
            let ok = if allowed {
                got != 401 && got != 403
            } else if role.is_none() {
                got == 401
            } else {
                got == 403
            };
            if !ok {
                failures.push(format!("{method} {path} as {who}: {got} (needs {need:?})"));
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
    assert_eq!(checked, ROUTES.len() * 6);
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

#[test]
fn every_route_is_in_the_matrix() {
    // Every `.route("pattern", ...)` the router registers has a row above.
    let source = include_str!("../host/src/api/mod.rs");
    let patterns: Vec<&str> = source
        .split(".route(")
        .skip(1)
        .filter_map(|rest| rest.split('"').nth(1))
        .collect();
    assert!(patterns.len() >= 50, "{patterns:?}");
    let missing: Vec<&&str> = patterns
        .iter()
        .filter(|p| !ROUTES.iter().any(|(_, path, _)| matches(p, path)))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without a row in the matrix: {missing:?}"
    );
    assert!(matches("/fn/{name}/{*rest}", "/fn/a/b/c"));
    assert!(!matches("/fn/{name}", "/fn/a/b"));
    assert!(matches("/fn/{name}/", "/fn/a/"));
}
