//! The `select-best-worst` pair selector exported through the native ABI
//! (`sdk/include/ponder_plugin.h`) instead of as a WebAssembly component: the same logic, built
//! as a shared library for the host.
//!
//! This is the example of a native plugin. It runs inside the `ponder` process with full process
//! rights (no sandbox, no limits), so the manifest must opt in explicitly:
//!
//! ```toml
//! [plugins.selector]
//! native = "../target/release/libnative_select_best_worst.so"
//! trust = "native"
//! ```

pub use select_best_worst::BestWorst;

ponder_sdk::export_native_pair_selector!(select_best_worst::BestWorst);

#[cfg(test)]
mod tests {
    use ponder_sdk::native::{STATUS_ABI_ERROR, STATUS_OK, STATUS_PLUGIN_ERROR};

    // The exported symbols, declared as a C caller sees them (the macro defines them inside an
    // anonymous const, so they are reached by symbol name, as the host reaches them).
    unsafe extern "C" {
        fn ponder_plugin_abi_version() -> u32;
        fn ponder_plugin_role() -> u32;
        fn ponder_plugin_free(ptr: *mut u8, len: usize);
        fn ponder_plugin_configure(
            input: *const u8,
            input_len: usize,
            output: *mut *mut u8,
            output_len: *mut usize,
        ) -> i32;
        fn ponder_plugin_select(
            input: *const u8,
            input_len: usize,
            output: *mut *mut u8,
            output_len: *mut usize,
        ) -> i32;
    }

    /// Calls one exported function through its C signature, as the host does.
    fn call(
        function: unsafe extern "C" fn(*const u8, usize, *mut *mut u8, *mut usize) -> i32,
        input: &str,
    ) -> (i32, String) {
        let mut output: *mut u8 = std::ptr::null_mut();
        let mut output_len = 0usize;
        // SAFETY: valid input slice and out-pointers, as the ABI requires.
        let status = unsafe { function(input.as_ptr(), input.len(), &mut output, &mut output_len) };
        // SAFETY: the plugin handed out `output_len` bytes at `output`.
        let text =
            String::from_utf8(unsafe { std::slice::from_raw_parts(output, output_len) }.to_vec())
                .expect("UTF-8 output");
        // SAFETY: returned exactly once to the library that allocated it.
        unsafe { ponder_plugin_free(output, output_len) };
        (status, text)
    }

    #[test]
    fn abi_version_and_role() {
        // SAFETY: argument-less functions of the ABI.
        assert_eq!(unsafe { ponder_plugin_abi_version() }, 1);
        assert_eq!(
            unsafe { ponder_plugin_role() },
            ponder_sdk::native::ROLE_SELECTOR
        );
    }

    #[test]
    fn configure_then_select_over_the_abi() {
        let (status, text) = call(ponder_plugin_configure, r#"{"min_margin": 0.1}"#);
        assert_eq!((status, text.as_str()), (STATUS_OK, "null"));
        let groups = r#"[[{"score": 0.2, "parsed": true}, {"parsed": false}, {"score": 0.9, "parsed": true}], []]"#;
        let (status, text) = call(ponder_plugin_select, groups);
        assert_eq!(status, STATUS_OK, "{text}");
        let pairs: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(
            pairs,
            serde_json::json!([[{"chosen": 2, "rejected": 0, "weight": 1.0}], []])
        );
    }

    #[test]
    fn scores_near_the_float_limit_pair_over_the_abi() {
        // Either margin a concurrent test may configure (0 or 0.1) is below best − worst, which
        // overflows to infinity here.
        let (status, text) = call(ponder_plugin_configure, "{}");
        assert_eq!((status, text.as_str()), (STATUS_OK, "null"));
        let groups =
            r#"[[{"score": -1.7e308, "parsed": true}, {"score": 1.7e308, "parsed": true}]]"#;
        let (status, text) = call(ponder_plugin_select, groups);
        assert_eq!(status, STATUS_OK, "{text}");
        let pairs: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(
            pairs,
            serde_json::json!([[{"chosen": 1, "rejected": 0, "weight": 1.0}]])
        );
    }

    #[test]
    fn errors_come_back_as_statuses() {
        let (status, text) = call(ponder_plugin_configure, r#"{"min_margin": -1}"#);
        assert_eq!(status, STATUS_PLUGIN_ERROR);
        assert!(text.contains("invalid-config"), "{text}");
        let (status, text) = call(ponder_plugin_select, "not json");
        assert_eq!(status, STATUS_ABI_ERROR);
        assert!(text.contains("not the expected JSON"), "{text}");
    }
}
