//! The fuzz targets' shared harness: one host per fuzzing process, built in-process with
//! [`aimass::server::build`] and driven through its axum router with no socket in between, so
//! an input costs one request rather than a connection.
//!
//! Every target checks the same contract the API promises for input a client controls: no
//! panic (libFuzzer reports it as a crash), no hang (`-timeout`), and never a 5xx — bad input is
//! a 4xx that names the problem. A 5xx is a defect in the host, so the harness panics on one,
//! which libFuzzer records as a crash with the input that caused it.

use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tower::ServiceExt;

/// The admin token every request carries: the targets fuzz input handling, not auth (the auth
/// matrix test covers that).
pub const TOKEN: &str = "fuzz-admin-token-of-at-least-32-chars";

/// Name of the ONNX model registered at start-up (scikit-learn's iris logistic regression).
pub const MODEL: &str = "iris";

pub struct Harness {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
}

/// Store of this process's host, removed at exit.
static DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_dir() {
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The process's host, built on first use with the bundled plugins and the iris model.
///
/// Registering the bundled plugins compiles them, which takes minutes under coverage
/// instrumentation. So the first process builds a template store with them (and the model)
/// next to a persistent compiled-component cache, and every process starts from a copy of that
/// store: its host then loads the plugins from the cache in milliseconds, and each process
/// still fuzzes a store of its own.
pub fn host() -> &'static Harness {
    static HOST: OnceLock<Harness> = OnceLock::new();
    HOST.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("aimass-fuzz-{}", std::process::id()));
        let _ = DIR.set(dir.clone());
        // SAFETY: registers a plain `extern "C"` function with no captured state.
        unsafe { libc::atexit(remove_dir) };
        // libFuzzer's panic hook aborts on every panic; the host catches the ones it turns into
        // a 400 (arrow's decoder on malformed IPC, see `ipc_guard`), so those pass.
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !aimass::capabilities::ipc_guard::in_guarded() {
                abort(info);
            }
        }));
        let data_dir = std::env::var_os("AIMASS_FUZZ_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("aimass-fuzz-data"));
        // One template per set of bundled plugins, so a change to them builds a new one.
        let mut hasher = std::hash::DefaultHasher::new();
        for (name, bytes) in aimass::bundled::PLUGINS {
            std::hash::Hash::hash(&(name, bytes), &mut hasher);
        }
        let template = data_dir.join(format!(
            "store-template-{:016x}",
            std::hash::Hasher::finish(&hasher)
        ));
        if !template.join(".complete").exists() {
            let _ = std::fs::remove_dir_all(&template);
            let h = Harness::build(&template, &data_dir);
            let onnx = include_bytes!("../../tests/data/sklearn-iris-logreg.onnx");
            let (status, body) = h.send(
                Method::PUT,
                &format!("/v1/models/{MODEL}"),
                None,
                onnx.to_vec(),
            );
            assert!(
                status.is_success(),
                "registering the model: {status} {}",
                String::from_utf8_lossy(&body)
            );
            h.rt.shutdown_background();
            std::fs::write(template.join(".complete"), b"").expect("marking the template");
        }
        copy_dir(&template, &dir.join("store")).expect("copying the template store");
        Harness::build(&dir.join("store"), &data_dir)
    })
}

/// Copy a directory tree.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

impl Harness {
    /// A host on the file store at `store`, with `data_dir` for its caches.
    fn build(store: &Path, data_dir: &Path) -> Harness {
        let config = aimass::config::HostConfig {
            store_url: format!("file://{}", store.display()),
            data_dir: data_dir.to_path_buf(),
            admin_token: Some(TOKEN.into()),
            ..Default::default()
        };
        let rt = aimass::server::runtime_builder()
            .worker_threads(2)
            .build()
            .expect("tokio runtime");
        let built = rt
            .block_on(aimass::server::build(&config))
            .expect("building the host");
        Harness { rt, app: built.app }
    }

    /// One request through the router; the status and the whole body.
    pub fn send(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req.body(Body::from(body)).expect("a valid request");
        self.rt.block_on(async {
            let resp = self.app.clone().oneshot(req).await.expect("infallible");
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .map(|b| b.to_vec())
                .unwrap_or_else(|e| format!("<body failed: {e}>").into_bytes());
            (status, body)
        })
    }

    /// [`send`](Self::send), then fail the input unless the host answered with a success or a
    /// client error that says something.
    pub fn expect_handled(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let what = format!("{method} {uri}");
        let (status, body) = self.send(method, uri, content_type, body);
        let text = String::from_utf8_lossy(&body);
        assert!(
            !status.is_server_error(),
            "{what} answered {status}: {text}"
        );
        if status.is_client_error() {
            assert!(
                text.contains("\"error\""),
                "{what} answered {status} without an error message: {text}"
            );
        }
        (status, body)
    }
}
