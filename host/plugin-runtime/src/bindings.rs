//! Host bindings of the three worlds of `ponder:plugin@0.1.0`, generated from the workspace's WIT.
//! The judge world's imports (`types`, `log`, `models`) are a superset of the others', so the other
//! two worlds reuse its generated interfaces and one linker serves all three.

#![allow(missing_docs, clippy::all)]

/// World `judge`: imports `log` and `models`, exports `judge`.
pub mod judge_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "judge",
    });
}

/// World `thought-template`: imports `log`, exports `template`.
pub mod template_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "thought-template",
        with: {
            "ponder:plugin/types": super::judge_world::ponder::plugin::types,
            "ponder:plugin/log": super::judge_world::ponder::plugin::log,
        },
    });
}

/// World `pair-selector`: imports `log`, exports `selector`.
pub mod selector_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "pair-selector",
        with: {
            "ponder:plugin/types": super::judge_world::ponder::plugin::types,
            "ponder:plugin/log": super::judge_world::ponder::plugin::log,
        },
    });
}

pub use judge_world::ponder::plugin::{log, models, types};
