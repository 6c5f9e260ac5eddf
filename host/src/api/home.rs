//! `GET /`: what a person (or a script) finds at the host's address — the name, the version,
//! where to look next and how to get a token — and `GET /docs`, the README this binary was
//! built with. Neither needs a token and neither shows anything but build-time text.

use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The README the binary was built from, served at `/docs`.
const README: &str = include_str!("../../../README.md");

/// Where to go from `/`: (path, what it is).
const LINKS: &[(&str, &str)] = &[
    (
        "/healthz",
        "liveness and what the store supports (no token)",
    ),
    (
        "/v1/info",
        "version, engine settings, default limits (reader token)",
    ),
    ("/v1/plugins", "the plugins this host runs (reader token)"),
    ("/metrics", "Prometheus metrics (reader token)"),
    (
        "/v2",
        "Open Inference Protocol v2 server metadata (no token)",
    ),
    (
        "/docs",
        "the README: quick start, API routes, CLI, plugin guide",
    ),
];

const TOKEN_HELP: &str = "`aimass up` prints a generated admin token on first start and saves \
it to <data dir>/admin-token (mode 0600), where the CLI finds it; set AIMASS_TOKEN to choose it \
instead. Send it as `Authorization: Bearer <token>`. Make narrower tokens with \
`aimass token create --role reader` (or invoker, admin).";

/// HTML for a browser; JSON when the client asks for `application/json` rather than HTML.
pub async fn home(headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("application/json") && !accept.contains("text/html") {
        return axum::Json(home_json()).into_response();
    }
    Html(home_html()).into_response()
}

pub async fn docs() -> Response {
    (
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        README,
    )
        .into_response()
}

fn home_json() -> serde_json::Value {
    let links: serde_json::Map<_, _> = LINKS
        .iter()
        .map(|(path, what)| (path.to_string(), serde_json::Value::from(*what)))
        .collect();
    serde_json::json!({
        "name": "aimass",
        "version": VERSION,
        "about": "WebAssembly plugin host for ML data pipelines",
        "links": links,
        "token": TOKEN_HELP,
    })
}

fn home_html() -> String {
    let links: String = LINKS
        .iter()
        .map(|(path, what)| format!("<li><a href=\"{path}\">{path}</a> — {what}</li>\n"))
        .collect();
    let token = TOKEN_HELP.replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>aimass {VERSION}</title></head>\n<body>\n<h1>aimass {VERSION}</h1>\n\
         <p>WebAssembly plugin host for ML data pipelines.</p>\n<ul>\n{links}</ul>\n\
         <h2>Tokens</h2>\n<p>{token}</p>\n</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_the_token_help_and_links_every_route() {
        let html = home_html();
        assert!(html.contains("&lt;data dir&gt;/admin-token"));
        assert!(!html.contains("<data dir>"));
        for (path, _) in LINKS {
            assert!(html.contains(&format!("href=\"{path}\"")), "{path}");
        }
    }
}
