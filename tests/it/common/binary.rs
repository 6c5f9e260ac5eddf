//! The real `aimass` binary started as a child process on a data dir, as an operator would: for
//! the tests that kill it, restart it or read what it prints.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_aimass");

pub struct Up {
    pub child: Child,
    pub url: String,
    pub banner: String,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `aimass up` on a data dir and wait for its banner (up to the auth lines).
pub fn up(dir: &Path) -> Up {
    up_on(dir, None)
}

/// `up` on a data dir, with the store in `dir/store` or in a Garage bucket.
pub fn up_on(dir: &Path, garage: Option<&super::garage::Garage>) -> Up {
    up_with(dir, garage, &[])
}

/// `up` with extra flags.
pub fn up_with(dir: &Path, garage: Option<&super::garage::Garage>, extra: &[&str]) -> Up {
    let mut cmd = Command::new(BIN);
    cmd.args(["up", "--listen", "127.0.0.1:0"]).args(extra);
    match garage {
        None => cmd
            .arg("--store")
            .arg(format!("file://{}", dir.join("store").display())),
        Some(g) => {
            let o = g.options();
            cmd.args(["--store", &g.url()])
                .args(["--s3-endpoint", o.endpoint.as_deref().unwrap()])
                .args(["--s3-region", o.region.as_deref().unwrap()])
                .env("AWS_ACCESS_KEY_ID", o.access_key_id.unwrap())
                .env("AWS_SECRET_ACCESS_KEY", o.secret_access_key.unwrap())
        }
    };
    cmd.arg("--data-dir").arg(dir.join("data"));
    spawn(cmd)
}

/// `up` on a data dir with its store on a tmpfs of `mib` MiB at `dir/store`, mounted in a mount
/// namespace of the host's own (`unshare`, as root or in a user namespace), so the store can be
/// filled to ENOSPC without touching the machine's disks; the mount goes away with the host.
pub fn up_on_small_tmpfs(dir: &Path, mib: u32) -> Up {
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o size={mib}m aimass-full \"$0\" && exec \"$@\""
        ))
        .arg(&store)
        .args([BIN, "up", "--listen", "127.0.0.1:0", "--store"])
        .arg(format!("file://{}", store.display()))
        .arg("--data-dir")
        .arg(dir.join("data"));
    spawn(cmd)
}

/// `aimass up --listen 127.0.0.1:0` with exactly `args` (data dir, store, ...).
pub fn up_args(args: &[&str]) -> Up {
    let mut cmd = Command::new(BIN);
    cmd.args(["up", "--listen", "127.0.0.1:0"]).args(args);
    spawn(cmd)
}

/// Start an `up` command and wait for its banner (up to the auth lines).
fn spawn(mut cmd: Command) -> Up {
    let mut child = cmd
        .env_remove("AIMASS_TOKEN")
        .env_remove("AIMASS_STORE")
        .env_remove("AIMASS_DATA_DIR")
        .env("AIMASS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut banner = String::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(180))
            .expect("aimass up printed its banner");
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("auth:") {
            // The generated-token case prints one more line.
            if line.contains("generated") {
                for _ in 0..1 {
                    banner.push_str(&rx.recv_timeout(Duration::from_secs(5)).unwrap());
                    banner.push('\n');
                }
            }
            break;
        }
    }
    let url = banner
        .lines()
        .next()
        .unwrap()
        .strip_prefix("aimass listening on ")
        .expect("first line names the address")
        .to_string();
    Up { child, url, banner }
}

/// The admin token `up` generated in a data dir.
pub fn admin_token(data: &Path) -> String {
    std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_string()
}
