//! Hostile judge for the runtime's tests: recurses without bound.
//! Behaves (scores each response by its length) unless the first response of a request is
//! `attack`.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "judge",
});

use exports::ponder::plugin::judging::{Guest, JudgeRequest};
use ponder::plugin::types::PluginError;

struct Hostile;

fn lengths(request: &JudgeRequest) -> Vec<Option<f64>> {
    request
        .responses
        .iter()
        .map(|response| Some(response.len() as f64))
        .collect()
}

impl Guest for Hostile {
    fn configure(_config: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn judge(requests: Vec<JudgeRequest>) -> Vec<Result<Vec<Option<f64>>, PluginError>> {
        requests
            .iter()
            .map(|request| {
                if request
                    .responses
                    .first()
                    .is_some_and(|first| first == "attack")
                {
                    attack(request)
                } else {
                    Ok(lengths(request))
                }
            })
            .collect()
    }
}

export!(Hostile);

/// Recursion without end. The frame holds only scalars, so it lives on the wasm call stack (not
/// the shadow stack in linear memory), and `black_box` on the result keeps LLVM from turning the
/// recursion into a loop.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(depth + 1)) ^ depth
}

fn attack(_request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    Ok(vec![Some(recurse(0) as f64)])
}
