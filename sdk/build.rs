//! Bakes the WIT contract into a macro so that a plugin crate generates its component glue from
//! the exact contract this SDK was built with, without knowing where the WIT file lives.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let wit_path = manifest_dir.join("wit").join("ponder-plugin.wit");
    println!("cargo:rerun-if-changed={}", wit_path.display());
    let wit = fs::read_to_string(&wit_path)
        .unwrap_or_else(|err| panic!("ponder-sdk: cannot read {}: {err}", wit_path.display()));

    // A raw string needs a delimiter that does not occur in the text.
    let mut hashes = String::from("#");
    while wit.contains(&format!("\"{hashes}")) {
        hashes.push('#');
    }
    let generated = format!(
        r#"/// Generates the component bindings of one world of `ponder:plugin` in the calling crate.
#[doc(hidden)]
#[macro_export]
macro_rules! __ponder_generate_bindings {{
    ($world:literal) => {{
        $crate::__private::wit_bindgen::generate!({{
            inline: r{hashes}"{wit}"{hashes},
            world: $world,
            runtime_path: "::ponder_sdk::__private::wit_bindgen::rt",
        }});
    }};
}}

/// The WIT contract this SDK implements (`sdk/wit/ponder-plugin.wit`, the workspace's
/// `wit/v0.2.0/`).
pub const WIT: &str = r{hashes}"{wit}"{hashes};
"#
    );
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("wit_bindings.rs");
    fs::write(&out, generated)
        .unwrap_or_else(|err| panic!("ponder-sdk: cannot write {}: {err}", out.display()));
}
