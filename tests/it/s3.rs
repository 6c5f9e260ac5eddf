//! The `s3://` store against a real S3 server (Garage): storage operations, and a host whose whole
//! state lives in the bucket surviving a restart. Hooks and datasets on Garage are in `hooks.rs`.

use crate::common;

use aimass::config::HostConfig;
use common::garage::Garage;
use common::*;

/// Garage is started on a plain thread: its readiness probe runs its own small runtime.
fn garage() -> Garage {
    std::thread::spawn(Garage::start).join().unwrap()
}

#[tokio::test]
async fn storage_operations_on_s3() {
    let _turn = crate::common::serial::together().await;
    let g = garage();
    let s = g.storage();
    assert_eq!(s.get("t/missing.json").await.unwrap(), None);
    s.put_json("t/a.json", &serde_json::json!({"n": 1}))
        .await
        .unwrap();
    s.put("t/dir/b.bin", vec![7u8; 100_000]).await.unwrap();
    let v: serde_json::Value = s.get_json("t/a.json").await.unwrap().unwrap();
    assert_eq!(v["n"], 1);
    assert_eq!(s.get("t/dir/b.bin").await.unwrap().unwrap().len(), 100_000);
    let mut keys = s.list("t").await.unwrap();
    keys.sort();
    assert_eq!(keys, ["t/a.json", "t/dir/b.bin"]);
    assert!(s.exists("t/a.json").await.unwrap());
    s.delete("t/a.json").await.unwrap();
    s.delete("t/a.json").await.unwrap();
    assert!(!s.exists("t/a.json").await.unwrap());
    // Wrong credentials are an error, not an empty store.
    let mut bad = g.options();
    bad.secret_access_key = Some("wrong-secret-wrong-secret-wrong".into());
    let wrong = aimass::platform::storage::Storage::open(&g.url(), &bad).unwrap();
    assert!(wrong.get("t/dir/b.bin").await.is_err());
}

#[tokio::test]
async fn host_state_in_s3_survives_a_restart() {
    let _turn = crate::common::serial::together().await;
    let g = garage();
    // Hosts on one store share compiled artifacts when they share the key that seals them.
    let key_dir = tempfile::tempdir().unwrap();
    let config = || HostConfig {
        store_url: g.url(),
        s3: g.options(),
        artifact_key_file: Some(key_dir.path().join("artifact-key")),
        register_bundled: false,
        ..HostConfig::default()
    };
    let first = TestHost::start(config());
    let up = push(&first, "dedup-s3", wasm("dedup"), "?timeout_ms=3000").await;
    let digest = up["digest"].as_str().unwrap().to_string();
    let (status, _, body) = invoke(&first, "dedup-s3", "", "text/csv", None, "a\n1\n1\n").await;
    assert_eq!((status, text(&body).as_str()), (200, "a\n1\n"));
    drop(first);

    // Everything is in the bucket.
    let keys = g.storage().list("").await.unwrap();
    assert!(
        keys.contains(&"plugins/dedup-s3/meta.json".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&format!("components/{digest}.wasm")),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with("compiled/") && k.ends_with(&format!("{digest}.cwasm")))
    );

    // A new host on the same bucket serves it from the compiled cache, with its limits.
    let second = TestHost::start(config());
    let v: serde_json::Value = get_json(&second, "/v1/plugins/dedup-s3").await;
    assert_eq!(v["loaded_from"], "cache", "{v}");
    assert_eq!(v["limits"]["timeout_ms"], 3000);
    let (status, _, body) = invoke(&second, "dedup-s3", "", "text/csv", None, "a\n2\n2\n").await;
    assert_eq!((status, text(&body).as_str()), (200, "a\n2\n"));
}
