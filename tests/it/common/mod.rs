//! Test harness: real hosts (the library's `server::start`, listening on a real TCP port) driven by
//! a real HTTP client, and helpers to read the plugins built from `plugins/`.
#![allow(dead_code)]

pub mod binary;
pub mod events;
pub mod garage;
pub mod normal;
pub mod pipelines;
pub mod serial;

use aimass::client::PluginUpload;
use aimass::config::HostConfig;
use aimass::runtime::Limits;
use arrow_array::RecordBatch;
use reqwest::Method;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

pub const ADMIN: &str = "test-admin-token-of-at-least-32-chars";

/// A host running on its own tokio runtime, so it outlives any one test's runtime.
pub struct TestHost {
    pub addr: SocketAddr,
    pub url: String,
    runtime: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Allowed from inside a test's async context, unlike dropping the runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl TestHost {
    /// Start a host on a fresh file store, with bundled plugins unless `config` says otherwise.
    pub fn start(mut config: HostConfig) -> TestHost {
        let dir = tempfile::tempdir().unwrap();
        if config.store_url == HostConfig::default().store_url {
            config.store_url = format!("file://{}", dir.path().join("store").display());
        }
        config.data_dir = dir.path().join("data");
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.admin_token.get_or_insert_with(|| ADMIN.to_string());
        // Built on a plain thread: tests call this from inside their own tokio runtime.
        let (runtime, addr) = std::thread::spawn(move || {
            let runtime = aimass::server::runtime_builder()
                .worker_threads(2)
                .build()
                .unwrap();
            let running = runtime.block_on(aimass::server::start(config)).unwrap();
            (runtime, running.addr)
        })
        .join()
        .unwrap();
        TestHost {
            addr,
            url: format!("http://{addr}"),
            runtime: Some(runtime),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The typed API client, as admin.
    pub fn api(&self) -> aimass::client::Client {
        aimass::client::Client::with_http(client(), &self.url, Some(ADMIN.to_string()))
    }

    /// Directory of the default file store (where an outside writer would drop files).
    pub fn store_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("store")
    }
}

/// One host shared by the tests of the calling file (bundled plugins, default limits): each
/// file gets a host of its own, as when each file was a test binary of its own, so the plugins
/// one file uploads (its own limits, under the same names as another's) and the series it counts
/// never meet another file's.
///
/// A leaked host is never dropped, so its temp dir (store, compiled cache) would outlive the test
/// process; an `atexit` handler removes them.
#[track_caller]
pub fn shared() -> &'static TestHost {
    static HOSTS: Mutex<BTreeMap<&'static str, &'static TestHost>> = Mutex::new(BTreeMap::new());
    static DIRS: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());
    extern "C" fn remove_dirs() {
        if let Ok(dirs) = DIRS.lock() {
            for dir in dirs.iter() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
    let file = std::panic::Location::caller().file();
    // Held while a host starts: one start per file, even when its tests ask at once.
    let mut hosts = HOSTS.lock().unwrap_or_else(|e| e.into_inner());
    hosts.entry(file).or_insert_with(|| {
        let host = TestHost::start(HostConfig::default());
        let mut dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
        if dirs.is_empty() {
            // SAFETY: registers a plain `extern "C"` function with no captured state.
            unsafe { libc::atexit(remove_dirs) };
        }
        dirs.push(host._dir.path().to_path_buf());
        Box::leak(Box::new(host))
    })
}

/// Default config with tighter limits, for tests that exercise them.
pub fn config_with(limits: Limits) -> HostConfig {
    HostConfig {
        limits,
        ..HostConfig::default()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Bytes of a plugin built from `plugins/` (crate name, e.g. "hostile").
pub fn wasm(crate_name: &str) -> Vec<u8> {
    std::fs::read(aimass::bundled::wasm_path(crate_name)).unwrap()
}

/// Upload `bytes` as `name` with optional limit query (`?timeout_ms=300&...`), asserting success.
pub async fn push(host: &TestHost, name: &str, bytes: Vec<u8>, query: &str) -> serde_json::Value {
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(query.trim_start_matches('?')).unwrap();
    let upload = params
        .iter()
        .fold(PluginUpload::new(), |u, (k, v)| u.param(k, v));
    host.api()
        .put_plugin(name, bytes, &upload)
        .await
        .unwrap_or_else(|e| panic!("upload of {name} failed: {e}"))
}

/// Start `n` calls of `plugin` (the `hostile` component) busy for `ms` each, to hold its slots.
pub fn hold<H>(
    host: H,
    plugin: &'static str,
    ms: u64,
    n: usize,
) -> Vec<tokio::task::JoinHandle<(u16, String, Vec<u8>)>>
where
    H: std::ops::Deref<Target = TestHost> + Clone + Send + Sync + 'static,
{
    (0..n)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move {
                let query = format!("?mode=sleep&ms={ms}");
                invoke(&host, plugin, &query, "text/csv", None, "a\n1\n").await
            })
        })
        .collect()
}

/// GET a JSON resource as admin.
pub async fn get_json(host: &TestHost, path: &str) -> serde_json::Value {
    let api = host.api();
    api.send_json(api.request(Method::GET, path))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// POST a CSV body as admin (for tests that look at the raw response: headers, timing).
pub async fn post_csv(host: &TestHost, path: &str, csv: &'static str) -> reqwest::Response {
    host.api()
        .request(Method::POST, path)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap()
}

/// POST an invoke and return (status, content type, body).
pub async fn invoke(
    host: &TestHost,
    name: &str,
    query: &str,
    content_type: &str,
    accept: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, String, Vec<u8>) {
    let mut rb = host
        .api()
        .request(Method::POST, &format!("/v1/plugins/{name}/invoke{query}"))
        .header("content-type", content_type)
        .body(body);
    if let Some(a) = accept {
        rb = rb.header("accept", a);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

/// The `error` message of a JSON error body.
pub fn error_of(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not a JSON error: {}", String::from_utf8_lossy(body)));
    v["error"].as_str().expect("error field").to_string()
}

pub fn text(body: &[u8]) -> String {
    String::from_utf8(body.to_vec()).unwrap()
}

/// Decode an Arrow IPC stream body.
pub fn batches(body: &[u8]) -> Vec<RecordBatch> {
    aimass::platform::formats::decode_ipc(body).unwrap().1
}

/// A new token of `role`, created as admin; returns the secret.
pub async fn token(host: &TestHost, role: &str) -> String {
    let v = host.api().create_token(role, role).await.unwrap();
    v["token"].as_str().unwrap().to_string()
}

/// Upload the skl2onnx iris model shipped in `tests/data` as model `name` (asserting 201).
pub async fn put_sklearn_iris(host: &TestHost, name: &str) {
    let onnx = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/sklearn-iris-logreg.onnx"
    ))
    .unwrap();
    let api = host.api();
    let put = api.request(Method::PUT, &format!("/v1/models/{name}"));
    let resp = api.send(put.body(onnx)).await.unwrap();
    assert_eq!(resp.status(), 201);
}

/// Make `python3 -c "import {module}"` work, installing `packages` with pip (user site) if not.
pub fn ensure_python_module(module: &str, packages: &[&str]) {
    let present = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        let install = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--user", "--quiet"])
            .args(packages)
            .status()
            .expect("python3 runs");
        assert!(install.success(), "pip install {packages:?} failed");
    }
}
