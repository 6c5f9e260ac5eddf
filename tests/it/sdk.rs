//! The guest SDK as a plugin author outside this repository uses it, and components built with
//! an earlier SDK.
//!
//! * A plugin crate written to a temp dir outside the workspace, depending on the SDK by absolute
//!   path and on nothing else (no copy of `wit/`), builds for `wasm32-wasip2`, uploads and runs.
//! * `tests/data/components/standard-scaler-sdk-0.1.wasm`, the bundled standard-scaler as built
//!   before the SDK generated its import bindings once (it reached the host imports through
//!   function pointers), still uploads and runs.
//!
//! Both components must import the same `aimass:plugin` interfaces and export only their world's
//! functions.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The out-of-tree plugin: a cleaner that keeps the rows whose `x` is above `min` and appends
/// `x2 = 2 * x`, logging through the host.
const PLUGIN_SRC: &str = r#"
use std::sync::Arc;

use aimass_plugin_sdk::arrow::array::{BooleanArray, Float64Array, RecordBatch};
use aimass_plugin_sdk::arrow::schema::{DataType, Field, Schema};
use aimass_plugin_sdk::arrow::select::filter::filter_record_batch;
use aimass_plugin_sdk::numeric::to_f64;
use aimass_plugin_sdk::{Cleaner, Config, Error, Result, Table, export_cleaner, log};

pub struct AboveAndDouble;

impl Cleaner for AboveAndDouble {
    fn clean(input: Table, config: &Config) -> Result<Table> {
        config.check_keys(&["min"])?;
        let min: f64 = config.require_parse("min")?;
        let x = input
            .schema()
            .index_of("x")
            .map_err(|_| Error::invalid_input("no column `x`"))?;
        let (schema, batches) = input.into_parts();
        let mut fields = schema.fields().to_vec();
        fields.push(Arc::new(Field::new("x2", DataType::Float64, true)));
        let schema = Arc::new(Schema::new(fields));
        let mut out = Vec::new();
        for batch in batches {
            let values = to_f64(batch.column(x).as_ref())?;
            let keep: BooleanArray = values.iter().map(|v| Some(v.is_some_and(|v| v > min))).collect();
            let kept = filter_record_batch(&batch, &keep)?;
            let doubled: Float64Array = to_f64(kept.column(x).as_ref())?
                .iter()
                .map(|v| v.map(|v| 2.0 * v))
                .collect();
            let mut columns = kept.columns().to_vec();
            columns.push(Arc::new(doubled));
            out.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
        log::info(format!("kept rows with x > {min}"));
        Ok(Table::new(schema, out))
    }
}

export_cleaner!(AboveAndDouble);
"#;

/// The workspace root (the host crate's parent).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .canonicalize()
        .unwrap()
}

/// A target dir that outlives the test, next to the one this test binary was built in
/// (`<target>/release/deps/sdk-…`), so the SDK and Arrow are compiled for wasm only once.
fn outside_target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().join("sdk-outside")
}

/// Write the plugin crate to a fresh temp dir outside the workspace and build it the way its
/// author would: `cargo build --target wasm32-wasip2 --release`, with the repository's toolchain
/// file (and lock file, so the build needs no registry access). Returns the component's bytes.
fn build_outside_plugin() -> Vec<u8> {
    let root = workspace();
    let dir = tempfile::Builder::new()
        .prefix("aimass-sdk-plugin-")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let crate_dir = dir.path().canonicalize().unwrap();
    assert!(
        !crate_dir.starts_with(&root),
        "{} is inside the workspace",
        crate_dir.display()
    );
    let sdk = root.join("plugins/sdk");
    std::fs::write(
        crate_dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"above-and-double\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n\
             [dependencies]\naimass-plugin-sdk = {{ path = {:?} }}\n\n\
             # Standalone: not a member of whatever workspace encloses the temp dir.\n\
             [workspace]\n",
            sdk.display().to_string()
        ),
    )
    .unwrap();
    std::fs::create_dir(crate_dir.join("src")).unwrap();
    std::fs::write(crate_dir.join("src/lib.rs"), PLUGIN_SRC).unwrap();
    for file in ["rust-toolchain.toml", "Cargo.lock"] {
        std::fs::copy(root.join(file), crate_dir.join(file)).unwrap();
    }
    assert!(!crate_dir.join("wit").exists());

    let target_dir = outside_target_dir();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&crate_dir)
        .args(["build", "--target", "wasm32-wasip2", "--release", "--quiet"])
        .arg("--target-dir")
        .arg(&target_dir);
    // What the outer `cargo test` (or the caller's shell) sets that would change the toolchain,
    // the flags or the output location of the nested build.
    for var in [
        "RUSTUP_TOOLCHAIN",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("running cargo");
    assert!(
        out.status.success(),
        "building the out-of-tree plugin failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm = target_dir.join("wasm32-wasip2/release/above_and_double.wasm");
    let bytes = std::fs::read(&wasm).unwrap();
    // Built from this temp dir just now, not left over from an earlier run.
    let built = std::fs::metadata(&wasm).unwrap().modified().unwrap();
    let started = std::fs::metadata(crate_dir.join("src/lib.rs"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(built >= started, "{} is stale", wasm.display());
    bytes
}

/// A component's `aimass:plugin` imports and its exports, by name.
fn interface(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::new(&engine, bytes).unwrap();
    let ty = component.component_type();
    let imports = ty
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| name.starts_with("aimass:plugin/"))
        .collect();
    let exports = ty
        .exports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    (imports, exports)
}

/// Every `aimass:plugin` interface an SDK plugin imports, whichever host functions it calls.
const AIMASS_IMPORTS: &[&str] = &[
    "aimass:plugin/logging@0.1.0",
    "aimass:plugin/progress@0.1.0",
    "aimass:plugin/inference@0.1.0",
    "aimass:plugin/storage@0.1.0",
    "aimass:plugin/types@0.1.0",
];

#[tokio::test]
async fn a_plugin_outside_the_workspace_builds_with_only_the_sdk_and_runs() {
    let _turn = crate::common::serial::heavy().await;
    let bytes = tokio::task::spawn_blocking(build_outside_plugin)
        .await
        .unwrap();
    let (imports, exports) = interface(&bytes);
    assert_eq!(imports, AIMASS_IMPORTS);
    assert_eq!(exports, ["clean"]);

    let host = shared();
    let meta = push(host, "above-and-double", bytes, "").await;
    assert_eq!(meta["world"], "cleaner", "{meta}");
    let csv = "x,name\n1,a\n5,b\n3,c\n2,d\n,e\n";
    let (status, _, body) = invoke(host, "above-and-double", "?min=2", "text/csv", None, csv).await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(text(&body), "x,name,x2\n5,b,10.0\n3,c,6.0\n");
    // The SDK's errors still reach the caller as the WIT `plugin-error` case they are.
    let (status, _, body) = invoke(host, "above-and-double", "", "text/csv", None, csv).await;
    assert_eq!(status, 400, "{}", text(&body));
    assert!(error_of(&body).contains("min"), "{}", error_of(&body));
    let (status, _, body) = invoke(
        host,
        "above-and-double",
        "?min=0",
        "text/csv",
        None,
        "y\n1\n",
    )
    .await;
    assert_eq!(status, 422, "{}", text(&body));
    assert!(error_of(&body).contains("`x`"), "{}", error_of(&body));
}

#[tokio::test]
async fn a_component_built_with_the_earlier_sdk_still_runs() {
    let _turn = crate::common::serial::heavy().await;
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/components/standard-scaler-sdk-0.1.wasm"
    ))
    .unwrap();
    let (imports, exports) = interface(&bytes);
    assert_eq!(imports, AIMASS_IMPORTS);
    assert_eq!(exports, ["fit", "apply"]);

    let host = shared();
    let meta = push(host, "scaler-sdk-0-1", bytes, "").await;
    assert_eq!(meta["world"], "transform", "{meta}");
    let csv = "x,y,label\n1,10,a\n2,20,b\n3,30,c\n";
    let (status, _, body) =
        invoke(host, "scaler-sdk-0-1", "?columns=x", "text/csv", None, csv).await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(
        text(&body),
        "x,y,label\n-1.224744871391589,10,a\n0.0,20,b\n1.224744871391589,30,c\n"
    );
    let (status, _, body) = invoke(
        host,
        "scaler-sdk-0-1",
        "?columns=label",
        "text/csv",
        None,
        csv,
    )
    .await;
    assert_eq!(status, 400, "{}", text(&body));
    assert!(error_of(&body).contains("label"), "{}", error_of(&body));
}
