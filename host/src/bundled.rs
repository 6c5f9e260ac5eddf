//! The reference plugins embedded in the binary, so `aimass up` can register them on a fresh
//! store with nothing else on disk. `host/build.rs` builds them from `plugins/` for
//! `wasm32-wasip2`.

/// Directory holding every plugin built for this binary, test-only ones included.
pub const WASM_DIR: &str = env!("AIMASS_WASM_DIR");

macro_rules! bundle {
    ($($name:literal => $file:literal),* $(,)?) => {
        /// `(registered name, component bytes)` of each bundled plugin.
        pub const PLUGINS: &[(&str, &[u8])] = &[
            $(($name, include_bytes!(concat!(env!("AIMASS_WASM_DIR"), "/", $file)))),*
        ];
    };
}

bundle! {
    "csv-collector" => "csv_collector.wasm",
    "dedup" => "dedup.wasm",
    "drop-nulls" => "drop_nulls.wasm",
    "outliers" => "outliers.wasm",
    "standard-scaler" => "standard_scaler.wasm",
    "logistic-regression" => "logistic_regression.wasm",
    "linear-regression" => "linear_regression.wasm",
    "mlp" => "mlp.wasm",
}

/// Path of a built plugin by crate name (`"hostile"` → `.../hostile.wasm`), for tests and benches.
pub fn wasm_path(crate_name: &str) -> std::path::PathBuf {
    std::path::Path::new(WASM_DIR).join(format!("{}.wasm", crate_name.replace('-', "_")))
}
