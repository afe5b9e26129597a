//! Native plugins: the same three roles as shared libraries behind a small C ABI, for code that
//! cannot run in the sandbox (a GPU library, say).
//!
//! **Native code is trusted code.** A native plugin is loaded into the `ponder` process and runs
//! with the full rights of that process: it can read and write every file the user can, use the
//! network, read the environment, and crash or corrupt the host. None of the sandbox applies — no
//! memory cap, no fuel, no deadline, no capability grants (it gets no `models` access either). The
//! host loads one only where the manifest says so explicitly:
//!
//! ```toml
//! [plugins.selector]
//! native = "target/release/libnative_select_best_worst.so"
//! trust = "native"
//! ```
//!
//! Prefer a WebAssembly component; use a native plugin only for code you would run as part of
//! the host itself.
//!
//! The ABI is JSON in, JSON out, documented in `sdk/include/ponder_plugin.h`. The macros below
//! generate it from the same traits the component exports use, so one plugin type can be built
//! both ways:
//!
//! ```ignore
//! ponder_sdk::export_native_pair_selector!(my_crate::MySelector);
//! ```
//!
//! with `crate-type = ["cdylib"]` in the plugin's `Cargo.toml`, built for the host's target.

use crate::PluginFailure;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Version of the native ABI; `ponder_plugin_abi_version` returns it and the host refuses any
/// other.
pub const ABI_VERSION: u32 = 1;
/// `ponder_plugin_role` of a thought template.
pub const ROLE_TEMPLATE: u32 = 0;
/// `ponder_plugin_role` of a judge.
pub const ROLE_JUDGE: u32 = 1;
/// `ponder_plugin_role` of a pair selector.
pub const ROLE_SELECTOR: u32 = 2;

/// Call status: the output is the result JSON.
pub const STATUS_OK: i32 = 0;
/// Call status: the output is a plugin error JSON (`{"kind": "failed", "message": "..."}`).
pub const STATUS_PLUGIN_ERROR: i32 = 1;
/// Call status: the call failed outside the plugin's logic (bad input JSON, a panic, a call
/// before `configure`); the output is a UTF-8 message.
pub const STATUS_ABI_ERROR: i32 = 2;

pub use ponder_contract::JudgeOutcomeJson;

/// Implementation details of the native export macros. Not a stable API.
#[doc(hidden)]
pub mod __private {
    use super::*;
    pub use serde_json;

    /// Hands `bytes` to the caller through the out-pointers; freed by [`free`].
    ///
    /// # Safety
    /// `output` and `output_len` must be valid for writes.
    pub unsafe fn hand_out(bytes: Vec<u8>, output: *mut *mut u8, output_len: *mut usize) {
        let boxed = bytes.into_boxed_slice();
        let len = boxed.len();
        let ptr = Box::into_raw(boxed).cast::<u8>();
        if output.is_null() || output_len.is_null() {
            // SAFETY: `ptr`/`len` came from `Box::into_raw` just above.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
            return;
        }
        // SAFETY: the caller guarantees both pointers are valid for writes.
        unsafe {
            *output = ptr;
            *output_len = len;
        }
    }

    /// Frees a buffer handed out by [`hand_out`].
    ///
    /// # Safety
    /// `ptr`/`len` must come from one [`hand_out`] call and be freed once.
    pub unsafe fn free(ptr: *mut u8, len: usize) {
        if !ptr.is_null() {
            // SAFETY: see the function's contract.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
        }
    }

    /// Decodes the input, runs `body` with panics caught, encodes the result.
    ///
    /// # Safety
    /// `input` must point at `input_len` readable bytes; the out-pointers must be valid.
    pub unsafe fn run<I: DeserializeOwned, O: Serialize>(
        input: *const u8,
        input_len: usize,
        output: *mut *mut u8,
        output_len: *mut usize,
        body: impl FnOnce(I) -> Result<O, PluginFailure>,
    ) -> i32 {
        let bytes = if input.is_null() {
            &[][..]
        } else {
            // SAFETY: the caller guarantees `input_len` readable bytes at `input`.
            unsafe { std::slice::from_raw_parts(input, input_len) }
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let decoded: I = match serde_json::from_slice(bytes) {
                Ok(decoded) => decoded,
                Err(error) => {
                    return (
                        STATUS_ABI_ERROR,
                        format!("input is not the expected JSON: {error}").into_bytes(),
                    );
                }
            };
            match body(decoded) {
                Ok(value) => match serde_json::to_vec(&value) {
                    Ok(json) => (STATUS_OK, json),
                    Err(error) => (
                        STATUS_ABI_ERROR,
                        format!("cannot encode the result: {error}").into_bytes(),
                    ),
                },
                Err(error) => match serde_json::to_vec(&error) {
                    Ok(json) => (STATUS_PLUGIN_ERROR, json),
                    Err(encode) => (STATUS_ABI_ERROR, encode.to_string().into_bytes()),
                },
            }
        }));
        let (status, bytes) = outcome.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".to_string());
            (
                STATUS_ABI_ERROR,
                format!("the plugin panicked: {message}").into_bytes(),
            )
        });
        // SAFETY: forwarded from the caller's guarantee.
        unsafe { hand_out(bytes, output, output_len) };
        status
    }

    /// The error of a call made before a successful `configure`.
    pub fn not_configured() -> PluginFailure {
        PluginFailure::Failed("the plugin was called before `configure` succeeded".to_string())
    }

    /// Turns a poisoned lock (a previous call panicked) into a usable guard.
    pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Shared part of the native export macros: version, role, configure and free.
#[doc(hidden)]
#[macro_export]
macro_rules! __ponder_native_common {
    ($plugin:ty, $role:expr, $trait:path) => {
        static PONDER_NATIVE_STATE: ::std::sync::Mutex<::std::option::Option<$plugin>> =
            ::std::sync::Mutex::new(::std::option::Option::None);

        /// Native ABI: the ABI version.
        #[unsafe(no_mangle)]
        pub extern "C" fn ponder_plugin_abi_version() -> u32 {
            $crate::native::ABI_VERSION
        }

        /// Native ABI: the role number.
        #[unsafe(no_mangle)]
        pub extern "C" fn ponder_plugin_role() -> u32 {
            $role
        }

        /// Native ABI: frees a buffer this library handed out.
        ///
        /// # Safety
        /// `ptr`/`len` must come from one call of this library and be freed once.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn ponder_plugin_free(ptr: *mut u8, len: usize) {
            // SAFETY: forwarded contract.
            unsafe { $crate::native::__private::free(ptr, len) }
        }

        /// Native ABI: `configure` with the JSON of the manifest table.
        ///
        /// # Safety
        /// See `sdk/include/ponder_plugin.h`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn ponder_plugin_configure(
            input: *const u8,
            input_len: usize,
            output: *mut *mut u8,
            output_len: *mut usize,
        ) -> i32 {
            // SAFETY: forwarded contract.
            unsafe {
                $crate::native::__private::run(
                    input,
                    input_len,
                    output,
                    output_len,
                    |config: $crate::native::__private::serde_json::Value| {
                        let plugin = <$plugin as $trait>::configure(&config.to_string())?;
                        *$crate::native::__private::lock(&PONDER_NATIVE_STATE) =
                            ::std::option::Option::Some(plugin);
                        ::std::result::Result::Ok(
                            $crate::native::__private::serde_json::Value::Null,
                        )
                    },
                )
            }
        }

        fn ponder_native_with<R>(
            body: impl FnOnce(&mut $plugin) -> ::std::result::Result<R, $crate::PluginFailure>,
        ) -> ::std::result::Result<R, $crate::PluginFailure> {
            let mut state = $crate::native::__private::lock(&PONDER_NATIVE_STATE);
            match state.as_mut() {
                ::std::option::Option::Some(plugin) => body(plugin),
                ::std::option::Option::None => {
                    ::std::result::Result::Err($crate::native::__private::not_configured())
                }
            }
        }
    };
}

/// Exports a [`crate::ThoughtTemplate`] as a native library (`crate-type = ["cdylib"]`).
/// Use only for code trusted like the host itself (see the module docs).
#[macro_export]
macro_rules! export_native_thought_template {
    ($plugin:ty) => {
        const _: () = {
            $crate::__ponder_native_common!(
                $plugin,
                $crate::native::ROLE_TEMPLATE,
                $crate::ThoughtTemplate
            );

            /// Native ABI: `template.render`.
            ///
            /// # Safety
            /// See `sdk/include/ponder_plugin.h`.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn ponder_plugin_render(
                input: *const u8,
                input_len: usize,
                output: *mut *mut u8,
                output_len: *mut usize,
            ) -> i32 {
                // SAFETY: forwarded contract.
                unsafe {
                    $crate::native::__private::run(
                        input,
                        input_len,
                        output,
                        output_len,
                        |instruction: ::std::vec::Vec<$crate::Message>| {
                            ponder_native_with(|plugin| {
                                <$plugin as $crate::ThoughtTemplate>::render(plugin, &instruction)
                            })
                        },
                    )
                }
            }

            /// Native ABI: `template.parse`.
            ///
            /// # Safety
            /// See `sdk/include/ponder_plugin.h`.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn ponder_plugin_parse(
                input: *const u8,
                input_len: usize,
                output: *mut *mut u8,
                output_len: *mut usize,
            ) -> i32 {
                // SAFETY: forwarded contract.
                unsafe {
                    $crate::native::__private::run(
                        input,
                        input_len,
                        output,
                        output_len,
                        |text: ::std::string::String| {
                            ponder_native_with(|plugin| {
                                ::std::result::Result::Ok(
                                    <$plugin as $crate::ThoughtTemplate>::parse(plugin, &text),
                                )
                            })
                        },
                    )
                }
            }
        };
    };
}

/// Exports a [`crate::Judge`] as a native library (`crate-type = ["cdylib"]`). Native judges get
/// no model access ([`crate::models::NoModels`]). Use only for code trusted like the host itself.
#[macro_export]
macro_rules! export_native_judge {
    ($plugin:ty) => {
        const _: () = {
            $crate::__ponder_native_common!($plugin, $crate::native::ROLE_JUDGE, $crate::Judge);

            /// Native ABI: `judge.judge`.
            ///
            /// # Safety
            /// See `sdk/include/ponder_plugin.h`.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn ponder_plugin_judge(
                input: *const u8,
                input_len: usize,
                output: *mut *mut u8,
                output_len: *mut usize,
            ) -> i32 {
                // SAFETY: forwarded contract.
                unsafe {
                    $crate::native::__private::run(
                        input,
                        input_len,
                        output,
                        output_len,
                        |requests: ::std::vec::Vec<$crate::JudgeRequest>| {
                            ponder_native_with(|plugin| {
                                let results = <$plugin as $crate::Judge>::judge(
                                    plugin,
                                    &requests,
                                    &$crate::models::NoModels,
                                );
                                ::std::result::Result::Ok(
                                    results
                                        .into_iter()
                                        .map($crate::native::JudgeOutcomeJson::from)
                                        .collect::<::std::vec::Vec<_>>(),
                                )
                            })
                        },
                    )
                }
            }
        };
    };
}

/// Exports a [`crate::PairSelector`] as a native library (`crate-type = ["cdylib"]`).
/// Use only for code trusted like the host itself (see the module docs).
#[macro_export]
macro_rules! export_native_pair_selector {
    ($plugin:ty) => {
        const _: () = {
            $crate::__ponder_native_common!(
                $plugin,
                $crate::native::ROLE_SELECTOR,
                $crate::PairSelector
            );

            /// Native ABI: `selector.select`.
            ///
            /// # Safety
            /// See `sdk/include/ponder_plugin.h`.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn ponder_plugin_select(
                input: *const u8,
                input_len: usize,
                output: *mut *mut u8,
                output_len: *mut usize,
            ) -> i32 {
                // SAFETY: forwarded contract.
                unsafe {
                    $crate::native::__private::run(
                        input,
                        input_len,
                        output,
                        output_len,
                        |groups: ::std::vec::Vec<::std::vec::Vec<$crate::Candidate>>| {
                            ponder_native_with(|plugin| {
                                <$plugin as $crate::PairSelector>::select(plugin, &groups)
                            })
                        },
                    )
                }
            }
        };
    };
}
