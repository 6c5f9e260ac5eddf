//! Builds the plugins under `plugins/` for `wasm32-wasip2` so the host can bundle them.
//!
//! The nested cargo uses its own target dir (`<target>/wasm-plugins`), so it never waits on the
//! lock the outer build holds, and the `plugin` profile from the workspace manifest. The resulting
//! directory is passed to the crate as `AIMASS_WASM_DIR`: `bundled.rs` embeds the reference
//! plugins from it and tests load the test-only ones (`noop`, `hostile`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Every crate under plugins/ and examples/ that is a Wasm component (the SDK is a library only).
const PLUGINS: &[&str] = &[
    "csv-collector",
    "dedup",
    "drop-nulls",
    "outliers",
    "standard-scaler",
    "noop",
    "hostile",
    "prober",
    "min-filter",
    "row-scorer",
    "dataset-probe",
    "logistic-regression",
    "linear-regression",
    "mlp",
    "http-echo",
    "hello-fn",
    "score-fn",
];

const TARGET: &str = "wasm32-wasip2";

/// Environment the outer cargo sets for build scripts that would change what the nested cargo
/// builds or where.
const SCRUB: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_PRIMARY_PACKAGE",
    "TARGET",
    "HOST",
    "OPT_LEVEL",
    "PROFILE",
    "DEBUG",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for dir in ["plugins", "examples", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join(".cargo/config.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = out_dir.ancestors().nth(4).unwrap().to_path_buf();
    let wasm_target_dir = target_dir.join("wasm-plugins");

    // Packagers (and offline checks) can point at plugins built elsewhere.
    println!("cargo:rerun-if-env-changed=AIMASS_PREBUILT_PLUGINS");
    if let Ok(dir) = std::env::var("AIMASS_PREBUILT_PLUGINS") {
        println!("cargo:rustc-env=AIMASS_WASM_DIR={dir}");
        return;
    }

    ensure_target();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--locked",
            "--profile",
            "plugin",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&wasm_target_dir);
    for p in PLUGINS {
        cmd.args(["-p", p]);
    }
    for var in SCRUB {
        cmd.env_remove(var);
    }
    let status = cmd
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .expect("running cargo to build the Wasm plugins");
    if !status.success() {
        panic!("building the plugins for {TARGET} failed (see the output above)");
    }

    let wasm_dir = wasm_target_dir.join(TARGET).join("plugin");
    for p in PLUGINS {
        let file = wasm_dir.join(format!("{}.wasm", p.replace('-', "_")));
        assert!(file.exists(), "missing {}", file.display());
    }
    println!("cargo:rustc-env=AIMASS_WASM_DIR={}", wasm_dir.display());
}

/// Install the wasm32-wasip2 standard library if it is missing (rust-toolchain.toml lists it, but
/// rustup only installs listed targets with the toolchain, and not at all under
/// `RUSTUP_AUTO_INSTALL=0`).
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if libdir.as_deref().is_some_and(|d| Path::new(d).exists()) {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdout(Stdio::inherit())
        .status();
    match status {
        Ok(s) if s.success() => {}
        _ => panic!("the {TARGET} target is missing and `rustup target add {TARGET}` failed"),
    }
}
