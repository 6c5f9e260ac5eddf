//! Host-side bindings for the `aimass:plugin` worlds, generated from `wit/` by wasmtime's
//! `bindgen!`.
//!
//! The `trainer` world imports every shared interface (types, logging, progress, dataset,
//! inference, storage), so it is generated first and the other worlds reuse its interface modules
//! through `with`: one Rust type per WIT type and one `Host` trait implementation for all worlds. Exports are `async` because
//! plugins run on tokio with epoch-based yielding (see `runtime::engine`).

pub mod trainer {
    wasmtime::component::bindgen!({
        world: "trainer",
        path: "../wit",
        imports: {
            "aimass:plugin/dataset": trappable,
            "aimass:plugin/inference": async | tracing,
            "aimass:plugin/storage": async | tracing,
            default: tracing,
        },
        exports: { default: async },
        with: { "aimass:plugin/dataset.reader": crate::runtime::dataset::DatasetReader },
    });
}

/// Interfaces shared by all worlds.
pub use trainer::aimass::plugin::{dataset, inference, logging, progress, storage, types};

pub mod collector {
    wasmtime::component::bindgen!({
        world: "collector",
        path: "../wit",
        exports: { default: async },
        with: {
            "aimass:plugin/types": super::types,
            "aimass:plugin/logging": super::logging,
            "aimass:plugin/progress": super::progress,
            "aimass:plugin/inference": super::inference,
            "aimass:plugin/storage": super::storage,
        },
    });
}

pub mod cleaner {
    wasmtime::component::bindgen!({
        world: "cleaner",
        path: "../wit",
        exports: { default: async },
        with: {
            "aimass:plugin/types": super::types,
            "aimass:plugin/logging": super::logging,
            "aimass:plugin/progress": super::progress,
            "aimass:plugin/inference": super::inference,
            "aimass:plugin/storage": super::storage,
        },
    });
}

pub mod transform {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit",
        exports: { default: async },
        with: {
            "aimass:plugin/types": super::types,
            "aimass:plugin/logging": super::logging,
            "aimass:plugin/progress": super::progress,
            "aimass:plugin/inference": super::inference,
            "aimass:plugin/storage": super::storage,
        },
    });
}
