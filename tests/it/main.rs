//! The integration tests, one test binary: each file was a test binary of its own, and each of
//! those linked wasmtime and tract again. Tests are named `it::FILE::test`, so
//! `cargo test --release -p aimass --test it -- crash::` runs one file's.
//!
//! The files share this process and run on `--test-threads` threads at once: each test takes a
//! turn first (`common::serial`), and `common::shared()` gives each file a host of its own.

mod common;

mod api;
mod auth_matrix;
mod binary;
mod containment;
mod crash;
mod functions;
mod fuzz;
mod governance;
mod hooks;
mod hostile;
mod invoke;
mod metrics;
mod models;
mod onnx;
mod pipelines;
mod s3;
mod sdk;
mod security;
mod soak;
mod trainer;
mod zoo;
