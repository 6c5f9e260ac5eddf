//! Checking and compiling uploaded components.
//!
//! An upload is accepted only if it is a component (not a core module), exports one of the
//! `aimass:plugin` worlds or the standard `wasi:http/proxy` world (an HTTP function) with the
//! right signatures, and imports nothing the host does not provide to that world: outbound
//! `wasi:http` is for collectors and HTTP functions only. Each check has its own error so the uploader learns exactly what is wrong; unknown
//! imports are all named at once.

use super::bindings::{cleaner, collector, trainer, transform};
use super::state::HostState;
use serde::{Deserialize, Serialize};
use std::fmt;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// The world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    Collector,
    Cleaner,
    Transform,
    Trainer,
    /// A standard `wasi:http/proxy` component, served at `/fn/{name}`.
    Http,
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::Collector => "collector",
            World::Cleaner => "cleaner",
            World::Transform => "transform",
            World::Trainer => "trainer",
            World::Http => "http",
        })
    }
}

/// Why an upload was refused. All map to HTTP 422 except where noted by the API layer.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("the body is empty: upload the bytes of a WebAssembly component")]
    Empty,
    #[error("not a WebAssembly binary (no `\\0asm` header)")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component: build for the wasm32-wasip2 target, \
         or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error(
        "the component implements no aimass world: a plugin exports `collect` (collector), \
         `clean` (cleaner), `fit` and `apply` (transform) or `train` (trainer), or is an HTTP \
         function exporting `wasi:http/incoming-handler`; this one exports [{0}]"
    )]
    NoWorld(String),
    #[error("a {0} may not import wasi:http (outbound HTTP is for collectors and HTTP functions)")]
    HttpImportNotAllowed(World),
    #[error("the component's exports do not match the {world} world: {detail}")]
    WrongSignature { world: World, detail: String },
    #[error("the component imports interfaces the host does not provide: {0}")]
    UnknownImports(String),
}

/// Interfaces (without version) the host provides. `wasi:sockets` is linked but denies
/// everything, as wasmtime-wasi does by default; `wasi:http` only to some worlds (see
/// [`may_import_http`]).
const PROVIDED: &[&str] = &[
    "aimass:plugin/types",
    "aimass:plugin/logging",
    "aimass:plugin/progress",
    "aimass:plugin/dataset",
    "aimass:plugin/inference",
    "aimass:plugin/storage",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
    "wasi:http/",
];

/// Whether plugins of `world` may import `wasi:http` (outbound requests, allowed per host).
fn may_import_http(world: World) -> bool {
    matches!(world, World::Collector | World::Http)
}

/// Checks the header so a core module or random bytes get a precise message before compiling.
pub fn check_header(bytes: &[u8]) -> Result<(), ValidationError> {
    if bytes.is_empty() {
        return Err(ValidationError::Empty);
    }
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(ValidationError::NotWasm);
    }
    // Core modules have version 1 and layer 0; components have layer 1.
    if bytes[6..8] == [0, 0] {
        return Err(ValidationError::CoreModule);
    }
    Ok(())
}

/// Names of a component's exports, for world detection and messages.
fn export_names(component: &Component) -> Vec<String> {
    let engine = component.engine();
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Which world the component's exports say it implements.
pub fn detect_world(component: &Component) -> Result<World, ValidationError> {
    let names = export_names(component);
    let has = |n: &str| names.iter().any(|e| e == n);
    if has("clean") {
        Ok(World::Cleaner)
    } else if has("collect") {
        Ok(World::Collector)
    } else if has("fit") && has("apply") {
        Ok(World::Transform)
    } else if has("train") {
        Ok(World::Trainer)
    } else if names
        .iter()
        .any(|n| n.starts_with("wasi:http/incoming-handler@0.2"))
    {
        Ok(World::Http)
    } else {
        Err(ValidationError::NoWorld(names.join(", ")))
    }
}

/// Imports of the component that the host does not provide.
pub fn unknown_imports(component: &Component) -> Vec<String> {
    let engine = component.engine();
    component
        .component_type()
        .imports(engine)
        .filter(|(name, item)| {
            let provided = PROVIDED.iter().any(|p| name.starts_with(p));
            // Type imports (a world's `use iface.{t}` puts `t` at the top level) are aliases of
            // types in interfaces checked here; `instantiate_pre` verifies them.
            !provided && !matches!(item.ty, ComponentItem::Type(_) | ComponentItem::Resource(_))
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

fn imports_http(component: &Component) -> bool {
    let engine = component.engine();
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with("wasi:http/"))
}

/// A component prepared for fast instantiation: imports resolved once (`InstancePre`) and the
/// world's exports type-checked once, so a call only allocates and runs.
#[derive(Clone)]
pub enum Prepared {
    Collector(collector::CollectorPre<HostState>),
    Cleaner(cleaner::CleanerPre<HostState>),
    Transform(transform::TransformPre<HostState>),
    Trainer(trainer::TrainerPre<HostState>),
    Http(ProxyPre<HostState>),
}

impl Prepared {
    pub fn world(&self) -> World {
        match self {
            Prepared::Collector(_) => World::Collector,
            Prepared::Cleaner(_) => World::Cleaner,
            Prepared::Transform(_) => World::Transform,
            Prepared::Trainer(_) => World::Trainer,
            Prepared::Http(_) => World::Http,
        }
    }
}

/// Detects the world, checks imports and builds the `InstancePre`.
pub fn prepare(
    linker: &Linker<HostState>,
    component: &Component,
) -> Result<Prepared, ValidationError> {
    // Imports first: a component that wants capabilities we do not grant is refused for that,
    // naming them, whatever it exports.
    let unknown = unknown_imports(component);
    if !unknown.is_empty() {
        return Err(ValidationError::UnknownImports(unknown.join(", ")));
    }
    let world = detect_world(component)?;
    if !may_import_http(world) && imports_http(component) {
        return Err(ValidationError::HttpImportNotAllowed(world));
    }
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| ValidationError::UnknownImports(format!("{e:#}")))?;
    let sig = |e: wasmtime::Error| ValidationError::WrongSignature {
        world,
        detail: format!("{e:#}"),
    };
    Ok(match world {
        World::Collector => Prepared::Collector(collector::CollectorPre::new(pre).map_err(sig)?),
        World::Cleaner => Prepared::Cleaner(cleaner::CleanerPre::new(pre).map_err(sig)?),
        World::Transform => Prepared::Transform(transform::TransformPre::new(pre).map_err(sig)?),
        World::Trainer => Prepared::Trainer(trainer::TrainerPre::new(pre).map_err(sig)?),
        World::Http => Prepared::Http(ProxyPre::new(pre).map_err(sig)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks() {
        assert!(matches!(check_header(b""), Err(ValidationError::Empty)));
        assert!(matches!(
            check_header(b"hello world"),
            Err(ValidationError::NotWasm)
        ));
        let core = wat::parse_str("(module)").unwrap();
        assert!(matches!(
            check_header(&core),
            Err(ValidationError::CoreModule)
        ));
        let component = wat::parse_str("(component)").unwrap();
        assert!(check_header(&component).is_ok());
    }
}
