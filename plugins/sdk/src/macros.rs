//! The export macros: one per world, expanded inside the plugin crate.
//!
//! Each macro expands to `wit_bindgen::generate!` for *its* world (through the SDK's re-export,
//! with `runtime_path` pointing at `::aimass_plugin_sdk::wit_bindgen::rt`, so the plugin needs no
//! wit-bindgen dependency), an implementation of the generated `Guest` trait that converts
//! between WIT and SDK types and calls the plugin's trait, the host-import shims that the SDK's
//! [`log`](crate::log) and [`progress`](crate::progress) call, and the `export!` that emits the
//! component exports.
//!
//! Why not generate the bindings once in the SDK? `generate!` embeds a custom section describing
//! its world, and `wasm-component-ld` merges every such section linked into the module: an SDK
//! holding all four worlds would make every plugin claim all the worlds' exports. Generating in
//! the plugin crate keeps one world per component.
//!
//! The WIT is read at compile time from a path relative to the plugin crate's `Cargo.toml`. The
//! one-argument form uses `"../../wit"`, which is right for plugins under `plugins/` in the
//! aimass repository; an out-of-tree plugin passes its own copy of the WIT directory:
//! `export_cleaner!(MyCleaner, "wit")`.
//!
//! On non-wasm targets the component exports are left out (the plugin is compiled natively only
//! for its unit tests), but the `Guest` impl is still type-checked.

/// Emits the bindings module and host shims shared by all export macros. Not public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __aimass_bindings {
    ($world:tt, $wit:tt) => {
        #[doc(hidden)]
        #[allow(dead_code, unused, clippy::all, clippy::pedantic)]
        mod __aimass_bindings {
            $crate::wit_bindgen::generate!({
                world: $world,
                path: $wit,
                runtime_path: "::aimass_plugin_sdk::wit_bindgen::rt",
                bitflags_path: "::aimass_plugin_sdk::wit_bindgen::rt::bitflags",
            });
        }

        #[doc(hidden)]
        #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
        fn __aimass_log(
            level: $crate::Level,
            message: &str,
            fields: &[(::std::string::String, ::std::string::String)],
        ) {
            use __aimass_bindings::aimass::plugin::logging::{Level, log};
            let level = match level {
                $crate::Level::Trace => Level::Trace,
                $crate::Level::Debug => Level::Debug,
                $crate::Level::Info => Level::Info,
                $crate::Level::Warn => Level::Warn,
                $crate::Level::Error => Level::Error,
            };
            log(level, message, fields);
        }

        #[doc(hidden)]
        #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
        fn __aimass_progress(done: u64, total: u64, message: &str) {
            __aimass_bindings::aimass::plugin::progress::report(done, total, message);
        }

        #[doc(hidden)]
        #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
        fn __aimass_infer(
            model: &str,
            inputs: ::std::vec::Vec<$crate::inference::Tensor>,
        ) -> ::std::result::Result<::std::vec::Vec<$crate::inference::Tensor>, ::std::string::String> {
            use __aimass_bindings::aimass::plugin::inference::{Tensor, infer};
            let inputs: ::std::vec::Vec<Tensor> = inputs
                .into_iter()
                .map(|t| Tensor { name: t.name, datatype: t.datatype, shape: t.shape, data: t.data })
                .collect();
            infer(model, &inputs).map(|out| {
                out.into_iter()
                    .map(|t| $crate::inference::Tensor {
                        name: t.name,
                        datatype: t.datatype,
                        shape: t.shape,
                        data: t.data,
                    })
                    .collect()
            })
        }

        #[doc(hidden)]
        #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
        fn __aimass_get(
            key: &str,
        ) -> ::std::result::Result<::std::option::Option<::std::vec::Vec<u8>>, ::std::string::String>
        {
            __aimass_bindings::aimass::plugin::storage::get(key)
        }

        #[doc(hidden)]
        #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
        fn __aimass_list_keys(
            prefix: &str,
            start_after: &str,
        ) -> ::std::result::Result<::std::vec::Vec<::std::string::String>, ::std::string::String> {
            __aimass_bindings::aimass::plugin::storage::list_keys(prefix, start_after)
        }

        /// Hands the host-import shims to the SDK. Natively (unit tests) the generated imports
        /// are `unreachable!()` stubs, so nothing is installed and the SDK logs to stderr.
        #[doc(hidden)]
        fn __aimass_install() {
            #[cfg(target_arch = "wasm32")]
            $crate::__private::install_host($crate::__private::HostImports {
                log: __aimass_log,
                progress: __aimass_progress,
                infer: __aimass_infer,
                get: __aimass_get,
                list_keys: __aimass_list_keys,
            });
        }

        #[doc(hidden)]
        fn __aimass_error(
            error: $crate::Error,
        ) -> __aimass_bindings::aimass::plugin::types::PluginError {
            use __aimass_bindings::aimass::plugin::types::PluginError;
            match error {
                $crate::Error::InvalidInput(m) => PluginError::InvalidInput(m),
                $crate::Error::InvalidConfig(m) => PluginError::InvalidConfig(m),
                $crate::Error::Internal(m) => PluginError::Internal(m),
            }
        }
    };
}

/// Exports a [`Collector`](crate::Collector) as the `collector` world.
///
/// `export_collector!(MyCollector);` or, outside the aimass repository,
/// `export_collector!(MyCollector, "path/to/wit");` (relative to the plugin's `Cargo.toml`).
#[macro_export]
macro_rules! export_collector {
    ($ty:ident) => {
        $crate::export_collector!($ty, "../../wit");
    };
    ($ty:ident, $wit:literal) => {
        $crate::__aimass_bindings!("collector", $wit);

        impl __aimass_bindings::Guest for $ty {
            fn collect(
                input: __aimass_bindings::aimass::plugin::types::Source,
                config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
            ) -> ::std::result::Result<
                ::std::vec::Vec<u8>,
                __aimass_bindings::aimass::plugin::types::PluginError,
            > {
                __aimass_install();
                let source = $crate::Source {
                    content_type: input.content_type,
                    name: input.name,
                    data: input.data,
                };
                $crate::__private::collect::<$ty>(source, config).map_err(__aimass_error)
            }
        }

        #[cfg(target_arch = "wasm32")]
        __aimass_bindings::export!($ty with_types_in __aimass_bindings);
    };
}

/// Exports a [`Cleaner`](crate::Cleaner) as the `cleaner` world.
///
/// `export_cleaner!(MyCleaner);` or `export_cleaner!(MyCleaner, "path/to/wit");`.
#[macro_export]
macro_rules! export_cleaner {
    ($ty:ident) => {
        $crate::export_cleaner!($ty, "../../wit");
    };
    ($ty:ident, $wit:literal) => {
        $crate::__aimass_export_clean!($ty, $wit, clean);
    };
}

/// Exports a [`RawCleaner`](crate::RawCleaner) (IPC bytes in and out, no decoding) as the
/// `cleaner` world.
///
/// `export_raw_cleaner!(MyCleaner);` or `export_raw_cleaner!(MyCleaner, "path/to/wit");`.
#[macro_export]
macro_rules! export_raw_cleaner {
    ($ty:ident) => {
        $crate::export_raw_cleaner!($ty, "../../wit");
    };
    ($ty:ident, $wit:literal) => {
        $crate::__aimass_export_clean!($ty, $wit, clean_raw);
    };
}

/// The `cleaner` world's export, shared by [`export_cleaner!`] and [`export_raw_cleaner!`]:
/// `$run` is the `__private` adapter (`clean` decodes Arrow, `clean_raw` does not).
#[doc(hidden)]
#[macro_export]
macro_rules! __aimass_export_clean {
    ($ty:ident, $wit:literal, $run:ident) => {
        $crate::__aimass_bindings!("cleaner", $wit);

        impl __aimass_bindings::Guest for $ty {
            fn clean(
                input: ::std::vec::Vec<u8>,
                config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
            ) -> ::std::result::Result<
                ::std::vec::Vec<u8>,
                __aimass_bindings::aimass::plugin::types::PluginError,
            > {
                __aimass_install();
                $crate::__private::$run::<$ty>(input, config).map_err(__aimass_error)
            }
        }

        #[cfg(target_arch = "wasm32")]
        __aimass_bindings::export!($ty with_types_in __aimass_bindings);
    };
}

/// Exports a [`Transform`](crate::Transform) as the `transform` world.
///
/// `export_transform!(MyTransform);` or `export_transform!(MyTransform, "path/to/wit");`.
#[macro_export]
macro_rules! export_transform {
    ($ty:ident) => {
        $crate::export_transform!($ty, "../../wit");
    };
    ($ty:ident, $wit:literal) => {
        $crate::__aimass_bindings!("transform", $wit);

        impl __aimass_bindings::Guest for $ty {
            fn fit(
                data: ::std::vec::Vec<u8>,
                config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
            ) -> ::std::result::Result<
                ::std::vec::Vec<u8>,
                __aimass_bindings::aimass::plugin::types::PluginError,
            > {
                __aimass_install();
                $crate::__private::fit::<$ty>(data, config).map_err(__aimass_error)
            }

            fn apply(
                input: ::std::vec::Vec<u8>,
                state: ::std::vec::Vec<u8>,
                config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
            ) -> ::std::result::Result<
                ::std::vec::Vec<u8>,
                __aimass_bindings::aimass::plugin::types::PluginError,
            > {
                __aimass_install();
                $crate::__private::apply::<$ty>(input, state, config).map_err(__aimass_error)
            }
        }

        #[cfg(target_arch = "wasm32")]
        __aimass_bindings::export!($ty with_types_in __aimass_bindings);
    };
}

/// Exports a [`Trainer`](crate::Trainer) as the `trainer` world.
///
/// `export_trainer!(MyTrainer);` or `export_trainer!(MyTrainer, "path/to/wit");`.
#[macro_export]
macro_rules! export_trainer {
    ($ty:ident) => {
        $crate::export_trainer!($ty, "../../wit");
    };
    ($ty:ident, $wit:literal) => {
        $crate::__aimass_bindings!("trainer", $wit);

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
                config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
            ) -> ::std::result::Result<
                __aimass_bindings::Model,
                __aimass_bindings::aimass::plugin::types::PluginError,
            > {
                __aimass_install();
                $crate::__private::train::<$ty>(data, config)
                    .map(|m| __aimass_bindings::Model {
                        onnx: m.onnx,
                        metadata: m.metadata,
                    })
                    .map_err(__aimass_error)
            }
        }

        #[cfg(target_arch = "wasm32")]
        __aimass_bindings::export!($ty with_types_in __aimass_bindings);
    };
}
