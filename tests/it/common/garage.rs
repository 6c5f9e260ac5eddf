//! A real S3 server for tests: Garage 2.5.0, single node, on loopback ports, in a temp dir.
//!
//! The binary is taken from `AIMASS_GARAGE`, `/var/tmp/aimass-tools/bin/garage` (where `.ci/run`
//! installs it), or `PATH`; if none exists it is installed there with `cargo install` (once per
//! machine, ~15 minutes on 2 cores), so the test command needs no set-up by hand.

use aimass::platform::storage::{S3Options, Storage};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOOLS: &str = "/var/tmp/aimass-tools";
pub const BUCKET: &str = "aimass";
const KEY_ID: &str = "GK31c2f218a2e44f485b94239e";
const SECRET: &str = "b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f9d769d67f16c3835";

pub struct Garage {
    child: Child,
    config: PathBuf,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Path of the garage binary, installing it if needed.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("AIMASS_GARAGE") {
        return p.into();
    }
    let tools = PathBuf::from(TOOLS).join("bin/garage");
    if tools.exists() {
        return tools;
    }
    if let Ok(out) = Command::new("garage").arg("--version").output()
        && out.status.success()
    {
        return "garage".into();
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "install",
            "--locked",
            "garage",
            "--version",
            "2.5.0",
            "--root",
            TOOLS,
        ])
        .status()
        .expect("running cargo install garage");
    assert!(status.success(), "installing garage failed");
    tools
}

impl Garage {
    pub fn start() -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3) = (free_port(), free_port());
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
api_bind_addr = "127.0.0.1:{s3}"
s3_region = "garage"
root_domain = ".s3.garage.localhost"
"#,
                d = dir.path().display(),
                secret = "4425f5c26c5e11581d3223904324dcb5b5d5dfb14e5e7f35e38c595424f5f1e6",
            ),
        )
        .unwrap();
        let garage = Garage {
            child: spawn(&config),
            config,
            endpoint: format!("http://127.0.0.1:{s3}"),
            _dir: dir,
        };
        garage.wait_ready();
        garage
    }

    /// Stop the server (SIGKILL); [`Garage::resume`] starts it again on the same data and ports.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start a killed server again and wait until it serves.
    pub fn resume(&mut self) {
        self.child = spawn(&self.config);
        self.wait_ready();
    }

    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint.clone()),
            region: Some("garage".into()),
            access_key_id: Some(KEY_ID.into()),
            secret_access_key: Some(SECRET.into()),
        }
    }

    pub fn url(&self) -> String {
        format!("s3://{BUCKET}")
    }

    pub fn storage(&self) -> Storage {
        Storage::open(&self.url(), &self.options()).unwrap()
    }

    /// Wait until the bucket accepts a write (layout applied, key and bucket created).
    fn wait_ready(&self) {
        let storage = self.storage();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = rt.block_on(async {
                storage.put(".ready", b"ok".to_vec()).await.is_ok()
                    && storage.delete(".ready").await.is_ok()
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "garage did not become ready");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Run `garage server` on a config (its key and bucket created at first start).
fn spawn(config: &std::path::Path) -> Child {
    Command::new(binary())
        .arg("-c")
        .arg(config)
        .args(["server", "--single-node", "--default-bucket"])
        .env("GARAGE_DEFAULT_ACCESS_KEY", KEY_ID)
        .env("GARAGE_DEFAULT_SECRET_KEY", SECRET)
        .env("GARAGE_DEFAULT_BUCKET", BUCKET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting garage")
}
