//! The real `aimass` binary: `up` on a fresh data dir (token bootstrap, bundled plugins), the CLI
//! against it, and a kill -9 + restart that reloads plugins from the compiled cache.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_aimass");

struct Up {
    child: Child,
    url: String,
    banner: String,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `aimass up` on a data dir and wait for its banner (up to the auth lines).
fn up(dir: &Path) -> Up {
    let mut child = Command::new(BIN)
        .args(["up", "--listen", "127.0.0.1:0"])
        .arg("--store")
        .arg(format!("file://{}", dir.join("store").display()))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("AIMASS_TOKEN")
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
            // The generated-token case prints two more lines.
            if line.contains("generated") {
                for _ in 0..2 {
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

fn cli(up: &Up, data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--url")
        .arg(&up.url)
        .arg("--data-dir")
        .arg(data)
        .env_remove("AIMASS_TOKEN")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "CLI failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn wasm_file(name: &str) -> PathBuf {
    aimass::bundled::wasm_path(name)
}

#[test]
fn first_start_generates_a_token_the_cli_finds() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let host = up(dir.path());
    assert!(
        host.banner
            .contains("generated admin token (shown once): aimass_"),
        "{}",
        host.banner
    );
    let token_file = data.join("admin-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(host.banner.contains(&token));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // No --token anywhere: the CLI reads the file.
    let ls = ok(&cli(&host, &data, &["plugin", "ls"]));
    for p in [
        "csv-collector",
        "dedup",
        "drop-nulls",
        "outliers",
        "standard-scaler",
    ] {
        assert!(ls.contains(p), "{ls}");
    }
    let noop = wasm_file("noop");
    let push = ok(&cli(
        &host,
        &data,
        &[
            "plugin",
            "push",
            "echo",
            noop.to_str().unwrap(),
            "--timeout-ms",
            "2000",
        ],
    ));
    assert!(push.contains("pushed echo v1 (cleaner"), "{push}");
    let show = ok(&cli(&host, &data, &["plugin", "show", "echo"]));
    assert!(show.contains("\"timeout_ms\": 2000"), "{show}");

    let input = dir.path().join("in.csv");
    std::fs::write(&input, "k,v\n1,a\n1,a\n").unwrap();
    let out = ok(&cli(
        &host,
        &data,
        &["invoke", "dedup", "--in", input.to_str().unwrap()],
    ));
    assert_eq!(out, "k,v\n1,a\n");
    let out = ok(&cli(
        &host,
        &data,
        &[
            "invoke",
            "dedup",
            "--in",
            input.to_str().unwrap(),
            "--config",
            "keys=k",
            "--accept",
            "application/x-ndjson",
        ],
    ));
    assert_eq!(out, "{\"k\":1,\"v\":\"a\"}\n");

    let tok = ok(&cli(
        &host,
        &data,
        &["token", "create", "--role", "reader", "--name", "ci"],
    ));
    assert!(tok.trim().starts_with("aimass_"));
    let reader_push = Command::new(BIN)
        .args([
            "plugin",
            "push",
            "x",
            noop.to_str().unwrap(),
            "--url",
            &host.url,
            "--token",
            tok.trim(),
        ])
        .output()
        .unwrap();
    assert!(!reader_push.status.success());
    assert!(String::from_utf8_lossy(&reader_push.stderr).contains("403"));

    ok(&cli(&host, &data, &["plugin", "rm", "echo"]));
    let missing = cli(&host, &data, &["plugin", "rm", "echo"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));

    let wrong = Command::new(BIN)
        .args(["plugin", "ls", "--url", &host.url, "--token", "nope"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("401 Unauthorized: invalid token"));

    for args in [
        &["--help"][..],
        &["up", "--help"],
        &["plugin", "push", "--help"],
        &["invoke", "--help"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn kill_and_restart_reloads_from_the_compiled_cache() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut host = up(dir.path());
    let hostile = wasm_file("hostile");
    ok(&cli(
        &host,
        &data,
        &["plugin", "push", "persist", hostile.to_str().unwrap()],
    ));
    host.child.kill().unwrap(); // SIGKILL: no graceful shutdown.
    host.child.wait().unwrap();
    drop(host);

    let host = up(dir.path());
    assert!(
        host.banner.contains("use the admin token in"),
        "{}",
        host.banner
    );
    let show: serde_json::Value =
        serde_json::from_str(&ok(&cli(&host, &data, &["plugin", "show", "persist"]))).unwrap();
    assert_eq!(show["loaded_from"], "cache", "{show}");
    assert!(
        show["load_ms"].as_f64().unwrap() < 50.0,
        "mapped, not recompiled: {show}"
    );
    assert_eq!(show["live_version"], 1);
    // Bundled plugins were not re-registered as new versions.
    let dedup: serde_json::Value =
        serde_json::from_str(&ok(&cli(&host, &data, &["plugin", "show", "dedup"]))).unwrap();
    assert_eq!(dedup["live_version"], 1);
    assert_eq!(dedup["loaded_from"], "cache");
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "a\n1\n").unwrap();
    let out = ok(&cli(
        &host,
        &data,
        &[
            "invoke",
            "persist",
            "--in",
            input.to_str().unwrap(),
            "--config",
            "mode=ok",
        ],
    ));
    assert_eq!(out, "a\n1\n");
}
