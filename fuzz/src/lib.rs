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

/// Requests the harness has sent, and how many of them the host accepted (2xx); the rest were
/// refused with a 4xx. The replay test reports both, so a run whose inputs never reach past the
/// first check shows.
pub static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static ACCEPTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
            if !aimass::platform::ipc_guard::in_guarded() {
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
        SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if status.is_success() {
            ACCEPTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
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

/// The targets, one function each: `fuzz_targets/` hands them libFuzzer's inputs, and the test
/// command replays the seeds and a fixed set of mutations of them through them, uninstrumented
/// (`tests/it/fuzz.rs`).
pub mod targets {
    use super::{MODEL, host};
    use http::Method;
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

    /// A target: one input, checked against the host.
    pub type Target = fn(&[u8]);

    /// Every target by name.
    pub const ALL: &[(&str, Target)] = &[
        ("upload", upload),
        ("invoke_decode", invoke_decode),
        ("s3_event", s3_event),
        ("oip_infer", oip_infer),
        ("pipeline_spec", pipeline_spec),
        ("object_key", object_key),
    ];

    /// Plugin upload validation: arbitrary bytes (and, from the seed corpus, mutated real
    /// components) as the body of `PUT /v1/plugins/{name}`.
    pub fn upload(data: &[u8]) {
        host().expect_handled(Method::PUT, "/v1/plugins/fuzzed", None, data.to_vec());
    }

    const TYPES: [&str; 4] = [
        "application/vnd.apache.arrow.stream",
        "text/csv",
        "application/x-ndjson",
        "application/octet-stream",
    ];
    const PLUGINS: [&str; 2] = ["dedup", "csv-collector"];

    /// Arrow IPC / CSV / NDJSON decoding on the invoke path: the first byte picks the body's
    /// media type and the plugin (a cleaner, which the host decodes for, or the CSV collector,
    /// which gets the raw bytes); the rest is the body. With bit 3 set, the same bytes also go
    /// through the same decoders into the warehouse as a dataset part.
    pub fn invoke_decode(data: &[u8]) {
        let Some((&pick, body)) = data.split_first() else {
            return;
        };
        let media = TYPES[(pick & 3) as usize];
        let plugin = PLUGINS[((pick >> 2) & 1) as usize];
        let uri = format!("/v1/plugins/{plugin}/invoke");
        host().expect_handled(Method::POST, &uri, Some(media), body.to_vec());
        if pick & 8 != 0 {
            let uri = "/v1/datasets/fuzzed/parts";
            host().expect_handled(Method::POST, uri, Some(media), body.to_vec());
        }
    }

    /// S3 event notifications (the JSON AWS, MinIO and Garage-style senders post) at
    /// `POST /v1/events/s3`.
    pub fn s3_event(data: &[u8]) {
        let media = Some("application/json");
        host().expect_handled(Method::POST, "/v1/events/s3", media, data.to_vec());
    }

    /// OIP inference requests against the registered model, by name, version and alias (the
    /// first byte picks which).
    pub fn oip_infer(data: &[u8]) {
        let Some((&pick, body)) = data.split_first() else {
            return;
        };
        let uri = match pick % 3 {
            0 => format!("/v2/models/{MODEL}/infer"),
            1 => format!("/v2/models/{MODEL}/versions/1/infer"),
            _ => format!("/v2/models/{MODEL}/versions/latest/infer"),
        };
        host().expect_handled(Method::POST, &uri, Some("application/json"), body.to_vec());
    }

    /// Pipeline files, TOML or JSON by the first byte, at `PUT /v1/pipelines/{name}`; one that
    /// is accepted is deleted again.
    pub fn pipeline_spec(data: &[u8]) {
        let Some((&pick, body)) = data.split_first() else {
            return;
        };
        let media = if pick & 1 == 1 {
            "application/json"
        } else {
            "application/toml"
        };
        let uri = "/v1/pipelines/fuzzed";
        let (status, _) = host().expect_handled(Method::PUT, uri, Some(media), body.to_vec());
        if status.is_success() {
            host().expect_handled(Method::DELETE, uri, None, Vec::new());
        }
    }

    const KEY: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'.')
        .remove(b'-')
        .remove(b'_');

    /// Object keys in object, listing, dataset and model URLs (the first byte picks the route).
    pub fn object_key(data: &[u8]) {
        let Some((&pick, key)) = data.split_first() else {
            return;
        };
        let key = percent_encode(key, KEY).to_string();
        let (method, uri, body) = match pick % 6 {
            0 => (
                Method::PUT,
                format!("/v1/objects/{key}"),
                b"a,b\n1,2\n".to_vec(),
            ),
            1 => (Method::GET, format!("/v1/objects/{key}"), Vec::new()),
            2 => (Method::DELETE, format!("/v1/objects/{key}"), Vec::new()),
            3 => (Method::GET, format!("/v1/objects?prefix={key}"), Vec::new()),
            4 => (Method::GET, format!("/v1/datasets/{key}/rows"), Vec::new()),
            _ => (Method::GET, format!("/v1/models/{key}"), Vec::new()),
        };
        if uri.parse::<http::Uri>().is_err() {
            return; // not a request a client could send
        }
        host().expect_handled(method, &uri, Some("text/csv"), body);
    }
}
