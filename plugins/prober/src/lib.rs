//! `prober` — an aimass collector that tries everything a collector must not be able to do
//! without a grant, and reports what happened instead of failing, so one call shows the whole
//! sandbox: the host's capability tests assert that every probe was denied.
//!
//! It returns one row per probe, columns `probe`, `target`, `outcome` (`denied` or `allowed`)
//! and `detail` (the error, or what was seen).
//!
//! | probe | what it tries |
//! | --- | --- |
//! | `file-read` | read each of `/etc/passwd`, `/proc/self/environ`, `./Cargo.toml`, `../../Cargo.toml` |
//! | `file-write` | create `/tmp/aimass-prober` |
//! | `dir-list` | list `/` and `.` |
//! | `env` | every environment variable: `allowed` with their names if there are any |
//! | `env-var` | the variable named by config `env` (one the host process has) |
//! | `tcp` | connect to config `tcp` (`host:port`) |
//! | `udp` | bind a UDP socket and send to config `tcp`'s address |
//! | `dns` | resolve `localhost` |
//! | `http` | GET config `http` (a URL) through `wasi:http/outgoing-handler` |
//! | `storage-read` | read config `victim` (another plugin's object) through the `storage` import: directly, by `..` from the plugin's own prefix, with a leading `/`, a NUL, a backslash, case, an over-long key, the own prefix itself and its name without `/`, and the host's own records |
//! | `storage-list` | list the victim's prefix, the store's root, the own prefix without `/` (it would match `team-ab/`), `..` from it, and the host's namespace |
//! | `storage-own-read`, `storage-own-list` | the positive controls: read config `readable` and list config `own`, which are granted, so a denial above is the grant's doing |
//!
//! # Config
//!
//! `tcp`, `http`, `env` as above; `own` (the granted prefix, e.g. `team-a/`), `victim` (a key
//! under another prefix) and `readable` (a key under `own`) for the storage probes. Each probe is
//! skipped when its key is missing.

use std::sync::Arc;

use aimass_plugin_sdk::{Collector, Config, Error, Result, Source, Table, export_collector};
use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

/// The plugin type bound to the `collector` world.
pub struct Prober;

impl Collector for Prober {
    fn collect(_input: Source, config: &Config) -> Result<Table> {
        config.check_keys(&["tcp", "http", "env", "own", "victim", "readable"])?;
        table(&probe_all(config))
    }
}

export_collector!(Prober);

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub probe: &'static str,
    pub target: String,
    pub allowed: bool,
    pub detail: String,
}

fn outcome<T>(
    probe: &'static str,
    target: &str,
    r: std::io::Result<T>,
    seen: impl Fn(T) -> String,
) -> Probe {
    let (allowed, detail) = match r {
        Ok(v) => (true, seen(v)),
        Err(e) => (false, e.to_string()),
    };
    Probe {
        probe,
        target: target.to_string(),
        allowed,
        detail,
    }
}

/// Run every probe the config enables.
pub fn probe_all(config: &Config) -> Vec<Probe> {
    let mut out = Vec::new();
    for path in [
        "/etc/passwd",
        "/proc/self/environ",
        "./Cargo.toml",
        "../../Cargo.toml",
    ] {
        out.push(outcome("file-read", path, std::fs::read(path), |b| {
            format!("{} bytes", b.len())
        }));
    }
    out.push(outcome(
        "file-write",
        "/tmp/aimass-prober",
        std::fs::write("/tmp/aimass-prober", b"escaped"),
        |()| "written".into(),
    ));
    for dir in ["/", "."] {
        out.push(outcome("dir-list", dir, std::fs::read_dir(dir), |d| {
            format!("{} entries", d.count())
        }));
    }
    let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    out.push(Probe {
        probe: "env",
        target: "*".into(),
        allowed: !vars.is_empty(),
        detail: vars.join(","),
    });
    if let Some(name) = config.get("env") {
        let r = std::env::var(name).map_err(std::io::Error::other);
        out.push(outcome("env-var", name, r, |v| {
            format!("{} bytes", v.len())
        }));
    }
    if let Some(addr) = config.get("tcp") {
        out.push(outcome(
            "tcp",
            addr,
            std::net::TcpStream::connect(addr),
            |s| format!("connected from {:?}", s.local_addr().ok()),
        ));
        let udp = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"x", addr));
        out.push(outcome("udp", addr, udp, |n| format!("sent {n} bytes")));
    }
    let dns = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80));
    out.push(outcome("dns", "localhost", dns, |a| {
        format!("{} addresses", a.count())
    }));
    if let Some(url) = config.get("http") {
        out.push(http(url));
    }
    if let (Some(own), Some(victim)) = (config.get("own"), config.get("victim")) {
        out.extend(storage(own, victim, config.get("readable")));
    }
    out
}

/// The storage probes: ways to reach `victim` from a plugin granted `own`, then the controls.
fn storage(own: &str, victim: &str, readable: Option<&str>) -> Vec<Probe> {
    use aimass_plugin_sdk::storage::{get, list_page};
    let bare = own.trim_end_matches('/');
    let (dir, _) = victim.rsplit_once('/').unwrap_or(("", victim));
    let reads = [
        victim.to_string(),
        format!("{own}../{victim}"),
        format!("{own}./../{victim}"),
        format!("{own}/../{victim}"),
        format!("/{victim}"),
        format!("{own}x\0/../../{victim}"),
        format!("{bare}\\..\\{victim}"),
        victim.to_uppercase(),
        format!("{own}{}", "a/".repeat(600)),
        own.to_string(),
        bare.to_string(),
        "auth/admin-token".to_string(),
        "plugins/prober/meta.json".to_string(),
    ];
    let lists = [
        format!("{dir}/"),
        String::new(),
        bare.to_string(),
        format!("{own}../"),
        "auth/".to_string(),
        "plugins/".to_string(),
    ];
    let read = |probe: &'static str, key: &str| {
        let (allowed, detail) = match get(key) {
            Ok(Some(b)) => (true, format!("{} bytes", b.len())),
            Ok(None) => (true, "no such object".into()),
            Err(e) => (false, e.message().to_string()),
        };
        let mut target = key.escape_default().to_string();
        if target.len() > 96 {
            target = format!("{}... ({} bytes)", &target[..96], key.len());
        }
        Probe {
            probe,
            target,
            allowed,
            detail,
        }
    };
    let list = |probe: &'static str, prefix: &str| {
        let (allowed, detail) = match list_page(prefix, "") {
            Ok(keys) => (true, keys.join(",")),
            Err(e) => (false, e.message().to_string()),
        };
        Probe {
            probe,
            target: prefix.to_string(),
            allowed,
            detail,
        }
    };
    let mut out: Vec<Probe> = reads.iter().map(|k| read("storage-read", k)).collect();
    out.extend(lists.iter().map(|p| list("storage-list", p)));
    if let Some(key) = readable {
        out.push(read("storage-own-read", key));
    }
    out.push(list("storage-own-list", own));
    out
}

/// GET `url` through `wasi:http/outgoing-handler`; allowed only if a response came back.
fn http(url: &str) -> Probe {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
    let probe = |allowed, detail: String| Probe {
        probe: "http",
        target: url.to_string(),
        allowed,
        detail,
    };
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = OutgoingRequest::new(Fields::new());
    let set = request
        .set_scheme(Some(&Scheme::Http))
        .and_then(|()| request.set_authority(Some(authority)))
        .and_then(|()| request.set_path_with_query(Some(if path.is_empty() { "/" } else { path })));
    if set.is_err() {
        return probe(false, "not a valid URL".into());
    }
    let future = match outgoing_handler::handle(request, None) {
        Ok(f) => f,
        Err(e) => return probe(false, format!("{e:?}")),
    };
    let response = loop {
        match future.get() {
            Some(r) => break r,
            None => future.subscribe().block(),
        }
    };
    match response {
        Ok(Ok(r)) => probe(true, format!("HTTP {}", r.status())),
        Ok(Err(e)) => probe(false, format!("{e:?}")),
        Err(()) => probe(false, "response already taken".into()),
    }
}

/// The probes as one record batch.
pub fn table(probes: &[Probe]) -> Result<Table> {
    let schema = Arc::new(Schema::new(
        ["probe", "target", "outcome", "detail"]
            .map(|n| Field::new(n, DataType::Utf8, false))
            .to_vec(),
    ));
    let col = |f: &dyn Fn(&Probe) -> String| {
        Arc::new(StringArray::from_iter_values(probes.iter().map(f))) as _
    };
    let batch = RecordBatch::try_new(
        schema,
        vec![
            col(&|p| p.probe.to_string()),
            col(&|p| p.target.clone()),
            col(&|p| if p.allowed { "allowed" } else { "denied" }.to_string()),
            col(&|p| p.detail.clone()),
        ],
    )
    .map_err(|e| Error::internal(e.to_string()))?;
    Ok(Table::from_batch(batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natively_the_probes_see_the_machine() {
        // Outside the sandbox the same code reaches the file system and the environment, so a
        // `denied` under the host is the host's doing, not a broken probe.
        let probes = probe_all(&Config::default());
        let dir = probes
            .iter()
            .find(|p| p.probe == "dir-list" && p.target == "/")
            .unwrap();
        assert!(dir.allowed, "{dir:?}");
        let env = probes.iter().find(|p| p.probe == "env").unwrap();
        assert!(env.allowed && env.detail.contains("PATH"), "{env:?}");
        let t = table(&probes).unwrap();
        assert_eq!(t.batches()[0].num_rows(), probes.len());
    }
}
