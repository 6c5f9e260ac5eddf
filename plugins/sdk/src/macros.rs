//! The export macros: one per world, expanded inside the plugin crate.
//!
//! The SDK generates the bindings of the `imports` world once, in
//! [`__private::wit`](crate::__private::wit): the shared `types` and the `logging`, `progress`,
//! `inference` and `storage` imports, which [`log`](crate::log), [`progress`](crate::progress),
//! [`inference`](crate::inference) and [`storage`](crate::storage) call directly. Each export
//! macro expands `wit_bindgen::generate!` for *its* world (through the SDK's re-export, with
//! `runtime_path` pointing at `::aimass_plugin_sdk::wit_bindgen::rt`, so the plugin needs no
//! wit-bindgen dependency) and maps those interfaces onto the SDK's modules with `with:`, so the
//! plugin crate generates only its world's exports (and, for a trainer, the `dataset` reader). It
//! then implements the generated `Guest` trait by converting between WIT and SDK types and calling
//! the plugin's trait, and emits the component exports with `export!`.
//!
//! Why the exports are not generated in the SDK too: `generate!` embeds a custom section
//! describing its world, and `wasm-component-ld` merges every such section linked into the
//! module, so an SDK holding all four worlds would make every plugin claim all the worlds'
//! exports. The SDK's own section describes `imports`, which every world includes, so the merge
//! leaves each component exactly its one world.
//!
//! The WIT comes with the SDK: `aimass-plugin-sdk-macro` ships it and gives `generate!` its
//! absolute path, so a plugin crate anywhere on disk builds with no copy of `wit/`.
//!
//! On non-wasm targets the component exports are left out (the plugin is compiled natively only
//! for its unit tests), but the `Guest` impl is still type-checked.

/// Emits the bindings module of `$world` shared by all export macros. Not public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __aimass_bindings {
    ($world:tt) => {
        #[doc(hidden)]
        #[allow(dead_code, unused, clippy::all, clippy::pedantic)]
        mod __aimass_bindings {
            $crate::__private::generate!($crate::wit_bindgen, {
                world: $world,
                runtime_path: "::aimass_plugin_sdk::wit_bindgen::rt",
                bitflags_path: "::aimass_plugin_sdk::wit_bindgen::rt::bitflags",
                with: {
                    "aimass:plugin/types@0.1.0": ::aimass_plugin_sdk::__private::wit::aimass::plugin::types,
                    "aimass:plugin/logging@0.1.0": ::aimass_plugin_sdk::__private::wit::aimass::plugin::logging,
                    "aimass:plugin/progress@0.1.0": ::aimass_plugin_sdk::__private::wit::aimass::plugin::progress,
                    "aimass:plugin/inference@0.1.0": ::aimass_plugin_sdk::__private::wit::aimass::plugin::inference,
                    "aimass:plugin/storage@0.1.0": ::aimass_plugin_sdk::__private::wit::aimass::plugin::storage,
                },
            });
        }
    };
}

/// Exports a [`Collector`](crate::Collector) as the `collector` world: `export_collector!(MyCollector);`.
///
/// A second argument (the path of a WIT copy, which older SDKs needed out of tree) is accepted
/// and ignored: the WIT always comes from the SDK.
#[macro_export]
macro_rules! export_collector {
    ($ty:ident $(, $wit:literal)?) => {
        $crate::__aimass_bindings!("collector");

        impl __aimass_bindings::Guest for $ty {
            fn collect(
                input: $crate::__private::WitSource,
                config: $crate::__private::Pairs,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::__private::PluginError> {
                $crate::__private::link_imports();
                $crate::__private::collect::<$ty>($crate::__private::source(input), config)
                    .map_err($crate::__private::plugin_error)
            }
        }

        #[cfg(target_arch = "wasm32")]
        __aimass_bindings::export!($ty with_types_in __aimass_bindings);
    };
}

/// Exports a [`Cleaner`](crate::Cleaner) as the `cleaner` world: `export_cleaner!(MyCleaner);`.
///
/// A second argument (a WIT path) is accepted and ignored, as for [`export_collector!`].
#[macro_export]
macro_rules! export_cleaner {
    ($ty:ident $(, $wit:literal)?) => {
        $crate::__aimass_export_clean!($ty, clean);
    };
}

/// Exports a [`RawCleaner`](crate::RawCleaner) (IPC bytes in and out, no decoding) as the
/// `cleaner` world: `export_raw_cleaner!(MyCleaner);`.
///
/// A second argument (a WIT path) is accepted and ignored, as for [`export_collector!`].
#[macro_export]
macro_rules! export_raw_cleaner {
    ($ty:ident $(, $wit:literal)?) => {
        $crate::__aimass_export_clean!($ty, clean_raw);
    };
}

/// The `cleaner` world's export, shared by [`export_cleaner!`] and [`export_raw_cleaner!`]:
/// `$run` is the `__private` adapter (`clean` decodes Arrow, `clean_raw` does not).
#[doc(hidden)]
#[macro_export]
macro_rules! __aimass_export_clean {
    ($ty:ident, $run:ident) => {
        $crate::__aimass_bindings!("cleaner");

        impl __aimass_bindings::Guest for $ty {
            fn clean(
                input: ::std::vec::Vec<u8>,
                config: $crate::__private::Pairs,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::__private::PluginError> {
                $crate::__private::link_imports();
                $crate::__private::$run::<$ty>(input, config).map_err($crate::__private::plugin_error)
            }
        }

        #[cfg(target_arch = "wasm32")]
        __aimass_bindings::export!($ty with_types_in __aimass_bindings);
    };
}

/// Exports a [`Transform`](crate::Transform) as the `transform` world:
/// `export_transform!(MyTransform);`.
///
/// A second argument (a WIT path) is accepted and ignored, as for [`export_collector!`].
#[macro_export]
macro_rules! export_transform {
    ($ty:ident $(, $wit:literal)?) => {
        $crate::__aimass_bindings!("transform");

        impl __aimass_bindings::Guest for $ty {
            fn fit(
                data: ::std::vec::Vec<u8>,
                config: $crate::__private::Pairs,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::__private::PluginError> {
                $crate::__private::link_imports();
                $crate::__private::fit::<$ty>(data, config).map_err($crate::__private::plugin_error)
            }

            fn apply(
                input: ::std::vec::Vec<u8>,
                state: ::std::vec::Vec<u8>,
                config: $crate::__private::Pairs,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::__private::PluginError> {
                $crate::__private::link_imports();
                $crate::__private::apply::<$ty>(input, state, config)
                    .map_err($crate::__private::plugin_error)
            }
        }

        #[cfg(target_arch = "wasm32")]
        __aimass_bindings::export!($ty with_types_in __aimass_bindings);
    };
}

/// Exports a [`Trainer`](crate::Trainer) as the `trainer` world: `export_trainer!(MyTrainer);`.
///
/// A second argument (a WIT path) is accepted and ignored, as for [`export_collector!`].
#[macro_export]
macro_rules! export_trainer {
    ($ty:ident $(, $wit:literal)?) => {
        $crate::__aimass_bindings!("trainer");

        // Inherent methods of the generated resource handle, called by explicit path.
        impl $crate::DatasetSource for __aimass_bindings::aimass::plugin::dataset::Reader {
            fn schema_ipc(&self) -> ::std::vec::Vec<u8> {
                __aimass_bindings::aimass::plugin::dataset::Reader::schema(self)
            }
            fn row_count(&self) -> u64 {
                __aimass_bindings::aimass::plugin::dataset::Reader::row_count(self)
            }
            fn next_batch_ipc(&self) -> ::std::option::Option<::std::vec::Vec<u8>> {
                __aimass_bindings::aimass::plugin::dataset::Reader::next_batch(self)
            }
            fn rewind(&self) {
                __aimass_bindings::aimass::plugin::dataset::Reader::rewind(self)
            }
        }

        impl __aimass_bindings::Guest for $ty {
            fn train(
                data: &__aimass_bindings::aimass::plugin::dataset::Reader,
                config: $crate::__private::Pairs,
            ) -> ::std::result::Result<__aimass_bindings::Model, $crate::__private::PluginError> {
                $crate::__private::link_imports();
                $crate::__private::train::<$ty>(data, config)
                    .map(|m| __aimass_bindings::Model {
                        onnx: m.onnx,
                        metadata: m.metadata,
                    })
                    .map_err($crate::__private::plugin_error)
            }
        }

        #[cfg(target_arch = "wasm32")]
        __aimass_bindings::export!($ty with_types_in __aimass_bindings);
    };
}
